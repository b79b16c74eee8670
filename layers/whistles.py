"""吹哨报到 (whistles): a street summons units to a case or a place, they report, it rates them.

A commander, the district or the street centre's clerk "blows the whistle" on a case or on a
place of its street (a relocation target, an illegal structure, a lane): it summons several
units — district departments, stations, its own departments — with a meeting point and a
time. Each summoned unit reports its arrival (报到) and its completion; how late it came is
kept (`arrival_delay`). Once a unit has completed, the street rates it (满意 / 基本满意 /
不满意, with a comment): the ratings and delays are what the departments' evaluation is made
of (the next step, 考评).

Writes go through the functions here, in the caller's transaction, as the reader in the
caller's zone: row-level security (migration 0017) confines a commander to their street's
whistles, as it does for cases. A refusal is `Refused` (layers.cases): 409 for a move the
whistle's state forbids, 403 for a role or unit that may not, 400 for a bad value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry

from layers.cases.machine import RATINGS, Refused
from layers.cases.store import Actor
from layers.cases.tables import cases
from layers.registry import metadata
from layers.units import CODE_LENGTH, units

# What a whistle is blown on: a case, or a place of the street.
TARGETS = {
    "case": "案件",
    "relocation_target": "疏解目标",
    "illegal_structure": "违法建设",
    "lane": "街巷",
}
BLOWERS = ("district", "commander", "clerk")  # who may blow a whistle and rate the units
REPORTERS = ("department",)  # a unit's user reports for its own unit; the blowers may too
MAX_UNITS = 20
MAX_TEXT = 500

whistles = sa.Table(
    "whistles",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("street_code", sa.String(9), sa.ForeignKey("streets.code"), nullable=False),
    sa.Column("target_kind", sa.Text, nullable=False),
    sa.Column("case_id", sa.BigInteger, sa.ForeignKey("cases.id")),
    sa.Column("target_ref", sa.Text),  # the place's id or code (a target's id, a lane's code)
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("meeting_point", sa.Text, nullable=False),
    sa.Column("meeting_geom", Geometry("POINT", srid=4326, spatial_index=False)),
    sa.Column("meet_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("blown_by", sa.Text),
    sa.Column("blown_role", sa.Text, nullable=False),
    sa.Column("blown_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(
        "target_kind in ('case', 'relocation_target', 'illegal_structure', 'lane')",
        name="target_kind",
    ),
    sa.CheckConstraint(
        "(target_kind = 'case') = (case_id is not null) and "
        "(target_kind = 'case' or target_ref is not null)",
        name="target",
    ),
    sa.Index("ix_whistles_street_code", "street_code", "meet_at"),
)

whistle_units = sa.Table(
    "whistle_units",
    metadata,
    sa.Column("whistle_id", sa.BigInteger, sa.ForeignKey("whistles.id"), primary_key=True),
    sa.Column("unit_code", sa.String(CODE_LENGTH), sa.ForeignKey("units.code"), primary_key=True),
    sa.Column("street_code", sa.String(9), sa.ForeignKey("streets.code"), nullable=False),
    sa.Column("arrived_at", sa.DateTime(timezone=True)),
    sa.Column("arrived_by", sa.Text),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("completed_by", sa.Text),
    sa.Column("completion_note", sa.Text),
    sa.Column("rating", sa.Text),
    sa.Column("rating_comment", sa.Text),
    sa.Column("rated_by", sa.Text),
    sa.Column("rated_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("rating in ('满意', '基本满意', '不满意')", name="rating"),
    sa.CheckConstraint("completed_at is null or arrived_at is not null", name="arrive_first"),
    sa.CheckConstraint("rating is null or completed_at is not null", name="rate_after"),
    sa.Index("ix_whistle_units_unit_code", "unit_code"),
)


def _bad(message: str, name: str) -> Refused:
    return Refused(400, message, field=name)


def _text(value: Any, name: str, label: str, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _bad(f"缺少{label} ({name} is required)", name)
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT or "\x00" in value:
        raise _bad(f"{label}无效 ({name}: text of at most {MAX_TEXT} characters)", name)
    return value.strip()


def _aware(value: Any, name: str, label: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise _bad(f"{label}应为带时区的时间 ({name}: an aware date-time)", name)
    return value


@dataclass(frozen=True)
class Place:
    """What the whistle is blown on: a case (`case_id`) or a place (`kind`, `ref`)."""

    kind: str
    case_id: int | None = None
    ref: str | None = None


def blow(
    conn: sa.Connection,
    *,
    street: str,
    target: Place,
    unit_codes: Sequence[str],
    reason: str,
    meeting_point: str,
    meet_at: dt.datetime,
    actor: Actor,
    now: dt.datetime,
    lng: float | None = None,
    lat: float | None = None,
) -> int:
    """Blow the whistle: summon `unit_codes` to `meeting_point` at `meet_at`; its id."""
    if actor.role not in BLOWERS:
        raise Refused(403, f"该角色不能吹哨 (role {actor.role!r} may not blow a whistle)")
    if target.kind not in TARGETS:
        raise _bad(f"吹哨对象无效 (target must be one of {', '.join(TARGETS)})", "target_kind")
    if (target.kind == "case") != (target.case_id is not None):
        raise _bad("案件吹哨须指明案件，地点吹哨须指明地点 (case_id xor a place)", "target")
    ref = None if target.kind == "case" else _text(target.ref, "target_ref", "吹哨地点")
    codes = list(dict.fromkeys(unit_codes))
    if not codes or len(codes) > MAX_UNITS:
        raise _bad(f"须召集 1 至 {MAX_UNITS} 个单位 (1 to {MAX_UNITS} units)", "units")
    known = set(
        conn.execute(
            sa.select(units.c.code).where(units.c.code.in_(codes), units.c.active)
        ).scalars()
    )
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise _bad(f"未知或已停用的单位 (unknown or inactive units): {unknown}", "units")
    if target.kind == "case":
        found = conn.execute(
            sa.select(cases.c.street_code).where(cases.c.id == target.case_id)
        ).first()
        if found is None:  # none, or not in the caller's zone
            raise Refused(404, f"没有该案件 (no such case): {target.case_id}", field="case_id")
        if found.street_code != street:
            raise _bad("案件不在该街道 (the case is in another street)", "street")
    geom = None
    if lng is not None and lat is not None:
        geom = sa.func.ST_SetSRID(sa.func.ST_MakePoint(lng, lat), 4326)
    try:
        whistle_id = conn.execute(
            sa.insert(whistles)
            .values(
                street_code=street,
                target_kind=target.kind,
                case_id=target.case_id,
                target_ref=ref,
                reason=_text(reason, "reason", "吹哨事由"),
                meeting_point=_text(meeting_point, "meeting_point", "集合地点"),
                meeting_geom=geom,
                meet_at=_aware(meet_at, "meet_at", "集合时间"),
                blown_by=actor.name,
                blown_role=actor.role,
                blown_at=now,
            )
            .returning(whistles.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(whistle_units),
            [{"whistle_id": whistle_id, "unit_code": c, "street_code": street} for c in codes],
        )
    except sa.exc.ProgrammingError as exc:  # row-level security: another street's whistle
        raise Refused(403, f"不能在其他街道吹哨 (not your street): {street}") from exc
    return int(whistle_id)


def _summoned(conn: sa.Connection, whistle_id: int, unit: str) -> sa.RowMapping:
    row = (
        conn.execute(
            sa.select(whistle_units, whistles.c.meet_at)
            .join(whistles, whistles.c.id == whistle_units.c.whistle_id)
            .where(whistle_units.c.whistle_id == whistle_id, whistle_units.c.unit_code == unit)
            .with_for_update(of=whistle_units)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise Refused(404, f"该单位未被此哨召集 (unit {unit!r} is not summoned by {whistle_id})")
    return row


def _may_report(actor: Actor, unit: str) -> None:
    if actor.role in BLOWERS:
        return
    if actor.role in REPORTERS and actor.unit == unit:
        return
    raise Refused(403, f"只能为本单位报到 (only for your own unit, not {unit!r})")


def report_arrival(
    conn: sa.Connection, whistle_id: int, unit: str, actor: Actor, now: dt.datetime
) -> dt.timedelta:
    """报到: the unit has arrived; how late it came (zero or more)."""
    _may_report(actor, unit)
    row = _summoned(conn, whistle_id, unit)
    if row["arrived_at"] is not None:
        raise Refused(409, f"已报到 (already arrived at {row['arrived_at'].isoformat()})")
    conn.execute(
        sa.update(whistle_units)
        .where(whistle_units.c.whistle_id == whistle_id, whistle_units.c.unit_code == unit)
        .values(arrived_at=now, arrived_by=actor.name)
    )
    return max(now - row["meet_at"], dt.timedelta(0))


def report_completion(
    conn: sa.Connection,
    whistle_id: int,
    unit: str,
    actor: Actor,
    now: dt.datetime,
    note: str | None = None,
) -> None:
    """The unit has done its part."""
    _may_report(actor, unit)
    row = _summoned(conn, whistle_id, unit)
    if row["arrived_at"] is None:
        raise Refused(409, "尚未报到，不能办结 (report the arrival first)")
    if row["completed_at"] is not None:
        raise Refused(409, "已办结 (already completed)")
    conn.execute(
        sa.update(whistle_units)
        .where(whistle_units.c.whistle_id == whistle_id, whistle_units.c.unit_code == unit)
        .values(
            completed_at=now,
            completed_by=actor.name,
            completion_note=_text(note, "note", "办结说明", required=False),
        )
    )


def rate(
    conn: sa.Connection,
    whistle_id: int,
    unit: str,
    rating: str,
    actor: Actor,
    now: dt.datetime,
    comment: str | None = None,
) -> None:
    """The street rates a unit that has completed: 满意 / 基本满意 / 不满意."""
    if actor.role not in BLOWERS:
        raise Refused(403, f"该角色不能评价 (role {actor.role!r} may not rate)")
    if rating not in RATINGS:
        raise _bad(f"评价只能是 {' / '.join(RATINGS)} (rating)", "rating")
    row = _summoned(conn, whistle_id, unit)
    if row["completed_at"] is None:
        raise Refused(409, "单位尚未办结，不能评价 (rate after completion)")
    if row["rating"] is not None:
        raise Refused(409, f"已评价 (already rated {row['rating']})")
    conn.execute(
        sa.update(whistle_units)
        .where(whistle_units.c.whistle_id == whistle_id, whistle_units.c.unit_code == unit)
        .values(
            rating=rating,
            rating_comment=_text(comment, "comment", "评价意见", required=False),
            rated_by=actor.name,
            rated_at=now,
        )
    )


def in_progress(
    conn: sa.Connection, street: str | None = None, to_rate: bool = False
) -> list[dict[str, Any]]:
    """The whistles of the caller's zone (or of `street`) with a unit still to complete —
    with `to_rate`, or still to rate (a unit is rated after it completes) — soonest meeting
    first, each with its units' arrival, delay, completion and rating."""
    w, u = whistles, whistle_units
    waiting = u.c.rating.is_(None) if to_rate else u.c.completed_at.is_(None)
    open_ids = sa.select(u.c.whistle_id).where(waiting)
    query = sa.select(w).where(w.c.id.in_(open_ids)).order_by(w.c.meet_at, w.c.id)
    if street is not None:
        query = query.where(w.c.street_code == street)
    found = [dict(r) for r in conn.execute(query).mappings()]
    for row in found:
        row.pop("meeting_geom", None)
        row["units"] = summoned(conn, row["id"])
    return found


def summoned(conn: sa.Connection, whistle_id: int) -> list[dict[str, Any]]:
    """The units a whistle summoned, with their arrival delay (None until they arrive)."""
    u, w = whistle_units, whistles
    delay = sa.func.greatest(u.c.arrived_at - w.c.meet_at, sa.text("interval '0'"))
    rows = conn.execute(
        sa.select(u, units.c.name.label("unit_name"), delay.label("arrival_delay"))
        .join(w, w.c.id == u.c.whistle_id)
        .join(units, units.c.code == u.c.unit_code)
        .where(u.c.whistle_id == whistle_id)
        .order_by(u.c.unit_code)
    ).mappings()
    return [dict(r) for r in rows]


def unit_record(
    conn: sa.Connection, since: dt.datetime, until: dt.datetime, codes: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Per unit, over whistles met in [since, until): times summoned, arrived, completed,
    the median and the worst arrival delay in minutes, and the ratings — the raw material of
    the departments' evaluation."""
    u, w = whistle_units, whistles
    minutes = sa.func.extract("epoch", u.c.arrived_at - w.c.meet_at) / 60.0
    late = sa.func.greatest(minutes, 0.0)
    query = (
        sa.select(
            u.c.unit_code,
            sa.func.count().label("summoned"),
            sa.func.count(u.c.arrived_at).label("arrived"),
            sa.func.count(u.c.completed_at).label("completed"),
            sa.func.percentile_cont(0.5).within_group(late).label("median_delay_minutes"),
            sa.func.max(late).label("max_delay_minutes"),
            *(
                sa.func.count().filter(u.c.rating == r).label(f"rated_{i}")
                for i, r in enumerate(RATINGS)
            ),
        )
        .join(w, w.c.id == u.c.whistle_id)
        .where(w.c.meet_at >= since, w.c.meet_at < until)
        .group_by(u.c.unit_code)
        .order_by(u.c.unit_code)
    )
    if codes is not None:
        query = query.where(u.c.unit_code.in_(list(codes)))
    out = []
    for r in conn.execute(query).mappings():
        row = {k: v for k, v in r.items() if not k.startswith("rated_")}
        row["ratings"] = {rating: r[f"rated_{i}"] for i, rating in enumerate(RATINGS)}
        out.append(row)
    return out
