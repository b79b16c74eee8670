"""The demo's living district (活的街区): what an extract does not carry, added to the loaded
cases through the write path.

An extract gives a case its dispatch, acceptance, resolution and callback (the load replays
them). It does not say which cases a unit sent back (退单), which asked for more time (延期),
which a leader supervised (督办), which an unsatisfied caller had reopened (重办), nor whom a
street summoned (吹哨报到). `enliven` adds these to the cases as they stand in the database, each
step a transition of `layers.cases.store` (a history row; the state machine's rules hold) or a
call of `layers.whistles`, at a time after the case's last step and not after `now`:

- 退单: about RETURN_SHARE of the cases the units hold (dispatched, accepted, contacted) are
  returned with a reason. A unit returns a case before it contacts anyone, so the returns fall
  on those not yet contacted (`return_chance`). The centre re-dispatches most to another unit
  of the same kind (of the same street, or another district department), which accepts.
- 延期: about EXTEND_SHARE of the cases being worked (accepted, contacted) ask for 3 or 5 more
  working days; most are approved, some refused, a few still wait for the centre.
- 重办: about REOPEN_SHARE of the cases called back unsatisfied (不满意) in the last
  REOPEN_WITHIN and not yet closed are reopened to the same unit, which accepts again.
- 督办: about SUPERVISE_SHARE of the open cases past their due time are supervised by the
  street's commander, with a note.
- 吹哨报到: about WHISTLE_SHARE of the joint enforcement cases (联合执法) and of the relocation
  targets under way or done summon the units concerned — the case's agencies and district
  departments — to the place; each unit arrives (most on time, some late), completes, and the
  street rates it (满意 / 基本满意 / 不满意, with a comment; the later a unit came, the worse).
  About LIVE_SHARE of the whistles on open cases and targets under way are today's: some units
  have not arrived or completed yet.

The history is append-only, so a closed case stays as its extract left it: a return can only
be added to a case a unit still holds. The shares are of the cases that can still take the
step (the returns': of the cases held).

Every decision and time of a case is drawn from a generator seeded by `seed` and the case's
source (its extract's number), so the same database and seed give the same result whatever
order the rows were loaded in; and a case that already took a step of a kind (or a target, a
case that has a whistle) is not given another, so running it again at the same `now` adds
nothing; after a later load it adds what the new cases and states call for.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import sqlalchemy as sa

from etl.rules import TimeLimits, extend_due, load_time_limits
from layers.cases.machine import OPEN_STATES, RATINGS, UNSATISFIED
from layers.cases.store import Actor, transition
from layers.whistles import Place, blow, rate, report_arrival, report_completion

RETURN_SHARE = 0.03
EXTEND_SHARE = 0.02
APPROVE_SHARE = 0.75  # of the extensions asked; REFUSE_SHARE refused, the rest still pending
REFUSE_SHARE = 0.15
REOPEN_SHARE = 0.5
REOPEN_WITHIN = dt.timedelta(days=7)  # an unsatisfied callback older than this is left alone
SUPERVISE_SHARE = 0.15
WHISTLE_SHARE = 0.25
LIVE_SHARE = 0.15
MIN_GAP = dt.timedelta(minutes=10)  # a step needs this much time after the last one
HOUR = dt.timedelta(hours=1)

RETURN_REASONS = (
    "不属于本单位职责范围，请改派",
    "诉求涉及产权单位，非本单位管辖",
    "诉求人联系方式有误，无法核实",
    "需其他部门主办，本单位可协办",
)
EXTEND_REASONS = (
    "需协调产权单位，申请延期",
    "涉及施工，等待材料到场",
    "诉求人暂不在京，约定返京后处理",
    "需多部门联合处置，时间较长",
)
REFUSE_NOTE = "延期理由不充分，请按原时限办结"
SUPERVISE_NOTES = (
    "已超期，请于24小时内办结并反馈",
    "群众反映强烈，请主要负责人亲自督办",
    "请加快办理，今日下班前报告进展",
)
REOPEN_NOTE = "回访不满意，重新办理"
COMPLETION_NOTES = ("已完成现场处置", "已依职责完成查处", "已配合完成清理整治")
RATING_COMMENTS = {
    "满意": ("到场及时，配合有力", "响应迅速，问题当场解决"),
    "基本满意": ("到场稍晚，处置基本到位", "配合尚可，后续需跟进"),
    "不满意": ("迟到较久，影响联合执法", "到场后推诿，问题未解决"),
}

# The agencies of an enforcement case (as the extract names them) → their unit; `{street}`
# is the case's street.
AGENCY_UNITS = {
    "城管执法队": "{street}-enforcement",
    "市场监管所": "{street}-market",
    "派出所": "{street}-police",
    "消防救援站": "district-fire",
    "消防救援支队": "district-fire",
    "交通支队": "district-traffic",
    "生态环境局": "district-ecology",
}
# A case type → the district department a joint enforcement summons.
CASE_TYPE_DEPARTMENTS = {
    "占道经营": "district-enforcement",
    "违法建设": "district-housing",
    "无照经营": "district-market",
    "消防隐患": "district-fire",
    "违规停车": "district-traffic",
    "噪声污染": "district-ecology",
    "渣土运输": "district-city-management",
    "违规户外广告": "district-city-management",
    "食品安全": "district-market",
    "群租房": "district-housing-admin",
}
DEFAULT_DEPARTMENT = "district-city-management"
# A relocation target's kind → the district departments its clearing summons; the street's
# development department (疏解 is its work) and enforcement team come too.
TARGET_DEPARTMENTS = {
    "物流仓储": ("district-commerce", "district-fire"),
    "违法建设": ("district-enforcement", "district-housing"),
    "低端业态": ("district-market", "district-commerce"),
    "地下空间": ("district-housing-admin", "district-fire"),
    "商品交易市场": ("district-market", "district-commerce", "district-fire"),
}
TARGET_STREET_UNITS = ("{street}-development", "{street}-enforcement")
TARGETS_UNDER_WAY = ("进行中",)
TARGETS_DONE = ("已完成", "已验收")

CLERK = Actor("clerk", "clerk")  # the demo's centre clerk dispatches, approves, reopens
HELD = ("dispatched", "accepted", "contacted", "returned")  # with a unit, or back from one
RETURNABLE = ("dispatched", "accepted")  # the machine's: a unit returns before contacting
MAX_RETURN_CHANCE = 0.9


@dataclass
class Life:
    """What `enliven` added: steps per kind, whistles, and how long it took."""

    returned: int = 0
    redispatched: int = 0
    extended: int = 0
    approved: int = 0
    refused: int = 0
    reopened: int = 0
    supervised: int = 0
    transitions: int = 0
    whistles: int = 0
    in_progress: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"案件动态 case life: returned {self.returned} (re-dispatched {self.redispatched}), "
            f"extended {self.extended} (approved {self.approved}, refused {self.refused}), "
            f"reopened {self.reopened}, supervised {self.supervised}; "
            f"{self.transitions} transitions",
            f"吹哨报到 whistles: {self.whistles} ({self.in_progress} in progress) "
            f"in {self.seconds:.1f} s",
        ]


class _Clock:
    """The times of one case's or whistle's steps, drawn from its own generator."""

    def __init__(self, rng: random.Random, now: dt.datetime) -> None:
        self.rng = rng
        self.now = now

    def delay(self, median_hours: float, sigma: float = 0.8) -> dt.timedelta:
        return dt.timedelta(hours=median_hours * self.rng.lognormvariate(0.0, sigma))

    def within(self, last: dt.datetime, median_hours: float) -> dt.datetime | None:
        """A step after `last`: a usual delay, or somewhere before now when that is later;
        None when there is no room left before now."""
        delay = self.delay(median_hours)
        room = self.now - last
        if room < MIN_GAP:
            return None
        if delay >= room - MIN_GAP / 2:
            delay = room * self.rng.uniform(0.1, 0.9)
        return _second(last + max(delay, MIN_GAP / 2))

    def then(self, last: dt.datetime, median_hours: float) -> dt.datetime | None:
        """The next step after `last` with a usual delay, None if that is after now."""
        at = _second(last + max(self.delay(median_hours), MIN_GAP / 2))
        return at if at <= self.now else None


def _second(at: dt.datetime) -> dt.datetime:
    return at.replace(microsecond=0) + dt.timedelta(seconds=1)


def _rng(
    seed: int, salt: str, source: str | None, source_id: str | None, fallback: int
) -> random.Random:
    """The generator of one case (target) for one kind of decision."""
    key = f"{source}\x1f{source_id}" if source_id is not None else f"#{fallback}"
    return random.Random(f"{seed}\x1f{salt}\x1f{key}")


class _Units:
    """The active units by code, and by (kind, street) for re-dispatching."""

    def __init__(self, conn: sa.Connection) -> None:
        rows = conn.execute(
            sa.text("select code, kind, street_code from units where active order by code")
        ).all()
        self.kind = {r.code: (r.kind, r.street_code) for r in rows}
        self.by_kind: dict[tuple[str, str | None], list[str]] = {}
        for r in rows:
            self.by_kind.setdefault((r.kind, r.street_code), []).append(r.code)

    def other(self, code: str, rng: random.Random) -> str | None:
        """Another unit of `code`'s kind and street (another district department)."""
        if code not in self.kind:
            return None
        choices = [c for c in self.by_kind[self.kind[code]] if c != code]
        return rng.choice(choices) if choices else None

    def known(self, codes: Iterable[str]) -> list[str]:
        return [c for c in dict.fromkeys(codes) if c in self.kind]

    def is_district(self, code: str) -> bool:
        return self.kind.get(code, ("", None))[0] == "district_department"


def _leader(street: str | None) -> Actor:
    return Actor(f"commander-{street}", "commander") if street else Actor("district", "district")


class _Case:
    """One case's row as `enliven` follows it while adding steps."""

    def __init__(self, row: Mapping[Any, Any], life: Life, conn: sa.Connection) -> None:
        self.id = int(row["id"])
        self.row = dict(row)
        self.last: dt.datetime = row["last_at"] or row["received_at"]
        self.actions = set(row["actions"] or ())
        self.life = life
        self.conn = conn

    def __getitem__(self, name: str) -> Any:
        return self.row[name]

    def step(
        self,
        action: str,
        actor: Actor,
        at: dt.datetime,
        fields: Mapping[Any, Any] | None = None,
        *,
        note: str | None = None,
        limits: TimeLimits,
        zone: str,
    ) -> None:
        updated = transition(
            self.conn,
            self.id,
            action,
            self.row["version"],
            actor,
            fields or {},
            at,
            note=note,
            limits=limits,
            zone=zone,
        )
        self.row.update(updated)
        self.last = at
        self.actions.add(action)
        self.life.transitions += 1


_CASES = sa.text(
    """
    select c.id, c.version, c.state, c.street_code, c.category, c.main_unit,
           c.assisting_units, c.due_at, c.received_at, c.rating, c.extension_due_at,
           c.supervised, coalesce(s.source, e.source) as source,
           coalesce(s.source_id, e.source_id) as source_id, h.last_at, h.actions
    from cases c
    left join service_requests s on s.id = c.service_request_id
    left join enforcement_cases e on e.id = c.enforcement_case_id
    cross join lateral (
        select max(at) as last_at, array_agg(distinct action) as actions
        from case_history where case_id = c.id
    ) h
    where c.state = any(:held)
       or (c.state = 'called_back' and c.rating = :unsatisfied and c.called_back_at >= :since)
    order by c.id
    """
)


def _reopen(case: _Case, clock: _Clock, u: float, limits: TimeLimits, zone: str) -> None:
    """(The query brings only the callbacks of the last REOPEN_WITHIN.)"""
    if not (case["state"] == "called_back" and case["rating"] == UNSATISFIED):
        return
    if u >= REOPEN_SHARE or case["main_unit"] is None:
        return
    at = clock.within(case.last, 20.0)
    if at is None:
        return
    case.step("reopen", CLERK, at, note=REOPEN_NOTE, limits=limits, zone=zone)
    case.life.reopened += 1
    accepted = clock.then(at, 1.5)
    if accepted is not None:
        unit = Actor(None, "department", case["main_unit"])
        case.step("accept", unit, accepted, limits=limits, zone=zone)


def _return(case: _Case, clock: _Clock, units: _Units, limits: TimeLimits, zone: str) -> None:
    main = case["main_unit"]
    at = clock.within(case.last, 3.0)
    if at is None or main is None:
        return
    reason = clock.rng.choice(RETURN_REASONS)
    unit = Actor(None, "department", main)
    case.step("return", unit, at, {"reason": reason}, limits=limits, zone=zone)
    case.life.returned += 1
    other = units.other(main, clock.rng)
    again = clock.then(at, 1.5)
    if other is None or again is None:
        return  # waits in the centre's queue
    assisting = [u for u in units.known(case["assisting_units"] or ()) if u != other]
    fields = {"main_unit": other, "assisting_units": assisting}
    case.step("redispatch", CLERK, again, fields, limits=limits, zone=zone)
    case.life.redispatched += 1
    accepted = clock.then(again, 1.0)
    if accepted is not None:
        case.step("accept", Actor(None, "department", other), accepted, limits=limits, zone=zone)


def _extend(case: _Case, clock: _Clock, limits: TimeLimits, zone: str) -> None:
    at = clock.within(case.last, 24.0)
    if at is None or case["due_at"] is None:
        return
    days = clock.rng.choice((3, 5))
    current = pa.array([case["due_at"]], pa.timestamp("us", tz="UTC"))
    asked = extend_due(current, days, "workdays", zone).at[0].as_py()
    unit = Actor(None, "department", case["main_unit"])
    reason = clock.rng.choice(EXTEND_REASONS)
    case.step("extend", unit, at, {"due_at": asked}, note=reason, limits=limits, zone=zone)
    case.life.extended += 1
    fate = clock.rng.random()
    decided = clock.then(at, 4.0)
    if decided is None or fate >= APPROVE_SHARE + REFUSE_SHARE:
        return  # still waiting for the centre
    if fate < APPROVE_SHARE:
        case.step("approve_extension", CLERK, decided, limits=limits, zone=zone)
        case.life.approved += 1
    else:
        case.step("refuse_extension", CLERK, decided, note=REFUSE_NOTE, limits=limits, zone=zone)
        case.life.refused += 1


def _supervise(case: _Case, clock: _Clock, u: float, limits: TimeLimits, zone: str) -> None:
    due = case["due_at"]
    if case["state"] not in OPEN_STATES or case["supervised"] or due is None or due >= clock.now:
        return
    if u >= SUPERVISE_SHARE:
        return
    at = clock.within(max(case.last, due), 12.0)
    if at is None:
        return
    note = clock.rng.choice(SUPERVISE_NOTES)
    leader = _leader(case["street_code"])
    case.step("supervise", leader, at, {"note": note}, limits=limits, zone=zone)
    case.life.supervised += 1


def return_chance(rows: Iterable[Mapping[Any, Any]]) -> float:
    """The chance that a returnable case (`RETURNABLE`) is returned, so that about
    RETURN_SHARE of the cases held (`HELD`) are. Counted without the cases ever reopened, and
    with those returned already among the returnable, so that running again after `enliven`
    finds the same chance."""
    held = [r for r in rows if r["state"] in HELD and "reopen" not in (r["actions"] or ())]
    returnable = [r for r in held if r["state"] in RETURNABLE or "return" in (r["actions"] or ())]
    if not returnable:
        return 0.0
    return min(MAX_RETURN_CHANCE, RETURN_SHARE * len(held) / len(returnable))


def _enliven_cases(
    conn: sa.Connection, now: dt.datetime, seed: int, units: _Units, life: Life, zone: str
) -> None:
    limits = load_time_limits()
    params = {"held": list(HELD), "unsatisfied": UNSATISFIED, "since": now - REOPEN_WITHIN}
    rows = conn.execute(_CASES, params).mappings().all()
    chance = return_chance(rows)
    for row in rows:
        case = _Case(row, life, conn)
        ids = (row["source"], row["source_id"], case.id)
        rng = _rng(seed, "reopen", *ids)
        _reopen(case, _Clock(rng, now), rng.random(), limits, zone)
        rng = _rng(seed, "story", *ids)
        u = rng.random()  # one draw: a case is either returned or extended, never both
        clock = _Clock(rng, now)
        if u < chance:
            fresh = not case.actions & {"return", "reopen"}  # as `return_chance` counts
            if case["state"] in RETURNABLE and fresh:
                _return(case, clock, units, limits, zone)
        elif u < chance + EXTEND_SHARE:
            workable = case["state"] in ("accepted", "contacted")
            if workable and case["extension_due_at"] is None and "extend" not in case.actions:
                _extend(case, clock, limits, zone)
        rng = _rng(seed, "supervise", *ids)
        _supervise(case, _Clock(rng, now), rng.random(), limits, zone)


# --- whistles ---------------------------------------------------------------------------


def _arrival_delay(rng: random.Random) -> dt.timedelta:
    """How late a summoned unit comes: most on time or early, some late, a few very late."""
    u = rng.random()
    if u < 0.55:
        return -dt.timedelta(minutes=rng.uniform(0, 15))
    if u < 0.9:
        return dt.timedelta(minutes=12 * rng.lognormvariate(0.0, 0.6))
    return dt.timedelta(minutes=50 * rng.lognormvariate(0.0, 0.5))


def _rating(rng: random.Random, late: dt.timedelta) -> str:
    minutes = late.total_seconds() / 60
    weights = (0.8, 0.17, 0.03) if minutes <= 0 else (0.45, 0.45, 0.1)
    if minutes > 30:
        weights = (0.1, 0.4, 0.5)
    return rng.choices(RATINGS, weights)[0]


@dataclass(frozen=True)
class _Summons:
    """Whom a whistle calls, where to and why; `may_be_live`: it may be today's."""

    street: str
    target: Place
    units: list[str]
    reason: str
    meeting_point: str
    may_be_live: bool
    lng: float | None
    lat: float | None


def _whistle(
    conn: sa.Connection,
    s: _Summons,
    times: tuple[dt.datetime, dt.datetime],
    live: bool,
    clock: _Clock,
    life: Life,
) -> None:
    """Blow it at times[0] for a meeting at times[1], then each unit arrives and completes
    (unless that is after now), and the street rates the units once all have completed."""
    rng = clock.rng
    blower = _leader(s.street)
    blown_at, meet_at = times
    whistle_id = blow(
        conn,
        street=s.street,
        target=s.target,
        unit_codes=s.units,
        reason=s.reason,
        meeting_point=s.meeting_point[:500],
        meet_at=meet_at,
        actor=blower,
        now=blown_at,
        lng=s.lng,
        lat=s.lat,
    )
    life.whistles += 1
    done: list[tuple[str, dt.timedelta, dt.datetime]] = []
    for i, unit in enumerate(s.units):
        delay = _arrival_delay(rng)
        arrived = _second(meet_at + delay)
        completed = _second(arrived + clock.delay(1.5, 0.6))
        note = rng.choice(COMPLETION_NOTES)
        if live and i == len(s.units) - 1:
            completed = clock.now + HOUR  # today's: this one is still at it
        if arrived > clock.now:
            continue
        reporter = Actor(None, "department", unit)
        report_arrival(conn, whistle_id, unit, reporter, arrived)
        if completed > clock.now:
            continue
        report_completion(conn, whistle_id, unit, reporter, completed, note)
        done.append((unit, max(delay, dt.timedelta(0)), completed))
    if len(done) < len(s.units):
        life.in_progress += 1
        return
    rated = clock.then(max(c for _, _, c in done), 6.0)
    if rated is None:
        return
    for unit, late, _ in done:
        rating = _rating(rng, late)
        comment = rng.choice(RATING_COMMENTS[rating])
        rate(conn, whistle_id, unit, rating, blower, rated, comment)


Meeting = Callable[[_Clock, Mapping[Any, Any], bool], "tuple[dt.datetime, dt.datetime] | None"]


def _blow_each(
    conn: sa.Connection,
    rows: Iterable[Mapping[Any, Any]],
    summons: Callable[[Mapping[Any, Any]], _Summons],
    meeting: Meeting,
    *,
    now: dt.datetime,
    seed: int,
    units: _Units,
    life: Life,
) -> None:
    """A whistle on about WHISTLE_SHARE of `rows` (those whose summons calls two units or
    more, a district department among them), at the time `meeting` gives."""
    for row in rows:
        rng = _rng(seed, "whistle", row["source"], row["source_id"], row["id"])
        if rng.random() >= WHISTLE_SHARE:
            continue
        s = summons(row)
        if len(s.units) < 2 or not any(units.is_district(u) for u in s.units):
            continue
        clock = _Clock(rng, now)
        live = s.may_be_live and rng.random() < LIVE_SHARE
        times = meeting(clock, row, live)
        if times is not None:
            _whistle(conn, s, times, live, clock, life)


def _ten_minutes(at: dt.datetime) -> dt.datetime:
    return at.replace(minute=at.minute - at.minute % 10, second=0, microsecond=0)


def _case_meeting(
    clock: _Clock, row: Mapping[Any, Any], live: bool
) -> tuple[dt.datetime, dt.datetime] | None:
    """(blown, meet) of a whistle on a case: while it was worked (between its dispatch and
    its resolution, or now), or in the last hours when `live`; None if there is no room."""
    rng = clock.rng
    start = row["dispatched_at"]
    end = min(row["resolved_at"] or clock.now, clock.now)
    if live:
        meet = _ten_minutes(clock.now - HOUR * rng.uniform(0.5, 5.0))
    else:
        meet = _ten_minutes(start + (end - start) * rng.uniform(0.1, 0.6))
    if meet - start < HOUR:
        return None
    lead = min(HOUR * rng.uniform(0.5, 20.0), (meet - start) * 0.9)
    return _second(meet - lead), meet


def _target_meeting(
    clock: _Clock, row: Mapping[Any, Any], live: bool, tz: ZoneInfo
) -> tuple[dt.datetime, dt.datetime] | None:
    """(blown, meet) of a whistle on a relocation target: in working hours on a day of its
    work (the 60 days before its end when it gives no start) before today, or in the last
    hours when `live`."""
    rng = clock.rng
    if live:
        meet = _ten_minutes(clock.now - HOUR * rng.uniform(0.5, 5.0))
    else:
        yesterday = clock.now.astimezone(tz).date() - dt.timedelta(days=1)
        last = min(row["actual_end"] or yesterday, yesterday)
        first = min(row["actual_start"] or last - dt.timedelta(days=60), last)
        day = first + dt.timedelta(days=rng.randint(0, (last - first).days))
        local = dt.datetime.combine(day, dt.time(9, 0), tz) + HOUR * rng.uniform(0, 8)
        meet = _ten_minutes(local.astimezone(dt.UTC))
    return _second(meet - HOUR * rng.uniform(2.0, 48.0)), meet


_JOINT = sa.text(
    """
    select c.id, c.street_code, c.dispatched_at, c.resolved_at, e.source, e.source_id,
           e.case_type, e.case_no, e.agencies, e.address, ST_X(e.geom) as lng,
           ST_Y(e.geom) as lat
    from cases c join enforcement_cases e on e.id = c.enforcement_case_id
    where e.joint and c.dispatched_at is not null and c.street_code is not null
      and not exists (select 1 from whistles w where w.case_id = c.id)
    order by c.id
    """
)
_TARGETS = sa.text(
    """
    select t.id, t.source, t.source_id, t.name, t.kind, t.status, t.address, t.street_code,
           t.actual_start, t.actual_end, ST_X(t.geom) as lng, ST_Y(t.geom) as lat
    from relocation_targets t
    where t.street_code is not null and t.status = any(:statuses)
      and not exists (
        select 1 from whistles w
        where w.target_kind = 'relocation_target' and w.target_ref = t.source_id
      )
    order by t.id
    """
)


def _joint_summons(row: Mapping[Any, Any], units: _Units) -> _Summons:
    """A joint enforcement case calls its agencies and its type's district department."""
    street = row["street_code"]
    agencies = [a for a in row["agencies"] or () if a in AGENCY_UNITS]
    named = [AGENCY_UNITS[a].format(street=street) for a in agencies]
    named.append(CASE_TYPE_DEPARTMENTS.get(row["case_type"], DEFAULT_DEPARTMENT))
    label = f"（{row['case_no']}）" if row["case_no"] else ""
    return _Summons(
        street=street,
        target=Place("case", case_id=row["id"]),
        units=units.known(named),
        reason=f"联合执法：{row['case_type'] or '执法案件'}{label}",
        meeting_point=row["address"] or "案发现场",
        may_be_live=row["resolved_at"] is None,
        lng=row["lng"],
        lat=row["lat"],
    )


def _target_summons(row: Mapping[Any, Any], units: _Units) -> _Summons:
    """A relocation target calls the district departments of its kind, and the street's
    development department and enforcement team."""
    street = row["street_code"]
    departments = TARGET_DEPARTMENTS.get(row["kind"], (DEFAULT_DEPARTMENT,))
    named = [*departments, *(u.format(street=street) for u in TARGET_STREET_UNITS)]
    name = row["name"] or row["source_id"]
    return _Summons(
        street=street,
        target=Place("relocation_target", ref=row["source_id"]),
        units=units.known(named),
        reason=f"疏解整治：{name}（{row['kind'] or '疏解目标'}）",
        meeting_point=f"{name}（{row['address']}）" if row["address"] else name,
        may_be_live=row["status"] in TARGETS_UNDER_WAY,
        lng=row["lng"],
        lat=row["lat"],
    )


def enliven(
    conn: sa.Connection, now: dt.datetime, *, seed: int = 42, zone: str = "Asia/Shanghai"
) -> Life:
    """Add returns, extensions, reopenings, supervision and whistles to the cases, relocation
    targets and joint enforcement cases in the database, up to `now` (caller commits).
    Nothing to do — no case, no target — adds nothing."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware date-time")
    started = time.perf_counter()
    life = Life()
    units = _Units(conn)
    _enliven_cases(conn, now, seed, units, life, zone)
    blow_each = functools.partial(_blow_each, conn, now=now, seed=seed, units=units, life=life)
    joint = conn.execute(_JOINT).mappings().all()
    blow_each(joint, lambda r: _joint_summons(r, units), _case_meeting)
    statuses = [*TARGETS_UNDER_WAY, *TARGETS_DONE]
    targets = conn.execute(_TARGETS, {"statuses": statuses}).mappings().all()
    meeting = functools.partial(_target_meeting, tz=ZoneInfo(zone))
    blow_each(targets, lambda r: _target_summons(r, units), meeting)
    life.seconds = time.perf_counter() - started
    return life
