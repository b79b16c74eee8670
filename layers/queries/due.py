"""临期 / 超期 / 超期办结 in SQL: the same answer as `etl.rules.due_state_codes`, as SQLAlchemy
expressions over a table's dispatch, due and resolution times, so that lists and counts can
filter and group by due state. `now` is a bound parameter (an injected clock), never the
database's clock; times are compared as instants, whatever the session's time zone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from etl.rules import DUE_SOON_SHARE, DUE_STATES, share_ratio

STATES = tuple(state for state in DUE_STATES if state)


def _now(now: dt.datetime) -> ColumnElement[Any]:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return sa.bindparam("due_now", now, type_=sa.DateTime(timezone=True), unique=True)


def _epoch(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """Seconds since the epoch as numeric (exact to the microsecond in PostgreSQL ≥ 14)."""
    return sa.extract("epoch", value)


def due_state_condition(
    state: str,
    dispatched_at: ColumnElement[Any],
    due_at: ColumnElement[Any],
    resolved_at: ColumnElement[Any],
    now: dt.datetime,
    share: float = DUE_SOON_SHARE,
) -> ColumnElement[bool]:
    """A WHERE condition: the case is in `state` (due_soon, overdue, resolved_late) at `now`."""
    at = _now(now)
    is_open = sa.or_(resolved_at.is_(None), resolved_at > at)
    if state == "resolved_late":
        return sa.and_(resolved_at <= at, resolved_at > due_at)
    if state == "overdue":
        return sa.and_(due_at < at, is_open)
    if state == "due_soon":
        p, q = share_ratio(share)
        # q·(due − now) ≤ p·(due − dispatched), exact on numeric epochs.
        in_window = q * (_epoch(due_at) - _epoch(at)) <= p * (
            _epoch(due_at) - _epoch(dispatched_at)
        )
        return sa.and_(due_at >= at, is_open, dispatched_at.is_not(None), in_window)
    raise ValueError(f"未知时限状态 unknown due state {state!r}; one of {STATES}")


def due_state(
    dispatched_at: ColumnElement[Any],
    due_at: ColumnElement[Any],
    resolved_at: ColumnElement[Any],
    now: dt.datetime,
    share: float = DUE_SOON_SHARE,
) -> ColumnElement[str | None]:
    """The due state at `now` as a label (NULL for none of them), for SELECT and GROUP BY."""
    return sa.case(
        *(
            (due_state_condition(state, dispatched_at, due_at, resolved_at, now, share), state)
            for state in ("resolved_late", "overdue", "due_soon")
        ),
        else_=sa.null(),
    )
