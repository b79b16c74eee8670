"""GeoJSON and JSON built in SQL: PostgreSQL writes the objects (`json_build_object`,
`json_agg`) and PostGIS the geometries (`ST_AsGeoJSON`), at COORDINATE_DECIMALS decimals everywhere.

Also the two GeoJSON reads of /api built from them: a street's latest requests and an overlay
layer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by

from layers import Layer, get_layer

# Decimals of a degree in every GeoJSON coordinate the package writes (features, exports,
# heat, overlays) and in CSV coordinates: 1e-7° is about 1 cm. Chosen by
# bench/bench_geojson_precision.py (docs/benchmarks.md, "GeoJSON precision").
COORDINATE_DECIMALS = 7
SIMPLIFY_TOLERANCE = 1e-5  # degrees, about 1 m: invisible at street and district scale
CASE_CLOSED = "已结案"


def json_object(members: dict[str, Any]) -> sa.ColumnElement[Any]:
    """json_build_object(key, value, …) of the members, keys as text parameters."""
    pairs = [v for name, value in members.items() for v in (sa.literal(name, sa.Text), value)]
    return sa.func.json_build_object(*pairs, type_=sa.JSON)


def text_param(value: str | None) -> sa.BindParameter[str]:
    """A text parameter (NULL for None), as json_build_object needs its values typed."""
    return sa.literal(value, sa.Text)


def json_list(item: Any, *order: Any, where: Any = None) -> sa.ColumnElement[Any]:
    """json_agg of the items (those `where` holds) in that order; [] when there are none."""
    items = sa.func.json_agg(aggregate_order_by(item, *order))
    empty = sa.cast(sa.literal("[]"), sa.JSON)
    return sa.func.coalesce(items if where is None else items.filter(where), empty)


def geometry(geom: Any) -> sa.ColumnElement[Any]:
    """The geometry as GeoJSON text, COORDINATE_DECIMALS decimals."""
    return sa.func.ST_AsGeoJSON(geom, COORDINATE_DECIMALS)


def feature(
    layer: Layer, columns: Sequence[sa.ColumnElement[Any]], geom: Any, extra: dict[str, Any]
) -> sa.ColumnElement[Any]:
    """json_build_object of one GeoJSON Feature: PostGIS writes the geometry."""
    properties = {str(column.name): column for column in columns} | extra
    return json_object(
        {
            "type": text_param("Feature"),
            "id": layer.table.c[layer.key],
            "geometry": sa.cast(geometry(geom), sa.JSON),
            "properties": json_object(properties),
        }
    )


def collection(features: sa.Subquery, **members: Any) -> sa.ColumnElement[Any]:
    """json_build_object of a FeatureCollection of the subquery's features `f`, by `ord`."""
    features_json = json_list(features.c.f, features.c.ord)
    return json_object(
        {"type": text_param("FeatureCollection"), **members, "features": features_json}
    )


def latest(conn: sa.Connection, street: str, since: dt.datetime, limit: int) -> dict[str, Any]:
    """The street's requests received at or after `since`, newest first, at most `limit`."""
    layer = get_layer("service_requests")
    t = layer.table
    names = ("id", "source_id", "received_at", "category", "status", "address", "department")
    columns = [t.c[name] for name in names]
    features = (
        sa.select(
            feature(layer, columns, t.c.geom, {}).label("f"),
            sa.func.row_number()
            .over(order_by=(t.c.received_at.desc(), t.c.id.desc()))
            .label("ord"),
        )
        .where(t.c.street_code == street, t.c.received_at >= since)
        .order_by(t.c.received_at.desc(), t.c.id.desc())
        .limit(limit)
        .subquery("features")
    )
    body = collection(features, since=text_param(since.isoformat()), limit=sa.literal(limit))
    return dict(conn.execute(sa.select(body).select_from(features)).scalar_one())


def _simplified(layer: Layer) -> Any:
    geom = layer.table.c.geom
    if layer.geometry_type in ("POLYGON", "MULTIPOLYGON"):
        return sa.func.ST_SimplifyPreserveTopology(geom, SIMPLIFY_TOLERANCE)
    return geom


def layer_geojson(conn: sa.Connection, layer: Layer, street: str | None, now: dt.datetime) -> str:
    """A FeatureCollection of the layer's published columns, as JSON text PostGIS wrote.

    Polygons are simplified by ~1 m. Enforcement cases: the open ones only, each with an
    `overdue` flag.
    """
    t = layer.table
    columns = [f.column for f in layer.published]
    extra: dict[str, Any] = {}
    where: list[Any] = []
    if layer.name == "enforcement_cases":
        where.append(t.c.status.is_distinct_from(CASE_CLOSED))
        extra["overdue"] = sa.func.coalesce(t.c.due_at < now, sa.false())
    if street is not None:
        where.append((t.c.code if layer.name == "streets" else t.c.street_code) == street)
    features = (
        sa.select(
            feature(layer, columns, _simplified(layer), extra).label("f"),
            sa.func.row_number().over(order_by=t.c[layer.key]).label("ord"),
        )
        .where(*where)
        .subquery("features")
    )
    body = collection(features, layer=text_param(layer.name))
    result = conn.execute(sa.select(sa.cast(body, sa.Text)).select_from(features))
    return str(result.scalar_one())
