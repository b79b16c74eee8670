"""Vector tiles `/tiles/<layer>/{z}/{x}/{y}.pbf` by one `ST_AsMVT` template, and TileJSON.

Tiles filter like the OGC items (`datetime`, `since`, `until`, the layer's filterable fields
and the `street`/`community`/`grid` aliases). They carry the published columns that are short
enough for a tile — the key (as the MVT feature id), the `name` label, the time field, the
filterable fields, numbers and booleans — and leave free text (descriptions, addresses,
people's names) to `/ogc/.../items/<id>`.

Point layers are raw only where a tile stays small: a tile whose envelope (with its buffer)
holds more than `MAX_RAW_POINTS` matching points is served aggregated instead — one feature
per cell of a `CELLS`×`CELLS` lattice in tile space, at the mean position of its points,
with an exact `count`. Aggregated cells are half-open (west/south edges in, east/north out),
so every point is counted in exactly one tile per zoom. Both kinds are bounded whatever the
data: an aggregated tile has at most CELLS² features of ~20 bytes, a raw one at most
MAX_RAW_POINTS features of short attributes; a raw tile that still came out over
MAX_TILE_BYTES is re-served aggregated. `X-Tile-Kind` says which (raw, aggregated, or empty:
below the layer's `min_zoom` a tile is empty).

ETag = digest of the layer's data version (its latest successful ETL run and PostgreSQL's
insert/update/delete counters for the table) + tile address + filter; `If-None-Match` → 304
without building the tile. Built tiles are kept in a small in-process LRU keyed by that ETag
(concurrent misses of one tile wait for one build); the key holds the caller's zone, so a
tile built for one zone is never served to another.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from sqlalchemy.dialects import postgresql as pg

from app import db
from app.errors import BadRequest
from app.ogc import (
    TIME_PARAMS,
    check_params,
    filter_names,
    property_conditions,
    time_conditions,
)
from layers import Field, Layer, get_layer

bp = Blueprint("tiles", __name__, url_prefix="/tiles")

EXTENT = 4096
BUFFER = 256
CELLS = 64
MAX_RAW_POINTS = 4000
MAX_TILE_BYTES = 500 * 1024
MAX_ZOOM = 22
MVT = "application/vnd.mapbox-vector-tile"
CACHE_CONTROL = "private, max-age=60"
VARY = "Authorization, Cookie"
CACHE_KEY = "blockdata.tiles"
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
TEMPLATE_VERSION = "1"  # bump when the tile SQL changes what a tile contains


# --- tile geometry --------------------------------------------------------------------------


def _lon(x: float, z: int) -> float:
    return x / 2**z * 360.0 - 180.0


def _lat(y: float, z: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1.0 - 2.0 * y / 2**z))))


def tile_bounds(z: int, x: int, y: int, margin: float = 0.0) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees of tile z/x/y grown by `margin` tile widths."""
    n = 2**z
    x0, x1 = max(x - margin, 0.0), min(x + 1 + margin, float(n))
    y0, y1 = max(y - margin, 0.0), min(y + 1 + margin, float(n))
    return _lon(x0, z), _lat(y1, z), _lon(x1, z), _lat(y0, z)


def parse_tile(z: str, x: str, y: str) -> tuple[int, int, int]:
    """Validated tile coordinates: z 0–22, x and y in 0 … 2^z − 1."""
    if not re.fullmatch(r"[0-9]{1,2}", z) or int(z) > MAX_ZOOM:
        raise BadRequest(f"缩放级别应为 0–{MAX_ZOOM} (zoom must be 0–{MAX_ZOOM}): {z!r}")
    zoom = int(z)
    n = 2**zoom
    for name, value in (("x", x), ("y", y)):
        if not re.fullmatch(r"[0-9]{1,8}", value) or int(value) >= n:
            raise BadRequest(
                f"瓦片坐标 {name} 应为 0–{n - 1} (tile {name} must be 0–{n - 1} at zoom {zoom}): "
                f"{value!r}"
            )
    return zoom, int(x), int(y)


# --- attributes -----------------------------------------------------------------------------


def tile_fields(layer: Layer) -> tuple[Field, ...]:
    """Published fields short enough for a tile (see the module docstring)."""
    keep = {layer.key, layer.time_field, "name", *(f.name for f in layer.filterable)}
    return tuple(
        f
        for f in layer.published
        if f.name in keep or isinstance(f.column.type, sa.Boolean | sa.Integer | sa.Float)
    )


def _feature_id(layer: Layer) -> str | None:
    """The integer key becomes the MVT feature id; text keys stay attributes."""
    key = layer.table.c[layer.key]
    return layer.key if isinstance(key.type, sa.Integer) else None


def _attribute(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """A column as an MVT value: times as ISO 8601 text like the GeoJSON, the rest as is."""
    if isinstance(column.type, sa.DateTime):
        iso = sa.cast(sa.func.to_json(column), sa.Text)
        return sa.func.btrim(iso, sa.literal('"', sa.Text)).label(column.name)
    if isinstance(column.type, sa.Date):
        return sa.cast(column, sa.Text).label(column.name)
    return column.label(column.name)


# --- SQL ------------------------------------------------------------------------------------


def _envelope(bounds: tuple[float, float, float, float]) -> sa.ColumnElement[Any]:
    return sa.func.ST_MakeEnvelope(*bounds, 4326)


def _mvt(layer: Layer, inner: sa.Subquery, feature_id: str | None = None) -> sa.Select[Any]:
    args: list[Any] = [inner.table_valued(), sa.literal(layer.name, sa.Text), EXTENT, "geom"]
    if feature_id:
        args.append(feature_id)
    return sa.select(sa.func.ST_AsMVT(*args))


def raw_query(
    layer: Layer, z: int, x: int, y: int, conds: list[sa.ColumnElement[bool]]
) -> sa.Select[Any]:
    """Every matching feature in the tile and its buffer, clipped, with the tile attributes."""
    t = layer.table
    geom = sa.func.ST_AsMVTGeom(
        sa.func.ST_Transform(t.c.geom, 3857), sa.func.ST_TileEnvelope(z, x, y), EXTENT, BUFFER, True
    ).label("geom")
    fid = _feature_id(layer)
    attrs = [
        t.c[f.name].label(f.name) if f.name == fid else _attribute(t.c[f.name])
        for f in tile_fields(layer)
    ]
    inner = (
        sa.select(geom, *attrs)
        .where(t.c.geom.op("&&")(_envelope(tile_bounds(z, x, y, BUFFER / EXTENT))), *conds)
        .subquery("q")
    )
    return _mvt(layer, inner, fid)  # ST_AsMVT skips the NULL geometries of clipped rows


def raw_if_small(
    layer: Layer, z: int, x: int, y: int, conds: list[sa.ColumnElement[bool]], max_raw: int
) -> sa.Select[Any]:
    """(matching points in the buffered tile, counted up to max_raw + 1; the raw tile or NULL).

    One round trip: the raw tile is an uncorrelated subquery (an InitPlan), which PostgreSQL
    runs only when the CASE needs it, i.e. when the tile holds at most `max_raw` points.
    """
    t = layer.table
    envelope = _envelope(tile_bounds(z, x, y, BUFFER / EXTENT))
    some = sa.select(sa.literal(1)).where(t.c.geom.op("&&")(envelope), *conds).limit(max_raw + 1)
    counted = sa.select(sa.func.count().label("n")).select_from(some.subquery()).cte("counted")
    raw = raw_query(layer, z, x, y, conds).scalar_subquery()
    return sa.select(counted.c.n, sa.case((counted.c.n <= max_raw, raw), else_=sa.null()))


def aggregate_query(
    layer: Layer, z: int, x: int, y: int, conds: list[sa.ColumnElement[bool]]
) -> sa.Select[Any]:
    """Exact counts per cell of a CELLS×CELLS lattice of the tile, at the points' mean position.

    Cells are found from the stored lon/lat with width_bucket against the cell edges (linear
    in longitude, Mercator in latitude), so no point is projected; only the ≤ CELLS² means are.
    Each point's lon/lat is read once, behind an OFFSET 0 fence (PostgreSQL would otherwise
    inline the subquery and call ST_X/ST_Y again for every use), and the cell is one integer
    key, grouped by hashing.
    """
    t = layer.table
    west, south, east, north = tile_bounds(z, x, y)
    lat_edges = [_lat(y + 1 - i / CELLS, z) for i in range(CELLS + 1)]  # south → north
    points = (
        sa.select(sa.func.ST_X(t.c.geom).label("x"), sa.func.ST_Y(t.c.geom).label("y"))
        .where(t.c.geom.op("&&")(_envelope((west, south, east, north))), *conds)
        .offset(0)
        .subquery("p")
    )
    px, py = points.c.x, points.c.y
    cell = sa.func.width_bucket(px, west, east, CELLS) * (CELLS + 2) + sa.func.width_bucket(
        py, sa.literal(lat_edges, pg.ARRAY(sa.Float))
    )
    mean = sa.func.ST_Transform(
        sa.func.ST_SetSRID(sa.func.ST_MakePoint(sa.func.avg(px), sa.func.avg(py)), 4326), 3857
    )
    inner = (
        sa.select(
            sa.func.ST_AsMVTGeom(mean, sa.func.ST_TileEnvelope(z, x, y), EXTENT, 0, False).label(
                "geom"
            ),
            sa.cast(sa.func.count(), sa.Integer).label("count"),
        )
        .group_by(cell)
        # Half-open, so that each point is in one tile: the cells outside [west, east) ×
        # [south, north) are the buckets 0 and CELLS + 1, dropped whole. (As HAVING, not WHERE,
        # which PostgreSQL would estimate as a handful of rows and sort instead of hashing.)
        .having(
            sa.func.min(px) >= west,
            sa.func.max(px) < east,
            sa.func.min(py) >= south,
            sa.func.max(py) < north,
        )
        .subquery("q")
    )
    return _mvt(layer, inner)


# --- version, cache -------------------------------------------------------------------------

_VERSION_SQL = sa.text(
    """
    select
        (select coalesce(max(id), 0) from etl_runs where layer = :layer and status = 'succeeded'),
        pg_stat_get_tuples_inserted(c.oid) + pg_stat_get_tuples_updated(c.oid)
            + pg_stat_get_tuples_deleted(c.oid),
        pg_stat_get_xact_tuples_inserted(c.oid) + pg_stat_get_xact_tuples_updated(c.oid)
            + pg_stat_get_xact_tuples_deleted(c.oid),
        current_user,
        coalesce(current_setting('blockdata.zone', true), '')
    from pg_class c where c.oid = to_regclass(:layer)
    """
)


def data_version(conn: sa.Connection, layer: Layer) -> str:
    """What changes whenever the rows this caller may see of the layer may have changed.

    The data: the latest successful ETL run of the layer (exact, at commit) and PostgreSQL's
    insert/update/delete counters for the table (any writer, seen once PostgreSQL flushes its
    statistics, normally within a second). The caller: the database role and the
    `blockdata.zone` setting, which are all the row-level security policies read
    (migration 0004), so cached tiles are shared within a zone and never across zones.
    """
    run, counted, pending, role, zone = conn.execute(_VERSION_SQL, {"layer": layer.name}).one()
    return f"{run}.{counted}.{pending}|{role}|{zone}"


class TileCache:
    """A byte-bounded LRU; concurrent misses of one key wait for a single build."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._building: dict[str, threading.Event] = {}

    def get(self, key: str, build: Callable[[], tuple[bytes, str]]) -> tuple[bytes, str]:
        if self.max_bytes <= 0:
            return build()
        while True:
            with self._lock:
                hit = self._items.get(key)
                if hit is not None:
                    self._items.move_to_end(key)
                    return hit
                event = self._building.get(key)
                if event is None:
                    self._building[key] = threading.Event()
                    break
            if not event.wait(timeout=60):
                return build()
        try:
            value = build()
            self._put(key, value)
            return value
        finally:
            with self._lock:
                self._building.pop(key).set()

    def _put(self, key: str, value: tuple[bytes, str]) -> None:
        size = len(value[0]) + len(key)
        if size > self.max_bytes // 4:
            return
        with self._lock:
            self._items[key] = value
            self._size += size
            while self._size > self.max_bytes:
                old_key, (old, _) = self._items.popitem(last=False)
                self._size -= len(old) + len(old_key)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


@bp.record_once
def _init(state: BlueprintSetupState) -> None:
    app = state.app
    app.extensions[CACHE_KEY] = TileCache(
        int(app.config.get("TILE_CACHE_BYTES", DEFAULT_CACHE_BYTES))
    )


def tile_cache(app: Flask | None = None) -> TileCache:
    cache: TileCache = (app or current_app).extensions[CACHE_KEY]
    return cache


# --- building -------------------------------------------------------------------------------


def _filters(layer: Layer) -> tuple[list[sa.ColumnElement[bool]], str]:
    """Validated filter conditions and their canonical text (for the ETag and TileJSON)."""
    args = request.args
    check_params(args, [*TIME_PARAMS, *filter_names(layer)])
    conds = [*time_conditions(layer, args), *property_conditions(layer, args)]
    canonical = urlencode(sorted(args.items(multi=True)))
    return conds, canonical


def build_tile(
    conn: sa.Connection,
    layer: Layer,
    z: int,
    x: int,
    y: int,
    conds: list[sa.ColumnElement[bool]],
    max_raw: int = MAX_RAW_POINTS,
) -> tuple[bytes, str]:
    """(MVT bytes, "raw" | "aggregated" | "empty") for one tile."""
    if z < layer.min_zoom:
        return b"", "empty"
    if layer.geometry_type != "POINT":
        return _bytes(conn.execute(raw_query(layer, z, x, y, conds)).scalar()), "raw"
    n, raw = conn.execute(raw_if_small(layer, z, x, y, conds, max_raw)).one()
    if n <= max_raw and len(_bytes(raw)) <= MAX_TILE_BYTES:
        return _bytes(raw), "raw"
    return _bytes(conn.execute(aggregate_query(layer, z, x, y, conds)).scalar()), "aggregated"


def _bytes(value: bytes | memoryview | None) -> bytes:
    return b"" if value is None else bytes(value)


# --- endpoints ------------------------------------------------------------------------------


# The view argument is called `layer`: the auth hook checks that the caller's role may read it.


@bp.get("/<layer>/<z>/<x>/<y>.pbf")
def tile(layer: str, z: str, x: str, y: str) -> Response:
    return _tile(get_layer(layer), z, x, y)


@bp.get("/<layer>.json")
def tilejson(layer: str) -> Response:
    return _tilejson(get_layer(layer))


def _tile(layer: Layer, z: str, x: str, y: str) -> Response:
    zoom, tx, ty = parse_tile(z, x, y)
    conds, canonical = _filters(layer)
    max_raw = int(current_app.config.get("TILE_MAX_RAW_POINTS", MAX_RAW_POINTS))
    conn = db.connection()
    version = data_version(conn, layer)
    key = f"{TEMPLATE_VERSION}.{max_raw}|{layer.name}|{zoom}/{tx}/{ty}|{canonical}|{version}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    headers = {"ETag": f'W/"{digest}"', "Cache-Control": CACHE_CONTROL, "Vary": VARY}
    if request.if_none_match.contains_weak(digest) or request.if_none_match.star_tag:
        return Response(status=304, headers=headers)

    def build() -> tuple[bytes, str]:
        return build_tile(conn, layer, zoom, tx, ty, conds, max_raw)

    data, kind = tile_cache().get(digest, build)
    headers["X-Tile-Kind"] = kind
    return Response(data, mimetype=MVT, headers=headers)


def _tilejson(layer: Layer) -> Response:
    _, canonical = _filters(layer)
    conn = db.connection()
    box = conn.execute(
        sa.select(sa.cast(sa.func.ST_EstimatedExtent("public", layer.name, "geom"), sa.Text))
    ).scalar()
    match = re.fullmatch(r"BOX\(([-0-9.e+]+) ([-0-9.e+]+),([-0-9.e+]+) ([-0-9.e+]+)\)", box or "")
    bounds = [round(float(v), 6) for v in match.groups()] if match else [-180, -85.05, 180, 85.05]
    query = f"?{canonical}" if canonical else ""
    root = request.url_root.rstrip("/") + "/tiles"
    labels = layer.labels
    fields = {
        f.name: f"{labels[f.name]} ({_json_type(f)})"
        for f in tile_fields(layer)
        if f.name != _feature_id(layer)
    }
    if layer.geometry_type == "POINT":
        max_raw = int(current_app.config.get("TILE_MAX_RAW_POINTS", MAX_RAW_POINTS))
        fields["count"] = (
            f"聚合数量 (Number): 要素超过 {max_raw} 个的瓦片按 {CELLS}×{CELLS} 网格聚合，"
            f"只有 count 属性 (aggregated tiles, over {max_raw} points, only)"
        )
    body = {
        "tilejson": "3.0.0",
        "name": layer.name,
        "description": layer.title,
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [f"{root}/{layer.name}/{{z}}/{{x}}/{{y}}.pbf{query}"],
        "minzoom": layer.min_zoom,
        "maxzoom": layer.max_zoom,
        "bounds": bounds,
        "center": [
            round((bounds[0] + bounds[2]) / 2, 6),
            round((bounds[1] + bounds[3]) / 2, 6),
            min(layer.min_zoom + 3, layer.max_zoom),
        ],
        "vector_layers": [
            {
                "id": layer.name,
                "description": layer.title,
                "minzoom": layer.min_zoom,
                "maxzoom": layer.max_zoom,
                "fields": fields,
            }
        ],
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.headers["Vary"] = VARY
    return response


def _json_type(f: Field) -> str:
    kind = f.column.type
    if isinstance(kind, sa.Boolean):
        return "Boolean"
    if isinstance(kind, sa.Integer | sa.Float):
        return "Number"
    return "String"
