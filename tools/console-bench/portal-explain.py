#!/usr/bin/env python3
"""The tenant portal's queries, EXPLAIN (ANALYZE, BUFFERS) in one tenant's scope, on the
console benchmark's dataset (tools/console-bench/run.sh --build-only). Prints a psql script:

    tools/console-bench/portal-explain.py TENANT | psql -X -d "$URL" > docs/explain/portal/TENANT.txt
"""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parents[2] / "sql" / "eventlog"
tenant = sys.argv[1] if len(sys.argv) > 1 else "t001"


def load(name):
    text = (root / f"{name}.sql").read_text()
    body = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("--"))
    if "/*filter*/" in body:
        body = body.replace("/*filter*/", "(" + load("search_filter") + ")")
    return body.strip()


# The search's 13 parameters: before, rows, scope tenant, event_id, key, types, tenant,
# endpoint, status, from, to, lowest id, check deliveries.
def search(name, status=None, types=None, check=False):
    status = f"'{status}'" if status else "NULL"
    types = "ARRAY[" + ",".join(f"'{t}'" for t in types) + "]" if types else "NULL"
    return name, (f"9223372036854775807, 51, '{tenant}', NULL, NULL, {types}::text[], NULL, NULL, "
                  f"{status}, NULL, NULL, NULL, {str(check).lower()}")


cases = [
    ("event log, first page", *search("search_events", check=True)),
    ("event log, dead", *search("search_tenant_status", "dead")),
    ("event log, retrying", *search("search_tenant_status", "retrying")),
    ("event log, succeeded", *search("search_tenant_status", "succeeded")),
    ("event log, type order.paid (a type the tenant has: t000 never had one, and now gets an empty page without a query)", *search("search_types", types=["order.paid"], check=True)),
    ("event log, dead, before this change (search_status)", *search("search_status", "dead")),
    ("deliveries of a page", "page_deliveries", f":'page', '{tenant}'"),
    ("endpoints page", "endpoint_health", f"0, 51, '{tenant}', NULL, 10000"),
    ("one delivery", "deliveries_detail", f"NULL, :delivery, '{tenant}'"),
    ("a delivery of another tenant (not found)", "deliveries_detail", f"NULL, 1, '{tenant}x'"),
    ("one event", "event_get", f":'event', '{tenant}', 262144"),
    ("event types offered", "event_types", f"'{tenant}', 200"),
]
print("\\pset pager off")
print("SET max_parallel_workers_per_gather = 0;")
print(f"SELECT array_agg(id)::text AS page FROM (SELECT id FROM outbox.events "
      f"WHERE tenant_id = '{tenant}' ORDER BY id DESC LIMIT 50) x \\gset")
print(f"SELECT d.id AS delivery FROM outbox.deliveries d JOIN outbox.endpoints e "
      f"ON e.id = d.endpoint_id WHERE e.tenant_id = '{tenant}' ORDER BY d.id DESC LIMIT 1 \\gset")
print(f"SELECT event_id AS event FROM outbox.events WHERE tenant_id = '{tenant}' "
      f"ORDER BY id DESC LIMIT 1 \\gset")
for i, (title, name, params) in enumerate(cases):
    print(f"\\echo '== {title} ({name}.sql)'")
    print(f"PREPARE q{i} AS {load(name)};")
    print(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE q{i}({params});")
    print(f"DEALLOCATE q{i};")
