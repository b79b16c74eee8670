"""The gazetteer (地名地址库) of the address geocoder (layers/gazetteer.py): admin units'
long and short names, roads and lanes with house-number ranges and parity by side, address
points (门牌), landmarks / POIs / compounds with aliases.

Geography, not records: every reader role reads it (SELECT to the reader, no row-level
security); only the owner writes (`blockdata gazetteer import|build`). The view
`gazetteer_units` gives the geocoder the admin units' names, inner points and grid shapes in
every zone (see UNITS_VIEW).

Revision ID: 0024
Revises: 0023
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql as pg

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "blockdata_reader"
# What the geocoder needs of the admin units, in every zone: where each grid lies (to give
# a placed address its grid, community and street), each community's and street's name and
# a point inside it. Owner's rights (not security_invoker), as street_directory (0012): a
# commander's geocoder must know another street's addresses to say they are not its own.
UNITS_VIEW = """
CREATE VIEW gazetteer_units WITH (security_barrier) AS
SELECT 'street'::text AS level, code::text AS code, code::text AS street_code,
       NULL::text AS community_code, name, ST_PointOnSurface(geom) AS point,
       NULL::geometry AS geom
  FROM streets
UNION ALL
SELECT 'community', code, street_code, code, name, ST_PointOnSurface(geom), NULL
  FROM communities
UNION ALL
SELECT 'grid', code, street_code, community_code, NULL, NULL, geom
  FROM grids
"""
TABLES = ("gazetteer_names", "gazetteer_roads", "gazetteer_addresses", "gazetteer_places")


def _geom(kind: str) -> sa.Column:
    return sa.Column(
        "geom",
        Geometry(geometry_type=kind, srid=4326, spatial_index=False, from_text="ST_GeomFromEWKT"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "gazetteer_names",
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("official", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "level in ('street', 'community')", name=op.f("ck_gazetteer_names_level")
        ),
        sa.CheckConstraint("btrim(name) <> ''", name=op.f("ck_gazetteer_names_name")),
        sa.PrimaryKeyConstraint("level", "code", "name", name=op.f("pk_gazetteer_names")),
    )
    op.create_index(
        op.f("ix_gazetteer_names_street_code"), "gazetteer_names", ["street_code"], unique=False
    )

    op.create_table(
        "gazetteer_roads",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("lane_code", sa.String(length=16), nullable=True),
        sa.Column("left_from", sa.Integer(), nullable=True),
        sa.Column("left_to", sa.Integer(), nullable=True),
        sa.Column("left_parity", sa.Text(), nullable=True),
        sa.Column("right_from", sa.Integer(), nullable=True),
        sa.Column("right_to", sa.Integer(), nullable=True),
        sa.Column("right_parity", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        _geom("LINESTRING"),
        sa.CheckConstraint("btrim(name) <> ''", name=op.f("ck_gazetteer_roads_name")),
        sa.CheckConstraint(
            "left_parity in ('odd', 'even', 'all') and right_parity in ('odd', 'even', 'all')",
            name=op.f("ck_gazetteer_roads_parity"),
        ),
        sa.CheckConstraint(
            "left_from <= left_to and right_from <= right_to",
            name=op.f("ck_gazetteer_roads_ranges"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gazetteer_roads")),
    )
    op.create_index(op.f("ix_gazetteer_roads_name"), "gazetteer_roads", ["name"], unique=False)
    op.create_index(
        op.f("ix_gazetteer_roads_street_code"), "gazetteer_roads", ["street_code"], unique=False
    )
    op.create_index(op.f("ix_gazetteer_roads_source"), "gazetteer_roads", ["source"], unique=False)
    op.create_index("ix_gazetteer_roads_geom", "gazetteer_roads", ["geom"], postgresql_using="gist")

    op.create_table(
        "gazetteer_addresses",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("road", sa.Text(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=True),
        sa.Column("sub", sa.Integer(), nullable=True),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        _geom("POINT"),
        sa.CheckConstraint("number > 0", name=op.f("ck_gazetteer_addresses_number")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gazetteer_addresses")),
        sa.UniqueConstraint(
            "road",
            "number",
            "prefix",
            "sub",
            name=op.f("uq_gazetteer_addresses_road_number_prefix_sub"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(
        op.f("ix_gazetteer_addresses_street_code"),
        "gazetteer_addresses",
        ["street_code"],
        unique=False,
    )
    op.create_index(
        op.f("ix_gazetteer_addresses_source"), "gazetteer_addresses", ["source"], unique=False
    )
    op.create_index(
        "ix_gazetteer_addresses_geom", "gazetteer_addresses", ["geom"], postgresql_using="gist"
    )

    op.create_table(
        "gazetteer_places",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("aliases", pg.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        _geom("POINT"),
        sa.CheckConstraint("btrim(name) <> ''", name=op.f("ck_gazetteer_places_name")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_gazetteer_places")),
    )
    op.create_index(op.f("ix_gazetteer_places_name"), "gazetteer_places", ["name"], unique=False)
    op.create_index(
        op.f("ix_gazetteer_places_street_code"), "gazetteer_places", ["street_code"], unique=False
    )
    op.create_index(
        op.f("ix_gazetteer_places_source"), "gazetteer_places", ["source"], unique=False
    )
    op.create_index(
        "ix_gazetteer_places_geom", "gazetteer_places", ["geom"], postgresql_using="gist"
    )
    for table in TABLES:
        op.execute(f"GRANT SELECT ON {table} TO {READER}")
    op.execute(UNITS_VIEW)
    op.execute(f"GRANT SELECT ON gazetteer_units TO {READER}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS gazetteer_units")
    for table in reversed(TABLES):
        op.drop_table(table)
