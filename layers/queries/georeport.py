"""Open311 GeoReport v2's reading of service requests: filters, pages and the spec's shape.

Framework-free: the web (app.open311) passes the query parameters as a mapping, the app's
clock and the district's time zone. The window is `requested_datetime` in [start_date,
end_date], at most 90 days (the spec's default and limit), which keeps OFFSET cheap; pages
are newest first.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from etl.aggregates import RESOLVED
from etl.rules import DEPARTMENTS
from layers import get_layer
from layers.queries.params import parse_moment_range, refusal, single
from layers.queries.slices import bbox_condition
from layers.registry import level_layer

LAYER = "service_requests"
WINDOW = dt.timedelta(days=90)
MAX_IDS = 1000
CODE_LEVELS = ("street", "community", "grid")  # the unit codes a request carries
DIGITS = re.compile(r"[0-9]{1,18}")


def _items(args: Any, name: str) -> list[str]:
    """A comma-separated parameter's values; [] when absent or empty."""
    value = single(args, name)
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def window(
    args: Mapping[str, Any], now: dt.datetime, zone: dt.tzinfo
) -> list[sa.ColumnElement[bool]]:
    """requested_datetime in [start_date, end_date], at most 90 days; default the 90 before
    `now`; dates local to `zone`."""
    column = get_layer(LAYER).table.c.received_at
    start, until = parse_moment_range(args, now=now, zone=zone, longest=WINDOW)
    return [column >= start] if until is None else [column >= start, column < until]


def filters(args: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
    t = get_layer(LAYER).table
    conds: list[sa.ColumnElement[bool]] = []
    codes = _items(args, "service_code")
    if codes:
        conds.append(t.c.category.in_(codes))
    statuses = set(_items(args, "status"))
    unknown = sorted(statuses - {"open", "closed"})
    if unknown:
        raise refusal("status", unknown[0], "状态只能是 open 或 closed", "must be open or closed")
    if statuses == {"open"}:
        conds.append(t.c.status.is_distinct_from(RESOLVED))
    elif statuses == {"closed"}:
        conds.append(t.c.status == RESOLVED)
    departments = _items(args, "department")
    for department in departments:
        if department not in DEPARTMENTS:
            raise refusal(
                "department", department, "未知部门", f"not one of {', '.join(DEPARTMENTS)}"
            )
    if departments:
        conds.append(t.c.department.in_(departments))
    for level in CODE_LEVELS:
        length = level_layer(level).code_length
        values = _items(args, level)
        for value in values:
            if not re.fullmatch(f"[0-9]{{{length}}}", value):
                raise refusal(level, value, "代码格式错误", f"a {level} code is {length} digits")
        if values:
            conds.append(t.c[f"{level}_code"].in_(values))
    bbox = single(args, "bbox")
    if bbox:
        conds.append(bbox_condition(t.c.geom, bbox))
    return conds


def ids(args: Mapping[str, Any]) -> list[int] | None:
    """`service_request_id`: the spec's list of ids, which overrides every other filter."""
    values = _items(args, "service_request_id")
    if not values:
        return None
    if len(values) > MAX_IDS:
        raise refusal(
            "service_request_id", f"{len(values)} ids", "编号过多", f"too many (max {MAX_IDS})"
        )
    for value in values:
        if not DIGITS.fullmatch(value):
            raise refusal("service_request_id", value, "编号应为数字", "not a number")
    return [int(v) for v in values]


def conditions(
    args: Mapping[str, Any], now: dt.datetime, zone: dt.tzinfo
) -> list[sa.ColumnElement[bool]]:
    """The rows `args` asks for: the listed ids, or the window and the filters."""
    t = get_layer(LAYER).table
    listed = ids(args)
    if listed is not None:
        return [t.c.id.in_(listed)]
    return [*window(args, now, zone), *filters(args)]


def _select() -> sa.Select[Any]:
    t = get_layer(LAYER).table
    return sa.select(
        t.c.id,
        t.c.status,
        t.c.category,
        t.c.description,
        t.c.department,
        t.c.received_at,
        t.c.updated_at,
        t.c.due_at,
        t.c.address,
        sa.func.ST_Y(t.c.geom).label("lat"),
        sa.func.ST_X(t.c.geom).label("lng"),
        t.c.street_code,
        t.c.community_code,
        t.c.grid_code,
    )


def _iso(value: dt.datetime | None, zone: dt.tzinfo) -> str | None:
    if value is None:
        return None
    return value.astimezone(zone).isoformat(timespec="seconds")


def notice(department: str | None, due_at: dt.datetime | None, zone: dt.tzinfo) -> str | None:
    """What happens next, for `service_notice`: the due time in local time of `zone`, the
    district's."""
    if department is None:
        return None
    text = f"由{department}办理"
    if due_at is not None:
        text += f"，办理时限至 {due_at.astimezone(zone):%Y-%m-%d %H:%M}"
    return text


def page(
    conn: sa.Connection,
    conds: list[sa.ColumnElement[bool]],
    number: int,
    size: int,
    zone: dt.tzinfo,
) -> tuple[list[dict[str, Any]], bool]:
    """Page `number` (from 1) of `size` requests matching `conds`, newest first, in the
    spec's shape; and whether a next page exists."""
    t = get_layer(LAYER).table
    rows = conn.execute(
        _select()
        .where(*conds)
        .order_by(t.c.received_at.desc(), t.c.id.desc())
        .offset((number - 1) * size)
        .limit(size + 1)
    ).all()
    return [as_georeport(row, zone) for row in rows[:size]], len(rows) > size


def one(conn: sa.Connection, request_id: int, zone: dt.tzinfo) -> dict[str, Any] | None:
    """The request `request_id` in the spec's shape; None when there is none (in the zone)."""
    t = get_layer(LAYER).table
    row = conn.execute(_select().where(t.c.id == request_id)).first()
    return None if row is None else as_georeport(row, zone)


def as_georeport(row: Any, zone: dt.tzinfo) -> dict[str, Any]:
    return {
        "service_request_id": row.id,
        "status": "closed" if row.status == RESOLVED else "open",
        "status_notes": row.status,
        "service_name": row.category,
        "service_code": row.category,
        "description": row.description,
        "agency_responsible": row.department,
        "service_notice": notice(row.department, row.due_at, zone),
        "requested_datetime": _iso(row.received_at, zone),
        "updated_datetime": _iso(row.updated_at, zone),
        "expected_datetime": _iso(row.due_at, zone),
        "address": row.address,
        "address_id": None,
        "zipcode": None,
        "lat": row.lat,
        "long": row.lng,
        "media_url": None,
        "street_code": row.street_code,
        "community_code": row.community_code,
        "grid_code": row.grid_code,
    }
