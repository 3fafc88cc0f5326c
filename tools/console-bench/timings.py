#!/usr/bin/env python3
"""Times every console page and search, and (with --explain-log) writes the plans of the
event-log queries each one ran. Run by tools/console-bench/run.sh against a running outboxd
on the benchmark dataset; see BENCHMARKS.md ("Console").

Each page is requested --requests times, one request at a time on one keep-alive
connection, cycling through sample values picked from the dataset (different event ids, keys,
endpoints, tenants, time windows), after two warm-up requests. Prints a Markdown table: p50,
p95 and max in milliseconds, server-side time included (HTML rendered, sent, read).
With --explain-log, each family's plans are those of its slowest path (one request each).
"""

import argparse
import datetime
import glob
import http.client
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def psql(db, query):
    out = subprocess.run(["psql", "-X", "-tA", "-d", db, "-c", query], check=True,
                         capture_output=True, text=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


class Console:
    def __init__(self, base, token):
        u = urllib.parse.urlparse(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        self.token = token
        body = urllib.parse.urlencode({"token": token})
        self.conn.request("POST", "/ui/login", body,
                          {"content-type": "application/x-www-form-urlencoded"})
        r = self.conn.getresponse()
        r.read()
        assert r.status == 303, r.status
        self.cookie = r.getheader("set-cookie").split(";")[0]

    def get(self, path):
        headers = {"cookie": self.cookie}
        if path.startswith("/v1/"):
            headers = {"authorization": "Bearer " + self.token}
        t0 = time.perf_counter()
        self.conn.request("GET", path, headers=headers)
        r = self.conn.getresponse()
        body = r.read()
        ms = (time.perf_counter() - t0) * 1000
        if r.status != 200:
            raise SystemExit(f"{path}: {r.status} {body[:300]!r}")
        return ms, body


def q(s):
    return urllib.parse.quote(s, safe="")


def families(db, console):
    """(name, [paths]) for every page and search timed."""
    n = int(psql(db, "SELECT max(id) FROM outbox.events")[0][0])
    picks = [n * k // 23 for k in range(1, 22)]
    ids = ",".join(str(i) for i in picks)
    rows = psql(db, f"SELECT event_id, resource_key FROM outbox.events WHERE id IN ({ids}) ORDER BY id")
    event_ids = [r[0] for r in rows]
    keys = [r[1] for r in rows if r[1].startswith("order:")]
    dead = [r[0] for r in psql(db, """SELECT e.event_id FROM outbox.deliveries d JOIN outbox.events e ON e.id = d.event_pk
                                     WHERE d.state = 'dead' ORDER BY d.id DESC LIMIT 20""")]
    held = [r[0] for r in psql(db, """SELECT e.event_id FROM outbox.deliveries d JOIN outbox.events e ON e.id = d.event_pk
                                     WHERE d.held ORDER BY d.id DESC LIMIT 20""")]
    deliveries = [r[0] for r in psql(db, f"SELECT min(id) FROM outbox.deliveries WHERE event_pk IN ({ids}) GROUP BY event_pk")]
    endpoints = [str(e) for e in range(7, 1000, 53)]
    tenants = ["t%03d" % t for t in range(1, 100, 7)]
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0, tzinfo=None)
    windows = []
    for h in range(2, 140, 9):
        start = now - datetime.timedelta(hours=h)
        end = start + datetime.timedelta(hours=1)
        windows.append(f"from={q(start.isoformat())}&to={q(end.isoformat())}")
    # A cursor 20 pages (1 000 events) deep.
    path = "/v1/events?limit=50"
    for _ in range(20):
        page = json.loads(console.get(path)[1])
        path = "/v1/events?limit=50&cursor=" + page["next_cursor"]
    deep = path.split("cursor=")[1]
    return [
        ("Event log, newest", ["/ui/events"]),
        ("Event log, 20 pages deep (cursor)", [f"/ui/events?cursor={deep}"]),
        ("Search: event_id", [f"/ui/events?q={q(e)}" for e in event_ids]),
        ("Search: resource_key (5 events)", [f"/ui/events?q={q(k)}" for k in keys]),
        ("Search: resource_key with 100 000 events", ["/ui/events?q=hot%3A1"]),
        ("Search: type, exact", [f"/ui/events?q={q('type:' + t)}" for t in
                                 ["order.paid", "invoice.sent", "stock.low", "customer.login"]]),
        ("Search: type pattern order.* (9 types)", ["/ui/events?q=type%3Aorder.*"]),
        ("Search: rare type (1 in 100 000)", ["/ui/events?q=type%3Aaudit.rare"]),
        ("Search: tenant", [f"/ui/events?tenant={t}" for t in tenants]),
        ("Search: tenant with 100 events", ["/ui/events?tenant=rare"]),
        ("Search: endpoint", [f"/ui/events?endpoint={e}" for e in endpoints]),
        ("Search: endpoint + dead", [f"/ui/events?endpoint={e}&status=dead" for e in endpoints]),
        ("Search: status dead", ["/ui/events?status=dead"]),
        ("Search: status held (behind its lane head)", ["/ui/events?status=held"]),
        ("Search: status retrying", ["/ui/events?status=retrying"]),
        ("Search: status in flight", ["/ui/events?status=delivering"]),
        ("Search: status pending", ["/ui/events?status=pending"]),
        ("Search: status succeeded", ["/ui/events?status=succeeded"]),
        ("Search: time range (1 hour, days ago)", [f"/ui/events?{w}" for w in windows]),
        ("Search: type pattern + tenant + dead", [f"/ui/events?q=type%3Aorder.*&tenant={t}&status=dead" for t in tenants]),
        ("Search: type pattern + tenant with 100 events", ["/ui/events?q=type%3Aorder.*&tenant=rare"]),
        ("Search: rare type + big tenant", ["/ui/events?q=type%3Aaudit.rare&tenant=t000"]),
        ("Search: tenant + succeeded", [f"/ui/events?tenant={t}&status=succeeded" for t in tenants]),
        ("Search: tenant + dead", [f"/ui/events?tenant={t}&status=dead" for t in tenants]),
        ("Event page", [f"/ui/events/{q(e)}" for e in event_ids]),
        ("Event page, dead delivery", [f"/ui/events/{q(e)}" for e in dead]),
        ("Event page, held delivery (lane position)", [f"/ui/events/{q(e)}" for e in held]),
        ("Endpoints (health of 50)", ["/ui/endpoints"]),
        ("Endpoint page", [f"/ui/endpoints/{e}" for e in endpoints]),
        ("API: GET /v1/events?q=<resource_key>", [f"/v1/events?q={q(k)}" for k in keys]),
        ("API: GET /v1/events?status=dead&endpoint_id=", [f"/v1/events?status=dead&endpoint_id={e}" for e in endpoints]),
        ("API: GET /v1/deliveries/{id}", [f"/v1/deliveries/{d}" for d in deliveries]),
        ("API: GET /v1/event-types", ["/v1/event-types"]),
    ]


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def timings(console, fams, requests):
    print(f"| page | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|")
    worst = 0
    for name, paths in fams:
        for p in paths[:2]:
            console.get(p)
        samples = [console.get(paths[i % len(paths)])[0] for i in range(requests)]
        p95 = percentile(samples, 95)
        worst = max(worst, p95)
        print(f"| {name} | {percentile(samples, 50):.1f} | {p95:.1f} | {max(samples):.1f} |")
        sys.stdout.flush()
    print(f"\nslowest p95: {worst:.1f} ms ({requests} requests each)")


def first_lines():
    """The first line of every event-log query file → its name (auto_explain logs the text)."""
    out = {}
    for f in glob.glob(os.path.join(ROOT, "sql", "eventlog", "*.sql")):
        with open(f) as fh:
            out[fh.readline().strip()] = os.path.basename(f)[:-4]
    return out


ENTRY = re.compile(r"LOG:\s+duration: ([0-9.]+) ms\s+plan:")


def plans_in(log_text, names):
    """[(query name, duration ms, plan)] of the event-log statements in a piece of log."""
    out = []
    lines = log_text.splitlines()
    i = 0
    while i < len(lines):
        m = ENTRY.search(lines[i])
        i += 1
        if not m:
            continue
        body = []
        while i < len(lines) and (lines[i].startswith("\t") or lines[i].startswith(" ")):
            body.append(lines[i][1:] if lines[i].startswith("\t") else lines[i])
            i += 1
        if not body or not body[0].startswith("Query Text: "):
            continue
        name = names.get(body[0][len("Query Text: "):].strip())
        if name is None:
            continue
        start = next((k for k, l in enumerate(body) if "(cost=" in l), len(body))
        out.append((name, float(m.group(1)), "\n".join(body[start:])))
    return out


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def explain(console, fams, log_path, out_dir):
    names = first_lines()
    os.makedirs(out_dir, exist_ok=True)
    for old in glob.glob(os.path.join(out_dir, "*.txt")):
        os.remove(old)
    for name, paths in fams:
        # The family's slowest path (one request each, warm) is the one shown.
        for path in paths:
            console.get(path)
        path = max(paths, key=lambda p: console.get(p)[0])
        before = os.path.getsize(log_path)
        ms, _ = console.get(path)
        time.sleep(0.3)
        with open(log_path, errors="replace") as fh:
            fh.seek(before)
            found = plans_in(fh.read(), names)
        with open(os.path.join(out_dir, slug(name) + ".txt"), "w") as fh:
            fh.write(f"-- {name}\n-- GET {path}  ({ms:.1f} ms with auto_explain's instrumentation; "
                     f"the slowest of the {len(paths)} paths timed)\n")
            fh.write("-- EXPLAIN (ANALYZE, BUFFERS) of each event-log query the request ran, as auto_explain\n"
                     "-- logged it (tools/console-bench/run.sh), on 10 M events / 25 M deliveries.\n\n")
            for qname, dur, plan in found:
                fh.write(f"-- sql/eventlog/{qname}.sql: {dur:.3f} ms\n{plan}\n\n")
        print(f"  {slug(name)}.txt: {len(found)} plans")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--explain-log")
    ap.add_argument("--explain-out")
    a = ap.parse_args()
    console = Console(a.base, a.token)
    fams = families(a.db, console)
    if a.explain_log:
        explain(console, fams, a.explain_log, a.explain_out)
    else:
        timings(console, fams, a.requests)


if __name__ == "__main__":
    main()
