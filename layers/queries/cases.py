"""Cases (案件) and whistles (吹哨报到) as /api/cases and /api/whistles read them.

Reads only, in the caller's transaction and zone (row-level security confines a commander to
their street's cases and whistles). "Now" is a parameter (the app's clock), never the
database's: the due state (临期 / 超期 / 超期办结) is `layers.queries.due` at that instant.
Lists are sorted by due time (cases not yet dispatched, without one, last) then id, and paged
by a key cursor holding the last row's (due time, id).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from layers.cases.machine import ACTIONS, STATES
from layers.cases.tables import case_history, cases
from layers.queries.due import due_state, due_state_condition
from layers.queries.params import ParamError, decode_cursor, encode_cursor
from layers.whistles import in_progress, summoned, whistles

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


@dataclass(frozen=True)
class CaseFilter:
    """The filters of GET /api/cases; None: no filter."""

    street: str | None = None
    unit: str | None = None  # the main unit or one of the assisting units
    states: tuple[str, ...] | None = None
    category: str | None = None
    due_state: str | None = None  # due_soon | overdue | resolved_late
    kind: str | None = None


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
    if chosen.unit is not None:
        out.append(sa.or_(c.main_unit == chosen.unit, c.assisting_units.any_() == chosen.unit))
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
    return out


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
    }


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
    query = sa.select(cases, _due(now)).where(*where)
    if after is not None:
        query = query.where(_after(after))
    query = query.order_by(cases.c.due_at.asc().nulls_last(), cases.c.id).limit(limit + 1)
    rows = list(conn.execute(query).mappings())
    more = len(rows) > limit
    rows = rows[:limit]
    by_state: dict[str, int] = dict(
        conn.execute(
            sa.select(cases.c.state, sa.func.count()).where(*where).group_by(cases.c.state)
        ).all()
    )
    by_unit: dict[str, int] = dict(
        conn.execute(
            sa.select(cases.c.main_unit, sa.func.count())
            .where(*where, cases.c.main_unit.is_not(None))
            .group_by(cases.c.main_unit)
        ).all()
    )
    return {
        "cases": [_case_json(r, zone) for r in rows],
        "next": cursor_of(rows[-1]) if more else None,
        "counts": {"by_state": by_state, "by_unit": by_unit},
    }


def one_case(conn: sa.Connection, case_id: int, now: dt.datetime) -> dict[str, Any] | None:
    """The case with its history (oldest first), or None when it is not in the caller's view."""
    zone = now.tzinfo
    assert zone is not None
    row = (
        conn.execute(sa.select(cases, _due(now)).where(cases.c.id == case_id))
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
    return out


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


def open_whistles(conn: sa.Connection, zone: dt.tzinfo, street: str | None) -> list[dict[str, Any]]:
    """The whistles of the caller's zone (or of `street`) with a unit still to complete."""
    return [_whistle_json(w, w["units"], zone) for w in in_progress(conn, street)]


def one_whistle(conn: sa.Connection, whistle_id: int, zone: dt.tzinfo) -> dict[str, Any] | None:
    """A whistle with its units, or None when it is not in the caller's view."""
    w = whistles.c
    columns = [c for c in whistles.c if c.name != "meeting_geom"]
    row = conn.execute(sa.select(*columns).where(w.id == whistle_id)).mappings().one_or_none()
    if row is None:
        return None
    return _whistle_json(row, summoned(conn, whistle_id), zone)
