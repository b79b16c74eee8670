"""The case queue at a million cases: policies that read the caller's zone once per query,
and indexes for a street's and a unit's queue.

Row-level security on `cases` (migrations 0016, 0018) compared each row with
`current_setting('blockdata.zone')` and `current_setting('blockdata.unit')`, which PostgreSQL
evaluates per row: a street's counts by state over its ~67,000 cases spent 130 ms in those
calls alone (46 ms with the setting read once). The same policies are recreated with each
setting read in a scalar subquery — an InitPlan, evaluated once per query — meaning the same
rows (`bench/bench_cases_api.py` measures the queue before and after).

Indexes:
- `(street_code, state, main_unit) INCLUDE (assisting_units, version, updated_at)`: a
  street's counts by state and by unit, and the queue's live stamp (the versions' sum, the
  newest change), from the index alone (the policies' columns are in it: no heap fetch);
- `(street_code, due_at, id)`: the queue's first page in its order (due time, then id);
- GIN on `assisting_units`, read by `unit_case_ids(unit)`: the ids of the cases dispatched to
  a unit (main or assisting) that the caller may see. Under row-level security a query's own
  conditions that are not leakproof (`@>` on arrays is not) cannot use an index, so a
  department's queue read every case of the district (440 ms at 1M); this function (its
  owner's rights, no argument but the unit, the policies' visibility rule repeated inside, so
  it returns nothing the caller could not read) gives the ids by index, and the query joins
  them by primary key, the policies still applied.
The first leads with `street_code`, so `ix_cases_street_code` (0016) goes.

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"
SEARCH_PATH = "pg_catalog, public, pg_temp"
ZONE = "current_setting('blockdata.zone', true)"
OWN_UNIT = "nullif(current_setting('blockdata.unit', true), '')"
# The policies' rule (zone, unit) as it stands below: what the caller may read.
VISIBLE = (
    f"({ZONE} = '*' OR street_code = {ZONE} "
    f"OR main_unit = {OWN_UNIT} OR {OWN_UNIT} = ANY (assisting_units))"
)
UNIT_CASE_IDS = f"""
CREATE FUNCTION unit_case_ids(unit text) RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {SEARCH_PATH} AS $fn$
    SELECT id FROM cases WHERE main_unit = unit AND {VISIBLE}
    UNION ALL
    SELECT id FROM cases
    WHERE assisting_units @> ARRAY[unit]::varchar(64)[] AND main_unit IS DISTINCT FROM unit
      AND {VISIBLE}
$fn$
"""


def _policies(zone: str, unit: str) -> list[str]:
    street = f"({zone} = '*' OR street_code = {zone})"
    dispatched = f"(main_unit = {unit} OR {unit} = ANY (assisting_units))"
    return [
        f"CREATE POLICY zone ON cases FOR ALL TO {READER} USING {street} WITH CHECK {street}",
        f"CREATE POLICY unit ON cases FOR SELECT TO {READER} USING {dispatched}",
        f"CREATE POLICY unit_update ON cases FOR UPDATE TO {READER} "
        f"USING {dispatched} WITH CHECK {dispatched}",
    ]


PER_ROW = _policies(
    "current_setting('blockdata.zone', true)",
    "nullif(current_setting('blockdata.unit', true), '')",
)
ONCE = _policies(
    "(SELECT current_setting('blockdata.zone', true))",
    "(SELECT nullif(current_setting('blockdata.unit', true), ''))",
)


def _replace(policies: list[str]) -> None:
    for name in ("zone", "unit", "unit_update"):
        op.execute(f"DROP POLICY {name} ON cases")
    for policy in policies:
        op.execute(policy)


def upgrade() -> None:
    _replace(ONCE)
    op.execute(
        "CREATE INDEX ix_cases_street_state ON cases (street_code, state, main_unit) "
        "INCLUDE (assisting_units, version, updated_at)"
    )
    op.execute("CREATE INDEX ix_cases_street_due ON cases (street_code, due_at, id)")
    op.execute("CREATE INDEX ix_cases_assisting_units ON cases USING gin (assisting_units)")
    op.execute("DROP INDEX ix_cases_street_code")
    op.execute(UNIT_CASE_IDS)
    op.execute("REVOKE ALL ON FUNCTION unit_case_ids(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION unit_case_ids(text) TO {READER}")


def downgrade() -> None:
    op.execute("DROP FUNCTION unit_case_ids(text)")
    op.execute("CREATE INDEX ix_cases_street_code ON cases (street_code)")
    op.execute("DROP INDEX ix_cases_assisting_units")
    op.execute("DROP INDEX ix_cases_street_due")
    op.execute("DROP INDEX ix_cases_street_state")
    _replace(PER_ROW)
