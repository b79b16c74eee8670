"""Let row-level security keep the spatial index: mark PostGIS's `&&` leakproof.

Under a row-level security policy PostgreSQL only evaluates a query's conditions before
the policy — and so only uses them as index conditions — when their functions are
LEAKPROOF; PostGIS's bounding-box overlap (`geometry_overlaps`, the `&&` operator) is not
marked so, and every bbox and tile query read as `blockdata_reader` would scan the whole
table. `&&` compares two boxes and raises no error that depends on a row's values (every
geometry here is SRID 4326), so it reveals nothing of rows the policy hides. Marking a
function LEAKPROOF needs a superuser: on a server where the migrating user is not one, this
revision says so and leaves the function alone (queries stay correct, only slower).

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _set(leakproof: bool) -> None:
    flag = "LEAKPROOF" if leakproof else "NOT LEAKPROOF"
    op.execute(
        "DO $$ BEGIN "
        f"ALTER FUNCTION geometry_overlaps(geometry, geometry) {flag}; "
        "EXCEPTION WHEN insufficient_privilege THEN "
        "RAISE NOTICE 'not a superuser: geometry_overlaps left as it is'; "
        "END $$"
    )


def upgrade() -> None:
    _set(True)


def downgrade() -> None:
    _set(False)
