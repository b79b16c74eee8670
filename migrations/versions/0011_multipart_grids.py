"""Grids may have several parts: `grids.geom` becomes MultiPolygon, like streets and communities.

A grid (网格) is one unit of management — one code, one grid officer — even where a road or
a river cuts it in two: official grid files carry such grids as MultiPolygons. Splitting
them would invent codes that no other system knows, so they are stored whole.

The downgrade refuses while any grid has more than one part (it would lose them).

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE grids ALTER COLUMN geom TYPE geometry(MultiPolygon, 4326) USING ST_Multi(geom)"
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM grids WHERE ST_NumGeometries(geom) > 1) THEN
                RAISE EXCEPTION 'grids with several parts cannot become Polygons: '
                                'remove or merge them first';
            END IF;
        END $$
        """
    )
    op.execute(
        "ALTER TABLE grids ALTER COLUMN geom TYPE geometry(Polygon, 4326) "
        "USING ST_GeometryN(geom, 1)"
    )
