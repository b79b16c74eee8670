"""Vector tiles as bytes: one `ST_AsMVT` template per kind of tile, and the tiles' data versions.

Framework-free (house style: it takes a Connection, already scoped to the caller's zone,
and plain values; app.tiles serves it over HTTP, app.tile_seed builds tiles ahead of the
requests with it).

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
MAX_TILE_BYTES is re-served aggregated. The kind is raw, aggregated, or empty (below the
layer's `min_zoom` a tile is empty).

Up to `CELL_MAX_ZOOM`, an aggregated tile of a layer with cell aggregates (the registry's
`cell_tables`: for service requests `request_cells_daily` / `_periods`, exact counts per
100 m cell, street, category and day) is read from them instead of the points, when its
filters are ones they answer (`cell_filters`): whole local days (dates, not date-times),
`category`, `street`. The cells wholly inside the tile come from the aggregates (placed at
their centres); the points of the cells the tile's edges cut are read one by one, so the
counts stay exact and half-open. Each 100 m cell then goes to the lattice cell holding its
centre (a cut cell: the mean of its points inside). Any other filter, or aggregates with
changes not yet refreshed into them (`request_dirty_days`, which only the server's own role
may read: it is asked in the scope statement, a moment before the tile's query), and the
tile is aggregated from the points as above.

A tile's key (the web's ETag) = digest of the tile address + filter + the tile's data
version: its layer's epoch and how many changes the triggers of migrations 0008 and 0009
logged in the tile's area (the tile with its buffer: a point there is drawn in it) in the
streets the caller may see — a commander's version counts only their street's writes, so
their key says nothing of other streets — + the caller's role and zone + the staleness of
the cell aggregates. The log has a row per statement, changed tile and street at each of the
levels 14–18, compacted to one per tile and street by the upkeep thread; a zoom-z tile sums
at most 20 × 20 tiles' rows of level min(z + 4, 18) (`change_area`). So an Open311 request
changes the tiles around it, not the layer; a TRUNCATE, a bulk load or a huge statement
renews the epoch instead (every tile changes, in every zone: a commander learns that a load
happened, not where). The version is read in the statement that switches the connection to
the reader role and zone (`version_columns`, `scope`), so a cached tile costs that one
statement.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from layers import Field, Layer, metadata
from layers.aggregates import (
    CATEGORY_SPANS,
    CELL_DLAT,
    CELL_DLNG,
    CELL_ORIGIN,
    SPANS,
    cell_x,
    cell_y,
    period_after,
    period_start,
)
from layers.changes import CHANGE_LEVELS
from layers.queries import access
from layers.queries.access import READER_ROLE
from layers.queries.params import (
    Interval,
    ParamError,
    check_params,
    parse_instant,
    parse_interval,
    values,
    zone_of,
)
from layers.queries.slices import (
    FILTER_ALIASES,
    TIME_PARAMS,
    filter_names,
    property_conditions,
    time_conditions,
)
from layers.queries.window import Window

EXTENT = 4096
BUFFER = 256
CELLS = 64
MAX_RAW_POINTS = 4000
MAX_TILE_BYTES = 500 * 1024
MAX_ZOOM = 22
TEMPLATE_VERSION = "2"  # bump when the tile SQL changes what a tile contains
CELL_MAX_ZOOM = 15  # z15: a 100 m cell is 1/9 of the tile (27 px of 256); deeper, too coarse
EDGE = 1e-6  # cells: interior cells end at least this far inside the tile, whatever rounding

Tile = tuple[int, int, int]  # z, x, y
Built = tuple[bytes, str]  # MVT bytes, "raw" | "aggregated" | "empty"


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


def parse_tile(z: str, x: str, y: str) -> Tile:
    """Validated tile coordinates: z 0–22, x and y in 0 … 2^z − 1 (ParamError, 400)."""
    if not re.fullmatch(r"[0-9]{1,2}", z) or int(z) > MAX_ZOOM:
        raise ParamError(f"缩放级别应为 0–{MAX_ZOOM} (zoom must be 0–{MAX_ZOOM}): {z!r}", "z")
    zoom = int(z)
    n = 2**zoom
    for name, value in (("x", x), ("y", y)):
        if not re.fullmatch(r"[0-9]{1,8}", value) or int(value) >= n:
            raise ParamError(
                f"瓦片坐标 {name} 应为 0–{n - 1} (tile {name} must be 0–{n - 1} at zoom {zoom}): "
                f"{value!r}",
                name,
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


def feature_id(layer: Layer) -> str | None:
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
    fid = feature_id(layer)
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


# --- aggregated tiles from the cell aggregates ---------------------------------------------


Piece = tuple[str, dt.date | None, dt.date | None]


@dataclass(frozen=True)
class CellFilter:
    """A tile filter the cell aggregates answer: local days, categories, streets."""

    since: dt.date | None = None
    until: dt.date | None = None
    categories: tuple[str, ...] | None = None
    streets: tuple[str, ...] | None = None

    def pieces(self) -> list[Piece]:
        """The window as runs of whole periods and days: (span, first, last) on the first
        day of each period, None where the window is open (see `Window.pieces`)."""
        spans = SPANS if self.categories is None else CATEGORY_SPANS
        top = spans[-1]
        since, until = self.since, self.until
        day = dt.timedelta(days=1)
        if since is not None and until is not None:
            return list(Window(since, until).pieces(spans)) if since <= until else []
        if since is not None:
            start = period_start(top, since)
            if start == since:
                return [(top, since, None)]
            start = period_after(top, start)
            return [*Window(since, start - day).pieces(spans), (top, start, None)]
        if until is not None:
            start = period_start(top, until)
            if period_after(top, start) == until + day:
                return [(top, None, start)]
            return [(top, None, start - day), *Window(start, until).pieces(spans)]
        return [(top, None, None)]


def cell_tables(layer: Layer) -> tuple[sa.Table, sa.Table] | None:
    """The layer's cell aggregates (daily, periods), from the registry's `cell_tables`."""
    if layer.cell_tables is None:
        return None
    daily, periods = layer.cell_tables
    return metadata.tables[daily], metadata.tables[periods]


def cell_filter(layer: Layer, args: Mapping[str, Any], zone: dt.tzinfo) -> CellFilter | None:
    """The filters of `args` as a CellFilter, or None when the cell aggregates cannot answer
    them (another filter, a date-time) or the layer has none. `args` are validated already;
    their dates are local days in `zone`, the zone the aggregates are keyed on."""
    if layer.cell_tables is None:
        return None
    wanted: dict[str, set[str]] = {}
    for name in args:
        if name in TIME_PARAMS:
            continue
        column = FILTER_ALIASES.get(name, name)
        if column not in layer.cell_filters:
            return None
        given = {part.strip() for raw in values(args, name) for part in raw.split(",")}
        wanted[column] = wanted[column] & given if column in wanted else given
    since: dt.date | None = None
    until: dt.date | None = None
    for name in TIME_PARAMS:
        value = args.get(name)
        if value is None:
            continue
        if name == "datetime":
            window = parse_interval(value, zone=zone)
        elif name == "since":
            window = Interval(parse_instant(value, name, zone=zone), None)
        else:
            window = Interval(None, parse_instant(value, name, zone=zone))
        lo, hi = window.start, window.end
        if isinstance(lo, dt.datetime) or isinstance(hi, dt.datetime):
            return None  # a date-time: the aggregates hold whole days only
        if lo is not None:
            since = lo if since is None else max(since, lo)
        if hi is not None:
            until = hi if until is None else min(until, hi)
    categories, streets = wanted.get("category"), wanted.get("street_code")
    return CellFilter(
        since,
        until,
        None if categories is None else tuple(sorted(categories)),
        None if streets is None else tuple(sorted(streets)),
    )


def _interior(z: int, x: int, y: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the cells wholly inside tile z/x/y, or None when there are none."""
    west, south, east, north = tile_bounds(z, x, y)
    x0 = math.floor((west - CELL_ORIGIN[0]) / CELL_DLNG + EDGE) + 1
    x1 = math.floor((east - CELL_ORIGIN[0]) / CELL_DLNG - EDGE) - 1
    y0 = math.floor((south - CELL_ORIGIN[1]) / CELL_DLAT + EDGE) + 1
    y1 = math.floor((north - CELL_ORIGIN[1]) / CELL_DLAT - EDGE) - 1
    return (x0, y0, x1, y1) if x0 <= x1 and y0 <= y1 else None


def _interior_counts(
    tables: tuple[sa.Table, sa.Table], cells: CellFilter, box: tuple[int, int, int, int]
) -> Any:
    """(cell_x, cell_y, n) for the cells of `box` from the aggregates: one index range scan
    per run of periods or days."""
    daily, periods = tables
    x0, y0, x1, y1 = box
    parts = []
    for span, first, last in cells.pieces():
        table = daily if span == "day" else periods
        start = table.c.day if span == "day" else table.c.first_day
        where: list[sa.ColumnElement[bool]] = [
            table.c.cell_x.between(x0, x1),
            table.c.cell_y.between(y0, y1),
        ]
        if span != "day":
            where.append(table.c.span == span)
        if first is not None:
            where.append(start >= first)
        if last is not None:
            where.append(start <= last)
        if cells.categories is None:
            where.append(table.c.category.is_(None))
        else:
            where.append(table.c.category.in_(cells.categories))
        if cells.streets is not None:
            where.append(table.c.street_code.in_(cells.streets))
        parts.append(sa.select(table.c.cell_x, table.c.cell_y, table.c.received).where(*where))
    if not parts:
        parts.append(sa.select(daily.c.cell_x, daily.c.cell_y, daily.c.received).where(sa.false()))
    rows = sa.union_all(*parts).subquery("a")
    return (
        sa.select(rows.c.cell_x, rows.c.cell_y, sa.func.sum(rows.c.received).label("n"))
        .group_by(rows.c.cell_x, rows.c.cell_y)
        .cte("interior")
    )


def cell_query(
    layer: Layer,
    z: int,
    x: int,
    y: int,
    conds: list[sa.ColumnElement[bool]],
    cells: CellFilter,
) -> sa.Select[Any] | None:
    """(requests in the cells wholly inside the tile, the aggregated tile) from the cell
    aggregates and the points of the cut cells; None when the tile has no whole cell or is
    deeper than CELL_MAX_ZOOM. `conds` must be the filter `cells` stands for."""
    box = _interior(z, x, y)
    tables = cell_tables(layer)
    if box is None or z > CELL_MAX_ZOOM or tables is None:
        return None
    x0, y0, x1, y1 = box
    west, south, east, north = tile_bounds(z, x, y)
    interior = _interior_counts(tables, cells, box)
    n = sa.cast(interior.c.n, sa.Float)
    centres = sa.select(
        interior.c.n,
        (n * (CELL_ORIGIN[0] + (interior.c.cell_x + 0.5) * CELL_DLNG)).label("sx"),
        (n * (CELL_ORIGIN[1] + (interior.c.cell_y + 0.5) * CELL_DLAT)).label("sy"),
    )

    # The cut cells: strips along the edges (closed boxes for the index, a centimetre wider
    # than the interior's border); the exact test is the cell index, as the aggregates compute it.
    t = layer.table
    xa, xb = CELL_ORIGIN[0] + x0 * CELL_DLNG, CELL_ORIGIN[0] + (x1 + 1) * CELL_DLNG
    ya, yb = CELL_ORIGIN[1] + y0 * CELL_DLAT, CELL_ORIGIN[1] + (y1 + 1) * CELL_DLAT
    pad = 1e-7
    strips = [
        (west, south, xa + pad, north),
        (xb - pad, south, east, north),
        (west, south, east, ya + pad),
        (west, yb - pad, east, north),
    ]
    points = (
        sa.select(
            sa.func.ST_X(t.c.geom).label("x"),
            sa.func.ST_Y(t.c.geom).label("y"),
            cell_x(t.c.geom).label("cx"),
            cell_y(t.c.geom).label("cy"),
        )
        .where(sa.or_(*(t.c.geom.op("&&")(_envelope(s)) for s in strips)), *conds)
        .offset(0)
        .subquery("p")
    )
    p = points.c
    edges = (
        sa.select(
            sa.func.count().label("n"),
            sa.func.sum(p.x).label("sx"),
            sa.func.sum(p.y).label("sy"),
        )
        .where(
            p.x >= west,
            p.x < east,
            p.y >= south,
            p.y < north,
            sa.not_(sa.and_(p.cx.between(x0, x1), p.cy.between(y0, y1))),
        )
        .group_by(p.cx, p.cy)
    )
    cut = sa.union_all(centres, edges).subquery("c")
    lat_edges = [_lat(y + 1 - i / CELLS, z) for i in range(CELLS + 1)]  # south → north
    bucket = sa.func.width_bucket(cut.c.sx / cut.c.n, west, east, CELLS) * (
        CELLS + 2
    ) + sa.func.width_bucket(cut.c.sy / cut.c.n, sa.literal(lat_edges, pg.ARRAY(sa.Float)))
    total = sa.func.sum(cut.c.n)
    mean = sa.func.ST_Transform(
        sa.func.ST_SetSRID(
            sa.func.ST_MakePoint(
                sa.func.sum(cut.c.sx) / sa.cast(total, sa.Float),
                sa.func.sum(cut.c.sy) / sa.cast(total, sa.Float),
            ),
            4326,
        ),
        3857,
    )
    inner = (
        sa.select(
            sa.func.ST_AsMVTGeom(mean, sa.func.ST_TileEnvelope(z, x, y), EXTENT, 0, False).label(
                "geom"
            ),
            sa.cast(total, sa.Integer).label("count"),
        )
        .group_by(bucket)
        .subquery("q")
    )
    whole = sa.select(sa.func.coalesce(sa.func.sum(interior.c.n), 0)).scalar_subquery()
    return sa.select(whole, _mvt(layer, inner).scalar_subquery())


# --- versions -------------------------------------------------------------------------------


def change_level(z: int) -> int:
    """The level of `tile_changes` a zoom-z tile reads: its buffered area spans at most
    2^4 + 4 tiles of it each way (see `change_area`)."""
    return min(max(z + 4, CHANGE_LEVELS.start), CHANGE_LEVELS.stop - 1)


def change_area(z: int, x: int, y: int) -> tuple[int, int, int, int, int]:
    """(level, x0, x1, y0, y1): the tiles of `tile_changes` that tile z/x/y overlaps with its
    buffer — a point there is drawn in the tile. One more tile each way where an edge falls
    on theirs, since the triggers round a point on that edge either way."""
    level = change_level(z)
    scale = 2.0 ** (level - z)
    top = 2**level - 1
    pad = BUFFER / EXTENT

    def span(t: int) -> tuple[int, int]:
        lo = math.floor((t - pad) * scale - SNAP)
        hi = math.floor((t + 1 + pad) * scale + SNAP)
        return max(lo, 0), min(hi, top)

    (x0, x1), (y0, y1) = span(x), span(y)
    return level, x0, x1, y0, y1


SNAP = 1e-6  # tiles of the change level: more than any rounding, far less than a tile

# The changes in a tile's area that the caller's zone may see: an index-only range scan of
# at most 20 × 20 tiles' rows (compacted: one per street). {zone}: the zone, '*' for all.
_CHANGES = """
    (select coalesce(sum(n), 0) from tile_changes
      where layer = :tile_layer and level = :tile_level
        and x between :tile_x0 and :tile_x1 and y between :tile_y0 and :tile_y1
        and ({zone} = '*' or street_code = {zone}))"""
_EPOCH = "(select epoch from tile_epochs where layer = :tile_layer)"
_ZONE_SETTING = "coalesce(nullif(current_setting('blockdata.zone', true), ''), '*')"
_VERSION_SQL = sa.text(
    f"select {_EPOCH}, {_CHANGES.format(zone=_ZONE_SETTING)}, current_user, "
    "coalesce(current_setting('blockdata.zone', true), '')"
)


def _area_params(layer: Layer, tile: tuple[int, int, int] | None) -> dict[str, Any]:
    if tile is None:  # every change of the layer marks a level-14 tile
        level = CHANGE_LEVELS.start
        area = (level, 0, 2**level - 1, 0, 2**level - 1)
    else:
        area = change_area(*tile)
    names = ("tile_level", "tile_x0", "tile_x1", "tile_y0", "tile_y1")
    return {"tile_layer": layer.name, **dict(zip(names, area, strict=True))}


def data_version(
    conn: sa.Connection, layer: Layer, tile: tuple[int, int, int] | None = None
) -> str:
    """What changes whenever the rows this caller may see in tile z/x/y (with its buffer) of
    the layer may have changed; without a tile, anywhere in the layer.

    The data: the layer's epoch and the number of changes the triggers of migrations 0008
    and 0009 logged in the tile's area — in the caller's street only, for a commander (a
    write elsewhere must not show in their ETag) — exact at commit, whoever wrote them (ETL,
    Open311, psql). The caller: the database role and the `blockdata.zone` setting, which
    are all the row-level security policies read (migration 0004), so cached tiles are
    shared within a zone and never across zones. Read as the server's own role: the reader
    may not read the change log.
    """
    epoch, changes, role, zone = conn.execute(_VERSION_SQL, _area_params(layer, tile)).one()
    return f"{epoch}.{changes}|{role}|{zone}"


# The same, as columns of the statement that scopes a tile request (`scope`), before the switch
# to the reader: the zone is that statement's own `:zone`. The last column: whether the
# request aggregates cannot answer now — changes not refreshed yet (a table the reader may
# not read), or days of another time zone than the configured one (`request_aggregates_zone`,
# until `blockdata db rebuild-aggregates`).
_SCOPE_VERSION = f"{_EPOCH}, {_CHANGES.format(zone='cast(:zone as text)')}, "


def version_columns(layer: Layer, tile: Tile, tz: str) -> tuple[str, dict[str, Any]]:
    """The columns (and their parameters) the scope statement reads for a tile of `layer`:
    the layer's epoch, its changes in the tile's area and the caller's zone, and whether
    the cell aggregates cannot answer now."""
    if layer.cell_tables is None:
        return _SCOPE_VERSION + "null", _area_params(layer, tile)
    stale = (
        "exists (select from request_dirty_days) or "
        "(select zone from request_aggregates_zone) is distinct from :tile_zone"
    )
    return _SCOPE_VERSION + stale, {**_area_params(layer, tile), "tile_zone": tz}


@dataclass(frozen=True)
class Scoped:
    """What the scope statement read for a tile (`version_columns`), and the zone it set."""

    zone: str
    epoch: str | None
    changes: int
    stale: bool | None


def scope(conn: sa.Connection, layer: Layer, tile: Tile, zone: str, tz: str) -> Scoped:
    """Switch `conn` to the reader confined to `zone` (as `access.scope`), reading the tile's
    version in the same statement, with the caller's own privileges (the reader may not read
    the change log). The web does the same through `app.db.scope`."""
    row = access.scope(conn, zone, version_columns(layer, tile, tz))
    assert row is not None
    return Scoped(zone, *row)


def tile_version(
    conn: sa.Connection, layer: Layer, tile: Tile, scoped: Scoped | None
) -> tuple[str, bool]:
    """(the data version of `tile` for this caller, whether the layer's cell aggregates are
    up to date). Without what the scope statement read, it is asked now (as the server's
    own role: the reader may not read the change log), and the aggregates are not used."""
    if scoped is None:
        return data_version(conn, layer, tile) + "|?", False
    return (
        f"{scoped.epoch}.{scoped.changes}|{READER_ROLE}|{scoped.zone}|{scoped.stale}",
        scoped.stale is False,
    )


# --- building -------------------------------------------------------------------------------


def tile_filters(
    layer: Layer, args: Mapping[str, Any], zone: dt.tzinfo
) -> tuple[list[sa.ColumnElement[bool]], str]:
    """Validated filter conditions of `args` (a mapping of query parameters: a plain dict,
    or a MultiDict with repeats) and their canonical text (for the key and TileJSON); dates
    are local days in `zone`."""
    check_params(args, [*TIME_PARAMS, *filter_names(layer)])
    conds = [*time_conditions(layer, args, zone), *property_conditions(layer, args)]
    canonical = urlencode(sorted((name, v) for name in args for v in values(args, name)))
    return conds, canonical


def build_tile(
    conn: sa.Connection,
    layer: Layer,
    z: int,
    x: int,
    y: int,
    conds: list[sa.ColumnElement[bool]],
    max_raw: int = MAX_RAW_POINTS,
    cells: CellFilter | None = None,
) -> tuple[bytes, str]:
    """(MVT bytes, "raw" | "aggregated" | "empty") for one tile.

    `cells`: `conds` as the cell aggregates read them, when they may (up to date, and a
    filter they answer); an aggregated tile then comes from them (`cell_query`). Its count
    of the cells wholly inside the tile is a lower bound of the tile's points: over
    `max_raw`, the tile is aggregated without counting the points.
    """
    if z < layer.min_zoom:
        return b"", "empty"
    if layer.geometry_type != "POINT":
        return _bytes(conn.execute(raw_query(layer, z, x, y, conds)).scalar()), "raw"
    from_cells = None if cells is None else cell_query(layer, z, x, y, conds, cells)
    if from_cells is not None:
        inside, aggregated = conn.execute(from_cells).one()
        if inside > max_raw:
            return _bytes(aggregated), "aggregated"
    n, raw = conn.execute(raw_if_small(layer, z, x, y, conds, max_raw)).one()
    if n <= max_raw and len(_bytes(raw)) <= MAX_TILE_BYTES:
        return _bytes(raw), "raw"
    if from_cells is not None:
        return _bytes(aggregated), "aggregated"
    return _bytes(conn.execute(aggregate_query(layer, z, x, y, conds)).scalar()), "aggregated"


def _bytes(value: bytes | memoryview | None) -> bytes:
    return b"" if value is None else bytes(value)


@dataclass(frozen=True)
class PreparedTile:
    """A tile ready to build: its key (the web's ETag and the cache's key), its kind unknown
    until `build()` runs its statements on the connection it was prepared with."""

    key: str
    build: Callable[[], Built]


def prepare_tile(
    conn: sa.Connection,
    layer: Layer,
    tile: Tile,
    args: Mapping[str, Any],
    *,
    tz: str,
    max_raw: int = MAX_RAW_POINTS,
    scoped: Scoped | None = None,
) -> PreparedTile:
    """Tile z/x/y of `layer` filtered by `args`, for the caller `conn` is scoped to.

    `tz`: the district's time zone (BLOCKDATA_TZ): the local days of the filters, the offset
    of the times the tile carries (the session's time zone), and so part of the key.
    `max_raw`: the most points a raw tile holds. `scoped`: what the scope statement read
    (`scope`, or the web's `db.scope` with `version_columns`); None: the version is asked now.
    ParamError (400) naming a bad parameter."""
    zone = zone_of(tz)
    conds, canonical = tile_filters(layer, args, zone)
    version, fresh = tile_version(conn, layer, tile, scoped)
    z, x, y = tile
    key = f"{TEMPLATE_VERSION}.{max_raw}|{tz}|{layer.name}|{z}/{x}/{y}|{canonical}|{version}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    cells = cell_filter(layer, args, zone) if fresh else None

    def build() -> Built:
        return build_tile(conn, layer, z, x, y, conds, max_raw, cells)

    return PreparedTile(digest, build)
