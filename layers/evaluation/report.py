"""The monthly report (通报) of an evaluation period: everything it shows, as one JSON-ready dict.

`build_report` takes an evaluation Result (`layers.evaluation.compute.evaluate` or
`publish.published`; its shape is in docs/evaluation.md), the departments' table
(`layers.queries.departments.department_ratings`) and the previous period's Result, and adds
what the report reads from the request aggregates (layers.aggregates) over the period's window:
the top categories of requests, district-wide and per street, and each grid's requests for the
street maps. `gather` makes those calls for a scheme and a period label. The renderers
(app/report) only lay the dict out: HTML, PDF and XLSX show the same numbers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from typing import Any

import sqlalchemy as sa

from layers.aggregates import request_daily, request_periods
from layers.evaluation.compute import evaluate
from layers.evaluation.periods import previous_period
from layers.evaluation.publish import published
from layers.evaluation.scheme import load_scheme
from layers.queries.departments import department_ratings
from layers.queries.heat import heat_counts, window_runs
from layers.queries.window import Window
from layers.registry import get_layer

PARTS = ("internal", "survey", "hotline")
ASPECTS = ("tasks", "law", "party", "work", "bonus")
RATES = ("response_rate", "resolution_rate", "satisfaction_rate")
TOP_CATEGORIES = 10  # district-wide
STREET_CATEGORIES = 3  # per street
WORST_ITEMS = 3  # per street: the items that lost the most points
MAP_TOLERANCE = 0.00001  # degrees (~1 m): the map's polygons simplified before drawing


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _window(result: dict[str, Any]) -> Window:
    period = result["period"]
    return Window(_day(period["since"]), _day(period["until"]))


def _delta(now: float | None, before: float | None) -> float | None:
    if now is None or before is None:
        return None
    return round(now - before, 2)


def _scheme_items(body: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """item code → {name, aspect, max} from a scheme body (its `internal` aspects)."""
    items: dict[str, dict[str, Any]] = {}
    for aspect in (body or {}).get("internal", []):
        for item in aspect.get("items", []):
            items[item["code"]] = {
                "name": item.get("name", item["code"]),
                "aspect": aspect["code"],
                "max": float(item["max"]),
            }
    return items


def _aspect_names(body: dict[str, Any] | None) -> dict[str, str]:
    names = {
        "tasks": "任务完成",
        "law": "依法行政及综合管理",
        "party": "党群工作",
        "work": "工作评价",
        "bonus": "加扣分项",
    }
    for aspect in (body or {}).get("internal", []):
        names[aspect["code"]] = aspect.get("name", names.get(aspect["code"], aspect["code"]))
    return names


def worst_items(
    street: dict[str, Any], items: dict[str, dict[str, Any]], n: int = WORST_ITEMS
) -> list[dict[str, Any]]:
    """The street's items that lost the most points: max − points for an item of aspects
    1–4, −points for a deduction in the bonus aspect; items that lost nothing are left out."""
    lost = []
    for code, scored in (street.get("items") or {}).items():
        points = scored.get("points")
        known = items.get(code)
        if points is None or known is None:
            continue
        loss = -points if known["aspect"] == "bonus" else known["max"] - points
        if loss > 0:
            lost.append(
                {
                    "code": code,
                    "name": known["name"],
                    "points": points,
                    "max": known["max"],
                    "lost": round(loss, 2),
                }
            )
    lost.sort(key=lambda row: (-row["lost"], row["code"]))
    return lost[:n]


def category_counts(conn: sa.Connection, window: Window) -> dict[str | None, Counter[str]]:
    """Requests received per street and category over the window's local days, from the
    aggregates (whole months from request_periods, the other days from request_daily).
    Requests without a street are under None."""
    parts = [
        sa.select(table.c.street_code, table.c.category, table.c.received).where(
            table.c.category.is_not(None), where
        )
        for table, where in window_runs(window, request_daily, request_periods, by_category=True)
    ]
    rows = sa.union_all(*parts).subquery("rows")
    query = sa.select(rows.c.street_code, rows.c.category, sa.func.sum(rows.c.received)).group_by(
        rows.c.street_code, rows.c.category
    )
    counts: dict[str | None, Counter[str]] = defaultdict(Counter)
    for street, category, n in conn.execute(query):
        counts[street][category] += int(n)
    return counts


def _top(counter: Counter[str], n: int) -> list[dict[str, Any]]:
    total = sum(counter.values())
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [
        {"category": category, "n": count, "share": round(count / total, 4) if total else None}
        for category, count in ranked
    ]


def street_maps(
    conn: sa.Connection, window: Window, streets: list[str]
) -> dict[str, dict[str, Any]]:
    """Per street: its polygon and its grids (GeoJSON geometries, simplified to ~1 m), each
    grid with the requests received in it over the window."""
    if not streets:
        return {}
    s = get_layer("streets").table
    g = get_layer("grids").table

    def geojson(geom: Any) -> sa.ColumnElement[str]:
        return sa.func.ST_AsGeoJSON(sa.func.ST_SimplifyPreserveTopology(geom, MAP_TOLERANCE), 6)

    maps: dict[str, dict[str, Any]] = {}
    for code, shape in conn.execute(
        sa.select(s.c.code, geojson(s.c.geom)).where(s.c.code.in_(streets))
    ):
        maps[code] = {"street": json.loads(shape), "grids": [], "total": 0}
    counts = heat_counts("grid", window, None, None)
    n = sa.func.coalesce(counts.c.n, 0)
    rows = conn.execute(
        sa.select(g.c.street_code, g.c.code, n, geojson(g.c.geom))
        .select_from(g.outerjoin(counts, counts.c.grid_code == g.c.code))
        .where(g.c.street_code.in_(streets))
        .order_by(g.c.street_code, g.c.code)
    )
    for street, grid, count, shape in rows:
        if street in maps:
            maps[street]["grids"].append(
                {"code": grid, "n": int(count), "geometry": json.loads(shape)}
            )
            maps[street]["total"] += int(count)
    return maps


def build_report(
    conn: sa.Connection,
    result: dict[str, Any],
    departments: list[dict[str, Any]],
    *,
    previous: dict[str, Any] | None = None,
    scheme_body: dict[str, Any] | None = None,
    generated_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The report of one period: the Result's streets with their changes against `previous`
    (the previous period's Result), worst items (from `scheme_body`'s item maxima), top
    categories and grid counts (from the aggregates, over the Result's window)."""
    window = _window(result)
    items = _scheme_items(scheme_body)
    before = {row["code"]: row for row in (previous or {}).get("streets", [])}
    counts = category_counts(conn, window)
    district: Counter[str] = Counter()
    for counter in counts.values():
        district.update(counter)
    streets = []
    for row in result["streets"]:
        last = before.get(row["code"], {})
        street = dict(row)
        street["changes"] = {
            name: _delta(row.get(name), last.get(name)) for name in ("composite", *PARTS)
        }
        street["previous_rank"] = last.get("rank")
        street["top_categories"] = _top(counts.get(row["code"], Counter()), STREET_CATEGORIES)
        street["worst_items"] = worst_items(row, items)
        streets.append(street)
    return {
        "title": f"{result['scheme']['name']} {result['period']['label']} 通报",
        "scheme": result["scheme"],
        "period": {
            "label": result["period"]["label"],
            "since": window.since.isoformat(),
            "until": window.until.isoformat(),
        },
        "previous_period": (previous or {}).get("period", {}).get("label"),
        "parts": result["parts"],
        "published": result.get("published"),
        "aspect_names": _aspect_names(scheme_body),
        "streets": streets,
        "departments": departments,
        "top_problems": _top(district, TOP_CATEGORIES),
        "requests": sum(district.values()),
        "maps": street_maps(conn, window, [row["code"] for row in result["streets"]]),
        "generated_at": None
        if generated_at is None
        else generated_at.isoformat(timespec="minutes"),
    }


def gather(
    conn: sa.Connection,
    scheme_code: str | None,
    label: str,
    *,
    zone_tz: str,
    now: dt.datetime,
    version: int | None = None,
) -> dict[str, Any]:
    """The report of period `label` under a scheme (its latest version when None): the
    period's publication `version` (its latest one when None; the live evaluation when the
    period was never published), the previous period likewise, and the departments rated
    over the period's local days of `zone_tz` (open cases judged at `now`). Raises
    LookupError (in Chinese) for a publication version that does not exist."""
    scheme = load_scheme(conn, scheme_code)
    result = published(conn, scheme.code, label, version)
    if result is None:
        if version is not None:
            raise LookupError(f"{label} 没有第 {version} 版发布 no publication version {version}")
        result = evaluate(conn, scheme, label, now)
    else:  # the scheme's version the publication used
        scheme = load_scheme(conn, scheme.code, result["scheme"]["version"])
    before_label = previous_period(scheme, label)
    previous = published(conn, scheme.code, before_label) or evaluate(
        conn, scheme, before_label, now
    )
    window = _window(result)
    departments = result.get("departments")
    if departments is None:
        departments = department_ratings(conn, window.since, window.until, zone_tz, now=now)
    return build_report(
        conn,
        result,
        departments,
        previous=previous,
        scheme_body=scheme.body,
        generated_at=now,
    )
