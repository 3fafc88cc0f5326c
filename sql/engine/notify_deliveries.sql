-- Wake every replica's claimer: new lane heads or unordered deliveries are ready.
SELECT pg_notify('outboxd_deliveries', '')
