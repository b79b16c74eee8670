"""The case lifecycle (全响应) as a pure state machine: no database, no web.

A case (a service request or an enforcement case) moves through these states:

    received 受理 ─dispatch→ dispatched 已派单 ─accept→ accepted 处理中 ─contact→ contacted 已联系
      ─resolve→ resolved 已办结 ─callback→ called_back 已回访 ─close→ closed 已归档
    dispatched | accepted ─return→ returned 已退单 ─redispatch→ dispatched
    dispatched ─redispatch→ dispatched              (改派 before the unit accepts)
    called_back (不满意) ─reopen→ dispatched         (重办: the clock starts again)
    accepted | contacted: extend (asks) → approve_extension (new due time) | refuse_extension
    any state but closed: supervise (督办: a flag and a note)

An extension request (延期) is a flag on the case, not a state: the unit keeps working while
the centre decides, so the case stays accepted or contacted with `extension_due_at` set (the
due time asked for); approving moves `due_at`, refusing clears the request. Supervision is a
flag too. The due time itself is a field of dispatch, redispatch, reopen and
approve_extension: the write path (`layers.cases.store`) computes it from the configured time
limits and the history records it, so replaying needs no calendar.

`apply(case, action, role, fields, now, unit=...)` returns the new case or raises `Refused`:
403 when the role (or, for a unit's user, the unit) may not take the action, 409 when the
case's state does not allow it, 400 when a field is missing or malformed. `replay(history)`
folds a list of transitions into the case they lead to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from layers.queries.params import ParamError

STATES = {
    "received": "受理",
    "dispatched": "已派单",
    "accepted": "处理中",
    "contacted": "已联系",
    "resolved": "已办结",
    "called_back": "已回访",
    "closed": "已归档",
    "returned": "已退单",
}
OPEN_STATES = frozenset(STATES) - {"resolved", "called_back", "closed"}

ACTIONS = {
    "dispatch": "派单",
    "accept": "签收",
    "contact": "联系",
    "resolve": "办结",
    "callback": "回访",
    "return": "退单",
    "redispatch": "改派",
    "extend": "延期申请",
    "approve_extension": "批准延期",
    "refuse_extension": "驳回延期",
    "supervise": "督办",
    "reopen": "重办",
    "close": "归档",
}

# Roles as data: who may take each action. The street centre (and above it the commander and
# the district) dispatches; a unit's user (`department`) works its own unit's cases. Analysts,
# planners and grid officers take no action here (grid officers report: that creates a case).
DISPATCHERS = frozenset({"district", "commander", "clerk"})
UNIT_ROLES = frozenset({"department"})
LEADERS = frozenset({"district", "commander"})
# The ETL (etl/replay.py) replays an extract's time columns: the steps another system
# recorded (派单 签收 联系 办结 回访 归档). No user has this role (layers.accounts.ROLES); its
# steps carry what the extract has, so the fields a user must give are optional for it (a
# dispatch without a known unit or due time, a resolution without a result text, a callback
# without answers), and it may note the run that replayed them (`etl_run_id`).
ETL = "etl"
ETL_OPTIONAL = frozenset(
    {"main_unit", "due_at", "result", "valid", "contacted", "solved", "rating"}
)
ETL_FIELDS = frozenset({"etl_run_id"})
ROLES: dict[str, frozenset[str]] = {
    "dispatch": DISPATCHERS | {ETL},
    "accept": UNIT_ROLES | {ETL},
    "contact": UNIT_ROLES | {ETL},
    "resolve": UNIT_ROLES | {ETL},
    "callback": DISPATCHERS | {ETL},
    "return": UNIT_ROLES,
    "redispatch": DISPATCHERS,
    "extend": UNIT_ROLES,
    "approve_extension": DISPATCHERS,
    "refuse_extension": DISPATCHERS,
    "supervise": LEADERS,
    "reopen": DISPATCHERS,
    "close": DISPATCHERS | {ETL},
}

# action → the states it may start from
FROM: dict[str, frozenset[str]] = {
    "dispatch": frozenset({"received"}),
    "accept": frozenset({"dispatched"}),
    "contact": frozenset({"accepted"}),
    "resolve": frozenset({"accepted", "contacted"}),
    "callback": frozenset({"resolved"}),
    "return": frozenset({"dispatched", "accepted"}),
    "redispatch": frozenset({"dispatched", "returned"}),
    "extend": frozenset({"accepted", "contacted"}),
    "approve_extension": frozenset({"accepted", "contacted"}),
    "refuse_extension": frozenset({"accepted", "contacted"}),
    "supervise": frozenset(STATES) - {"closed"},
    "reopen": frozenset({"called_back"}),
    "close": frozenset({"called_back"}),
}

# action → the fields it takes (the write path adds `due_at` where the clock (re)starts)
FIELDS: dict[str, frozenset[str]] = {
    "dispatch": frozenset({"main_unit", "assisting_units", "due_at"}),
    "redispatch": frozenset({"main_unit", "assisting_units", "due_at"}),
    "reopen": frozenset({"main_unit", "assisting_units", "due_at"}),
    "accept": frozenset(),
    "contact": frozenset(),
    "resolve": frozenset({"result"}),
    "callback": frozenset({"valid", "contacted", "solved", "rating"}),
    "return": frozenset({"reason"}),
    "extend": frozenset({"due_at", "hours"}),
    "approve_extension": frozenset({"due_at"}),
    "refuse_extension": frozenset(),
    "supervise": frozenset({"note"}),
    "close": frozenset(),
}

RATINGS = ("满意", "基本满意", "不满意")
UNSATISFIED = "不满意"


class Refused(ParamError):
    """An action the case's state (409), the user's role or unit (403) or its fields (400)
    do not allow; the message is Chinese first, English after."""

    code = "refused"

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message, status=status, **details)


@dataclass(frozen=True)
class Case:
    """The current state of a case and what its history has set."""

    state: str = "received"
    main_unit: str | None = None
    assisting_units: tuple[str, ...] = ()
    dispatched_at: dt.datetime | None = None
    due_at: dt.datetime | None = None
    accepted_at: dt.datetime | None = None
    contacted_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    called_back_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    result: str | None = None
    callback_valid: bool | None = None
    callback_contacted: bool | None = None
    callback_solved: bool | None = None
    rating: str | None = None
    return_reason: str | None = None
    extension_due_at: dt.datetime | None = None  # an open extension request: the time asked
    extension_decision: str | None = None  # the last request's fate: approved | refused
    supervised: bool = False
    supervise_note: str | None = None
    reopen_count: int = 0


@dataclass(frozen=True)
class Transition:
    """One row of the history, as the machine needs it."""

    action: str
    role: str
    at: dt.datetime
    fields: Mapping[str, Any] = field(default_factory=dict)
    unit: str | None = None


def _bad(message: str, name: str) -> Refused:
    return Refused(400, message, field=name)


def _text(fields: Mapping[str, Any], name: str, label: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"缺少{label} missing {name}", name)
    return value.strip()


def _time(fields: Mapping[str, Any], name: str, label: str) -> dt.datetime:
    value = fields.get(name)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise _bad(f"{label}格式错误 bad {name}: {value!r}", name) from None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise _bad(f"缺少{label}（需带时区）missing {name} (with a time zone)", name)
    return value


def _bool(fields: Mapping[str, Any], name: str, label: str) -> bool:
    value = fields.get(name)
    if not isinstance(value, bool):
        raise _bad(f"缺少{label}（是/否）missing {name} (true/false)", name)
    return value


def _units(fields: Mapping[str, Any], etl: bool = False) -> tuple[str | None, tuple[str, ...]]:
    main = (
        None if etl and fields.get("main_unit") is None else _text(fields, "main_unit", "主办单位")
    )
    assisting = fields.get("assisting_units") or []
    if not isinstance(assisting, (list, tuple)) or not all(
        isinstance(u, str) and u.strip() for u in assisting
    ):
        raise _bad(f"协办单位格式错误 bad assisting_units: {assisting!r}", "assisting_units")
    units = tuple(dict.fromkeys(u.strip() for u in assisting))
    if main in units:
        raise _bad(
            f"主办单位不能同时协办 the main unit {main!r} cannot also assist", "assisting_units"
        )
    return main, units


def _check_role(case: Case, action: str, role: str, unit: str | None) -> None:
    if role not in ROLES[action]:
        raise Refused(
            403,
            f"角色{role}无权{ACTIONS[action]} role {role!r} may not {action}",
            action=action,
        )
    if role in UNIT_ROLES and (unit is None or unit != case.main_unit):
        raise Refused(
            403,
            f"只有主办单位可以{ACTIONS[action]} only the main unit may {action} "
            f"(case unit {case.main_unit!r}, yours {unit!r})",
            action=action,
        )


def _check_state(case: Case, action: str) -> None:
    allowed = case.state in FROM[action]
    if action == "extend":
        allowed = allowed and case.extension_due_at is None
    elif action in ("approve_extension", "refuse_extension"):
        allowed = allowed and case.extension_due_at is not None
    elif action == "reopen":
        allowed = allowed and case.rating == UNSATISFIED
    if allowed:
        return
    why = {
        "extend": "（已有待批的延期申请 an extension request is pending）",
        "approve_extension": "（没有待批的延期申请 no extension request pending）",
        "refuse_extension": "（没有待批的延期申请 no extension request pending）",
        "reopen": "（只有不满意的回访可以重办 only after an unsatisfied callback）",
    }.get(action, "")
    raise Refused(
        409,
        f"{STATES[case.state]}状态下不能{ACTIONS[action]}{why} "
        f"cannot {action} a case in state {case.state}",
        action=action,
        state=case.state,
    )


def _restart(case: Case, now: dt.datetime, fields: Mapping[str, Any], etl: bool = False) -> Case:
    """A (re)dispatch: a unit, a due time, the work's timestamps cleared (the ETL's dispatch:
    the unit and the due time the extract has, maybe none)."""
    main, assisting = _units(fields, etl)
    due = None if etl and fields.get("due_at") is None else _time(fields, "due_at", "办理时限")
    return replace(
        case,
        state="dispatched",
        main_unit=main,
        assisting_units=assisting,
        dispatched_at=now,
        due_at=due,
        accepted_at=None,
        contacted_at=None,
        resolved_at=None,
        called_back_at=None,
        result=None,
        callback_valid=None,
        callback_contacted=None,
        callback_solved=None,
        rating=None,
        extension_due_at=None,
    )


def _extension(case: Case, fields: Mapping[str, Any]) -> dt.datetime:
    """The due time asked for: `due_at`, or `hours` added to the current due time."""
    if "hours" in fields and "due_at" not in fields:
        hours = fields["hours"]
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours > 0:
            raise _bad(f"延期小时数须为正数 hours must be positive: {hours!r}", "hours")
        assert case.due_at is not None  # every dispatched case has one
        return case.due_at + dt.timedelta(hours=hours)
    asked = _time(fields, "due_at", "申请的办理时限")
    if case.due_at is not None and asked <= case.due_at:
        raise _bad(
            f"申请的时限须晚于现时限 the asked due time {asked.isoformat()} is not after "
            f"the current one {case.due_at.isoformat()}",
            "due_at",
        )
    return asked


def apply(
    case: Case,
    action: str,
    role: str,
    fields: Mapping[str, Any],
    now: dt.datetime,
    *,
    unit: str | None = None,
) -> Case:
    """The case after `action` taken at `now` by a user of `role` (and, for a unit's user,
    of `unit`), or `Refused`: the role first (403), then the state (409), then the fields
    (400)."""
    if action not in ACTIONS:
        raise Refused(400, f"未知操作 unknown action {action!r}", field="action")
    _check_role(case, action, role, unit)
    _check_state(case, action)
    etl = role == ETL
    unknown = sorted(set(fields) - FIELDS[action] - (ETL_FIELDS if etl else frozenset()))
    if unknown:
        raise _bad(
            f"{ACTIONS[action]}不接受字段 {action} takes no field {unknown[0]!r}", unknown[0]
        )
    if etl:
        fields = {k: v for k, v in fields.items() if k not in ETL_FIELDS}
        fields = {k: v for k, v in fields.items() if not (k in ETL_OPTIONAL and v is None)}
    if action in ("dispatch", "redispatch"):
        return _restart(case, now, fields, etl)
    if action == "accept":
        return replace(case, state="accepted", accepted_at=now)
    if action == "contact":
        return replace(case, state="contacted", contacted_at=now)
    if action == "resolve":
        result = None if etl and "result" not in fields else _text(fields, "result", "办理结果")
        return replace(
            case, state="resolved", resolved_at=now, result=result, extension_due_at=None
        )
    if action == "callback":
        rating = fields.get("rating")
        if rating not in RATINGS and not (etl and rating is None):
            raise _bad(f"满意度须为{'/'.join(RATINGS)} rating must be one of {RATINGS}", "rating")

        def answer(name: str, label: str) -> bool | None:
            return None if etl and name not in fields else _bool(fields, name, label)

        return replace(
            case,
            state="called_back",
            called_back_at=now,
            callback_valid=answer("valid", "有效回访"),
            callback_contacted=answer("contacted", "是否联系"),
            callback_solved=answer("solved", "是否解决"),
            rating=rating,
        )
    if action == "return":
        reason = _text(fields, "reason", "退单理由")
        return replace(case, state="returned", return_reason=reason, extension_due_at=None)
    if action == "extend":
        return replace(case, extension_due_at=_extension(case, fields))
    if action == "approve_extension":
        due = (
            _time(fields, "due_at", "新的办理时限") if "due_at" in fields else case.extension_due_at
        )
        return replace(case, due_at=due, extension_due_at=None, extension_decision="approved")
    if action == "refuse_extension":
        return replace(case, extension_due_at=None, extension_decision="refused")
    if action == "supervise":
        note = _text(fields, "note", "督办意见")
        return replace(case, supervised=True, supervise_note=note)
    if action == "reopen":
        fields = {"main_unit": case.main_unit, **fields}
        if "assisting_units" not in fields:
            fields["assisting_units"] = list(case.assisting_units)
        return replace(_restart(case, now, fields), reopen_count=case.reopen_count + 1)
    assert action == "close"
    return replace(case, state="closed", closed_at=now)


def allowed(case: Case, role: str, unit: str | None = None) -> list[str]:
    """The actions a user of `role` (and, for a unit's user, of `unit`) may take on `case`
    in its state, by the same rules as `apply` (fields aside), in ACTIONS order: what a page
    offers as buttons."""
    out = []
    for action in ACTIONS:
        try:
            _check_role(case, action, role, unit)
            _check_state(case, action)
        except Refused:
            continue
        out.append(action)
    return out


def replay(history: Iterable[Transition], start: Case | None = None) -> Case:
    """The case a history leads to, from a new case in 受理 (or `start`)."""
    case = start or Case()
    for step in history:
        case = apply(case, step.action, step.role, step.fields, step.at, unit=step.unit)
    return case
