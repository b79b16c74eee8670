"""Open311 intake: the reader role may insert service requests in its zone.

The server writes an Open311 request as `blockdata_reader` with the caller's zone, as it
reads: a policy lets the reader INSERT a request only where it may see it (`WITH CHECK`: the
whole district for zone '*', else the zone's own street), and nothing else (no UPDATE, no
DELETE, no COPY). The `id` identity's sequence needs no grant: PostgreSQL checks no
privilege on an identity column's sequence. The insert fires the change-marking trigger of
migration 0003, whose function writes `request_dirty_days`, which the reader may not touch:
the function now runs with its owner's rights (SECURITY DEFINER) and a fixed search_path,
pg_temp last, as the PostgreSQL manual advises for such functions. All it does is record
the days a statement touched.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"
ZONE = "current_setting('blockdata.zone', true)"
MARK = "request_aggregates_mark()"
SEARCH_PATH = "pg_catalog, public, pg_temp"


def upgrade() -> None:
    op.execute(f"GRANT INSERT ON service_requests TO {READER}")
    op.execute(
        f"CREATE POLICY intake ON service_requests FOR INSERT TO {READER} "
        f"WITH CHECK ({ZONE} = '*' OR street_code = {ZONE})"
    )
    op.execute(f"ALTER FUNCTION {MARK} SECURITY DEFINER SET search_path = {SEARCH_PATH}")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {MARK} SECURITY INVOKER RESET search_path")
    op.execute("DROP POLICY intake ON service_requests")
    op.execute(f"REVOKE INSERT ON service_requests FROM {READER}")
