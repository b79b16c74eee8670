"""Landmarks: the gazetteer of the address geocoder.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 06:25:55.504299
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_geospatial_table(
        "landmarks",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["street_code"], ["streets.code"], name=op.f("fk_landmarks_street_code_streets")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_landmarks")),
    )
    op.create_geospatial_index(
        "ix_landmarks_geom",
        "landmarks",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_landmarks_street_code"), "landmarks", ["street_code"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_landmarks_street_code"), table_name="landmarks")
    op.drop_geospatial_index(
        "ix_landmarks_geom", table_name="landmarks", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("landmarks")
