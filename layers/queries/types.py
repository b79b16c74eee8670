"""Column types, and what each output calls them: JSON Schema (OGC queryables, OpenAPI, /api),
TileJSON's field kinds, Arrow (GeoPackage, GeoParquet, and the ETL's binary COPY) and the
geometry type names of GeoJSON and OGR. One mapping, so that a new column type is added once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql as pg

# The layers' geometry types as GeoJSON and OGR name them (GEOMETRY, any kind, has no name).
GEOMETRY_NAMES = {
    "POINT": "Point",
    "MULTIPOINT": "MultiPoint",
    "LINESTRING": "LineString",
    "MULTILINESTRING": "MultiLineString",
    "POLYGON": "Polygon",
    "MULTIPOLYGON": "MultiPolygon",
}


def kind(column: sa.Column[Any]) -> str:
    """One of boolean, integer, number, datetime, date, array, geometry, text."""
    ctype = column.type
    if isinstance(ctype, sa.Boolean):
        return "boolean"
    if isinstance(ctype, sa.Integer):
        return "integer"
    if isinstance(ctype, sa.Float | sa.Numeric):
        return "number"
    if isinstance(ctype, sa.DateTime):
        return "datetime"
    if isinstance(ctype, sa.Date):
        return "date"
    if isinstance(ctype, pg.ARRAY):
        return "array"
    if isinstance(ctype, Geometry):
        return "geometry"
    return "text"


_JSON_SCHEMAS: dict[str, dict[str, Any]] = {
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "array": {"type": "array", "items": {"type": "string"}},
}


def json_schema(column: sa.Column[Any]) -> dict[str, Any]:
    """The JSON Schema of the column's values as the server writes them."""
    return dict(_JSON_SCHEMAS.get(kind(column), {"type": "string"}))


def tilejson_type(column: sa.Column[Any]) -> str:
    """TileJSON's `vector_layers` field kind: Boolean, Number or String."""
    k = kind(column)
    if k == "boolean":
        return "Boolean"
    return "Number" if k in ("integer", "number") else "String"


def export_arrow_type(column: sa.Column[Any], tz: str) -> pa.DataType:
    """The Arrow type of the column in a GeoPackage or GeoParquet export (times in `tz`)."""
    return {
        "boolean": pa.bool_(),
        "integer": pa.int64(),
        "number": pa.float64(),
        "datetime": pa.timestamp("us", tz=tz),
        "date": pa.date32(),
    }.get(kind(column), pa.string())


def copy_arrow_type(column: sa.Column[Any]) -> pa.DataType:
    """The Arrow type whose PostgreSQL binary form `column` reads (the ETL's COPY)."""
    ctype = column.type
    if isinstance(ctype, sa.BigInteger):
        return pa.int64()
    return {
        "array": pa.list_(pa.string()),
        "datetime": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
        "boolean": pa.bool_(),
        "integer": pa.int32(),
        "number": pa.float64(),
        "geometry": pa.binary(),
    }.get(kind(column), pa.string())


def json_value(value: Any) -> Any:
    """A value as the JSON answers write it: dates and date-times in ISO 8601 (a date-time
    with its offset), anything else as it is."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value
