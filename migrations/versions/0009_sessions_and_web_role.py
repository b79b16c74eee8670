"""The web server's own login role; server-side sessions, token expiry, the login throttle.

`blockdata_web` is the role the map server logs in as (`blockdata db upgrade` gives it LOGIN
and a generated password kept in var/: passwords are not DDL). It is a member of
`blockdata_reader` (INHERIT: it has the reader's rights and is held to the reader's
row-level security policies), not a superuser, may not create roles or databases, and is
no member of the owner: it cannot `set role` to anything but the reader.

Before a request is scoped to the reader the server must check a password, a session or a
token. It does so through the SECURITY DEFINER functions below (fixed search_path, pg_temp
last; EXECUTE for `blockdata_web` only), never by reading `users`, `sessions` or
`api_tokens`: the web role cannot read a password hash, a token digest or a session row.

- `auth_login_challenge(name, remote)`: the login throttle and the hash parameters. It counts
  the failed attempts of the client address (10 a minute) and of the user name (10 in 15
  minutes) in `login_attempts`, shared by every server process, under two advisory locks
  (address, then name: no deadlock), so concurrent attempts are counted exactly. Past a
  limit: `throttled`. Else it records the attempt and returns the method and salt of the
  user's werkzeug hash (`method$salt$digest`) — for an unknown or disabled user a decoy salt
  derived from a key only the owner reads, so the server does the same hashing either way.
- `auth_login_verify(attempt, name, digest, sid, now, remote)`: consumes the attempt (each
  one checks one password), compares the digest the server computed with the stored one;
  when they match, forgets the attempt (only failures count) and opens a session.
- `auth_session(sid, now, idle, lifetime)`: the user of a live session (not ended, seen
  within `idle`, opened within `lifetime`), its `last_seen_at` stamped to the minute, never
  waiting for a row lock. `auth_session_end(sid, now)`: logout.
- `auth_token_use(digest, path, remote)`: a live token's user (not revoked, not expired),
  its `last_used_at` stamp and its audit row, as before (app/auth.py).

Sessions and tokens are kept as SHA-256 digests only. Tokens get `expires_at`, by default 90
days after they are made (the tokens that exist when this revision runs: 90 days after it).

The server's own bookkeeping, done as `blockdata_web` before it scopes a request or in a
moment of its own (Open311's `_as_server`, the tile seeder): the tile version of a request
reads `tile_epochs` and `tile_changes` (and whether `request_dirty_days` has rows) as before;
the seeder compacts `tile_changes` and lists the streets' tiles; an Open311 intake places
its point (every grid, lane and landmark) and refreshes the request aggregates of its day
(reads every request, rewrites the aggregate rows of that day, consumes `request_dirty_days`).
Those need narrow grants and policies `TO blockdata_web` below: reads of the geography and
the requests (the reader with zone '*' reads them anyway), writes on derived tables only.
The request aggregates (derived from `service_requests`) may be read and rewritten, row by
row, by the NOLOGIN role `blockdata_aggregates`, of which the web role is a member: an
intake's refresh deletes and inserts their rows (never TRUNCATE, DDL or a new table: those
are the owner's, in the ETL); the web role owns nothing of the schema.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"
WEB = "blockdata_web"
AGGREGATOR = "blockdata_aggregates"  # rewrites the derived request aggregates' rows
SEARCH_PATH = "pg_catalog, public, pg_temp"
# Throttle: failed logins per client address, per user name; rows older than KEEP go.
ADDRESS_LIMIT, ADDRESS_WINDOW = 10, "1 minute"
NAME_LIMIT, NAME_WINDOW = 10, "15 minutes"
KEEP = "1 day"
TOKEN_DAYS = 90

# Read unscoped by the server's own work (placing, geocoding, the seeder, the refresh).
SERVER_READS = ("streets", "grids", "lanes", "landmarks", "service_requests")
# Rewritten row by row by an Open311 intake's refresh: DML granted to a NOLOGIN role that the
# web role is a member of (kept through the ETL's swaps, which copy grants: etl.swap).
AGGREGATES = (
    "request_daily",
    "request_periods",
    "request_cells_daily",
    "request_cells_periods",
    "request_street_daily",
    "request_open",
)

CHALLENGE = f"""
CREATE FUNCTION auth_login_challenge(p_name text, p_remote text)
RETURNS TABLE (throttled boolean, method text, salt text, attempt_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {SEARCH_PATH} AS $fn$
#variable_conflict use_column
DECLARE
    v_hash text;
    v_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('blockdata.login.remote'), hashtext(p_remote));
    PERFORM pg_advisory_xact_lock(hashtext('blockdata.login.name'), hashtext(p_name));
    DELETE FROM login_attempts a WHERE a.at < now() - interval '{KEEP}';
    IF (SELECT count(*) FROM login_attempts a
         WHERE a.remote = p_remote AND a.at > now() - interval '{ADDRESS_WINDOW}')
           >= {ADDRESS_LIMIT}
       OR (SELECT count(*) FROM login_attempts a
            WHERE a.name = p_name AND a.at > now() - interval '{NAME_WINDOW}') >= {NAME_LIMIT}
    THEN
        RETURN QUERY SELECT true, NULL::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;
    INSERT INTO login_attempts (remote, name) VALUES (p_remote, p_name) RETURNING id INTO v_id;
    SELECT u.password_hash INTO v_hash FROM users u WHERE u.name = p_name AND NOT u.disabled;
    IF v_hash IS NULL THEN
        RETURN QUERY SELECT false, NULL::text,
            (SELECT substr(md5(k.key || p_name), 1, 16) FROM login_decoy k), v_id;
    ELSE
        RETURN QUERY SELECT false, split_part(v_hash, '$', 1), split_part(v_hash, '$', 2), v_id;
    END IF;
END
$fn$
"""

VERIFY = f"""
CREATE FUNCTION auth_login_verify(
    p_attempt bigint, p_name text, p_digest text, p_sid text, p_now timestamptz, p_remote text
) RETURNS TABLE (id integer, role text, street_code text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {SEARCH_PATH} AS $fn$
#variable_conflict use_column
DECLARE
    v_user record;
BEGIN
    UPDATE login_attempts a SET checked = true
     WHERE a.id = p_attempt AND a.name = p_name AND NOT a.checked;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT u.id, u.role, u.street_code INTO v_user FROM users u
     WHERE u.name = p_name AND NOT u.disabled AND length(p_digest) > 0
       AND split_part(u.password_hash, '$', 3) = p_digest;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM login_attempts a WHERE a.id = p_attempt;
    INSERT INTO sessions (sid_sha256, user_id, created_at, last_seen_at, remote)
    VALUES (p_sid, v_user.id, p_now, p_now, p_remote);
    RETURN QUERY SELECT v_user.id, v_user.role, v_user.street_code::text;
END
$fn$
"""

SESSION = f"""
CREATE FUNCTION auth_session(p_sid text, p_now timestamptz, p_idle interval, p_lifetime interval)
RETURNS TABLE (id integer, name text, role text, street_code text)
LANGUAGE sql SECURITY DEFINER SET search_path = {SEARCH_PATH} AS $fn$
    WITH found AS (
        SELECT s.id AS session_id, u.id, u.name, u.role, u.street_code::text
          FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.sid_sha256 = p_sid AND s.ended_at IS NULL AND u.disabled IS false
           AND s.last_seen_at > p_now - p_idle AND s.created_at > p_now - p_lifetime
    ), stamped AS (
        UPDATE sessions SET last_seen_at = p_now
         WHERE id = (
            SELECT s.id FROM sessions s JOIN found f ON s.id = f.session_id
             WHERE s.last_seen_at < p_now - interval '1 minute'
               FOR UPDATE OF s SKIP LOCKED
         )
    )
    SELECT id, name, role, street_code FROM found
$fn$
"""

SESSION_END = f"""
CREATE FUNCTION auth_session_end(p_sid text, p_now timestamptz) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = {SEARCH_PATH} AS $fn$
    UPDATE sessions SET ended_at = p_now WHERE sid_sha256 = p_sid AND ended_at IS NULL
$fn$
"""

# As app/auth.py ran it before this revision, plus the expiry: one statement, one round trip;
# the stamp to the minute and never waiting for the row lock; a wrong, revoked or expired
# token finds no row: nothing is stamped or logged.
TOKEN_USE = f"""
CREATE FUNCTION auth_token_use(p_digest text, p_path text, p_remote text)
RETURNS TABLE (id integer, name text, role text, street_code text)
LANGUAGE sql SECURITY DEFINER SET search_path = {SEARCH_PATH} AS $fn$
    WITH found AS (
        SELECT u.id, u.name, u.role, u.street_code::text, k.id AS token_id
          FROM api_tokens k JOIN users u ON u.id = k.user_id
         WHERE k.token_sha256 = p_digest AND k.revoked_at IS NULL AND k.expires_at > now()
           AND u.disabled IS false
    ), stamped AS (
        UPDATE api_tokens SET last_used_at = now()
         WHERE id = (
            SELECT k.id FROM api_tokens k JOIN found f ON k.id = f.token_id
             WHERE k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute'
               FOR UPDATE OF k SKIP LOCKED
         )
    ), logged AS (
        INSERT INTO audit_log (user_name, role, action, path, remote)
        SELECT name, role, 'token_use', p_path, p_remote FROM found
    )
    SELECT id, name, role, street_code FROM found
$fn$
"""

FUNCTIONS = {
    "auth_login_challenge(text, text)": CHALLENGE,
    "auth_login_verify(bigint, text, text, text, timestamptz, text)": VERIFY,
    "auth_session(text, timestamptz, interval, interval)": SESSION,
    "auth_session_end(text, timestamptz)": SESSION_END,
    "auth_token_use(text, text, text)": TOKEN_USE,
}


def _existing(names: Sequence[str]) -> list[str]:
    bind = op.get_bind()
    return [n for n in names if bind.exec_driver_sql(f"select to_regclass('{n}')").scalar()]


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("sid_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remote", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("sid_sha256", name=op.f("uq_sessions_sid_sha256")),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"], unique=False)
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("remote", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("checked", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index("ix_login_attempts_remote_at", "login_attempts", ["remote", "at"])
    op.create_index("ix_login_attempts_name_at", "login_attempts", ["name", "at"])
    op.create_index("ix_login_attempts_at", "login_attempts", ["at"])
    op.create_table(
        "login_decoy",
        sa.Column(
            "key",
            sa.Text(),
            server_default=sa.text("gen_random_uuid()::text"),
            nullable=False,
            comment="salts the decoy hash of unknown user names; only the owner reads it",
        ),
    )
    op.execute("INSERT INTO login_decoy DEFAULT VALUES")
    # Every token expires: by default 90 days after it was made (those made before this
    # revision: 90 days after it); `blockdata users token --days N` sets another expiry.
    op.add_column(
        "api_tokens",
        sa.Column(
            "expires_at",
            sa.DateTime(timezone=True),
            server_default=sa.text(f"now() + interval '{TOKEN_DAYS} days'"),
            nullable=False,
        ),
    )

    op.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WEB}') "
        f"THEN CREATE ROLE {WEB} NOLOGIN INHERIT; END IF; END $$"
    )
    op.execute(f"GRANT {READER} TO {WEB}")
    for signature, body in FUNCTIONS.items():
        op.execute(body)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {WEB}")

    op.execute(f"GRANT SELECT ON tile_epochs TO {WEB}")
    op.execute(f"GRANT SELECT, INSERT, DELETE ON tile_changes TO {WEB}")
    op.execute(f"GRANT SELECT, DELETE ON request_dirty_days TO {WEB}")
    for table in _existing(SERVER_READS):
        op.execute(f"CREATE POLICY server ON {table} FOR SELECT TO {WEB} USING (true)")
    op.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{AGGREGATOR}') "
        f"THEN CREATE ROLE {AGGREGATOR} NOLOGIN; END IF; END $$"
    )
    op.execute(f"GRANT {AGGREGATOR} TO {WEB}")
    for table in _existing(AGGREGATES):
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {AGGREGATOR}")
        # Row-level security (0004) would refuse its writes; the request's own reads run as
        # the reader, who is no member of the rewriter, and stay zone-scoped.
        op.execute(
            f"CREATE POLICY rewrite ON {table} FOR ALL TO {AGGREGATOR} USING (true) "
            "WITH CHECK (true)"
        )


def downgrade() -> None:
    for table in _existing(AGGREGATES):
        op.execute(f"DROP POLICY rewrite ON {table}")
        op.execute(f"REVOKE ALL ON {table} FROM {AGGREGATOR}")
    op.execute(f"REVOKE {AGGREGATOR} FROM {WEB}")
    for table in _existing(SERVER_READS):
        op.execute(f"DROP POLICY server ON {table}")
    op.execute(f"REVOKE ALL ON request_dirty_days, tile_changes, tile_epochs FROM {WEB}")
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    # The role belongs to the cluster (other databases may use it): it stays, without rights.
    op.execute(f"REVOKE {READER} FROM {WEB}")
    op.drop_column("api_tokens", "expires_at")
    op.drop_table("login_decoy")
    op.drop_index("ix_login_attempts_at", table_name="login_attempts")
    op.drop_index("ix_login_attempts_name_at", table_name="login_attempts")
    op.drop_index("ix_login_attempts_remote_at", table_name="login_attempts")
    op.drop_table("login_attempts")
    op.drop_index("ix_sessions_user_id", table_name="sessions")
    op.drop_table("sessions")
