"""Manual scores (人工评分): an assessor's points for an item its unit owns, a street and a
period, with the evidence behind them; every change audited (old → new, who, when, source).

`set_scores` checks every score first and writes nothing unless all pass (the form's single
cell, the form's "save all" and the XLSX import go through it alike). The app checks who may
score (an assessor of the item's owner unit) and says so; the database checks it again
(row-level security of migration 0022: zone '*' and `blockdata.unit` = the owner unit).
A period that has a publication may still be scored: the live result changes, the
publication never does; the answer lists the published versions so the form can warn.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from layers.cases import Actor
from layers.evaluation.scheme import Scheme, item
from layers.evaluation.tables import (
    evaluation_publications,
    evaluation_score_audit,
    evaluation_scores,
)
from layers.queries.params import ParamError

PERIOD = re.compile(r"[0-9]{4}(-(0[1-9]|1[0-2])|Q[1-4])?")
BONUS = "bonus"  # the aspect whose items are signed
MAX_EVIDENCE = 2000
HUNDREDTH = Decimal("0.01")


class InputError(ParamError):
    """A refused evaluation input (400 unless `status` says: 403 not yours, 404 unknown);
    `rejected` lists every bad row as {row, column, reason} (Chinese)."""


@dataclass(frozen=True)
class Rejection:
    row: int | None  # the file's row number (1 = the header), None for a single score
    column: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "reason": self.reason}


def rejected(rows: Sequence[Rejection], what: str = "评分") -> InputError:
    """Refuse a whole input: nothing was written; every reason listed."""
    first = rows[0]
    where = f"第 {first.row} 行 " if first.row is not None else ""
    return InputError(
        f"{what}有 {len(rows)} 处错误，未写入任何数据：{where}{first.reason}"
        f" ({len(rows)} rejected, nothing written)",
        rejected=[r.as_dict() for r in rows],
    )


def check_period(period: str) -> str:
    if not isinstance(period, str) or not PERIOD.fullmatch(period):
        raise InputError(
            f"考评周期无效：{period!r}（应如 2026-11、2026Q4 或 2026）"
            " period must look like 2026-11, 2026Q4 or 2026",
            param="period",
        )
    return period


def streets(conn: sa.Connection) -> dict[str, str]:
    """Every street's code → name, in code order."""
    rows = conn.execute(sa.text("select code, name from streets order by code"))
    return {code: name for code, name in rows}


def score_range(it: Any) -> tuple[Decimal, Decimal]:
    """[0, max]; a bonus aspect's item [-max, max]."""
    top = Decimal(str(it.max))
    return (-top if it.aspect == BONUS else Decimal(0)), top


def manual_items(scheme: Scheme, unit: str | None = None) -> list[Any]:
    """The scheme's manual items (of `unit` only, when given), in the scheme's order."""
    return [it for it in scheme.items if it.rule == "manual" and (unit is None or it.owner == unit)]


def published_versions(conn: sa.Connection, scheme_code: str, period: str) -> list[int]:
    p = evaluation_publications.c
    return list(
        conn.execute(
            sa.select(p.version)
            .where(p.scheme_code == scheme_code, p.period == period)
            .order_by(p.version)
        ).scalars()
    )


def parse_points(value: object) -> Decimal | None:
    """A number (two decimals at most), or None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or number != number.quantize(HUNDREDTH):
        return None
    return number.quantize(HUNDREDTH)


@dataclass(frozen=True)
class Score:
    """One score to write: `row` is its place in a file (None for the form)."""

    item_code: str
    street: str
    points: object
    evidence: str | None
    row: int | None = None


def may_score(actor: Actor, it: Any) -> str | None:
    """Why `actor` may not score item `it`; None when it may."""
    if actor.role != "assessor":
        return f"无权评分：只有考核部门的考评员可以评分（{actor.role}） only an assessor scores"
    if it.owner != actor.unit:
        return (
            f"无权评分：考核项 {it.code} 由 {it.owner} 负责，不是本单位（{actor.unit}）"
            f" item {it.code} is owned by {it.owner}, not by your unit"
        )
    return None


def _current(
    conn: sa.Connection, scheme_code: str, period: str, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[Decimal, str | None]]:
    s = evaluation_scores.c
    wanted = set(keys)
    if not wanted:
        return {}
    rows = conn.execute(
        sa.select(s.item_code, s.street_code, s.points, s.evidence)
        .where(
            s.scheme_code == scheme_code,
            s.period == period,
            s.item_code.in_(sorted({k[0] for k in wanted})),
        )
        .with_for_update()
    )
    return {(r[0], r[1]): (r[2], r[3]) for r in rows if (r[0], r[1]) in wanted}


def _check(
    score: Score,
    scheme: Scheme,
    actor: Actor,
    known: Mapping[str, str],
    columns: Mapping[str, str],
) -> tuple[Any, Decimal] | Rejection:
    """The item and the points of a good score, or why it is refused."""

    def no(column: str, reason: str) -> Rejection:
        return Rejection(score.row, columns.get(column), reason)

    if score.street not in known:
        return no("street", f"未知街道：{score.street!r} unknown street")
    try:
        it = item(scheme, score.item_code)
    except (KeyError, ValueError):
        return no("item", f"未知考核项：{score.item_code!r} unknown item")
    if it.rule != "manual":
        return no(
            "item",
            f"考核项 {it.code} 按规则（{it.rule}）计算，不能手工评分 not a manual item",
        )
    refusal = may_score(actor, it)
    if refusal is not None:
        return no("item", refusal)
    points = parse_points(score.points)
    if points is None:
        return no(
            "points", f"得分不是数字（至多两位小数）：{score.points!r} the score is not a number"
        )
    low, high = score_range(it)
    if not low <= points <= high:
        return no(
            "points",
            f"得分 {points} 超出范围 [{low}, {high}] score out of range",
        )
    if score.evidence is not None and len(score.evidence) > MAX_EVIDENCE:
        return no("evidence", f"依据说明过长（至多 {MAX_EVIDENCE} 字） evidence too long")
    return it, points


COLUMNS = {"street": "street", "item": "item", "points": "points", "evidence": "evidence"}


def set_scores(
    conn: sa.Connection,
    scheme: Scheme,
    period: str,
    scores: Sequence[Score],
    actor: Actor,
    now: dt.datetime,
    source: str,
    columns: Mapping[str, str] = COLUMNS,
    what: str = "评分",
) -> dict[str, Any]:
    """Write `scores` (each: upsert + an audit row) or none of them.

    Refused (InputError, every reason listed, nothing written): an unknown street or item, an
    item that is not manual or not the actor's unit's (403 when every refusal is that), points
    that are not a number or out of range, a changed score without evidence, the same
    (item, street) twice. A score equal to the stored one (points and evidence) is left as it
    is. `columns` names the fields in the reasons (a file's headers)."""
    check_period(period)
    if actor.role != "assessor" or not actor.unit:
        raise InputError(
            f"无权评分：只有考核部门的考评员可以评分（{actor.role}） only an assessor scores",
            status=403,
        )
    known = streets(conn)
    good: list[tuple[Score, Any, Decimal]] = []
    bad: list[Rejection] = []
    seen: dict[tuple[str, str], int | None] = {}
    forbidden = 0
    for score in scores:
        key = (score.item_code, score.street)
        if key in seen:
            first = seen[key]
            bad.append(
                Rejection(
                    score.row,
                    columns.get("item"),
                    f"重复：同一街道、同一考核项已在第 {first} 行 duplicate row"
                    if first is not None
                    else "重复的评分 duplicate score",
                )
            )
            continue
        seen[key] = score.row
        checked = _check(score, scheme, actor, known, columns)
        if isinstance(checked, Rejection):
            bad.append(checked)
            forbidden += checked.reason.startswith("无权")
            continue
        good.append((score, *checked))
    current = _current(conn, scheme.code, period, [(s.item_code, s.street) for s, _, _ in good])
    writes = []
    for score, it, points in good:
        old = current.get((score.item_code, score.street))
        evidence = (score.evidence or "").strip() or None
        if old is not None and old[0] == points and (evidence is None or evidence == old[1]):
            continue  # unchanged (an empty evidence keeps the stored one)
        if (old is None or old[0] != points) and evidence is None:
            bad.append(
                Rejection(
                    score.row,
                    columns.get("evidence"),
                    "得分有变动，须填写依据说明 evidence is required when the score changes",
                )
            )
            continue
        writes.append((score, it, points, evidence, old))
    if bad:
        error = rejected(sorted(bad, key=lambda r: r.row or 0), what)
        if forbidden == len(bad):
            error.status = 403
        raise error
    s = evaluation_scores.c
    written = []
    for score, it, points, evidence, old in writes:
        ids = {
            "scheme_code": scheme.code,
            "period": period,
            "item_code": it.code,
            "street_code": score.street,
            "owner_unit": it.owner,
        }
        row = {**ids, "points": points, "evidence": evidence, "scored_by": actor.name}
        if old is None:
            conn.execute(sa.insert(evaluation_scores).values(**row, scored_at=now))
        else:
            conn.execute(
                sa.update(evaluation_scores)
                .where(
                    s.scheme_code == scheme.code,
                    s.period == period,
                    s.item_code == it.code,
                    s.street_code == score.street,
                )
                .values(points=points, evidence=evidence, scored_by=actor.name, scored_at=now)
            )
        conn.execute(
            sa.insert(evaluation_score_audit).values(
                **ids,
                old_points=None if old is None else old[0],
                new_points=points,
                old_evidence=None if old is None else old[1],
                new_evidence=evidence,
                changed_by=actor.name,
                changed_at=now,
                source=source,
            )
        )
        written.append(
            {
                "item": it.code,
                "street": score.street,
                "points": float(points),
                "old_points": None if old is None else float(old[0]),
                "evidence": evidence,
            }
        )
    return {
        "period": period,
        "written": written,
        "unchanged": len(good) - len(writes),
        "published_versions": published_versions(conn, scheme.code, period),
    }


def set_score(
    conn: sa.Connection,
    scheme: Scheme,
    period: str,
    item_code: str,
    street: str,
    points: object,
    evidence: str | None,
    actor: Actor,
    now: dt.datetime,
    source: str,
) -> dict[str, Any]:
    """One score (see `set_scores`): {period, written: [the change] or [], unchanged,
    published_versions}."""
    return set_scores(
        conn,
        scheme,
        period,
        [Score(item_code, street, points, evidence)],
        actor,
        now,
        source,
    )


def scores(
    conn: sa.Connection,
    scheme: Scheme,
    period: str,
    unit: str | None = None,
    item_code: str | None = None,
    street: str | None = None,
) -> dict[str, Any]:
    """The form's grid: the manual items (of `unit` when given), every street, the stored
    scores, the published versions of the period."""
    check_period(period)
    items = manual_items(scheme, unit)
    if item_code is not None:
        items = [it for it in items if it.code == item_code]
    known = streets(conn)
    if street is not None:
        known = {c: n for c, n in known.items() if c == street}
    s = evaluation_scores.c
    rows = conn.execute(
        sa.select(s.item_code, s.street_code, s.points, s.evidence, s.scored_by, s.scored_at)
        .where(
            s.scheme_code == scheme.code,
            s.period == period,
            s.item_code.in_([it.code for it in items]),
            s.street_code.in_(list(known)),
        )
        .order_by(s.item_code, s.street_code)
    )
    return {
        "scheme": {"code": scheme.code, "version": scheme.version, "name": scheme.name},
        "period": period,
        "items": [
            {
                "code": it.code,
                "name": it.name,
                "aspect": it.aspect,
                "owner": it.owner,
                "min": float(score_range(it)[0]),
                "max": float(score_range(it)[1]),
            }
            for it in items
        ],
        "streets": [{"code": c, "name": n} for c, n in known.items()],
        "scores": [
            {
                "item": r.item_code,
                "street": r.street_code,
                "points": float(r.points),
                "evidence": r.evidence,
                "scored_by": r.scored_by,
                "scored_at": r.scored_at.isoformat(),
            }
            for r in rows
        ],
        "published_versions": published_versions(conn, scheme.code, period),
    }


def audit(
    conn: sa.Connection,
    scheme_code: str,
    period: str,
    item_code: str | None = None,
    street: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """The score audit of a period, newest first."""
    check_period(period)
    a = evaluation_score_audit.c
    query = sa.select(evaluation_score_audit).where(
        a.scheme_code == scheme_code, a.period == period
    )
    if item_code is not None:
        query = query.where(a.item_code == item_code)
    if street is not None:
        query = query.where(a.street_code == street)
    rows = conn.execute(query.order_by(a.changed_at.desc(), a.id.desc()).limit(limit))

    def num(value: Decimal | None) -> float | None:
        return None if value is None else float(value)

    return [
        {
            "item": r.item_code,
            "street": r.street_code,
            "owner": r.owner_unit,
            "old_points": num(r.old_points),
            "new_points": num(r.new_points),
            "old_evidence": r.old_evidence,
            "new_evidence": r.new_evidence,
            "changed_by": r.changed_by,
            "changed_at": r.changed_at.isoformat(),
            "source": r.source,
        }
        for r in rows
    ]


def record_event(
    conn: sa.Connection,
    scheme: Scheme,
    item_code: str,
    street: str,
    occurred_at: dt.datetime,
    note: str | None,
    actor: Actor,
    now: dt.datetime,
) -> int:
    """One event of a "points per event" item (its owner unit's assessor only)."""
    from layers.evaluation.tables import evaluation_events

    try:
        it = item(scheme, item_code)
    except (KeyError, ValueError):
        raise InputError(f"未知考核项：{item_code!r} unknown item", status=404) from None
    if it.rule != "per_event":
        raise InputError(f"考核项 {item_code} 不按事件计分 not a per-event item")
    refusal = may_score(actor, it)
    if refusal is not None:
        raise InputError(refusal.replace("无权评分", "无权记录"), status=403)
    if street not in streets(conn):
        raise InputError(f"未知街道：{street!r} unknown street", param="street")
    if occurred_at > now:
        raise InputError("发生时间不能晚于现在 occurred_at is in the future")
    return int(
        conn.execute(
            sa.insert(evaluation_events)
            .values(
                scheme_code=scheme.code,
                item_code=it.code,
                street_code=street,
                owner_unit=it.owner,
                occurred_at=occurred_at,
                note=(note or "").strip()[:MAX_EVIDENCE] or None,
                recorded_by=actor.name,
                recorded_at=now,
            )
            .returning(evaluation_events.c.id)
        ).scalar_one()
    )
