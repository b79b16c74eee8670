"""The gazetteer (地名地址库): the names the address geocoder (etl/geocoder.py) matches.

- `gazetteer_names`: the admin units' names, long and short — a street as 展览路街道 and
  展览路, a community as its official 府右街南社区居委会, as 府右街南社区 and as 府右街南;
- `gazetteer_roads`: roads and lanes (街路巷) with their house-number range and parity per
  side (left / right of the line's direction), one row per piece;
- `gazetteer_addresses`: address points (门牌): a plate's number on its road, at its place;
- `gazetteer_places`: landmarks, POIs and compounds (小区) with their aliases.

Each row says where it came from (`source`): `build` (derived from the loaded layers by
`etl.gazetteer.build`, replaced on every build) or the file it was imported from
(`etl.gazetteer.import_file`, replaced when the same file is imported again). Geography, not
records: every reader role may read it (migration 0024 grants SELECT, no row-level security).
"""

from __future__ import annotations

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql as pg

from layers.registry import SRID, metadata

NAME_LEVELS = ("street", "community")
PARITIES = ("odd", "even", "all")  # which numbers a side holds
PLACE_KINDS_DEFAULT = "poi"
BUILD_SOURCE = "build"

gazetteer_names = sa.Table(
    "gazetteer_names",
    metadata,
    sa.Column("level", sa.Text, primary_key=True),
    sa.Column("code", sa.String(12), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("street_code", sa.String(9), nullable=False, index=True),
    sa.Column("official", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("source", sa.Text, nullable=False),
    sa.CheckConstraint("level in ('street', 'community')", name="level"),
    sa.CheckConstraint("btrim(name) <> ''", name="name"),
)

gazetteer_roads = sa.Table(
    "gazetteer_roads",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, index=True),
    sa.Column("kind", sa.Text),
    sa.Column("street_code", sa.String(9), index=True),
    sa.Column("lane_code", sa.String(16)),
    sa.Column("left_from", sa.Integer),
    sa.Column("left_to", sa.Integer),
    sa.Column("left_parity", sa.Text),
    sa.Column("right_from", sa.Integer),
    sa.Column("right_to", sa.Integer),
    sa.Column("right_parity", sa.Text),
    sa.Column("source", sa.Text, nullable=False, index=True),
    sa.Column("geom", Geometry("LINESTRING", srid=SRID, spatial_index=False), nullable=False),
    sa.CheckConstraint("btrim(name) <> ''", name="name"),
    sa.CheckConstraint(
        "left_parity in ('odd', 'even', 'all') and right_parity in ('odd', 'even', 'all')",
        name="parity",
    ),
    sa.CheckConstraint("left_from <= left_to and right_from <= right_to", name="ranges"),
    sa.Index("ix_gazetteer_roads_geom", "geom", postgresql_using="gist"),
)

gazetteer_addresses = sa.Table(
    "gazetteer_addresses",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("address", sa.Text, nullable=False),  # the plate as the file writes it
    sa.Column("road", sa.Text, nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("prefix", sa.Text),  # 甲 (甲12号)
    sa.Column("sub", sa.Integer),  # 1 (12号之一)
    sa.Column("street_code", sa.String(9), index=True),
    sa.Column("source", sa.Text, nullable=False, index=True),
    sa.Column("geom", Geometry("POINT", srid=SRID, spatial_index=False), nullable=False),
    sa.CheckConstraint("number > 0", name="number"),
    sa.UniqueConstraint("road", "number", "prefix", "sub", postgresql_nulls_not_distinct=True),
    sa.Index("ix_gazetteer_addresses_geom", "geom", postgresql_using="gist"),
)

gazetteer_places = sa.Table(
    "gazetteer_places",
    metadata,
    sa.Column("code", sa.String(32), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, index=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("aliases", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("street_code", sa.String(9), index=True),
    sa.Column("address", sa.Text),
    sa.Column("source", sa.Text, nullable=False, index=True),
    sa.Column("geom", Geometry("POINT", srid=SRID, spatial_index=False), nullable=False),
    sa.CheckConstraint("btrim(name) <> ''", name="name"),
    sa.Index("ix_gazetteer_places_geom", "geom", postgresql_using="gist"),
)

TABLES = (gazetteer_names, gazetteer_roads, gazetteer_addresses, gazetteer_places)
