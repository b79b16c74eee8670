"""The queries behind /api: framework-free, each takes a Connection and returns plain data.

Arguments arrive validated (app.api checks them); dates are local dates of the district's
time zone (BLOCKDATA_TZ), the zone the aggregates are keyed on, and "now" is the app's clock,
passed in. Counts of requests come from the aggregates (layers.aggregates), never from
scanning the requests, except `latest`, which reads one street's last few hundred rows by
index.

Who sees what: the caller reads through row-level security (migration 0004). The public
scorecard — every street's volume, valid callbacks, three rates, composite and rank, and the
district's — comes from `request_street_daily`, which every role may read, so it is the same
district-wide figure for every caller. Row data (street names and areas, open and overdue
requests) is the caller's zone only: outside it those fields are null, never a figure of the
caller's own zone in the district's place.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geography
from sqlalchemy.dialects.postgresql import aggregate_order_by

from etl.aggregates import RATE_NAMES, RatesConfig, three_rates
from layers import Layer, get_layer
from layers.aggregates import (
    CATEGORY_SPANS,
    CELL_DLAT,
    CELL_DLNG,
    CELL_ORIGIN,
    SPANS,
    STREET_MEASURES,
    request_cells_daily,
    request_cells_periods,
    request_daily,
    request_open,
    request_periods,
    request_street_daily,
)
from layers.queries.window import Window, next_month, previous_month
from layers.registry import level_layer

LEVELS = ("street", "community", "grid", "cell")
CASE_CLOSED = "已结案"
SIMPLIFY_TOLERANCE = 1e-5  # degrees, about 1 m: invisible at street and district scale
PRECISION = 6  # decimals of a degree in GeoJSON, about 0.1 m
RATE_DECIMALS = 4
SCORE_DECIMALS = 2


def _in_category(table: sa.Table, category: str | None) -> sa.ColumnElement[bool]:
    """The rows of one category, or the all-categories rows (category NULL)."""
    return table.c.category.is_(None) if category is None else table.c.category == category


def _heat_counts(
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
    for span, lo, hi in window.pieces(SPANS if category is None else CATEGORY_SPANS):
        where: sa.ColumnElement[bool]
        if span == "day":
            table, where = daily, daily.c.day.between(lo, hi)
        else:
            table = periods
            where = (periods.c.span == span) & periods.c.first_day.between(lo, hi)
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
    """Degrees rounded to PRECISION decimals, kept float8: PostgreSQL prints the short form."""
    scale = float(10**PRECISION)
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
    when every request was placed by the ETL), so total = Σ n + unplaced.
    """
    items = _heat_items(level, _heat_counts(level, window, category, street)).subquery("i")
    placed = items.c.code.is_not(None)
    item = _object({"code": items.c.code, "n": items.c.n, "lng": items.c.lng, "lat": items.c.lat})
    body = _object(
        {
            "layer": _text("service_requests"),
            "level": _text(level),
            "since": _text(window.since.isoformat()),
            "until": _text(window.until.isoformat()),
            "category": _text(category),
            "street": _text(street),
            "total": sa.func.coalesce(sa.func.sum(items.c.n), 0),
            "max": sa.func.coalesce(sa.func.max(items.c.n).filter(placed), 0),
            "unplaced": sa.func.coalesce(sa.func.sum(items.c.n).filter(~placed), 0),
            "items": _json_list(item, items.c.n.desc(), items.c.code, where=placed),
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


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _month_label(month: dt.date) -> str:
    return month.strftime("%Y-%m")


def _streets(conn: sa.Connection) -> list[dict[str, Any]]:
    """The streets the caller may see, with their area (km², from the geometry when the file
    gave none)."""
    t = get_layer("streets").table
    area = sa.func.coalesce(t.c.area_km2, sa.func.ST_Area(sa.cast(t.c.geom, Geography())) / 1e6)
    rows = conn.execute(
        sa.select(t.c.code, t.c.name, t.c.commander, area.label("area_km2")).order_by(t.c.code)
    ).mappings()
    return [dict(row) for row in rows]


# Every street's code, name and area, in every zone (migration 0012): the public part of
# the scorecard. Not in the metadata: a view, not a table.
street_directory = sa.table(
    "street_directory",
    sa.column("code", sa.String),
    sa.column("name", sa.Text),
    sa.column("area_km2", sa.Float),
)


def _directory(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    d = street_directory
    rows = conn.execute(sa.select(d.c.code, d.c.name, d.c.area_km2).order_by(d.c.code))
    return {code: {"name": name, "area_km2": area} for code, name, area in rows}


def _ranked_codes(conn: sa.Connection, streets: Iterable[str]) -> list[str]:
    """The streets the scorecard ranks: every street of the public scorecard and every
    street of the directory (a street without a request there has none this month either,
    and is ranked after every street that has)."""
    t = request_street_daily
    public = conn.execute(
        sa.select(t.c.street_code).where(t.c.street_code.is_not(None)).distinct()
    ).scalars()
    return sorted({*public, *streets})


def _street_month(conn: sa.Connection, month: dt.date) -> dict[str | None, dict[str, int]]:
    """Per street code: the counts of the requests received in `month`."""
    t = request_street_daily
    rows = conn.execute(
        sa.select(t.c.street_code, *(sa.func.sum(t.c[m]).label(m) for m in STREET_MEASURES))
        .where(t.c.day >= month, t.c.day < next_month(month))
        .group_by(t.c.street_code)
    ).mappings()
    return {row["street_code"]: {m: int(row[m]) for m in STREET_MEASURES} for row in rows}


def _open_counts(conn: sa.Connection, now: dt.datetime) -> dict[str | None, tuple[int, int]]:
    """Per street code: requests open now, and of them those past their due time."""
    t = request_open
    rows = conn.execute(
        sa.select(
            t.c.street_code,
            sa.func.count(),
            sa.func.count().filter(t.c.due_at < now),
        ).group_by(t.c.street_code)
    )
    return {code: (int(n), int(overdue)) for code, n, overdue in rows}


def _rounded(rates: dict[str, float | None]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, value in rates.items():
        digits = SCORE_DECIMALS if name == "composite" else RATE_DECIMALS
        out[name] = None if value is None else round(value, digits)
    return out


def rank(scores: dict[str, tuple[float | None, int]]) -> dict[str, int]:
    """Competition ranks (1, 2, 2, 4) by composite (as published, 2 decimals) descending,
    then volume descending; streets without a score (V = 0) after those with one."""

    def key(code: str) -> tuple[bool, float, int]:
        composite, volume = scores[code]
        return (composite is None, -(composite or 0.0), -volume)

    keys = {code: key(code) for code in scores}
    return {code: 1 + sum(other < keys[code] for other in keys.values()) for code in scores}


def _card(counts: dict[str, int], config: RatesConfig) -> dict[str, Any]:
    """Volume, valid callbacks, the three rates and the composite of some counts."""
    rates = _rounded(three_rates(counts, config))
    return {"requests": counts["received"], "callbacks": counts["callbacks"], **rates}


def _scorecards(
    conn: sa.Connection, month: dt.date, codes: list[str], config: RatesConfig
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per street (`codes`: all of them, `_ranked_codes`) the month's card with its rank among
    them; and the district's card (every request, placed or not)."""
    counts = _street_month(conn, month)
    empty = dict.fromkeys(STREET_MEASURES, 0)
    cards = {code: _card(counts.get(code, empty), config) for code in codes}
    scores: dict[str, tuple[float | None, int]] = {
        code: (card["composite"], card["requests"]) for code, card in cards.items()
    }
    for code, position in rank(scores).items():
        cards[code]["rank"] = position
    totals = {m: sum(c[m] for c in counts.values()) for m in STREET_MEASURES}
    return cards, _card(totals, config)


def _per_km2(n: int, area: float | None) -> float | None:
    return round(n / area, 1) if area else None


def _rules(config: RatesConfig) -> dict[str, Any]:
    return {"k": config.k, "weights": dict(config.weights)}


def streets_overview(
    conn: sa.Connection,
    month: dt.date,
    now: dt.datetime,
    config: RatesConfig,
    whole: bool = True,
) -> dict[str, Any]:
    """The district overview: each street's load, open and overdue requests, three rates,
    composite and rank for `month`, its rank the month before, and the district totals.

    The scorecard part — each street's name, area, volume, rates, composite and rank — is
    district-wide for every caller (`street_directory` and the per-street aggregates are
    public); open and overdue are row data: given for the streets the caller may see, null
    for the others, and in the district totals null unless the caller sees the `whole`
    district (see the module doc).
    """
    directory = _directory(conn)
    visible = {s["code"] for s in _streets(conn)}
    codes = _ranked_codes(conn, directory)
    last = previous_month(month)
    this_cards, district = _scorecards(conn, month, codes, config)
    last_cards, _ = _scorecards(conn, last, codes, config)
    open_counts = _open_counts(conn, now)
    rows = []
    for code in codes:
        public = directory.get(code, {})
        card = this_cards[code]
        n_open, n_overdue = open_counts.get(code, (0, 0)) if code in visible else (None, None)
        area = public.get("area_km2")
        rows.append(
            {
                "code": code,
                "name": public.get("name"),
                "area_km2": None if area is None else round(area, 2),
                "open": n_open,
                "overdue": n_overdue,
                **card,
                "per_km2": _per_km2(card["requests"], area),
                "rank_last_month": last_cards[code]["rank"],
                "rank_change": last_cards[code]["rank"] - card["rank"],
            }
        )
    rows.sort(key=lambda row: (row["rank"], row["code"]))
    area_total = sum(s["area_km2"] or 0 for s in directory.values())
    return {
        "month": _month_label(month),
        "last_month": _month_label(last),
        "as_of": now.isoformat(),
        **_rules(config),
        "streets": rows,
        "district": {
            "area_km2": None if area_total is None else round(area_total, 2),
            "open": sum(n for n, _ in open_counts.values()) if whole else None,
            "overdue": sum(o for _, o in open_counts.values()) if whole else None,
            **district,
            "per_km2": _per_km2(district["requests"], area_total),
        },
    }


def street_exists(conn: sa.Connection, code: str) -> bool:
    t = get_layer("streets").table
    return bool(conn.execute(sa.select(sa.exists().where(t.c.code == code))).scalar_one())


def _top_categories(conn: sa.Connection, street: str, window: Window) -> list[dict[str, Any]]:
    t = request_daily
    n = sa.func.sum(t.c.received)
    rows = conn.execute(
        sa.select(t.c.category, n)
        .where(
            t.c.day.between(window.since, window.until),
            t.c.street_code == street,
            t.c.category.is_not(None),
        )
        .group_by(t.c.category)
        .order_by(n.desc(), t.c.category)
        .limit(5)
    )
    return [{"category": category, "n": int(count)} for category, count in rows]


def _categories(conn: sa.Connection, street: str, today: dt.date) -> list[str]:
    """The categories of the street's requests in the last twelve months, busiest first."""
    t = request_periods
    n = sa.func.sum(t.c.received)
    since = dt.date(today.year - 1, today.month, 1)
    rows = conn.execute(
        sa.select(t.c.category)
        .where(
            t.c.span == "month",
            t.c.category.is_not(None),
            t.c.first_day >= since,
            t.c.street_code == street,
        )
        .group_by(t.c.category)
        .order_by(n.desc(), t.c.category)
    )
    return list(rows.scalars())


def _hot_grids(conn: sa.Connection, street: str, window: Window) -> list[dict[str, Any]]:
    """The street's ten busiest grids over the window, each with its bounding box."""
    counts = _heat_counts("grid", window, None, street)
    top = (
        sa.select(counts)
        .where(counts.c.grid_code.is_not(None))
        .order_by(counts.c.n.desc(), counts.c.grid_code)
        .limit(10)
        .subquery("top")
    )
    g = get_layer("grids").table
    bbox = [sa.func.ST_XMin(g.c.geom), sa.func.ST_YMin(g.c.geom)]
    bbox += [sa.func.ST_XMax(g.c.geom), sa.func.ST_YMax(g.c.geom)]
    rows = conn.execute(
        sa.select(top.c.grid_code, top.c.n, *bbox)
        .select_from(top.outerjoin(g, g.c.code == top.c.grid_code))
        .order_by(top.c.n.desc(), top.c.grid_code)
    )
    return [
        {
            "code": code,
            "n": int(count),
            "bbox": None if x0 is None else [round(v, PRECISION) for v in (x0, y0, x1, y1)],
        }
        for code, count, x0, y0, x1, y1 in rows
    ]


def _service_hall(conn: sa.Connection, street: str) -> dict[str, Any] | None:
    t = get_layer("service_halls").table
    row = (
        conn.execute(
            sa.select(
                t.c.code,
                t.c.name,
                t.c.address,
                t.c.phone,
                sa.func.ST_X(t.c.geom).label("lng"),
                sa.func.ST_Y(t.c.geom).label("lat"),
            )
            .where(t.c.street_code == street)
            .order_by(t.c.code)
            .limit(1)
        )
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


def command_summary(
    conn: sa.Connection,
    street: str,
    month: dt.date,
    today: dt.date,
    now: dt.datetime,
    config: RatesConfig,
) -> dict[str, Any]:
    """The commander's panel for one street (which the caller must see); its rank is among
    every street of the district, whoever asks."""
    streets = _streets(conn)
    info = next(s for s in streets if s["code"] == street)
    codes = _ranked_codes(conn, _directory(conn))
    last = previous_month(month)
    this_card = _scorecards(conn, month, codes, config)[0][street]
    last_card = _scorecards(conn, last, codes, config)[0][street]
    change: dict[str, float | int | None] = {}
    for name in (*RATE_NAMES, "composite"):
        a, b = this_card[name], last_card[name]
        digits = SCORE_DECIMALS if name == "composite" else RATE_DECIMALS
        change[name] = None if a is None or b is None else round(a - b, digits)
    change["rank"] = last_card["rank"] - this_card["rank"]
    t = request_street_daily
    new_today, updated_at = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(t.c.received).filter(t.c.day == today), 0),
            sa.func.max(t.c.updated_at),
        ).where(t.c.street_code == street)
    ).one()
    n_open, n_overdue = _open_counts(conn, now).get(street, (0, 0))
    recent = Window(today - dt.timedelta(days=29), today)
    return {
        "street": {
            "code": street,
            "name": info["name"],
            "commander": info["commander"],
            "area_km2": None if info["area_km2"] is None else round(info["area_km2"], 2),
        },
        "month": _month_label(month),
        "last_month": _month_label(last),
        "today": today.isoformat(),
        "as_of": now.isoformat(),
        "updated_at": _iso(updated_at),
        "new_today": int(new_today),
        "open": n_open,
        "overdue": n_overdue,
        **_rules(config),
        "rates": {"month": this_card, "last_month": last_card, "change": change},
        "composite": this_card["composite"],
        "rank": this_card["rank"],
        "streets": len(codes),
        "window": {"since": recent.since.isoformat(), "until": recent.until.isoformat()},
        "top_categories": _top_categories(conn, street, recent),
        "categories": _categories(conn, street, today),
        "hot_grids": _hot_grids(conn, street, recent),
        "service_hall": _service_hall(conn, street),
    }


def _object(members: dict[str, Any]) -> sa.ColumnElement[Any]:
    """json_build_object(key, value, …) of the members, keys as text parameters."""
    pairs = [v for name, value in members.items() for v in (sa.literal(name, sa.Text), value)]
    return sa.func.json_build_object(*pairs, type_=sa.JSON)


def _text(value: str | None) -> sa.BindParameter[str]:
    return sa.literal(value, sa.Text)


def _feature(
    layer: Layer, columns: Sequence[sa.ColumnElement[Any]], geom: Any, extra: dict[str, Any]
) -> sa.ColumnElement[Any]:
    """json_build_object of one GeoJSON Feature: PostGIS writes the geometry."""
    properties = {str(column.name): column for column in columns} | extra
    return _object(
        {
            "type": _text("Feature"),
            "id": layer.table.c[layer.key],
            "geometry": sa.cast(sa.func.ST_AsGeoJSON(geom, PRECISION), sa.JSON),
            "properties": _object(properties),
        }
    )


def _json_list(item: Any, *order: Any, where: Any = None) -> sa.ColumnElement[Any]:
    """json_agg of the items (those `where` holds) in that order; [] when there are none."""
    items = sa.func.json_agg(aggregate_order_by(item, *order))
    empty = sa.cast(sa.literal("[]"), sa.JSON)
    return sa.func.coalesce(items if where is None else items.filter(where), empty)


def _collection(features: sa.Subquery, **members: Any) -> sa.ColumnElement[Any]:
    """json_build_object of a FeatureCollection of the subquery's features `f`, by `ord`."""
    features_json = _json_list(features.c.f, features.c.ord)
    return _object({"type": _text("FeatureCollection"), **members, "features": features_json})


def latest(conn: sa.Connection, street: str, since: dt.datetime, limit: int) -> dict[str, Any]:
    """The street's requests received at or after `since`, newest first, at most `limit`."""
    layer = get_layer("service_requests")
    t = layer.table
    names = ("id", "source_id", "received_at", "category", "status", "address", "department")
    columns = [t.c[name] for name in names]
    features = (
        sa.select(
            _feature(layer, columns, t.c.geom, {}).label("f"),
            sa.func.row_number()
            .over(order_by=(t.c.received_at.desc(), t.c.id.desc()))
            .label("ord"),
        )
        .where(t.c.street_code == street, t.c.received_at >= since)
        .order_by(t.c.received_at.desc(), t.c.id.desc())
        .limit(limit)
        .subquery("features")
    )
    collection = _collection(features, since=_text(since.isoformat()), limit=sa.literal(limit))
    return dict(conn.execute(sa.select(collection).select_from(features)).scalar_one())


def _geometry(layer: Layer) -> Any:
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
            _feature(layer, columns, _geometry(layer), extra).label("f"),
            sa.func.row_number().over(order_by=t.c[layer.key]).label("ord"),
        )
        .where(*where)
        .subquery("features")
    )
    collection = _collection(features, layer=_text(layer.name))
    text = conn.execute(sa.select(sa.cast(collection, sa.Text)).select_from(features))
    return str(text.scalar_one())


@dataclass(frozen=True)
class AsOf:
    """A project's or target's state on a date, from what was known on that date."""

    state: str
    state_code: str
    progress: float | None
    progress_basis: str
    actual_start: dt.date | None
    actual_end: dt.date | None
    delay_days: int | None
    early_days: int | None

    @property
    def schedule(self) -> str | None:
        """延期 N 天 / 提前 N 天 / 按期, or None without a planned end."""
        if self.delay_days is None:
            return None
        if self.delay_days > 0:
            return f"延期 {self.delay_days} 天"
        if self.early_days:
            return f"提前 {self.early_days} 天"
        return "按期"


STATES = {"not_started": "未启动", "in_progress": "进行中", "done": "已完成"}
# How the progress of a day was found: the stored value (today or later), a fact of the
# dates (0 before the start, 100 from the end), or a straight-line estimate in between.
PROGRESS_BASES = ("recorded", "dates", "estimated")


def as_of_state(row: dict[str, Any], as_of: dt.date, today: dt.date) -> AsOf:
    """State, progress and schedule on `as_of`, knowing only what was known then.

    An actual date after `as_of` had not happened yet: it is not shown (null) and does not
    count. Started on actual_start (planned_start when none was ever recorded), done on
    actual_end; between the two, in progress.

    Progress: on or after today the stored value ("recorded"); on a past day 0 before the
    start and 100 from the end ("dates"), and in between a straight line from 0 at the start
    to 100 at the actual end when it came later, or, still open today, to the stored progress
    today ("estimated": no history of progress is kept).

    Schedule, against planned_end: done — the days from planned_end to the actual end,
    late (`delay_days`) or early (`early_days`, 提前); still open — the days past planned_end
    on `as_of` (`delay_days`, 0 while not yet due; `early_days` 0). Both are ≥ 0; null
    without a planned end.
    """
    recorded_start, recorded_end = row["actual_start"], row["actual_end"]
    known_start = recorded_start if recorded_start and recorded_start <= as_of else None
    known_end = recorded_end if recorded_end and recorded_end <= as_of else None
    start = known_start or (row["planned_start"] if recorded_start is None else None)
    if known_end is not None:
        code = "done"
    elif start is not None and as_of >= start:
        code = "in_progress"
    else:
        code = "not_started"
    progress = row["progress"]
    basis = "recorded"
    if as_of < today:
        basis = "dates"
        if code == "not_started":
            progress = 0.0
        elif code == "done":
            progress = 100.0
        else:
            assert start is not None
            if recorded_end is not None:
                target, span = 100.0, (recorded_end - start).days
            else:
                target, span = float(progress or 0.0), (today - start).days
            progress = target * (as_of - start).days / span if span > 0 else target
            basis = "estimated"
        progress = round(min(max(progress, 0.0), 100.0), 1)
    delay = early = None
    planned_end = row["planned_end"]
    if planned_end is not None:
        late = (known_end if known_end is not None else as_of) - planned_end
        delay = max(0, late.days)
        early = max(0, -late.days) if known_end is not None else 0
    return AsOf(STATES[code], code, progress, basis, known_start, known_end, delay, early)


def _planner_features(
    conn: sa.Connection,
    layer: Layer,
    as_of: dt.date,
    today: dt.date,
    kind: str | None,
    street: str | None,
) -> dict[str, Any]:
    t = layer.table
    columns = [f.column for f in layer.published]
    query = sa.select(
        *columns,
        sa.cast(sa.func.ST_AsGeoJSON(t.c.geom, PRECISION), sa.Text).label("geometry"),
    ).order_by(t.c[layer.key])
    if kind is not None:
        query = query.where(t.c.kind == kind)
    if street is not None:
        query = query.where(t.c.street_code == street)
    features = []
    for row in conn.execute(query).mappings():
        props = {c.name: _jsonable(row[c.name]) for c in columns}
        derived = as_of_state(dict(row), as_of, today)
        current = {
            "current_" + name: props.pop(name) for name in ("status", "phase") if name in props
        }
        props["current_progress"] = props.pop("progress")
        props.update(current)
        props.update(
            state=derived.state,
            state_code=derived.state_code,
            progress=derived.progress,
            progress_basis=derived.progress_basis,
            actual_start=_jsonable(derived.actual_start),
            actual_end=_jsonable(derived.actual_end),
            delay_days=derived.delay_days,
            early_days=derived.early_days,
            delayed=bool(derived.delay_days),
            schedule=derived.schedule,
        )
        features.append(
            {
                "type": "Feature",
                "id": row[layer.key],
                "geometry": json.loads(row["geometry"]),
                "properties": props,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _jsonable(value: Any) -> Any:
    """Dates as ISO 8601; date-times too, with their offset (the session's time zone)."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def planner(
    conn: sa.Connection,
    as_of: dt.date,
    today: dt.date,
    kind: str | None = None,
    street: str | None = None,
) -> dict[str, Any]:
    """Renovation projects and relocation targets as they stood on `as_of` (see as_of_state)."""
    args = (as_of, today, kind, street)
    return {
        "as_of": as_of.isoformat(),
        "kind": kind,
        "street": street,
        "projects": _planner_features(conn, get_layer("renovation_projects"), *args),
        "targets": _planner_features(conn, get_layer("relocation_targets"), *args),
    }
