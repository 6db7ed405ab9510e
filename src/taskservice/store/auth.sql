-- The SQL of API tokens and dashboard sessions (store/credentials.py). Secrets are looked up by
-- their SHA-256; the secrets themselves never reach the database.

-- name: create_token
INSERT INTO api_tokens (name, role, secret_hash, created_by, expires_at)
VALUES ($1, $2, $3, $4, CASE WHEN $5::float8 > 0 THEN now() + make_interval(secs => $5) END)
RETURNING id, name, role, created_at, created_by, expires_at, revoked_at, last_used_at;

-- name: token_by_secret
-- last_used_at is written at most once a minute per token, so the usual lookup writes nothing (and
-- commits without a WAL flush). Servers keep what this returns for a while (auth/cache.py).
WITH found AS (
    SELECT id, name, role, expires_at, last_used_at FROM api_tokens
    WHERE secret_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
), touched AS (
    UPDATE api_tokens t SET last_used_at = now()
    FROM found
    WHERE t.id = found.id AND (found.last_used_at IS NULL OR found.last_used_at < now() - interval '1 minute')
)
SELECT id, name, role, expires_at FROM found;

-- name: list_tokens
SELECT id, name, role, created_at, created_by, expires_at, revoked_at, last_used_at
FROM api_tokens ORDER BY id DESC LIMIT $1;

-- name: revoke_token
-- The NOTIFY ($3: the credentials channel) reaches every server at commit: they forget what they keep.
WITH revoked AS (
    UPDATE api_tokens SET revoked_at = now()
    WHERE revoked_at IS NULL AND (name = $1 OR id = $2)
    RETURNING id, name, role, created_at, created_by, expires_at, revoked_at, last_used_at
)
SELECT revoked.*, pg_notify($3, '') IS NULL AS _ FROM revoked;

-- name: live_token_count
SELECT count(*) FROM api_tokens
WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) AND ($1::text IS NULL OR role = $1);

-- name: create_session
INSERT INTO dashboard_sessions (secret_hash, subject, role, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4));

-- name: session_by_secret
SELECT subject, role, expires_at FROM dashboard_sessions WHERE secret_hash = $1 AND expires_at > now();

-- name: delete_session
-- A logout, announced on the credentials channel ($2) like a revoked token.
WITH deleted AS (
    DELETE FROM dashboard_sessions WHERE secret_hash = $1 RETURNING 1
)
SELECT pg_notify($2, '') FROM deleted;

-- name: delete_expired_sessions
DELETE FROM dashboard_sessions WHERE expires_at <= now();
