-- $1 url, $2 event-type patterns as a text array literal ('{order.*}'), $3 tenant, $4 secret.
SELECT outbox.add_endpoint($1, $2::text::text[], $3, $4)
