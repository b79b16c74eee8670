"""The demo's living district (`etl.demo.cases.enliven`) on a population of cases built here
as an extract's load leaves it: service requests and joint enforcement cases, each created
(`create_case`) and moved through dispatch, acceptance, contact, resolution, callback and
closing with the extract's times (`transition`), and relocation targets under way or done.

The expected shares are counted here in SQL over `case_history` and `whistles`, against the
pools counted before; the tolerance is four binomial standard deviations (the draws are seeded,
so the outcome is fixed, but the check is the statistical one). The clock is frozen at NOW.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from flask import Flask

from etl.demo import cases as life
from etl.demo.cases import enliven
from etl.demo.load import demo_users
from etl.units import build_units
from layers import get_layer
from layers.cases import Actor, case_of, create_case, replay, transition, transitions
from layers.cases.machine import OPEN_STATES, RATINGS
from layers.units import units
from tests.clock import BEIJING
from tests.helpers import login

NOW = dt.datetime(2026, 11, 18, 12, 0, tzinfo=BEIJING)  # a Wednesday noon
A, B = "110102001", "110102003"
SEED = 7
STATIONS = ("justice", "labour", "enforcement", "police", "market", "housing")
# Where the extract's requests of each street went (the demo users' units among them).
MAINS = {
    A: (f"{A}-city", f"{A}-social", f"{A}-enforcement", "district-fire"),
    B: (f"{B}-city", f"{B}-safety", f"{B}-police", "district-housing"),
}
CATEGORIES = ("噪声扰民", "燃气", "环境卫生", "违法建设", "供暖")
# How far each request got in the extract: one in 16 still received, 5 dispatched, 5
# accepted, 2 contacted, one resolved, one called back unsatisfied, one closed.
PLAN = ("received", *["dispatched"] * 5, *["accepted"] * 5, "contacted", "contacted")
PLAN += ("resolved", "called_back", "closed")
STEPS = ("dispatch", "accept", "contact", "resolve", "callback", "close")
DEPTH = {"received": 0, "dispatched": 1, "accepted": 2, "contacted": 3, "resolved": 4}
DEPTH |= {"called_back": 5, "closed": 6}
# (case type, its agencies as the extract names them, the units they are) of joint cases
JOINT = (
    ("占道经营", ["城管执法队", "市场监管所"], ("{s}-enforcement", "{s}-market")),
    ("违法建设", ["城管执法队", "派出所", "消防救援站"], ("{s}-enforcement", "{s}-police")),
    ("无照经营", ["市场监管所", "城管执法队"], ("{s}-market", "{s}-enforcement")),
    ("噪声污染", ["生态环境局", "派出所"], ("district-ecology", "{s}-police")),
)
TARGET_KINDS = ("物流仓储", "违法建设", "低端业态", "地下空间", "商品交易市场")
TARGET_STATUSES = ("进行中", "已完成", "已验收", "未启动")
CLERK = Actor("extract", "clerk")
H = dt.timedelta(hours=1)


def _chain(rng: random.Random, depth: int) -> list[dt.datetime]:
    """Received, then the times of `depth` steps, all before NOW."""
    gaps = [(0.1, 3), (0.5, 10), (1, 24), (2, 72), (1, 48), (1, 2)][:depth]
    at = NOW - H * rng.uniform(3, 24 * 20)
    times = [at]
    for low, high in gaps:
        at += H * rng.uniform(low, high)
        times.append(at)
    late = times[-1] - (NOW - H / 2)
    if late > dt.timedelta(0):
        times = [t - late for t in times]
    return [t.replace(microsecond=0) for t in times]


def _fields(step: str, main: str, unsatisfied: bool) -> dict[str, Any]:
    fields: dict[str, dict[str, Any]] = {
        "dispatch": {"main_unit": main, "assisting_units": []},
        "resolve": {"result": "已处理"},
        "callback": {
            "valid": True,
            "contacted": True,
            "solved": not unsatisfied,
            "rating": "不满意" if unsatisfied else "满意",
        },
    }
    return fields.get(step, {})


def _walk(conn: sa.Connection, case_id: int, main: str, times: list[dt.datetime]) -> None:
    unit = Actor("extract", "department", main)
    for version, (step, at) in enumerate(zip(STEPS, times[1:], strict=False)):
        actor = CLERK if step in ("dispatch", "callback", "close") else unit
        unsatisfied = len(times) == 6  # stops at the callback: called back unsatisfied
        fields = _fields(step, main, unsatisfied)
        transition(conn, case_id, step, version, actor, fields, at, zone="Asia/Shanghai")


def _units(conn: sa.Connection) -> None:
    build_units(conn)
    conn.execute(
        sa.insert(units),
        [
            {"code": f"{s}-{k}", "name": f"{s}{k}站所", "kind": "station", "street_code": s}
            for s in (A, B)
            for k in STATIONS
        ],
    )


def _point(street: str) -> str:
    return f"SRID=4326;POINT({116.31 if street == A else 116.33} 39.91)"


def _population(conn: sa.Connection, requests: int, joint: int, targets: int) -> None:
    """The cases, targets and units an extract's load leaves (see the module's text)."""
    _units(conn)
    rng = random.Random(12)
    table = get_layer("service_requests").table
    rows = []
    for i in range(requests):
        street = (A, B)[i % 2]
        depth = DEPTH[PLAN[(i // 2) % len(PLAN)]]
        times = _chain(rng, depth)
        rows.append((street, i, times, MAINS[street][(i // 32) % 4]))
    ids = conn.execute(
        sa.insert(table).returning(table.c.id, sort_by_parameter_order=True),
        [
            {
                "source": "test-demo",
                "source_id": f"GD{i:06d}",
                "received_at": t[0],
                "street_code": s,
                "category": CATEGORIES[i % 5],
                "geom": _point(s),
            }
            for s, i, t, _ in rows
        ],
    ).scalars()
    for source_id, (street, i, times, main) in zip(ids, rows, strict=True):
        case = create_case(
            conn,
            kind="service_request",
            source_id=source_id,
            street_code=street,
            category=CATEGORIES[i % 5],
            received_at=times[0],
        )
        _walk(conn, case["id"], main, times)
    enforcement = get_layer("enforcement_cases").table
    for i in range(joint):
        street = (A, B)[i % 2]
        kind, agencies, _ = JOINT[i % len(JOINT)]
        times = _chain(rng, 2 if i % 4 < 2 else 6)
        source_id = conn.execute(
            sa.insert(enforcement)
            .values(
                source="test-demo",
                source_id=f"ZF{i:05d}",
                case_no=f"ZF{i:05d}",
                case_type=kind,
                agencies=agencies,
                joint=True,
                address=f"测试路{i}号",
                opened_at=times[0],
                street_code=street,
                geom=_point(street),
            )
            .returning(enforcement.c.id)
        ).scalar_one()
        case = create_case(
            conn,
            kind="enforcement_case",
            source_id=source_id,
            street_code=street,
            category=kind,
            received_at=times[0],
        )
        main = f"{street}-enforcement"
        _walk(conn, case["id"], main, times)
    relocation = get_layer("relocation_targets").table
    for i in range(targets):
        status = TARGET_STATUSES[i % 4]
        start = NOW.date() - dt.timedelta(days=90 - i)
        end = start + dt.timedelta(days=30) if status in ("已完成", "已验收") else None
        conn.execute(
            sa.insert(relocation).values(
                source="test-demo",
                source_id=f"SJ{i:04d}",
                name=f"测试市场{i}",
                kind=TARGET_KINDS[i % 5],
                status=status,
                address=f"测试街{i}号",
                actual_start=start if status != "未启动" else None,
                actual_end=end,
                street_code=(A, B)[i % 2],
                geom=_point((A, B)[i % 2]),
            )
        )


def _ids(conn: sa.Connection, sql: str, **params: Any) -> set[int]:
    return set(conn.execute(sa.text(sql), params).scalars())


def _near(count: int, pool: int, share: float) -> None:
    """`count` of `pool` is about `share` (four binomial standard deviations, and one)."""
    spread = 4 * math.sqrt(pool * share * (1 - share)) + 1
    assert abs(count - share * pool) <= spread, (count, pool, share)


def _snapshot(conn: sa.Connection, after: int) -> tuple[list[Any], list[Any]]:
    """What `enliven` wrote: the history rows after id `after`, the whistles and their units
    (without their generated ids)."""
    steps = conn.execute(
        sa.text(
            "select case_id, action, from_state, to_state, user_name, role, unit_code, at, "
            "note, fields::text from case_history where id > :after order by case_id, id"
        ),
        {"after": after},
    ).all()
    whistles = conn.execute(
        sa.text(
            "select w.street_code, w.target_kind, w.case_id, w.target_ref, w.reason, "
            "w.meeting_point, w.meet_at, w.blown_by, w.blown_at, u.unit_code, u.arrived_at, "
            "u.completed_at, u.completion_note, u.rating, u.rating_comment, u.rated_at "
            "from whistles w join whistle_units u on u.whistle_id = w.id "
            "order by w.case_id nulls last, w.target_ref, u.unit_code"
        )
    ).all()
    return [tuple(r) for r in steps], [tuple(r) for r in whistles]


def _counts(life_: life.Life) -> dict[str, int]:
    return {k: v for k, v in vars(life_).items() if k != "seconds"}


def test_enliven_gives_the_cases_a_life_by_the_rules_and_the_seed(
    connection: sa.Connection, district: Any
) -> None:
    conn = connection
    _population(conn, requests=800, joint=80, targets=24)
    before = conn.execute(sa.text("select coalesce(max(id), 0) from case_history")).scalar_one()
    pool_return = _ids(conn, "select id from cases where state in ('dispatched', 'accepted')")
    pool_held = _ids(
        conn, "select id from cases where state in ('dispatched', 'accepted', 'contacted')"
    )
    pool_extend = _ids(conn, "select id from cases where state in ('accepted', 'contacted')")
    pool_reopen = _ids(  # called back unsatisfied lately
        conn,
        "select c.id from cases c join case_history h on h.case_id = c.id "
        "where c.state = 'called_back' and c.rating = '不满意' "
        "and h.action = 'callback' and h.at >= :since",
        since=NOW - life.REOPEN_WITHIN,
    )
    called_back = _ids(conn, "select id from cases where state = 'called_back'")
    assert 0 < len(pool_reopen) < len(called_back)

    # The same seed gives the same life; another seed another one.
    conn.exec_driver_sql("savepoint first")
    first = enliven(conn, NOW, seed=SEED, zone="Asia/Shanghai")
    wrote = _snapshot(conn, before)
    conn.exec_driver_sql("rollback to savepoint first")
    other = enliven(conn, NOW, seed=SEED + 1, zone="Asia/Shanghai")
    assert _snapshot(conn, before) != wrote
    conn.exec_driver_sql("rollback to savepoint first")
    again = enliven(conn, NOW, seed=SEED, zone="Asia/Shanghai")
    assert _snapshot(conn, before) == wrote
    assert _counts(again) == _counts(first) != _counts(other)
    # Running it again at the same moment adds nothing.
    assert _counts(enliven(conn, NOW, seed=SEED, zone="Asia/Shanghai")) == _counts(life.Life())
    assert _snapshot(conn, before) == wrote

    def did(action: str) -> set[int]:
        return _ids(
            conn,
            "select distinct case_id from case_history where id > :b and action = :a",
            b=before,
            a=action,
        )

    # 退单 about 3 % of the cases the units held, taken among those not yet contacted; each
    # re-dispatched by the centre to another unit of the same kind and street.
    reopened, returned = did("reopen"), did("return")
    assert returned and returned <= pool_return
    chance = life.RETURN_SHARE * len(pool_held) / len(pool_return)
    assert 0.03 < chance < 0.05
    _near(len(returned & pool_return), len(pool_return), chance)
    moves = conn.execute(
        sa.text(
            "select r.unit_code, n.action, n.role, n.fields->>'main_unit', ur.kind, un.kind, "
            "ur.street_code is not distinct from un.street_code "
            "from case_history r join units ur on ur.code = r.unit_code "
            "left join lateral (select * from case_history n where n.case_id = r.case_id "
            "  and n.id > r.id order by n.id limit 1) n on true "
            "left join units un on un.code = n.fields->>'main_unit' "
            "where r.id > :b and r.action = 'return'"
        ),
        {"b": before},
    ).all()
    redispatched = [m for m in moves if m[1] is not None]
    assert len(redispatched) >= len(moves) // 2
    for unit, action, role, main, kind, new_kind, same_street in redispatched:
        assert (action, role) == ("redispatch", "clerk")
        assert main != unit and new_kind == kind and same_street

    # 延期 about 2 % of the cases worked; most approved, some refused, by the centre.
    extended = did("extend")
    assert extended and extended <= pool_extend | reopened | pool_return
    _near(len(extended & pool_extend), len(pool_extend), life.EXTEND_SHARE)
    assert not extended & returned
    approved, refused = did("approve_extension"), did("refuse_extension")
    assert approved | refused <= extended and not approved & refused
    assert len(approved) > len(refused)

    # 重办 about half the unsatisfied callbacks, to the same unit.
    assert reopened <= pool_reopen
    _near(len(reopened), len(pool_reopen), life.REOPEN_SHARE)

    # 督办 about 15 % of the open cases past due, each past due when supervised.
    supervised = did("supervise")
    overdue = _ids(
        conn,
        "select id from cases where state = any(:open) and due_at < :now",
        open=sorted(OPEN_STATES),
        now=NOW,
    )
    assert supervised and supervised <= overdue
    _near(len(supervised), len(overdue), life.SUPERVISE_SHARE)
    late = conn.execute(
        sa.text(
            "select count(*) from case_history h join cases c on c.id = h.case_id "
            "where h.id > :b and h.action = 'supervise' "
            "and (c.due_at >= h.at or h.role <> 'commander' or h.fields->>'note' is null "
            "or h.user_name <> 'commander-' || c.street_code)"
        ),
        {"b": before},
    ).scalar_one()
    assert late == 0
    assert first.returned == len(returned) and first.supervised == len(supervised)

    # Every case's history replays to its row; times between its receipt and now, in order.
    rows = {r["id"]: r for r in conn.execute(sa.text("select * from cases")).mappings()}
    history: dict[int, list[Any]] = defaultdict(list)
    for r in conn.execute(sa.text("select * from case_history order by case_id, id")).mappings():
        history[r["case_id"]].append(r)
    for case_id, row in rows.items():
        assert replay(transitions(history[case_id])) == case_of(row), case_id
        assert row["version"] == len(history[case_id])
    bad_times = conn.execute(
        sa.text(
            "select count(*) from (select h.at, c.received_at, "
            "lag(h.at) over (partition by h.case_id order by h.id) as previous "
            "from case_history h join cases c on c.id = h.case_id) t "
            "where at > :now or at < received_at or at < previous"
        ),
        {"now": NOW},
    ).scalar_one()
    assert bad_times == 0

    _check_whistles(conn, first)


def _check_whistles(conn: sa.Connection, made: life.Life) -> None:
    whistles = (
        conn.execute(
            sa.text(
                "select w.*, c.dispatched_at, e.agencies, e.case_type, t.status "
                "from whistles w left join cases c on c.id = w.case_id "
                "left join enforcement_cases e on e.id = c.enforcement_case_id "
                "left join relocation_targets t on t.source_id = w.target_ref"
            )
        )
        .mappings()
        .all()
    )
    assert len(whistles) == made.whistles
    kinds = {w["target_kind"] for w in whistles}
    assert kinds == {"case", "relocation_target"}
    summoned: dict[int, list[Any]] = defaultdict(list)
    for u in conn.execute(
        sa.text(
            "select u.*, n.kind, n.street_code as unit_street from whistle_units u "
            "join units n on n.code = u.unit_code"
        )
    ).mappings():
        summoned[u["whistle_id"]].append(u)
    in_progress = 0
    delays: dict[str, list[float]] = defaultdict(list)
    for w in whistles:
        found = summoned[w["id"]]
        assert len(found) >= 2 and any(u["kind"] == "district_department" for u in found)
        codes = {u["unit_code"] for u in found}
        assert all(u["unit_street"] in (None, w["street_code"]) for u in found)
        assert w["blown_at"] <= w["meet_at"] <= NOW
        assert w["blown_by"] == f"commander-{w['street_code']}"
        if w["target_kind"] == "case":
            assert w["dispatched_at"] <= w["blown_at"]
            expected = next(j[2] for j in JOINT if j[0] == w["case_type"])
            assert {c.format(s=w["street_code"]) for c in expected} <= codes
        else:
            assert w["status"] in ("进行中", "已完成", "已验收")
        for u in found:
            if u["arrived_at"] is not None:
                assert w["meet_at"] - dt.timedelta(minutes=16) <= u["arrived_at"] <= NOW
            if u["completed_at"] is not None:
                assert u["arrived_at"] <= u["completed_at"] <= NOW
            if u["rating"] is not None:
                assert u["completed_at"] <= u["rated_at"] <= NOW
                assert u["rating"] in RATINGS and u["rating_comment"]
                late = max((u["arrived_at"] - w["meet_at"]).total_seconds() / 60, 0)
                delays[u["rating"]].append(late)
        if any(u["completed_at"] is None for u in found):
            in_progress += 1
            assert all(u["rating"] is None for u in found)
    assert in_progress == made.in_progress >= 1
    assert sum(map(len, delays.values())) > 0.6 * sum(map(len, summoned.values()))
    # the later a unit came, the worse its rating
    mean = {r: sum(d) / len(d) for r, d in delays.items() if d}
    assert mean["满意"] < mean.get("不满意", math.inf)


def test_enliven_on_an_empty_database_adds_nothing(
    connection: sa.Connection, district: Any
) -> None:
    _units(connection)
    made = enliven(connection, NOW, seed=SEED, zone="Asia/Shanghai")
    assert _counts(made) == _counts(life.Life())
    for table in ("cases", "case_history", "whistles", "whistle_units"):
        assert connection.exec_driver_sql(f"select count(*) from {table}").scalar_one() == 0


def _pages(client: Any) -> set[int]:
    seen: set[int] = set()
    cursor = None
    while True:
        query = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/cases", query_string=query)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        body = response.get_json()
        seen |= {c["id"] for c in body["cases"]}
        cursor = body["next"]
        if cursor is None:
            return seen


def test_each_demo_department_user_sees_its_units_cases_only(
    app: Flask, connection: sa.Connection, district: Any
) -> None:
    _population(connection, requests=192, joint=8, targets=0)
    enliven(connection, NOW, seed=SEED, zone="Asia/Shanghai")
    accounts = demo_users(connection, "not-a-hash")
    departments = [a for a in accounts if a.role == "department"]
    assert {a.unit for a in departments} == {f"{A}-city", f"{A}-enforcement", "district-fire"}
    kinds = connection.execute(
        sa.select(units.c.kind).where(units.c.code.in_([a.unit for a in departments]))
    ).scalars()
    assert sorted(kinds) == ["department", "district_department", "station"]
    for account in departments:
        uid = connection.execute(
            sa.text("select id from users where name = :n"), {"n": account.name}
        ).scalar_one()
        expected = _ids(
            connection,
            "select id from cases where main_unit = :u or :u = any(assisting_units)",
            u=account.unit,
        )
        assert expected, account
        assert _pages(login(app.test_client(), uid)) == expected, account.name
