-- The SQL of run_query's sandbox (store/sandbox.py): a low-privilege role that may connect to the
-- sandbox database only, and the session setting every query runs under. `{role}` and `{database}`
-- are identifiers, quoted by psycopg.sql; `$n` are parameters.

-- name: role_exists
SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1);

-- name: create_role
CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;

-- name: role_is_unsafe
-- A superuser, a role that bypasses row-level security, or a member of $1 (roles that reach the
-- server's files or run programs) is no sandbox.
SELECT rolsuper OR rolbypassrls OR EXISTS (
           SELECT FROM unnest($1::name[]) AS d WHERE pg_has_role(pg_roles.oid, d, 'MEMBER'))
  FROM pg_roles
 WHERE rolname = $2;

-- name: role_may_connect
-- Granted to the role itself, not just through PUBLIC (which an operator may revoke).
SELECT EXISTS (SELECT FROM pg_database, aclexplode(datacl) AS acl
                WHERE datname = $1 AND acl.grantee = $2::regrole AND acl.privilege_type = 'CONNECT');

-- name: grant_connect
GRANT CONNECT ON DATABASE {database} TO {role};

-- name: public_cannot_create
-- PostgreSQL 15 and later already keep PUBLIC from creating objects in schema public.
SELECT NOT has_schema_privilege('public', 'public', 'CREATE');

-- name: revoke_public_create
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- name: limit_statement_time
-- A SELECT, not SET LOCAL: it takes a snapshot, after which the transaction can no longer be
-- switched to READ WRITE (a bare `SET TRANSACTION READ WRITE` would be).
SELECT set_config('statement_timeout', $1, true);
