#!/usr/bin/env python3
"""Inbound burst check (issue 12), run by tools/bench/inbound.sh: N GitHub-signed requests
with unique bodies from C keep-alive connections at once, as fast as outboxd answers, to
`POST /in/<source>` of a running outboxd; a worker endpoint (this script's own HTTP receiver)
subscribed to the source's events gets them relayed. Then it checks:

* every answer is 2xx, or a deliberate 429/503 (with Retry-After); nothing else, no
  connection errors;
* every 2xx is stored (its `request_id` is a row of outbox.inbound_requests with the same
  body bytes);
* every 2xx is relayed to the worker byte for byte (body and content type), and per ordering
  key in the order the requests were stored.

Prints one `burst:` line of figures and exits 1 on any failure. Standard library only.

  inbound_burst.py --url http://127.0.0.1:PORT/in/gh --secret S --database-url URL \\
                   --requests 50000 --connections 200 --keys 1000
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from urllib.parse import urlparse


def build_requests(n, keys, secret, host, path):
    reqs = []
    pad = "x" * 900
    for i in range(n):
        body = json.dumps({"i": i, "customer": f"c{i % keys}", "pad": pad}, separators=(",", ":")).encode()
        sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nx-github-event: push\r\nx-github-delivery: burst-{i}\r\n"
            f"x-hub-signature-256: sha256={sig}\r\n\r\n"
        ).encode()
        reqs.append((head + body, hashlib.sha256(body).hexdigest()))
    return reqs


async def read_response(reader):
    """Status, headers (lower-case names), body of one HTTP/1.1 response."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed")
    status = int(line.split()[1])
    headers = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    body = await reader.readexactly(n) if n else b""
    return status, headers, body


async def client(host, port, reqs, next_index, results, deadline):
    reader = writer = None
    while True:
        i = next_index[0]
        if i >= len(reqs):
            break
        next_index[0] += 1
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(reqs[i][0])
            status, headers, body = await asyncio.wait_for(read_response(reader), deadline)
            results[i] = (status, headers.get("retry-after"), body)
            if headers.get("connection", "").lower() == "close":
                writer.close()
                writer = None
        except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            results[i] = ("error", None, str(e).encode())
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


class Receiver:
    """The worker: records each relayed request (arrival order, body hash, content type)."""

    def __init__(self):
        self.got = []  # (time, sha256 hex, content-type)

    async def handle(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                headers = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0"))
                body = await reader.readexactly(n) if n else b""
                self.got.append((time.monotonic(), hashlib.sha256(body).hexdigest(), headers.get("content-type")))
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def psql(url, sql):
    return subprocess.run(["psql", "-qAtX", url, "-c", sql], check=True, capture_output=True, text=True).stdout


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--requests", type=int, default=50000)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--relay-timeout", type=float, default=600)
    a = ap.parse_args()
    u = urlparse(a.url)
    failures = []

    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    rport = server.sockets[0].getsockname()[1]
    source = u.path.rsplit("/", 1)[1]
    psql(a.database_url,
         f"SELECT outbox.add_endpoint('http://127.0.0.1:{rport}/worker', '{{inbound.{source}}}');"
         "UPDATE outbox.endpoints SET max_in_flight = 64")

    reqs = build_requests(a.requests, a.keys, a.secret, u.netloc, u.path)
    results = [None] * len(reqs)
    next_index = [0]
    t0 = time.monotonic()
    await asyncio.gather(*[client(u.hostname, u.port, reqs, next_index, results, 60) for _ in range(a.connections)])
    accept_secs = time.monotonic() - t0

    acked = {}  # request id -> index
    counts = {}
    for i, (status, retry_after, body) in enumerate(results):
        counts[status] = counts.get(status, 0) + 1
        if status == 200:
            acked[json.loads(body)["request_id"]] = i
        elif status in (429, 503):
            if not retry_after:
                failures.append(f"request {i}: {status} without Retry-After")
        else:
            failures.append(f"request {i}: {status} {body[:200]!r}")
    # Stored: every acknowledged request id is a row with the same bytes.
    stored = {}
    for line in psql(a.database_url,
                     "SELECT id, encode(sha256(body), 'hex') FROM outbox.inbound_requests WHERE source = "
                     f"'{source}' AND idempotency_key LIKE 'burst-%'").splitlines():
        rid, sha = line.split("|")
        stored[int(rid)] = sha
    missing = [rid for rid, i in acked.items() if stored.get(rid) != reqs[i][1]]
    if missing:
        failures.append(f"{len(missing)} acknowledged requests not stored as sent, e.g. request ids {missing[:5]}")
    unacked_stored = len(set(stored) - set(acked))

    # Relayed: wait (bounded) until the worker has every stored request.
    by_sha = {sha: rid for rid, sha in stored.items()}
    deadline = time.monotonic() + a.relay_timeout
    while time.monotonic() < deadline:
        if len({sha for _, sha, _ in receiver.got} & set(by_sha)) >= len(by_sha):
            break
        await asyncio.sleep(0.2)
    got = receiver.got
    seen = set()
    last = {}
    out_of_order = 0
    for _, sha, ctype in got:
        rid = by_sha.get(sha)
        if rid is None:
            failures.append(f"the worker got a body that is not stored (sha256 {sha})")
            continue
        if ctype != "application/json":
            failures.append(f"request id {rid} relayed with content type {ctype!r}")
        if rid in seen:
            continue  # a duplicate (retry): allowed, at least once
        seen.add(rid)
        i = acked.get(rid)
        if i is not None:
            customer = i % a.keys
            if last.get(customer, -1) > rid:
                out_of_order += 1
            last[customer] = rid
    not_relayed = [rid for rid in acked if rid not in seen]
    if not_relayed:
        failures.append(f"{len(not_relayed)} acknowledged requests not relayed within {a.relay_timeout:.0f} s")
    if out_of_order:
        failures.append(f"{out_of_order} requests relayed out of order within their ordering key")
    relay_secs = (got[-1][0] - got[0][0]) if len(got) > 1 else 0.0
    server.close()

    print(
        f"burst: requests={len(reqs)} connections={a.connections} seconds={accept_secs:.2f} "
        f"answered_per_second={len(reqs) / accept_secs:.0f} accepted={counts.get(200, 0)} "
        f"rate_limited_429={counts.get(429, 0)} unavailable_503={counts.get(503, 0)} "
        f"other={sum(v for k, v in counts.items() if k not in (200, 429, 503))} stored={len(stored)} "
        f"stored_unacknowledged={unacked_stored} relayed={len(seen)} duplicates={len(got) - len(seen)} "
        f"relay_per_second={len(got) / relay_secs if relay_secs else 0:.0f} out_of_order={out_of_order}"
    )
    for f in failures[:20]:
        print(f"FAIL {f}")
    if failures:
        print(f"burst: {len(failures)} failure(s)")
        sys.exit(1)
    print("burst: every acknowledged request stored and relayed byte for byte, in order per key")


if __name__ == "__main__":
    asyncio.run(main())
