"""An area's figures: a street's, a community's or a grid's requests over a window of local
days, how many of them are still open and overdue now, its top categories and the three rates
where callbacks exist — what the map's area card (#bd-area) shows.

The requests, the callbacks and the three rates are the drill-down's (layers.queries.drill,
etl.aggregates.three_rates): every level counts the rows of its one street over the window, so
a street's figures are its communities' added up; open (not 已办结 now) and overdue (open and
past its due time now) and the top categories are counted from the same rows in one more query
(the street's and receipt-time indexes).

A grid is named by its label ("百万庄社区 第4网格"), a community and a street by their name.

Who sees what: the caller reads through row-level security; a commander asking for another
street's area finds no such unit (UnknownUnit: 404 at the edge).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from etl.aggregates import RESOLVED, RatesConfig, days_bounds
from layers import get_layer
from layers.queries import drill
from layers.queries.drill import UnknownUnit as UnknownUnit
from layers.queries.labels import grid_label

LEVELS = ("street", "community", "grid")
TOP_CATEGORIES = 5
UNCATEGORISED = "未分类"
RATES = {
    "response": "response_rate",
    "resolution": "resolution_rate",
    "satisfaction": "satisfaction_rate",
    "composite": "composite",
}


def _names(conn: sa.Connection, level: str, code: str, street: str) -> tuple[str, str | None]:
    """The area's label and its street's name."""
    s = get_layer("streets").table
    street_name = conn.execute(sa.select(s.c.name).where(s.c.code == street)).scalar_one_or_none()
    if level == "street":
        return str(street_name or code), street_name
    c = get_layer("communities").table
    if level == "community":
        name = conn.execute(sa.select(c.c.name).where(c.c.code == code)).scalar_one_or_none()
        return str(name or code), street_name
    g = get_layer("grids").table
    community = conn.execute(
        sa.select(c.c.name)
        .select_from(g.join(c, c.c.code == g.c.community_code))
        .where(g.c.code == code)
    ).scalar_one_or_none()
    return grid_label(community, code), street_name


def _open_and_categories(
    conn: sa.Connection,
    level: str,
    code: str,
    street: str,
    lo: dt.datetime,
    hi: dt.datetime,
    now: dt.datetime,
) -> tuple[int, int, list[dict[str, Any]]]:
    """The window's requests still open now, of them those past due, and the top categories."""
    r = get_layer("service_requests").table
    is_open = r.c.status.is_distinct_from(RESOLVED)
    query = (
        sa.select(
            r.c.category,
            sa.func.count().label("n"),
            sa.func.count().filter(is_open).label("open"),
            sa.func.count().filter(is_open & (r.c.due_at < now)).label("overdue"),
        )
        .where(r.c.street_code == street, r.c.received_at >= lo, r.c.received_at < hi)
        .group_by(r.c.category)
    )
    if level == "community":
        query = query.where(r.c.community_code == code)
    elif level == "grid":
        query = query.where(r.c.grid_code == code)
    rows = conn.execute(query).all()
    opened = sum(int(row.open) for row in rows)
    overdue = sum(int(row.overdue) for row in rows)
    ranked = sorted(rows, key=lambda row: (-int(row.n), row.category or "\uffff"))
    top = [
        {"category": row.category or UNCATEGORISED, "n": int(row.n)}
        for row in ranked[:TOP_CATEGORIES]
    ]
    return opened, overdue, top


def area(
    conn: sa.Connection,
    level: str,
    code: str,
    since: dt.date,
    until: dt.date,
    zone: str,
    now: dt.datetime,
    config: RatesConfig,
) -> dict[str, Any]:
    """The figures of the area `code` of `level` over the local days since … until (in time
    zone `zone`); open and overdue as of `now`. UnknownUnit when the caller cannot see it."""
    if level not in LEVELS:
        raise ValueError(level)
    figures = drill.drill(conn, level, code, since, until, zone, config)
    street = figures["street_code"]
    total = figures["total"]
    label, street_name = _names(conn, level, code, street)
    lo, hi = days_bounds(since, until, zone)
    opened, overdue, top = _open_and_categories(conn, level, code, street, lo, hi, now)
    rates = None
    if total["callbacks"]:
        rates = {key: total[name] for key, name in RATES.items()} | {
            "callbacks": total["callbacks"]
        }
    return {
        "level": level,
        "code": code,
        "label": label,
        "street": {"code": street, "name": street_name},
        "window": {"since": since.isoformat(), "until": until.isoformat()},
        "requests": total["requests"],
        "open": opened,
        "overdue": overdue,
        "top_categories": top,
        "rates": rates,
        "cases": figures["cases"],
    }
