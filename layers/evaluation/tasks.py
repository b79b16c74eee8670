"""Tasks handed to the streets (市里下达 / 部门任务): created by an assessor of the owner unit
(one street or many at once, or imported from XLSX/CSV, all or nothing), marked done by it,
listed with their state at the caller's `now`, and counted for the "share done on time"
items (`on_time_counts`). A task counts in the period whose window holds its deadline.

States (computed, never stored): 未完成 open (not done, deadline not passed), 按时完成
done_on_time (done_at ≤ deadline), 逾期完成 done_late, 逾期未完成 overdue (not done, deadline
passed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from layers.cases import Actor
from layers.evaluation import xlsx as sheets
from layers.evaluation.scheme import Scheme, item
from layers.evaluation.scoring import InputError, Rejection, rejected, streets
from layers.evaluation.tables import evaluation_tasks
from layers.queries.params import zone_of

STATES = {
    "open": "未完成",
    "done_on_time": "按时完成",
    "done_late": "逾期完成",
    "overdue": "逾期未完成",
}
KIND_NAMES = {"city": "市里下达", "department": "部门任务"}
MAX_TITLE = 200
MAX_NOTE = 1000
# An imported file's columns (Chinese header → field); 考核项编码 and 备注 may be absent.
TASK_COLUMNS = {
    "类型": "kind",
    "标题": "title",
    "街道编码": "street",
    "考核项编码": "item",
    "截止时间": "deadline",
    "备注": "note",
}
REQUIRED = ("类型", "标题", "街道编码", "截止时间")


def state(deadline: dt.datetime, done_at: dt.datetime | None, now: dt.datetime) -> str:
    """The task's state at `now` (a key of STATES)."""
    if done_at is None:
        return "open" if now <= deadline else "overdue"
    return "done_on_time" if done_at <= deadline else "done_late"


def window(
    since: dt.date, until: dt.date, zone: dt.tzinfo | str | None
) -> tuple[dt.datetime, dt.datetime]:
    """[since 00:00, until+1 00:00) local time in `zone`: the deadlines of a period."""
    tz = zone_of(zone)
    start = dt.datetime.combine(since, dt.time(), tz)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), tz)
    return start, end


@dataclass(frozen=True)
class NewTask:
    kind: object  # city / department, or 市里下达 / 部门任务
    title: object
    street: str
    deadline: object  # a datetime, or a text parsed in the district's zone
    item_code: str | None = None
    note: object = None
    row: int | None = None


def _kind(value: object) -> str | None:
    text = str(value or "").strip()
    for code, name in KIND_NAMES.items():
        if text in (code, name, name[:2]):  # city / 市里下达 / 市里
            return code
    return {"市级": "city", "市级任务": "city", "部门": "department"}.get(text)


def _deadline(value: object, zone: dt.tzinfo) -> dt.datetime | None:
    """An aware time: a datetime (naive: local time in `zone`), a date (its end: 23:59:59),
    or an ISO 8601 text of either."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (
                dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
            )
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(23, 59, 59), zone)
    return None


def _on_time_item(scheme: Scheme | None, code: str, unit: str | None) -> str | None:
    """Why `code` cannot be a task's item; None when it can."""
    if scheme is None:
        return None
    try:
        it = item(scheme, code)
    except (KeyError, ValueError):
        return f"未知考核项：{code!r} unknown item"
    if it.rule != "on_time":
        return f"考核项 {code} 不按任务完成情况计分 not an on-time item"
    if it.owner != unit:
        return f"考核项 {code} 不属于本单位 not your unit's item"
    return None


def create_tasks(
    conn: sa.Connection,
    tasks: Sequence[NewTask],
    actor: Actor,
    now: dt.datetime,
    zone: dt.tzinfo | str | None = None,
    scheme: Scheme | None = None,
    columns: Mapping[str, str | None] | None = None,
) -> list[int]:
    """Create every task (owner: the actor's unit) or none: InputError lists every bad row."""
    if actor.role != "assessor" or not actor.unit:
        raise InputError(
            "无权下达任务：只有考核部门的考评员可以 only an assessor hands out tasks", status=403
        )
    tz = zone_of(zone)
    cols = columns or {}
    known = streets(conn)
    bad: list[Rejection] = []
    rows = []
    for t in tasks:

        def no(field: str, reason: str, t: NewTask = t) -> None:
            bad.append(Rejection(t.row, cols.get(field, field), reason))

        kind = _kind(t.kind)
        if kind is None:
            no(
                "kind",
                f"任务类型无效：{t.kind!r}（市里下达 或 部门任务） kind is city or department",
            )
        title = str(t.title or "").strip()
        if not title or len(title) > MAX_TITLE:
            no("title", f"标题不能为空，至多 {MAX_TITLE} 字 title required")
        street = str(t.street or "").strip()
        if street not in known:
            no("street", f"未知街道：{street!r} unknown street")
        deadline = _deadline(t.deadline, tz)
        if deadline is None:
            no("deadline", f"截止时间无效：{t.deadline!r} bad deadline (ISO 8601)")
        code = str(t.item_code).strip() if t.item_code not in (None, "") else None
        if code is not None:
            why = _on_time_item(scheme, code, actor.unit)
            if why is not None:
                no("item", why)
        note = str(t.note).strip() if t.note not in (None, "") else None
        if note is not None and len(note) > MAX_NOTE:
            no("note", f"备注至多 {MAX_NOTE} 字 note too long")
        rows.append(
            {
                "kind": kind,
                "title": title,
                "owner_unit": actor.unit,
                "street_code": street,
                "item_code": code,
                "deadline": deadline,
                "note": note,
                "created_by": actor.name,
                "created_at": now,
            }
        )
    if bad:
        raise rejected(bad, "任务")
    if not rows:
        raise InputError("没有任务 no task given")
    result = conn.execute(sa.insert(evaluation_tasks).returning(evaluation_tasks.c.id), rows)
    return list(result.scalars())


def import_tasks(
    conn: sa.Connection,
    data: bytes,
    filename: str,
    actor: Actor,
    now: dt.datetime,
    zone: dt.tzinfo | str | None = None,
    scheme: Scheme | None = None,
) -> list[int]:
    """Tasks from an XLSX or CSV file (columns TASK_COLUMNS), all or nothing."""
    table = sheets.read_table(data, filename, TASK_COLUMNS, REQUIRED)
    names = {field: header for header, field in TASK_COLUMNS.items()}
    tasks = [
        NewTask(
            r.get("kind"),
            r.get("title"),
            sheets.code(r.get("street")),
            r.get("deadline"),
            sheets.code(r.get("item")) or None,
            r.get("note"),
            row=n,
        )
        for n, r in table
    ]
    return create_tasks(conn, tasks, actor, now, zone, scheme, names)


def mark_done(
    conn: sa.Connection,
    task_id: int,
    actor: Actor,
    now: dt.datetime,
    done_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Set the task's done_at (default `now`; never in the future); its owner's assessor only."""
    t = evaluation_tasks.c
    row = conn.execute(sa.select(evaluation_tasks).where(t.id == task_id)).first()
    if row is None:
        raise InputError(f"任务不存在：{task_id} no such task", status=404)
    if actor.role != "assessor" or row.owner_unit != actor.unit:
        raise InputError(
            f"无权修改该任务：任务由 {row.owner_unit} 下达 only the owner unit's assessor",
            status=403,
        )
    when = done_at or now
    if when > now:
        raise InputError("完成时间不能晚于现在 done_at is in the future", param="done_at")
    conn.execute(
        sa.update(evaluation_tasks)
        .where(t.id == task_id)
        .values(done_at=when, updated_by=actor.name, updated_at=now)
    )
    return task_dict({**row._mapping, "done_at": when}, now)


def task_dict(r: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    st = state(r["deadline"], r["done_at"], now)
    return {
        "id": r["id"],
        "kind": r["kind"],
        "kind_name": KIND_NAMES[r["kind"]],
        "title": r["title"],
        "owner": r["owner_unit"],
        "street": r["street_code"],
        "item": r["item_code"],
        "deadline": r["deadline"].isoformat(),
        "done_at": None if r["done_at"] is None else r["done_at"].isoformat(),
        "note": r["note"],
        "state": st,
        "state_name": STATES[st],
    }


def list_tasks(
    conn: sa.Connection,
    now: dt.datetime,
    since: dt.date | None = None,
    until: dt.date | None = None,
    zone: dt.tzinfo | str | None = None,
    street: str | None = None,
    owner: str | None = None,
    task_state: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Tasks by deadline (those due in [since, until], local dates in `zone`), with their
    state at `now`; `task_state` one of STATES."""
    if task_state is not None and task_state not in STATES:
        raise InputError(
            f"任务状态无效：{task_state!r} state is one of {', '.join(STATES)}", param="state"
        )
    t = evaluation_tasks.c
    query = sa.select(evaluation_tasks)
    tz = zone_of(zone)
    if since is not None:
        query = query.where(t.deadline >= window(since, since, tz)[0])
    if until is not None:
        query = query.where(t.deadline < window(until, until, tz)[1])
    if street is not None:
        query = query.where(t.street_code == street)
    if owner is not None:
        query = query.where(t.owner_unit == owner)
    if task_state == "open":
        query = query.where(t.done_at.is_(None), t.deadline >= now)
    elif task_state == "overdue":
        query = query.where(t.done_at.is_(None), t.deadline < now)
    elif task_state == "done_on_time":
        query = query.where(t.done_at <= t.deadline)
    elif task_state == "done_late":
        query = query.where(t.done_at > t.deadline)
    rows = conn.execute(query.order_by(t.deadline, t.street_code, t.id).limit(limit))
    return [task_dict(dict(r._mapping), now) for r in rows]


def on_time_counts(
    conn: sa.Connection,
    item_code: str,
    since: dt.date,
    until: dt.date,
    zone_tz: dt.tzinfo | str | None,
) -> dict[str, tuple[int, int]]:
    """{street: (done_on_time, assigned)} for the item's tasks whose deadline falls in
    [since, until] (local dates in `zone_tz`). Done on time: done_at ≤ deadline. A street
    with no task is absent (the scheme's rule gives it the item's max)."""
    start, end = window(since, until, zone_tz)
    t = evaluation_tasks.c
    rows = conn.execute(
        sa.select(
            t.street_code,
            sa.func.count().filter(t.done_at <= t.deadline),
            sa.func.count(),
        )
        .where(t.item_code == item_code, t.deadline >= start, t.deadline < end)
        .group_by(t.street_code)
    )
    return {street: (int(done), int(assigned)) for street, done, assigned in rows}
