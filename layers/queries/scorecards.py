"""Scorecards: the district overview of every street's three rates, composite and rank for a
month, and the commander's panel of one street.

Dates are local dates of the district's time zone, the zone the aggregates are keyed on, and
"now" is the caller's clock, passed in. Counts come from the aggregates (layers.aggregates).

Who sees what: the caller reads through row-level security (migration 0004). The public
scorecard — every street's volume, valid callbacks, three rates, composite and rank, and the
district's — comes from `request_street_daily`, which every role may read, so it is the same
district-wide figure for every caller. Row data (street names and areas, open and overdue
requests) is the caller's zone only: outside it those fields are null, never a figure of the
caller's own zone in the district's place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geography

from etl.aggregates import RATE_NAMES, RatesConfig, three_rates
from layers import get_layer
from layers.aggregates import (
    STREET_MEASURES,
    request_daily,
    request_open,
    request_periods,
    request_street_daily,
)
from layers.queries.geojson import COORDINATE_DECIMALS
from layers.queries.heat import heat_counts
from layers.queries.labels import grid_label_sql
from layers.queries.types import json_value
from layers.queries.window import Window, next_month, previous_month
from layers.registry import landmarks, level_layer

RATE_DECIMALS = 4
SCORE_DECIMALS = 2

Cards = dict[str, dict[str, Any]]


def _month_label(month: dt.date) -> str:
    return month.strftime("%Y-%m")


def _km2(area: float | None) -> float | None:
    return None if area is None else round(area, 2)


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


def street_counts(conn: sa.Connection, since: dt.date, until: dt.date) -> dict[str, dict[str, int]]:
    """Per street, the counts (STREET_MEASURES) of the requests received on the local days
    since … until, from the daily street aggregate (public: the same for every caller)."""
    t = request_street_daily
    rows = conn.execute(
        sa.select(t.c.street_code, *(sa.func.sum(t.c[m]).label(m) for m in STREET_MEASURES))
        .where(t.c.day >= since, t.c.day <= until, t.c.street_code.is_not(None))
        .group_by(t.c.street_code)
    ).mappings()
    return {r["street_code"]: {m: int(r[m]) for m in STREET_MEASURES} for r in rows}


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


def _digits(name: str) -> int:
    """The decimals a rate (or the composite) is published with."""
    return SCORE_DECIMALS if name == "composite" else RATE_DECIMALS


def _rounded(rates: dict[str, float | None]) -> dict[str, float | None]:
    return {
        name: None if value is None else round(value, _digits(name))
        for name, value in rates.items()
    }


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
) -> tuple[Cards, dict[str, Any]]:
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


def _this_and_last(
    conn: sa.Connection, month: dt.date, codes: list[str], config: RatesConfig
) -> tuple[Cards, dict[str, Any], Cards]:
    """The streets' cards of `month` and the district's, and the streets' of the month before."""
    this_cards, district = _scorecards(conn, month, codes, config)
    last_cards, _ = _scorecards(conn, previous_month(month), codes, config)
    return this_cards, district, last_cards


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
    this_cards, district, last_cards = _this_and_last(conn, month, codes, config)
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
                "area_km2": _km2(area),
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
        "last_month": _month_label(previous_month(month)),
        "as_of": now.isoformat(),
        **_rules(config),
        "streets": rows,
        "district": {
            "area_km2": _km2(area_total),
            "open": sum(n for n, _ in open_counts.values()) if whole else None,
            "overdue": sum(o for _, o in open_counts.values()) if whole else None,
            **district,
            "per_km2": _per_km2(district["requests"], area_total),
        },
    }


def street_exists(conn: sa.Connection, code: str) -> bool:
    t = get_layer("streets").table
    return bool(conn.execute(sa.select(sa.exists().where(t.c.code == code))).scalar_one())


def street_name(conn: sa.Connection, code: str) -> str | None:
    """The street's name; None when the caller cannot see it."""
    t = get_layer("streets").table
    name = conn.execute(sa.select(t.c.name).where(t.c.code == code)).scalar()
    return None if name is None else str(name)


def street_extent(conn: sa.Connection, code: str) -> dict[str, Any] | None:
    """The street's code, name, commander and bounding box (minx, miny, maxx, maxy), for the
    command page's map; None when the caller cannot see it."""
    t = get_layer("streets").table
    query = sa.select(t.c.code, t.c.name, t.c.commander, *_bbox(t.c.geom)).where(t.c.code == code)
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def place_names(
    conn: sa.Connection, street: str | None, levels: Iterable[str]
) -> dict[str, dict[str, str]]:
    """What the map's popups call a unit instead of its code, per level ("street",
    "community", "grid": a grid by its label, 百万庄社区 第4网格), one street's or all."""
    tables = {level: level_layer(level).table for level in ("street", "community", "grid")}
    c = tables["community"]
    names: dict[str, dict[str, str]] = {}
    for level in levels:
        t = tables[level]
        if level == "grid":
            query = sa.select(t.c.code, grid_label_sql(c.c.name, t.c.code)).select_from(
                t.outerjoin(c, c.c.code == t.c.community_code)
            )
        else:
            query = sa.select(t.c.code, t.c.name)
        if street is not None:
            query = query.where((t.c.code if level == "street" else t.c.street_code) == street)
        names[level] = {str(code): str(name) for code, name in conn.execute(query)}
    return names


def landmark_places(conn: sa.Connection, street: str | None) -> list[dict[str, Any]]:
    """The landmarks (one street's or all) as name, kind, lng, lat: the basemap's labels."""
    t = landmarks
    query = sa.select(
        t.c.name,
        t.c.kind,
        sa.func.round(sa.cast(sa.func.ST_X(t.c.geom), sa.Numeric), 6).label("lng"),
        sa.func.round(sa.cast(sa.func.ST_Y(t.c.geom), sa.Numeric), 6).label("lat"),
    ).order_by(t.c.code)
    if street is not None:
        query = query.where(t.c.street_code == street)
    return [
        {"name": name, "kind": kind, "lng": float(lng), "lat": float(lat)}
        for name, kind, lng, lat in conn.execute(query)
    ]


def _bbox(geom: Any) -> list[sa.ColumnElement[Any]]:
    """minx, miny, maxx, maxy of a geometry."""
    return [
        sa.func.ST_XMin(geom).label("minx"),
        sa.func.ST_YMin(geom).label("miny"),
        sa.func.ST_XMax(geom).label("maxx"),
        sa.func.ST_YMax(geom).label("maxy"),
    ]


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
    counts = heat_counts("grid", window, None, street)
    top = (
        sa.select(counts)
        .where(counts.c.grid_code.is_not(None))
        .order_by(counts.c.n.desc(), counts.c.grid_code)
        .limit(10)
        .subquery("top")
    )
    g = get_layer("grids").table
    c = get_layer("communities").table
    rows = conn.execute(
        sa.select(
            top.c.grid_code, grid_label_sql(c.c.name, top.c.grid_code), top.c.n, *_bbox(g.c.geom)
        )
        .select_from(
            top.outerjoin(g, g.c.code == top.c.grid_code).outerjoin(
                c, c.c.code == g.c.community_code
            )
        )
        .order_by(top.c.n.desc(), top.c.grid_code)
    )
    return [
        {
            "code": code,
            "label": label,
            "n": int(count),
            "bbox": None
            if x0 is None
            else [round(v, COORDINATE_DECIMALS) for v in (x0, y0, x1, y1)],
        }
        for code, label, count, x0, y0, x1, y1 in rows
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
    this_cards, _, last_cards = _this_and_last(conn, month, codes, config)
    this_card, last_card = this_cards[street], last_cards[street]
    change: dict[str, float | int | None] = {}
    for name in (*RATE_NAMES, "composite"):
        a, b = this_card[name], last_card[name]
        change[name] = None if a is None or b is None else round(a - b, _digits(name))
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
            "area_km2": _km2(info["area_km2"]),
        },
        "month": _month_label(month),
        "last_month": _month_label(previous_month(month)),
        "today": today.isoformat(),
        "as_of": now.isoformat(),
        "updated_at": json_value(updated_at),
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
