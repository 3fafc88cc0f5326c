-- Wake every replica's claimer (revived deliveries are ready).
SELECT pg_notify('outboxd_deliveries', '')
