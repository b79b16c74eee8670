"""The department role (承办单位): a user bound to one unit, who sees and acts on the cases
dispatched to its unit, across streets, and nothing else.

`users.unit_code` (a unit of `units`); the role check gains 'department'; a department user
has a unit and no one else has one (as a commander alone has a street). The login, session
and token functions of migration 0009 also return the user's `unit_code` (dropped and made
again, same grants: EXECUTE for `blockdata_web` only).

Row-level security. A request is scoped with two settings: `blockdata.zone` (migration 0004)
and `blockdata.unit` (the department user's unit code; '' for everyone else). A department
user's zone is `-` (layers.queries.access.NO_STREET): no street has that code, so every
policy by street (the event tables, the geography, the aggregates, cases and whistles by
street) lets it see nothing. Nothing of the event tables: a department sees no street's
service requests or enforcement cases, through the map layers or otherwise. The policies
below, for the reader with a non-empty `blockdata.unit`, let it in to:

- `cases`: see and update the cases whose `main_unit` is the unit or whose
  `assisting_units` contain it (never insert one: the street dispatches);
- `case_history`: see the rows of those cases, insert rows for them (the subquery reads
  `cases` under its policies);
- `whistles`: see the whistles its unit is summoned to (through `whistle_units`);
- `whistle_units`: see and update its own unit's rows (arrival, completion).

PostgreSQL ORs the permissive policies of a table: a commander (zone = their street, unit
'') is held to the street policies as before, the district (zone '*') sees everything.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"
WEB = "blockdata_web"
UNIT = "nullif(current_setting('blockdata.unit', true), '')"
SEARCH_PATH = "pg_catalog, public, pg_temp"
ROLES_BEFORE = "('district', 'commander', 'analyst', 'planner', 'clerk')"
ROLES_AFTER = "('district', 'commander', 'analyst', 'planner', 'clerk', 'department')"

VERIFY = """
CREATE FUNCTION auth_login_verify(
    p_attempt bigint, p_name text, p_digest text, p_sid text, p_now timestamptz, p_remote text
) RETURNS TABLE (id integer, role text, street_code text{unit_out})
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {search_path} AS $fn$
#variable_conflict use_column
DECLARE
    v_user record;
BEGIN
    UPDATE login_attempts a SET checked = true
     WHERE a.id = p_attempt AND a.name = p_name AND NOT a.checked;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT u.id, u.role, u.street_code{unit_select} INTO v_user FROM users u
     WHERE u.name = p_name AND NOT u.disabled AND length(p_digest) > 0
       AND split_part(u.password_hash, '$', 3) = p_digest;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM login_attempts a WHERE a.id = p_attempt;
    INSERT INTO sessions (sid_sha256, user_id, created_at, last_seen_at, remote)
    VALUES (p_sid, v_user.id, p_now, p_now, p_remote);
    RETURN QUERY SELECT v_user.id, v_user.role, v_user.street_code::text{unit_return};
END
$fn$
"""

SESSION = """
CREATE FUNCTION auth_session(p_sid text, p_now timestamptz, p_idle interval, p_lifetime interval)
RETURNS TABLE (id integer, name text, role text, street_code text{unit_out})
LANGUAGE sql SECURITY DEFINER SET search_path = {search_path} AS $fn$
    WITH found AS (
        SELECT s.id AS session_id, u.id, u.name, u.role, u.street_code::text{unit_select}
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
    SELECT id, name, role, street_code{unit_column} FROM found
$fn$
"""

TOKEN_USE = """
CREATE FUNCTION auth_token_use(p_digest text, p_path text, p_remote text)
RETURNS TABLE (id integer, name text, role text, street_code text{unit_out})
LANGUAGE sql SECURITY DEFINER SET search_path = {search_path} AS $fn$
    WITH found AS (
        SELECT u.id, u.name, u.role, u.street_code::text{unit_select}, k.id AS token_id
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
    SELECT id, name, role, street_code{unit_column} FROM found
$fn$
"""

FUNCTIONS = {
    "auth_login_verify(bigint, text, text, text, timestamptz, text)": VERIFY,
    "auth_session(text, timestamptz, interval, interval)": SESSION,
    "auth_token_use(text, text, text)": TOKEN_USE,
}


def _functions(with_unit: bool) -> None:
    parts = {
        "search_path": SEARCH_PATH,
        "unit_out": ", unit_code text" if with_unit else "",
        "unit_select": ", u.unit_code::text" if with_unit else "",
        "unit_return": ", v_user.unit_code::text" if with_unit else "",
        "unit_column": ", unit_code" if with_unit else "",
    }
    for signature, body in FUNCTIONS.items():
        op.execute(f"DROP FUNCTION {signature}")
        op.execute(body.format(**parts))
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {WEB}")


# The department's rows: a case dispatched to the unit (main or assisting).
DISPATCHED = f"(main_unit = {UNIT} OR {UNIT} = ANY (assisting_units))"
POLICIES = (
    f"CREATE POLICY unit ON cases FOR SELECT TO {READER} USING ({DISPATCHED})",
    f"CREATE POLICY unit_update ON cases FOR UPDATE TO {READER} "
    f"USING ({DISPATCHED}) WITH CHECK ({DISPATCHED})",
    # case_history's own policies (0016) already follow `cases`: its subquery reads `cases`
    # under the policies above, so a department sees and inserts its cases' history rows.
    f"CREATE POLICY unit ON whistles FOR SELECT TO {READER} USING (EXISTS ("
    f"SELECT 1 FROM whistle_units w WHERE w.whistle_id = whistles.id AND w.unit_code = {UNIT}))",
    f"CREATE POLICY unit ON whistle_units FOR SELECT TO {READER} USING (unit_code = {UNIT})",
    f"CREATE POLICY unit_update ON whistle_units FOR UPDATE TO {READER} "
    f"USING (unit_code = {UNIT}) WITH CHECK (unit_code = {UNIT})",
)
DROPS = (
    ("unit", "cases"),
    ("unit_update", "cases"),
    ("unit", "whistles"),
    ("unit", "whistle_units"),
    ("unit_update", "whistle_units"),
)


def upgrade() -> None:
    op.add_column("users", sa.Column("unit_code", sa.String(length=64), nullable=True))
    op.create_foreign_key(
        op.f("fk_users_unit_code_units"), "users", "units", ["unit_code"], ["code"]
    )
    op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_role"), "users", f"role in {ROLES_AFTER}")
    op.create_check_constraint(
        op.f("ck_users_unit"), "users", "(role = 'department') = (unit_code is not null)"
    )
    _functions(with_unit=True)
    for policy in POLICIES:
        op.execute(policy)


def downgrade() -> None:
    for name, table in DROPS:
        op.execute(f"DROP POLICY {name} ON {table}")
    _functions(with_unit=False)
    op.execute("DELETE FROM users WHERE role = 'department'")
    op.drop_constraint(op.f("ck_users_unit"), "users", type_="check")
    op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_role"), "users", f"role in {ROLES_BEFORE}")
    op.drop_constraint(op.f("fk_users_unit_code_units"), "users", type_="foreignkey")
    op.drop_column("users", "unit_code")
