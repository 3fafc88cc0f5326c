-- Every source, for each replica's in-memory copy (src/inbound/source.rs).
SELECT name, verify, secrets, signature_header, tolerance_seconds, ordering_key,
       idempotency_key, event_type, tenant_id, max_body_bytes, rate_limit, get_challenge, enabled
  FROM outbox.sources
