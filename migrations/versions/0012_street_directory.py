"""The street directory: every street's code, name and area, readable in every zone.

A commander's scorecard ranks all fifteen streets by name (the district publishes the
ranking), but `streets` is zone-scoped by row-level security (migration 0004) and holds the
boundaries. This view gives only the public columns. It runs with its owner's rights (not
security_invoker), so the streets' policy does not filter it; the reader may select from it.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"


def upgrade() -> None:
    op.execute(
        "CREATE VIEW street_directory WITH (security_barrier) AS "
        "SELECT code, name, "
        "coalesce(area_km2, ST_Area(geom::geography) / 1e6)::float8 AS area_km2 "
        "FROM streets"
    )
    op.execute(f"GRANT SELECT ON street_directory TO {READER}")


def downgrade() -> None:
    op.execute("DROP VIEW street_directory")
