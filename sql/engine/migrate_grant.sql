-- At the end of every migration run: the privileges of the outboxd_* roles (sql/roles.sql)
-- on whatever the migrations created, for the roles that exist (migrations/V4).
SELECT outbox.grant_roles()
