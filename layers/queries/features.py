"""GeoJSON features: the one SQL that writes a feature, the OGC collections, and key paging.

One feature SQL serves the OGC items and item, and every GeoJSON export (`/api` features, the
CLI): PostgreSQL writes each Feature as compact text — `ST_AsGeoJSON` at COORDINATE_DECIMALS
for the geometry, `row_to_json` of the published columns for the properties — and Python
only joins the strings, it parses no feature.

Every layer of the registry is an OGC collection with one geometry type (GDAL guesses a
collection's type from its first features): polygon layers are served as MultiPolygon, and a
layer whose column holds lines and polygons (`renovation_projects`) as two collections, its
lines and its areas, split by `ST_Dimension`.

Pages are read by key, not OFFSET: a page after a key costs one index range scan however deep
it is. Nothing here knows the web: the caller gives a Connection (scoped to a role and zone,
layers.queries.access) and parsed values.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from layers import LAYERS, Layer, get_layer
from layers.queries.geojson import COORDINATE_DECIMALS
from layers.queries.params import ParamError, start_of
from layers.queries.slices import CRS84
from layers.queries.types import GEOMETRY_NAMES, json_schema

GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"


class NotFound(ParamError):
    """No such collection or feature: a bad value of a path parameter whose answer is 404
    `not_found` (app/errors.py answers every ParamError with its status and body)."""

    code = "not_found"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, None, 404, **details)


@dataclass(frozen=True)
class Collection:
    """One OGC collection: a layer, or the part of a mixed layer with one geometry dimension."""

    id: str
    layer: Layer
    title: str
    geometry_type: str
    dimension: int | None = None

    @property
    def table(self) -> sa.Table:
        return self.layer.table

    @property
    def key(self) -> sa.Column[Any]:
        return self.table.c[self.layer.key]

    @property
    def integer_key(self) -> bool:
        return isinstance(self.key.type, sa.Integer)

    @property
    def multi(self) -> bool:
        """Served as a multi-geometry although the column holds single ones."""
        return self.geometry_type.startswith("Multi") and self.layer.geometry_type != "MULTIPOLYGON"

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        """The rows that belong to this collection."""
        if self.dimension is None:
            return []
        return [sa.func.ST_Dimension(self.table.c.geom) == self.dimension]

    def feature(self, digits: int | None = COORDINATE_DECIMALS) -> Feature:
        """The feature SQL of this collection's rows."""
        return feature_sql(self.layer.name, self.dimension, self.multi, digits)


@cache
def collections() -> tuple[Collection, ...]:
    """The collections, in registry order."""
    out: list[Collection] = []
    for layer in LAYERS:
        if layer.geometry_type in GEOMETRY_NAMES:
            served = "MultiPolygon" if layer.geometry_type == "POLYGON" else None
            geometry = served or GEOMETRY_NAMES[layer.geometry_type]
            out.append(Collection(layer.name, layer, layer.title, geometry))
        else:
            out += [
                Collection(
                    f"{layer.name}_lines", layer, f"{layer.title}（线）", "MultiLineString", 1
                ),
                Collection(f"{layer.name}_areas", layer, f"{layer.title}（面）", "MultiPolygon", 2),
            ]
    return tuple(out)


def find(collection_id: str) -> Collection:
    """The collection `collection_id`; NotFound (naming the split collections when the id is
    a mixed layer's name) when there is none."""
    for c in collections():
        if c.id == collection_id:
            return c
    hint = [c.id for c in collections() if c.layer.name == collection_id]
    extra = f"; 请使用 use {' / '.join(hint)}" if hint else ""
    raise NotFound(
        f"未知集合 unknown collection: {collection_id!r}{extra}", collection=collection_id
    )


def field_doc(layer: Layer) -> list[dict[str, Any]]:
    """The published fields: name, Chinese label, JSON type, whether a filter takes it."""
    filters = {f.name for f in layer.filterable}
    return [
        {
            "name": f.name,
            "label": f.label,
            "type": json_schema(f.column)["type"],
            "filterable": f.name in filters,
        }
        for f in layer.published
    ]


# --- the feature SQL ---------------------------------------------------------------------


class Feature(NamedTuple):
    """A Feature as text (`column`) and the FROM it reads (`source`: the table joined with the
    published columns)."""

    column: sa.ColumnElement[str]
    source: sa.FromClause


_PREPARER = pg.dialect().identifier_preparer


def _name(name: str) -> str:
    """A registry identifier, quoted for SQL (never user input)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not an identifier: {name!r}")
    return str(_PREPARER.quote(name))


@cache
def feature_sql(
    layer_name: str,
    dimension: int | None = None,
    multi: bool = False,
    digits: int | None = COORDINATE_DECIMALS,
) -> Feature:
    """One compact GeoJSON Feature of a row of `layer_name`, written by PostgreSQL.

    `dimension` keeps that part of a mixed geometry, `multi` serves single geometries as
    multi ones, `digits` the decimals (None: ST_AsGeoJSON's default, 9).

    The properties are `row_to_json` of a LATERAL sub-select of the published columns: the
    planner flattens it into a row constructor that keeps the names, so it stays parallel
    safe (a correlated sub-select would not) and costs about half a `json_build_object` of the
    same columns. Plain concatenation joins the parts: casting them to `json` for
    `json_build_object` would parse them again (every geometry column is NOT NULL, so no
    part is NULL, which `concat` would drop). The whole is built once per layer and variant
    as SQL text: building the expression and computing its cache key would cost the server more
    CPU on each request than PostgreSQL spends running a small page.
    """
    layer = get_layer(layer_name)
    table = _name(layer.table.name)
    key = f"{table}.{_name(layer.key)}"
    geom = f"{table}.geom"
    if dimension is not None:
        geom = f"ST_CollectionExtract({geom}, {int(dimension) + 1})"
    if multi:
        geom = f"ST_Multi({geom})"
    geojson = f"ST_AsGeoJSON({geom})" if digits is None else f"ST_AsGeoJSON({geom}, {int(digits)})"
    key_json = (
        f"{key}::text"
        if isinstance(layer.table.c[layer.key].type, sa.Integer)
        else f"to_json({key})::text"
    )
    column = (
        f"""concat('{{"type":"Feature","id":', {key_json}, ',"geometry":', {geojson}, """
        """',"properties":', row_to_json(p)::text, '}')"""
    )
    published = [f.name for f in layer.published]
    body = ", ".join(f"{table}.{_name(name)}" for name in published)
    # A textual sub-select with no declared columns: only `row_to_json(p)` reads it, and its
    # cache key is its text (SQLAlchemy computes a statement's key on every request).
    properties = sa.lateral(sa.text(f"SELECT {body}").columns(), "p")
    return Feature(sa.literal_column(column, sa.Text), layer.table.join(properties, sa.true()))


def layer_feature(layer: Layer, digits: int | None = COORDINATE_DECIMALS) -> Feature:
    """The feature SQL of a layer's rows as stored (an export: mixed geometries stay mixed)."""
    return feature_sql(layer.name, None, False, digits)


# --- reading features ------------------------------------------------------------------------


def page(
    conn: sa.Connection,
    c: Collection,
    conditions: Sequence[sa.ColumnElement[bool]],
    limit: int,
    after: Any = None,
    digits: int | None = COORDINATE_DECIMALS,
) -> tuple[list[str], Any]:
    """The features of `c` that meet `conditions`, in key order, at most `limit`, after key
    `after` (None: from the first); and the key to continue after, None on the last page.

    One row more than `limit` is read: it only says that a next page exists."""
    feature = c.feature(digits)
    where = [*c.conditions(), *conditions]
    if after is not None:
        where.append(c.key > after)
    query = (
        sa.select(c.key, feature.column)
        .select_from(feature.source)
        .where(*where)
        .order_by(c.key)
        .limit(limit + 1)
    )
    rows = conn.execute(query).all()
    more = len(rows) > limit
    return [r[1] for r in rows[:limit]], rows[limit - 1][0] if more else None


def one(conn: sa.Connection, c: Collection, key: Any) -> str | None:
    """The feature of `c` with key `key` as text, None when there is none."""
    feature = c.feature()
    query = sa.select(feature.column).select_from(feature.source).where(c.key == key)
    return conn.execute(query.where(*c.conditions())).scalar()


# --- extents -----------------------------------------------------------------------------------

_BOX = re.compile(r"BOX\(([-0-9.e+]+) ([-0-9.e+]+),([-0-9.e+]+) ([-0-9.e+]+)\)")


def extent(conn: sa.Connection, c: Collection, zone: dt.tzinfo) -> dict[str, Any]:
    """Spatial extent from the GiST index (no table scan), temporal from the time index; the
    ends of a date field are its local midnights in `zone`."""
    box = conn.execute(
        sa.select(sa.cast(sa.func.ST_EstimatedExtent("public", c.table.name, "geom"), sa.Text))
    ).scalar()
    out: dict[str, Any] = {}
    match = _BOX.fullmatch(box or "")
    if match:
        out["spatial"] = {"bbox": [[round(float(v), 7) for v in match.groups()]], "crs": CRS84}
    if c.layer.time_field:
        column = c.table.c[c.layer.time_field]
        lo, hi = conn.execute(
            sa.select(sa.func.min(column), sa.func.max(column)).where(*c.conditions())
        ).one()
        ends = [None if v is None else start_of(v, zone).isoformat() for v in (lo, hi)]
        out["temporal"] = {"interval": [ends], "trs": GREGORIAN}
    return out
