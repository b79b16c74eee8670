"""The one write path of cases: `create_case` and `transition`, in the caller's transaction.

`transition` reads the case, lets the machine (`layers.cases.machine.apply`) decide, then
writes the new state with one `UPDATE … WHERE id = :id AND version = :expected` (version + 1)
and appends one row to `case_history`. Two users acting on one case at once: both read the
same version, the second UPDATE waits for the first transaction's row lock and then finds the
version moved on, so it changes nothing and is refused with 409 — no lost update. The
caller (a request, a CLI command, a test) commits or rolls back.

The due time is the write path's, not the caller's: at dispatch, redispatch and reopen it is
computed from the category's time limit (etl/config/time_limits.yaml, working days on the
Chinese calendar) counted from `now`, and recorded in the history's fields so that a replay
needs no calendar. An approved extension moves it to the time asked (or the one given).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from etl.rules import TimeLimits, load_time_limits
from layers.cases.machine import Case, Refused, Transition, apply
from layers.cases.tables import KINDS, case_history, cases
from layers.queries.params import DEFAULT_TZ
from layers.units import units

CASE_COLUMNS = tuple(f.name for f in fields(Case))
CLOCK_STARTS = frozenset({"dispatch", "redispatch", "reopen"})
STALE = "已被他人修改 (stale version)"


@dataclass(frozen=True)
class Actor:
    """Who takes an action: a user's name, role and (for a unit's user) unit code."""

    name: str | None
    role: str
    unit: str | None = None


def case_of(row: Mapping[Any, Any]) -> Case:
    """The machine's view of a `cases` row."""
    values = {name: row[name] for name in CASE_COLUMNS}
    values["assisting_units"] = tuple(values["assisting_units"] or ())
    return Case(**values)


def _json(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def create_case(
    conn: sa.Connection,
    *,
    kind: str,
    source_id: int,
    street_code: str | None,
    category: str | None,
    received_at: dt.datetime,
    reported_by: str | None = None,
) -> sa.RowMapping:
    """A new case in 受理 (received, version 0) for a service request or an enforcement case.
    Its history starts with the first transition (dispatch); `received_at` is its 受理 time;
    `reported_by` the user who filed it (intake), None for a case from an extract."""
    if kind not in KINDS:
        raise Refused(400, f"未知案件类型 unknown case kind {kind!r}; one of {KINDS}", field="kind")
    source = "service_request_id" if kind == "service_request" else "enforcement_case_id"
    stmt = (
        sa.insert(cases)
        .values(
            kind=kind,
            street_code=street_code,
            category=category,
            received_at=received_at,
            updated_at=received_at,
            reported_by=reported_by,
            **{source: source_id},
        )
        .returning(*cases.c)
    )
    return conn.execute(stmt).mappings().one()


def _check_units(conn: sa.Connection, fields: Mapping[str, Any]) -> None:
    named = [fields.get("main_unit"), *(fields.get("assisting_units") or [])]
    wanted = {u for u in named if isinstance(u, str)}
    if not wanted:
        return
    found = set(
        conn.execute(
            sa.select(units.c.code).where(units.c.code.in_(wanted), units.c.active)
        ).scalars()
    )
    missing = sorted(wanted - found)
    if missing:
        field = "main_unit" if missing[0] == fields.get("main_unit") else "assisting_units"
        raise Refused(400, f"未知承办单位 unknown unit {missing[0]!r}", field=field)


def due_at(
    category: str | None, start: dt.datetime, *, limits: TimeLimits | None = None, zone: str
) -> dt.datetime:
    """When a case dispatched at `start` falls due (办理时限)."""
    limits = limits or load_time_limits()
    due = limits.due_at(
        pa.array([category], pa.string()), pa.array([start], pa.timestamp("us", tz="UTC")), zone
    )
    value = due[0].as_py()
    assert isinstance(value, dt.datetime)
    return value


def transition(
    conn: sa.Connection,
    case_id: int,
    action: str,
    expected_version: int,
    actor: Actor,
    fields: Mapping[str, Any],
    now: dt.datetime,
    *,
    note: str | None = None,
    limits: TimeLimits | None = None,
    zone: str = DEFAULT_TZ,
) -> sa.RowMapping:
    """Take `action` on case `case_id` at version `expected_version`: the updated row, or
    `Refused` (404 no such case in the caller's view, 403 role or unit, 409 state or stale
    version, 400 fields)."""
    row = conn.execute(sa.select(cases).where(cases.c.id == case_id)).mappings().one_or_none()
    if row is None:
        raise Refused(404, f"案件不存在 no case {case_id}", field="case_id")
    if row["version"] != expected_version:
        raise Refused(409, STALE, version=row["version"])
    given = dict(fields)
    if action in CLOCK_STARTS:
        if "due_at" in given:
            raise Refused(
                400, "办理时限由系统按时限规则计算 due_at is computed, not given", field="due_at"
            )
        given["due_at"] = due_at(row["category"], now, limits=limits, zone=zone)
    before = case_of(row)
    after = apply(before, action, actor.role, given, now, unit=actor.unit)
    _check_units(conn, given)
    values = {k: v for k, v in asdict(after).items() if getattr(before, k) != v}
    if "assisting_units" in values:
        values["assisting_units"] = list(after.assisting_units)
    updated = (
        conn.execute(
            sa.update(cases)
            .where(cases.c.id == case_id, cases.c.version == expected_version)
            .values(**values, version=cases.c.version + 1, updated_at=now)
            .returning(*cases.c)
        )
        .mappings()
        .one_or_none()
    )
    if updated is None:
        raise Refused(409, STALE)
    conn.execute(
        sa.insert(case_history).values(
            case_id=case_id,
            action=action,
            from_state=before.state,
            to_state=after.state,
            user_name=actor.name,
            role=actor.role,
            unit_code=actor.unit,
            at=now,
            note=note,
            fields={k: _json(v) for k, v in given.items()},
        )
    )
    return updated


def history(conn: sa.Connection, case_id: int) -> list[sa.RowMapping]:
    """The case's transitions, oldest first."""
    stmt = (
        sa.select(case_history).where(case_history.c.case_id == case_id).order_by(case_history.c.id)
    )
    return list(conn.execute(stmt).mappings())


def transitions(rows: list[sa.RowMapping]) -> list[Transition]:
    """History rows as the machine replays them."""
    return [Transition(r["action"], r["role"], r["at"], r["fields"], r["unit_code"]) for r in rows]
