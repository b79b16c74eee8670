"""Cases (案件) and whistles (吹哨报到) as /api/cases and /api/whistles read them.

Reads only, in the caller's transaction and zone (row-level security confines a commander to
their street's cases and whistles). "Now" is a parameter (the app's clock), never the
database's: the due state (临期 / 超期 / 超期办结) is `layers.queries.due` at that instant.
Lists are sorted by due time (cases not yet dispatched, without one, last) then id, and paged
by a key cursor holding the last row's (due time, id).

A case's grid, place and source (the service request's channel, or `enforcement`) are its
event's: read through the event tables' own row-level security, so a department user, who
sees no street's events (migration 0018), gets them empty. The unit load board (`load`) and
the district's overdue table (`overdue`) count open cases by unit and by street.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from layers.cases.machine import ACTIONS, OPEN_STATES, STATES, allowed
from layers.cases.store import case_of
from layers.cases.tables import case_history, cases
from layers.queries.due import due_state, due_state_condition
from layers.queries.params import ParamError, decode_cursor, encode_cursor
from layers.registry import get_layer
from layers.units import UNIT_KINDS, units
from layers.whistles import BLOWERS, in_progress, summoned, whistles

TIMES = (
    "received_at",
    "dispatched_at",
    "accepted_at",
    "contacted_at",
    "resolved_at",
    "called_back_at",
    "closed_at",
    "updated_at",
)
NO_DUE = "-"  # the cursor's due time of a case without one (sorted last)
ENFORCEMENT = "enforcement"  # the source of an enforcement case (a request's is its channel)


@dataclass(frozen=True)
class CaseFilter:
    """The filters of GET /api/cases; None: no filter."""

    street: str | None = None
    unit: str | None = None  # the main unit or one of the assisting units
    states: tuple[str, ...] | None = None
    category: str | None = None
    due_state: str | None = None  # due_soon | overdue | resolved_late
    kind: str | None = None
    grid: str | None = None  # the grid code of the case's event
    source: str | None = None  # a service request's channel, or ENFORCEMENT
    updated_after: dt.datetime | None = None  # changed (or created) strictly after
    # The caller's own street or unit: row-level security keeps its rows either way; said
    # here too, the planner reads them by index (ix_cases_street_state, the GIN of
    # assisting units) instead of testing the policy on every case of the district.
    reach_street: str | None = None
    reach_unit: str | None = None


def _of_unit(unit: str) -> sa.ColumnElement[bool]:
    """A case dispatched to `unit`, as its main or an assisting unit: its id among
    `unit_case_ids(unit)` (migration 0021: found by index, which a condition on the array
    could not be under row-level security; the policies still apply to every row)."""
    return cases.c.id.in_(sa.select(sa.func.unit_case_ids(unit)))


def _events() -> tuple[sa.Table, sa.Table]:
    return get_layer("service_requests").table, get_layer("enforcement_cases").table


def _event_has(column: str, value: str) -> sa.ColumnElement[bool]:
    """The case's event (request or enforcement case) has `column` = `value` (aliases: the
    list's FROM joins the event tables too, and must not be correlated)."""
    sr, ec = (t.alias(f"{t.name}_filter") for t in _events())
    c = cases.c
    return sa.or_(
        sa.exists().where(sr.c.id == c.service_request_id, sr.c[column] == value),
        sa.exists().where(ec.c.id == c.enforcement_case_id, ec.c[column] == value),
    )


def _source_is(value: str) -> sa.ColumnElement[bool]:
    sr = _events()[0].alias("service_requests_filter")
    c = cases.c
    if value == ENFORCEMENT:
        return c.kind == "enforcement_case"
    return sa.and_(
        c.kind == "service_request",
        sa.exists().where(sr.c.id == c.service_request_id, sr.c.channel == value),
    )


def _iso(value: dt.datetime | None, zone: dt.tzinfo) -> str | None:
    return None if value is None else value.astimezone(zone).isoformat()


def _due(now: dt.datetime) -> sa.ColumnElement[Any]:
    c = cases.c
    return due_state(c.dispatched_at, c.due_at, c.resolved_at, now).label("due_state")


def _where(chosen: CaseFilter, now: dt.datetime) -> list[sa.ColumnElement[bool]]:
    c = cases.c
    out: list[sa.ColumnElement[bool]] = []
    if chosen.street is not None:
        out.append(c.street_code == chosen.street)
    if chosen.reach_street is not None:
        out.append(c.street_code == chosen.reach_street)
    if chosen.reach_unit is not None:
        out.append(_of_unit(chosen.reach_unit))
    if chosen.unit is not None:
        out.append(_of_unit(chosen.unit))
    if chosen.states is not None:
        out.append(c.state.in_(chosen.states))
    if chosen.category is not None:
        out.append(c.category == chosen.category)
    if chosen.due_state is not None:
        out.append(
            due_state_condition(chosen.due_state, c.dispatched_at, c.due_at, c.resolved_at, now)
        )
    if chosen.kind is not None:
        out.append(c.kind == chosen.kind)
    if chosen.grid is not None:
        out.append(_event_has("grid_code", chosen.grid))
    if chosen.source is not None:
        out.append(_source_is(chosen.source))
    if chosen.updated_after is not None:
        out.append(c.updated_at > chosen.updated_after)
    return out


def _place_columns(
    base: sa.FromClause = cases,
) -> tuple[sa.Join, list[sa.ColumnElement[Any]]]:
    """`base` (cases, or a page of them) outer-joined to its event and main unit, and the
    columns read from them."""
    sr, ec = _events()
    c = base.c
    joined = (
        base.outerjoin(sr, sr.c.id == c.service_request_id)
        .outerjoin(ec, ec.c.id == c.enforcement_case_id)
        .outerjoin(units, units.c.code == c.main_unit)
    )
    geom = sa.func.coalesce(sr.c.geom, ec.c.geom)
    columns: list[sa.ColumnElement[Any]] = [
        sa.func.coalesce(sr.c.grid_code, ec.c.grid_code).label("grid"),
        sa.case((c.kind == "enforcement_case", sa.literal(ENFORCEMENT)), else_=sr.c.channel).label(
            "source"
        ),
        sa.func.coalesce(sr.c.address, ec.c.address).label("address"),
        sa.func.coalesce(sr.c.description, ec.c.description).label("description"),
        sa.func.ST_X(geom).label("lng"),
        sa.func.ST_Y(geom).label("lat"),
        units.c.name.label("main_unit_name"),
    ]
    return joined, columns


def cursor_of(row: Mapping[Any, Any]) -> str:
    due = row["due_at"]
    return encode_cursor(f"{NO_DUE if due is None else due.isoformat()}|{row['id']}")


def parse_cursor(value: str) -> tuple[dt.datetime | None, int]:
    """The (due time, id) a cursor of `cursor_of` holds; 400 for anything else."""
    key = decode_cursor(value, integer=False)
    due, _, ident = key.rpartition("|")
    bad = ParamError(f"无效的分页游标 (invalid cursor): {value!r}", "cursor")
    try:
        number = int(ident)
        at = None if due == NO_DUE else dt.datetime.fromisoformat(due)
    except ValueError:
        raise bad from None
    if not 0 <= number < 2**63 or (at is not None and at.tzinfo is None):
        raise bad
    return at, number


def _after(after: tuple[dt.datetime | None, int]) -> sa.ColumnElement[bool]:
    """Rows after the cursor's in (due_at nulls last, id) order."""
    c = cases.c
    due, ident = after
    if due is None:
        return sa.and_(c.due_at.is_(None), c.id > ident)
    return sa.or_(c.due_at > due, sa.and_(c.due_at == due, c.id > ident), c.due_at.is_(None))


def _case_json(row: Mapping[Any, Any], zone: dt.tzinfo) -> dict[str, Any]:
    source = row["service_request_id"] or row["enforcement_case_id"]
    return {
        "id": row["id"],
        "kind": row["kind"],
        "source_id": source,
        "street": row["street_code"],
        "category": row["category"],
        "state": row["state"],
        "state_label": STATES[row["state"]],
        "version": row["version"],
        "main_unit": row["main_unit"],
        "assisting_units": list(row["assisting_units"] or ()),
        "due_at": _iso(row["due_at"], zone),
        "due_state": row["due_state"],
        "times": {name: _iso(row[name], zone) for name in TIMES},
        "supervised": row["supervised"],
        "supervise_note": row["supervise_note"],
        "extension_due_at": _iso(row["extension_due_at"], zone),
        "result": row["result"],
        "rating": row["rating"],
        "return_reason": row["return_reason"],
        "reopen_count": row["reopen_count"],
        **{name: row[name] for name in PLACE if name in row},
    }


PLACE = ("grid", "source", "address", "description", "lng", "lat", "main_unit_name")


def list_cases(
    conn: sa.Connection,
    chosen: CaseFilter,
    now: dt.datetime,
    *,
    limit: int,
    after: tuple[dt.datetime | None, int] | None = None,
) -> dict[str, Any]:
    """A page of the filtered cases, the next page's cursor (or None) and the counts by state
    and by main unit over the whole filtered set (in the caller's zone)."""
    zone = now.tzinfo
    assert zone is not None
    where = _where(chosen, now)
    order = (cases.c.due_at.asc().nulls_last(), cases.c.id)
    keys = sa.select(cases.c.id).where(*where)
    if after is not None:
        keys = keys.where(_after(after))
    # The page's keys first (sorted and cut on narrow rows of `cases` alone), then its rows,
    # events and units: joining before the cut would read every filtered case in full.
    cut = keys.order_by(*order).limit(limit + 1).subquery("page")
    page = sa.select(cases).join(cut, cut.c.id == cases.c.id).subquery("page_rows")
    joined, place = _place_columns(page)
    due = due_state(page.c.dispatched_at, page.c.due_at, page.c.resolved_at, now)
    query = sa.select(page, due.label("due_state"), *place).select_from(joined)
    query = query.order_by(page.c.due_at.asc().nulls_last(), page.c.id)
    rows = list(conn.execute(query).mappings())
    more = len(rows) > limit
    rows = rows[:limit]
    # Both counts in one pass over the filtered set, with what the live stamp needs (the
    # version sum and the newest change): grouped by (state, main_unit) — the order of the
    # street's index, so PostgreSQL streams the groups without hashing (grouping sets hashed
    # them: 43 ms against 28 ms for a street's 67,000 cases) — and folded here (a few dozen
    # groups).
    grouped = conn.execute(
        sa.select(
            cases.c.state,
            cases.c.main_unit,
            sa.func.count(),
            sa.func.sum(cases.c.version),
            sa.func.max(cases.c.updated_at),
        )
        .where(*where)
        .group_by(cases.c.state, cases.c.main_unit)
    ).all()
    by_state: dict[str, int] = {}
    by_unit: dict[str, int] = {}
    for state, unit, n, _, _ in grouped:
        by_state[state] = by_state.get(state, 0) + n
        if unit is not None:
            by_unit[unit] = by_unit.get(unit, 0) + n
    latest = max((at for *_, at in grouped), default=None)
    versions = sum(int(v) for *_, v, _ in grouped)
    total = sum(by_state.values())
    return {
        "cases": [_case_json(r, zone) for r in rows],
        "next": cursor_of(rows[-1]) if more else None,
        "counts": {"by_state": by_state, "by_unit": by_unit, "total": total},
        # The newest change in the filtered set, and a stamp that moves with any change
        # (a new case, any transition): what a live page compares between two polls.
        "latest": _iso(latest, zone),
        "stamp": f"{total}:{versions}:{'' if latest is None else latest.isoformat()}",
    }


def one_case(
    conn: sa.Connection,
    case_id: int,
    now: dt.datetime,
    *,
    role: str | None = None,
    unit: str | None = None,
) -> dict[str, Any] | None:
    """The case with its history (oldest first), or None when it is not in the caller's view;
    with `role`, also `actions`: what a user of that role (and unit) may take on it now."""
    zone = now.tzinfo
    assert zone is not None
    joined, place = _place_columns()
    row = (
        conn.execute(
            sa.select(cases, _due(now), *place).select_from(joined).where(cases.c.id == case_id)
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        return None
    h = case_history.c
    steps = conn.execute(
        sa.select(case_history).where(h.case_id == case_id).order_by(h.id)
    ).mappings()
    out = _case_json(row, zone)
    out["history"] = [
        {
            "action": s["action"],
            "action_label": ACTIONS[s["action"]],
            "from_state": s["from_state"],
            "to_state": s["to_state"],
            "user": s["user_name"],
            "role": s["role"],
            "unit": s["unit_code"],
            "at": _iso(s["at"], zone),
            "note": s["note"],
            "fields": s["fields"],
        }
        for s in steps
    ]
    if role is not None:
        out["actions"] = [
            {"action": a, "label": ACTIONS[a]} for a in allowed(case_of(row), role, unit)
        ]
        out["may_whistle"] = role in BLOWERS  # may blow a whistle on it (吹哨报到)
    return out


# --- the load board and the district's overdue ------------------------------------------------


def _open_counts(now: dt.datetime) -> list[sa.ColumnElement[Any]]:
    """open, 临期 and 超期 counts of open cases (the caller's WHERE says which are open)."""
    c = cases.c
    soon = due_state_condition("due_soon", c.dispatched_at, c.due_at, c.resolved_at, now)
    late = due_state_condition("overdue", c.dispatched_at, c.due_at, c.resolved_at, now)
    return [
        sa.func.count().label("open"),
        sa.func.count().filter(soon).label("due_soon"),
        sa.func.count().filter(late).label("overdue"),
    ]


def load(
    conn: sa.Connection, now: dt.datetime, *, street: str | None = None, unit: str | None = None
) -> list[dict[str, Any]]:
    """The unit load board: per main unit, its open cases, how many are 临期 and 超期, in the
    caller's view (a street's, a unit's), the most overdue first."""
    c = cases.c
    where: list[sa.ColumnElement[bool]] = [c.state.in_(sorted(OPEN_STATES))]
    if street is not None:
        where.append(c.street_code == street)
    if unit is not None:
        where.append(_of_unit(unit))
    counts = _open_counts(now)
    query = (
        sa.select(units.c.code, units.c.name, units.c.kind, *counts)
        .select_from(cases.join(units, units.c.code == c.main_unit))
        .where(*where)
        .group_by(units.c.code)
        .order_by(sa.desc("overdue"), sa.desc("open"), units.c.code)
    )
    return [
        {
            "unit": r.code,
            "unit_name": r.name,
            "kind": r.kind,
            "kind_label": UNIT_KINDS.get(r.kind, r.kind),
            "open": r.open,
            "due_soon": r.due_soon,
            "overdue": r.overdue,
        }
        for r in conn.execute(query)
    ]


def overdue(conn: sa.Connection, now: dt.datetime) -> dict[str, list[dict[str, Any]]]:
    """超期 per street and per main unit (with their open cases and 临期), in the caller's
    view: the streets and units with an open case, the most overdue first."""
    c = cases.c
    streets = get_layer("streets").table
    is_open = c.state.in_(sorted(OPEN_STATES))
    counts = _open_counts(now)
    by_street = conn.execute(
        sa.select(c.street_code, streets.c.name, *counts)
        .select_from(cases.outerjoin(streets, streets.c.code == c.street_code))
        .where(is_open, c.street_code.is_not(None))
        .group_by(c.street_code, streets.c.name)
        .order_by(sa.desc("overdue"), sa.desc("open"), c.street_code)
    ).all()
    return {
        "by_street": [
            {
                "street": r.street_code,
                "name": r.name,
                "open": r.open,
                "due_soon": r.due_soon,
                "overdue": r.overdue,
            }
            for r in by_street
        ],
        "by_unit": load(conn, now),
    }


# --- whistles ---------------------------------------------------------------------------------


def _minutes(delay: dt.timedelta | None) -> float | None:
    return None if delay is None else delay.total_seconds() / 60.0


def _units_json(found: Sequence[Mapping[Any, Any]], zone: dt.tzinfo) -> list[dict[str, Any]]:
    return [
        {
            "unit_code": u["unit_code"],
            "unit_name": u["unit_name"],
            "arrived_at": _iso(u["arrived_at"], zone),
            "arrival_delay_minutes": _minutes(u["arrival_delay"]),
            "completed_at": _iso(u["completed_at"], zone),
            "completion_note": u["completion_note"],
            "rating": u["rating"],
            "rating_comment": u["rating_comment"],
            "rated_at": _iso(u["rated_at"], zone),
        }
        for u in found
    ]


def _whistle_json(
    row: Mapping[Any, Any], found: Sequence[Mapping[Any, Any]], zone: dt.tzinfo
) -> dict[str, Any]:
    return {
        "id": row["id"],
        "street": row["street_code"],
        "target_kind": row["target_kind"],
        "case_id": row["case_id"],
        "target_ref": row["target_ref"],
        "reason": row["reason"],
        "meeting_point": row["meeting_point"],
        "meet_at": _iso(row["meet_at"], zone),
        "blown_by": row["blown_by"],
        "blown_role": row["blown_role"],
        "blown_at": _iso(row["blown_at"], zone),
        "units": _units_json(found, zone),
    }


def open_whistles(
    conn: sa.Connection, zone: dt.tzinfo, street: str | None, to_rate: bool = False
) -> list[dict[str, Any]]:
    """The whistles of the caller's zone (or of `street`) with a unit still to complete (with
    `to_rate`: or still to rate)."""
    return [_whistle_json(w, w["units"], zone) for w in in_progress(conn, street, to_rate)]


def one_whistle(conn: sa.Connection, whistle_id: int, zone: dt.tzinfo) -> dict[str, Any] | None:
    """A whistle with its units, or None when it is not in the caller's view."""
    w = whistles.c
    columns = [c for c in whistles.c if c.name != "meeting_geom"]
    row = conn.execute(sa.select(*columns).where(w.id == whistle_id)).mappings().one_or_none()
    if row is None:
        return None
    return _whistle_json(row, summoned(conn, whistle_id), zone)
