"""Drill-down behind an evaluation's hotline figures: the three rates of a unit's children.

From the district to its streets, a street to its communities, a community to its grids, a
grid to its cases: each child's requests received in the window (local days `since`…`until`
in the district's zone), its valid callbacks (V) and their answers, and the three rates with
the composite (etl.aggregates.three_rates; V = 0 gives None, shown "—").

The streets' figures come from `request_street_daily` (the scorecards' aggregate, one row per
street and day). No aggregate holds callbacks by community or grid, so those are counted from
`service_requests` of the one street the unit lies in, over the window: a BitmapAnd of the
street and receipt-time indexes (70–100 ms through the API for the busiest street's month at
1M requests). A covering index (street_code, received_at) INCLUDE (the codes and callback
columns) makes it an index-only scan (30–40 ms) but weighs 84 MB, the table's largest, and
makes every callback update non-HOT: not taken (bench/bench_evaluation_page.py measures both).

Who sees what: the caller reads through row-level security. A commander's connection sees
its own street's requests and units only, so another street's children come back empty
(and the unit unknown: 404 at the edge); the district's street figures are the public
scorecard's, the same for every caller.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

from etl.aggregates import RatesConfig, days_bounds, three_rates
from layers import get_layer
from layers.aggregates import request_street_daily

LEVELS = ("district", "street", "community", "grid")
CHILD = {"district": "street", "street": "community", "community": "grid", "grid": None}
COUNTS = ("requests", "callbacks", "contacted", "solved", "satisfied", "basic_satisfied")
RATE_DECIMALS = 4
SCORE_DECIMALS = 2
DISTRICT_CODE = "*"


class UnknownUnit(LookupError):
    """The unit named is not one the caller can see (or does not exist)."""


def _unit_table(level: str) -> sa.Table:
    return get_layer(
        {"street": "streets", "community": "communities", "grid": "grids"}[level]
    ).table


def _parent_column(level: str) -> str:
    return {"community": "street_code", "grid": "community_code"}[level]


def _figures(counts: dict[str, int], config: RatesConfig) -> dict[str, Any]:
    rates = three_rates(counts, config)
    out: dict[str, Any] = {name: int(counts[name]) for name in COUNTS}
    for name, value in rates.items():
        digits = SCORE_DECIMALS if name == "composite" else RATE_DECIMALS
        out[name] = None if value is None else round(value, digits)
    return out


def _zero() -> dict[str, int]:
    return dict.fromkeys(COUNTS, 0)


def _request_counts(
    conn: sa.Connection,
    street: str,
    key: str,
    where: sa.ColumnElement[bool] | None,
    lo: dt.datetime,
    hi: dt.datetime,
) -> dict[str | None, dict[str, int]]:
    """Per value of `key` (community_code or grid_code) the window's requests of `street`
    and their callbacks, from service_requests."""
    r = get_layer("service_requests").table
    valid = r.c.callback_valid.is_(True)

    def count(condition: sa.ColumnElement[bool] | None, name: str) -> sa.Label[int]:
        agg = sa.func.count()
        return (agg if condition is None else agg.filter(condition)).label(name)

    query = (
        sa.select(
            r.c[key].label("code"),
            count(None, "requests"),
            count(valid, "callbacks"),
            count(valid & r.c.callback_contacted.is_(True), "contacted"),
            count(valid & r.c.callback_solved.is_(True), "solved"),
            count(valid & (r.c.satisfaction == "满意"), "satisfied"),
            count(valid & (r.c.satisfaction == "基本满意"), "basic_satisfied"),
        )
        .where(r.c.street_code == street, r.c.received_at >= lo, r.c.received_at < hi)
        .group_by(r.c[key])
    )
    if where is not None:
        query = query.where(where)
    return {row.code: {n: int(row._mapping[n]) for n in COUNTS} for row in conn.execute(query)}


def _street_counts(
    conn: sa.Connection, since: dt.date, until: dt.date
) -> dict[str | None, dict[str, int]]:
    """Per street the window's requests and callbacks, from the scorecards' daily aggregate."""
    d = request_street_daily
    measures = {
        "requests": d.c.received,
        **{n: d.c[n] for n in COUNTS if n != "requests"},
    }
    query = (
        sa.select(d.c.street_code, *(sa.func.sum(c).label(n) for n, c in measures.items()))
        .where(d.c.day.between(since, until))
        .group_by(d.c.street_code)
    )
    return {
        row.street_code: {n: int(row._mapping[n] or 0) for n in COUNTS}
        for row in conn.execute(query)
    }


def cases_link(street: str, grid: str | None = None) -> str:
    """The case API's list of the unit's cases (the queue's filters)."""
    args = {"street": street} | ({"grid": grid} if grid else {})
    return "/api/cases?" + urlencode(args)


def _name(table: sa.Table) -> sa.ColumnElement[Any]:
    """A unit's name; a grid has none but its code."""
    return (table.c.name if "name" in table.c else table.c.code).label("name")


def _unit(conn: sa.Connection, level: str, code: str) -> dict[str, Any]:
    """The unit's name and street, or UnknownUnit (no such unit in the caller's zone)."""
    table = _unit_table(level)
    street = table.c.code if level == "street" else table.c.street_code
    row = conn.execute(
        sa.select(_name(table), street.label("street_code")).where(table.c.code == code)
    ).one_or_none()
    if row is None:
        raise UnknownUnit(code)
    return dict(row._mapping)


def _sum(counts: dict[str | None, dict[str, int]]) -> dict[str, int]:
    """The counts added up (requests placed in no child still count in their parent's)."""
    total = _zero()
    for value in counts.values():
        for n in COUNTS:
            total[n] += value[n]
    return total


def _children(
    conn: sa.Connection,
    child: str,
    parent: str,
    counts: dict[str | None, dict[str, int]],
    config: RatesConfig,
    street: str | None,
) -> list[dict[str, Any]]:
    """Every unit of level `child` in `parent` ('*': the district's streets, and the streets
    of `counts` the caller cannot name) with its figures and its cases' link."""
    table = _unit_table(child)
    query = sa.select(table.c.code, _name(table)).order_by(table.c.code)
    if parent != DISTRICT_CODE:
        query = query.where(table.c[_parent_column(child)] == parent)
    names = {row.code: row.name for row in conn.execute(query)}
    if parent == DISTRICT_CODE:
        names |= {c: None for c in counts if c is not None and c not in names}
    return [
        {
            "code": code,
            "name": names[code],
            "cases": cases_link(street or code, code if child == "grid" else None),
        }
        | _figures(counts.get(code, _zero()), config)
        for code in sorted(names)
    ]


def drill(
    conn: sa.Connection,
    level: str,
    code: str,
    since: dt.date,
    until: dt.date,
    zone: str,
    config: RatesConfig,
) -> dict[str, Any]:
    """The unit `code` of `level` with its figures over since…until, and its children's
    (streets, communities or grids; none for a grid), each with a link to its cases."""
    if level not in LEVELS:
        raise ValueError(level)
    lo, hi = days_bounds(since, until, zone)
    child = CHILD[level]
    answer: dict[str, Any] = {
        "level": level,
        "code": code,
        "window": {"since": since.isoformat(), "until": until.isoformat()},
        "child_level": child,
    }
    if level == "district":
        counts = _street_counts(conn, since, until)
        children = _children(conn, "street", DISTRICT_CODE, counts, config, None)
        return answer | {
            "code": DISTRICT_CODE,
            "name": "全区",
            "children": children,
            "total": _figures(_sum(counts), config),
            "cases": None,
        }
    unit = _unit(conn, level, code)
    street = unit["street_code"]
    r = get_layer("service_requests").table
    answer |= {"name": unit["name"], "street_code": street}
    if level == "grid":
        counts = _request_counts(conn, street, "grid_code", r.c.grid_code == code, lo, hi)
        return answer | {
            "children": [],
            "total": _figures(counts.get(code, _zero()), config),
            "cases": cases_link(street, code),
        }
    assert child is not None
    key = "community_code" if level == "street" else "grid_code"
    where = None if level == "street" else r.c.community_code == code
    counts = _request_counts(conn, street, key, where, lo, hi)
    return answer | {
        "children": _children(conn, child, code, counts, config, street),
        "total": _figures(_sum(counts), config),
        "cases": cases_link(street),
    }
