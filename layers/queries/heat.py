"""Heat: requests received per street, community, grid or 100 m cell over a window of local
days, read from the aggregates (layers.aggregates), never by scanning the requests.

The caller reads through row-level security (migration 0004): a commander's connection counts
their street's requests only.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from layers.aggregates import (
    CATEGORY_SPANS,
    CELL_DLAT,
    CELL_DLNG,
    CELL_ORIGIN,
    SPANS,
    request_cells_daily,
    request_cells_periods,
    request_daily,
    request_periods,
)
from layers.queries.geojson import COORDINATE_DECIMALS, json_list, json_object, text_param
from layers.queries.window import Window
from layers.registry import level_layer

LEVELS = ("street", "community", "grid", "cell")
# The colour scale's breaks: these quantiles of the units' counts (heat is skewed: equal
# intervals would paint nearly every cell the lightest colour). Class i of the legend holds
# the counts above break i−1 up to break i; equal breaks merge.
SCALE_QUANTILES = (0.2, 0.4, 0.6, 0.8, 1.0)


def _in_category(table: sa.Table, category: str | None) -> sa.ColumnElement[bool]:
    """The rows of one category, or the all-categories rows (category NULL)."""
    return table.c.category.is_(None) if category is None else table.c.category == category


def window_runs(
    window: Window, daily: sa.Table, periods: sa.Table, by_category: bool = False
) -> list[tuple[sa.Table, sa.ColumnElement[bool]]]:
    """The window as the fewest runs of days (of `daily`) and whole periods (of `periods`;
    only the spans that hold a row per category when `by_category`): (table, condition)."""
    runs: list[tuple[sa.Table, sa.ColumnElement[bool]]] = []
    for span, lo, hi in window.pieces(CATEGORY_SPANS if by_category else SPANS):
        if span == "day":
            runs.append((daily, daily.c.day.between(lo, hi)))
        else:
            runs.append((periods, (periods.c.span == span) & periods.c.first_day.between(lo, hi)))
    return runs


def heat_counts(
    level: str, window: Window, category: str | None, street: str | None
) -> sa.Subquery:
    """(unit key…, n) per unit of `level` over the window.

    One index range scan per run of days or periods, an index-only scan of the key index.
    """
    cells = level == "cell"
    daily, periods = (
        (request_cells_daily, request_cells_periods) if cells else (request_daily, request_periods)
    )
    unit = ["cell_x", "cell_y"] if cells else [f"{level}_code"]
    parts = []
    for table, where in window_runs(window, daily, periods, category is not None):
        query = sa.select(*(table.c[u] for u in unit), table.c.received).where(
            _in_category(table, category), where
        )
        if street is not None:
            query = query.where(table.c.street_code == street)
        parts.append(query)
    rows = sa.union_all(*parts).subquery("rows")
    keys = [rows.c[u] for u in unit]
    return sa.select(*keys, sa.func.sum(rows.c.received).label("n")).group_by(*keys).subquery("c")


def _degrees(value: Any) -> sa.ColumnElement[Any]:
    """Degrees rounded to COORDINATE_DECIMALS, kept float8: PostgreSQL prints the short form."""
    scale = float(10**COORDINATE_DECIMALS)
    return sa.func.round(value * scale, type_=sa.Float) / scale


def _heat_items(level: str, counts: sa.Subquery) -> sa.Select[Any]:
    """code, n, lng, lat per unit: the centre of a cell, ST_PointOnSurface of an admin unit."""
    if level == "cell":
        x, y = counts.c.cell_x, counts.c.cell_y
        return sa.select(
            (sa.cast(x, sa.Text) + "_" + sa.cast(y, sa.Text)).label("code"),
            counts.c.n,
            _degrees(CELL_ORIGIN[0] + (x + 0.5) * CELL_DLNG).label("lng"),
            _degrees(CELL_ORIGIN[1] + (y + 0.5) * CELL_DLAT).label("lat"),
        )
    code = counts.c[f"{level}_code"]
    units = level_layer(level).table
    point = (
        sa.select(sa.func.ST_PointOnSurface(units.c.geom).label("p"))
        .where(units.c.code == code)
        .lateral("u")
    )
    return sa.select(
        code.label("code"),
        counts.c.n,
        _degrees(sa.func.ST_X(point.c.p)).label("lng"),
        _degrees(sa.func.ST_Y(point.c.p)).label("lat"),
    ).select_from(counts.outerjoin(point, sa.true()))


def heat_json(
    conn: sa.Connection,
    level: str,
    window: Window,
    category: str | None = None,
    street: str | None = None,
) -> str:
    """Requests received in the window per unit of `level`, with a point to draw each at,
    as the JSON text PostgreSQL writes (items busiest first).

    `total` is every matching request; `unplaced` those without a unit at this level (none
    when every request was placed by the ETL), so total = Σ n + unplaced. `min`, `max` and
    `breaks` (SCALE_QUANTILES of the units' counts, percentile_disc: each a count some unit
    has) make the legend's colour scale; `breaks` is [] when no unit has a request.
    """
    items = _heat_items(level, heat_counts(level, window, category, street)).subquery("i")
    placed = items.c.code.is_not(None)
    item = json_object(
        {"code": items.c.code, "n": items.c.n, "lng": items.c.lng, "lat": items.c.lat}
    )
    body = json_object(
        {
            "layer": text_param("service_requests"),
            "level": text_param(level),
            "since": text_param(window.since.isoformat()),
            "until": text_param(window.until.isoformat()),
            "category": text_param(category),
            "street": text_param(street),
            "total": sa.func.coalesce(sa.func.sum(items.c.n), 0),
            "min": sa.func.coalesce(sa.func.min(items.c.n).filter(placed), 0),
            "max": sa.func.coalesce(sa.func.max(items.c.n).filter(placed), 0),
            "breaks": sa.func.coalesce(
                sa.func.percentile_disc(sa.literal(list(SCALE_QUANTILES), ARRAY(sa.Float)))
                .within_group(items.c.n)
                .filter(placed),
                sa.literal([], ARRAY(sa.BigInteger)),
            ),
            "unplaced": sa.func.coalesce(sa.func.sum(items.c.n).filter(~placed), 0),
            "items": json_list(item, items.c.n.desc(), items.c.code, where=placed),
        }
    )
    return str(conn.execute(sa.select(sa.cast(body, sa.Text)).select_from(items)).scalar_one())


def heat(
    conn: sa.Connection,
    level: str,
    window: Window,
    category: str | None = None,
    street: str | None = None,
) -> dict[str, Any]:
    """heat_json, parsed."""
    body: dict[str, Any] = json.loads(heat_json(conn, level, window, category, street))
    return body
