"""The slice: the rows of a layer a request asks for, shared by every read path.

An export, an /api features page, an OGC items page and a vector tile narrow a layer with
the same filters, parsed here from a plain mapping of query parameters (layers.queries.params)
and turned into SQL conditions: `bbox` (CRS84), `datetime` / `since` / `until` on the layer's
time field (dates and naive times local to the district's time zone, an argument), and
`field=value[,value…]` on its filterable fields, with the short aliases `street`,
`community`, `grid`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from layers import Layer
from layers.queries import params
from layers.queries.params import (
    ParamError,
    check_params,
    parse_bbox,
    parse_limit,
    single,
    zone_of,
)

# Short names for the admin-unit filters, as the rest of the API spells them.
FILTER_ALIASES = {"street": "street_code", "community": "community_code", "grid": "grid_code"}
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"  # lon/lat on WGS84: every bbox, every output
TIME_PARAMS = ("datetime", "since", "until")
SLICE_PARAMS = ("bbox", *TIME_PARAMS, "limit")


def filter_names(layer: Layer) -> list[str]:
    """Query parameters that filter `layer` by a property (field names and short aliases)."""
    names = [f.name for f in layer.filterable]
    names += [alias for alias, field in FILTER_ALIASES.items() if field in names]
    return names


def bbox_condition(geom: sa.Column[Any], value: str) -> sa.ColumnElement[bool]:
    """The rows whose geometry meets the bbox (parsed and checked: 400 when malformed).

    The explicit && is the GiST index condition. ST_Intersects would add it by itself, but
    under row-level security PostgreSQL only lets a leakproof operator ahead of the policy
    into an index scan, and the condition it derives inherits ST_Intersects' (not leakproof)
    status; `&&` can be marked leakproof (migration 0005).

    Written as SQL text with bound parameters: SQLAlchemy builds and cache-keys a text
    clause in a few microseconds, its function constructs in a few hundred, on every request.
    """
    minx, miny, maxx, maxy = parse_bbox(value)
    boxes = [(minx, maxx)] if minx <= maxx else [(minx, 180.0), (-180.0, maxx)]
    column = f"{geom.table.name}.{geom.name}"
    parts, binds = [], []
    # minx > maxx crosses the antimeridian, as the standard allows: two boxes.
    for i, (x0, x1) in enumerate(boxes):
        envelope = f"ST_MakeEnvelope(:bbox{i}_x0, :bbox_y0, :bbox{i}_x1, :bbox_y1, 4326)"
        parts.append(f"({column} && {envelope} AND ST_Intersects({column}, {envelope}))")
        binds += [
            sa.bindparam(f"bbox{i}_x0", x0, type_=sa.Float),
            sa.bindparam(f"bbox{i}_x1", x1, type_=sa.Float),
        ]
    binds += [
        sa.bindparam("bbox_y0", miny, type_=sa.Float),
        sa.bindparam("bbox_y1", maxy, type_=sa.Float),
    ]
    text = " OR ".join(parts)
    return sa.text(f"({text})" if len(parts) > 1 else text).bindparams(*binds)  # type: ignore[return-value]


def _interval(
    column: sa.Column[Any], interval: params.Interval, zone: dt.tzinfo
) -> list[sa.ColumnElement[bool]]:
    """Closed interval [start, end] on a timestamp or date column; a date end is its whole
    local day in `zone`; a date-time instant is that moment (its local day on a date column)."""
    start, end = interval.start, interval.end
    out: list[sa.ColumnElement[bool]] = []
    if not isinstance(column.type, sa.DateTime):
        if interval.instant and isinstance(start, dt.datetime):
            return [column == params.day_of(start, zone)]
        if start is not None:
            out.append(column >= params.day_of(start, zone))
        if end is not None:
            out.append(column <= params.day_of(end, zone))
        return out
    if interval.instant and isinstance(start, dt.datetime):
        return [column == start]
    if start is not None:
        out.append(column >= params.start_of(start, zone))
    if isinstance(end, dt.datetime):
        out.append(column <= end)
    elif end is not None:
        out.append(column < params.end_of(end, zone))
    return out


def time_conditions(layer: Layer, args: Any, zone: dt.tzinfo) -> list[sa.ColumnElement[bool]]:
    """`datetime` (instant, closed or half-open interval with `..`), `since`, `until`; dates
    and naive date-times are local to `zone`, the district's time zone."""
    given = {name: single(args, name) for name in TIME_PARAMS}
    if all(v is None for v in given.values()):
        return []
    if layer.time_field is None:
        name = next(n for n, v in given.items() if v is not None)
        raise ParamError(
            f"图层 {layer.name} 没有时间字段，不能按 {name} 筛选 "
            f"(layer {layer.name!r} has no time field): {given[name]!r}",
            name,
        )
    column = layer.table.c[layer.time_field]
    out: list[sa.ColumnElement[bool]] = [column.is_not(None)]
    value = given["datetime"]
    if value is not None:
        out += _interval(column, params.parse_interval(value, zone=zone), zone)
    if given["since"] is not None:
        since = params.parse_instant(given["since"], "since", zone=zone)
        out += _interval(column, params.Interval(since, None), zone)
    if given["until"] is not None:
        until = params.parse_instant(given["until"], "until", zone=zone)
        out += _interval(column, params.Interval(None, until), zone)
    return out


def property_conditions(layer: Layer, args: Any) -> list[sa.ColumnElement[bool]]:
    """`field=value` on the layer's filterable fields; a comma or a repeat means any of."""
    columns = {name: layer.table.c[FILTER_ALIASES.get(name, name)] for name in filter_names(layer)}
    flags = [name for name, column in columns.items() if isinstance(column.type, sa.Boolean)]
    out: list[sa.ColumnElement[bool]] = []
    for name, found in params.parse_properties(args, columns, flags).items():
        column = columns[name]
        out.append(column == found[0] if len(found) == 1 else column.in_(found))
    return out


@dataclass(frozen=True)
class Slice:
    """A layer and the rows of it the caller asked for."""

    layer: Layer
    conditions: tuple[sa.ColumnElement[bool], ...] = ()
    filters: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    zone: dt.tzinfo = field(default_factory=lambda: zone_of(None))  # the district's

    def select(self, *columns: sa.ColumnElement[Any]) -> sa.Select[Any]:
        """`columns` of the slice's rows: in key order under a limit (the first N by key),
        otherwise in storage order — reading 1M rows by the key's index costs about 1.8×
        a sequential scan, which two parallel workers can also share."""
        t = self.layer.table
        query = sa.select(*columns).select_from(t).where(*self.conditions)
        if self.limit is None:
            return query
        return query.order_by(t.c[self.layer.key]).limit(self.limit)


def slice_params(layer: Layer) -> list[str]:
    """Every query parameter that narrows an export of `layer`."""
    return [*SLICE_PARAMS, *filter_names(layer)]


def parse_slice(
    layer: Layer, args: Any, also_allowed: Iterable[str] = (), zone: dt.tzinfo | None = None
) -> Slice:
    """The slice that `args` (a mapping of query parameters) describes; 400 naming bad ones.

    The filters are the OGC API's: bbox (CRS84), datetime / since / until on the layer's time
    field (dates and naive times local to `zone`, the district's time zone; default the
    default BLOCKDATA_TZ), and `field=value[,value…]` on its filterable fields (street,
    community, grid, category, status, department …).
    """
    zone = zone or zone_of(None)
    check_params(args, [*slice_params(layer), *also_allowed])
    conditions = [
        *time_conditions(layer, args, zone),
        *property_conditions(layer, args),
    ]
    bbox = single(args, "bbox")
    if bbox is not None:
        conditions.append(bbox_condition(layer.table.c.geom, bbox))
    # No maximum: an export may take every row.
    limit = parse_limit(single(args, "limit"), default=None, maximum=None, digits=10)
    names = set(slice_params(layer))
    filters: dict[str, Any] = {}
    for name in args:
        if name in names:
            given = params.values(args, name)
            filters[name] = given[0] if len(given) == 1 else given
    return Slice(layer, tuple(conditions), filters, limit, zone)


def count(conn: sa.Connection, s: Slice) -> int:
    """The slice's number of rows."""
    inner = s.select(sa.literal(1)).order_by(None).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(inner)).scalar_one())
