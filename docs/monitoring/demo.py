#!/usr/bin/env python3
"""A real run for the dashboard picture: a throwaway PostgreSQL, a webhook receiver, two
outboxd replicas, a real Prometheus scraping them, and traffic with failures, for MINUTES
minutes; then render.py draws the dashboard's panels from that Prometheus.

  python3 docs/monitoring/demo.py --outboxd target/release/outboxd --minutes 12

Needs: PostgreSQL server binaries (/usr/lib/postgresql/*/bin), `prometheus` (Debian package),
`openssl` (throwaway client certificates), `chromium` (for render.py). Runs as root (initdb then
runs as the postgres user) or not.
Everything listens on 127.0.0.1 and is stopped at the end.
"""

import argparse
import glob
import http.server
import os
import pwd
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PG_PORT, PROM_PORT, RX_PORT = 55491, 9190, 18081
REPLICAS = [9101, 9102]
TOKEN = "demo-admin-token-0123456789"

# The receiver: /ok answers 204 after a few ms, /slow after up to a second, /flaky fails one
# request in three, /down answers 500 until `down_until`, then 204.
state = {"down_until": 0.0}


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        path = self.path
        if path == "/slow":
            time.sleep(random.uniform(0.2, 1.2))
            code = 204
        elif path == "/flaky":
            time.sleep(random.uniform(0.005, 0.05))
            code = 503 if random.random() < 0.33 else 204
        elif path == "/down":
            code = 500 if time.time() < state["down_until"] else 204
        else:
            time.sleep(random.uniform(0.002, 0.03))
            code = 204
        self.send_response(code)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def run_as_postgres(cmd):
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def psql(sql):
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", f"postgres://postgres@127.0.0.1:{PG_PORT}/postgres", "-c", sql],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def client_certificate(certs, name, days):
    """A throwaway self-signed client certificate valid for `days` more days, as outboxd reads
    it from OUTBOXD_CLIENT_CERT_DIR (`<name>.crt` and `<name>.key`)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(certs / f"{name}.key"), "-out", str(certs / f"{name}.crt"),
                    "-days", str(days), "-subj", f"/CN={name}"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--outboxd", required=True)
    ap.add_argument("--minutes", type=float, default=12)
    ap.add_argument("--out", default=str(HERE / "dashboard.png"))
    args = ap.parse_args()
    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    work = Path(tempfile.mkdtemp(prefix="outboxd-demo."))
    procs = []
    try:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(work, pw.pw_uid, pw.pw_gid)
        run_as_postgres([f"{bindir}/initdb", "-D", f"{work}/pg", "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8", "--locale=C"])
        run_as_postgres([f"{bindir}/pg_ctl", "-D", f"{work}/pg", "-l", f"{work}/pg.log", "-w", "start",
                         "-o", f"-p {PG_PORT} -k {work} -c listen_addresses=127.0.0.1 -c fsync=off"])
        url = f"postgres://postgres@127.0.0.1:{PG_PORT}/postgres"
        subprocess.run([args.outboxd, "migrate"], env={**os.environ, "DATABASE_URL": url}, check=True)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", RX_PORT), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        rx = f"http://127.0.0.1:{RX_PORT}"
        # Client certificates (mutual TLS) for four endpoints: one expiring in 10 days, one in
        # 21, one in 200, and `legacy-mtls`, whose key goes missing at minute 8 (a rotation gone
        # wrong): unusable from then on, its endpoint's attempts fail with kind `tls`. The
        # receiver is plain HTTP, so a usable certificate changes nothing on the wire; outboxd
        # still loads each one and exports its state.
        certs = work / "client-certs"
        certs.mkdir()
        for name, days in [("acme-mtls", 10), ("bank-mtls", 21), ("partner-mtls", 200), ("legacy-mtls", 90)]:
            client_certificate(certs, name, days)
        for path, types, cert in [("/ok", "order.*", "partner-mtls"), ("/ok", "*", "acme-mtls"),
                                  ("/slow", "order.*", "bank-mtls"), ("/flaky", "invoice.*", None),
                                  ("/down", "*", None), ("/ok", "invoice.*", "legacy-mtls")]:
            named = f", client_certificate => '{cert}'" if cert else ""
            psql(f"SELECT outbox.add_endpoint('{rx}{path}', '{{{types}}}'{named})")

        env = {**os.environ, "DATABASE_URL": url, "OUTBOXD_ALLOW_NETWORKS": "127.0.0.0/8",
               "OUTBOXD_ADMIN_TOKEN": TOKEN, "OUTBOXD_MAX_AGE": "4m",
               "OUTBOXD_RETRY_SCHEDULE": "2s,5s,15s,30s", "OUTBOXD_CIRCUIT_COOLDOWN": "20s",
               "OUTBOXD_STATS_INTERVAL": "5s", "OUTBOXD_LOG": "warn", "OUTBOXD_CLIENT_CERT_DIR": str(certs)}
        for port in REPLICAS:
            log = open(work / f"outboxd-{port}.log", "w")
            procs.append(subprocess.Popen([args.outboxd, "run"], env={**env, "OUTBOXD_LISTEN": f"127.0.0.1:{port}"},
                                          stdout=log, stderr=log))
        prom_cfg = work / "prometheus.yml"
        targets = ", ".join(f"'127.0.0.1:{p}'" for p in REPLICAS)
        prom_cfg.write_text(
            "global: {scrape_interval: 5s, evaluation_interval: 5s}\n"
            "scrape_configs:\n"
            f"  - job_name: outboxd\n    static_configs:\n      - targets: [{targets}]\n"
            "        labels: {namespace: demo}\n")
        procs.append(subprocess.Popen(["prometheus", f"--config.file={prom_cfg}", f"--storage.tsdb.path={work}/tsdb",
                                       f"--web.listen-address=127.0.0.1:{PROM_PORT}"],
                                      stdout=subprocess.DEVNULL, stderr=open(work / "prometheus.log", "w")))

        # Traffic: a steady flow with bursts; the /down endpoint fails from minute 2 to 7 (its
        # circuit opens, deliveries older than the 4 min max age die), `legacy-mtls` loses its
        # key at minute 8, a spike of 3 000 events per tick at 9.
        start = time.time()
        end = start + args.minutes * 60
        while time.time() < end:
            minute = (time.time() - start) / 60
            if 2 <= minute < 7:
                state["down_until"] = start + 7 * 60
            if minute >= 8 and (certs / "legacy-mtls.key").exists():
                (certs / "legacy-mtls.key").unlink()
            burst = 200 if int(minute) % 5 == 4 else 0
            n = random.randint(10, 40) + burst
            kind = random.choice(["order.paid", "order.shipped", "invoice.paid"])
            psql(f"SELECT outbox.publish('{kind}', jsonb_build_object('i', g), resource_key => 'r' || (g % 50)) "
                 f"FROM generate_series(1, {n}) g")
            if 9 <= minute < 9.2:
                psql("SELECT outbox.publish('order.paid', '{}'::jsonb) FROM generate_series(1, 3000)")
            time.sleep(2)
        subprocess.run([sys.executable, str(HERE / "render.py"), "--prometheus", f"http://127.0.0.1:{PROM_PORT}",
                        "--minutes", str(args.minutes), "--out", args.out], check=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) +
                       [f"{bindir}/pg_ctl", "-D", f"{work}/pg", "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
