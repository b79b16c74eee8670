"""Extracts replayed into the case history (etl/replay.py), on a real PostgreSQL.

Expected histories are written out here, step by step, from the rows the tests write — never
read back from the code under test. Every case's history replays (layers.cases.machine) to
the case row.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from etl import replay as replay_module
from etl.jobs import EtlError, RunReport, run_file
from etl.units import build_units
from layers.cases import Actor, case_of, history, replay, transition, transitions
from tests.district import request_row, write_csv

BEIJING = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=BEIJING)
A, B = "110102001", "110102003"
DAY = "2026-11-02"


def t(clock: str, day: str = DAY) -> dt.datetime:
    """A wall-clock time of the district."""
    return dt.datetime.fromisoformat(f"{day} {clock}").replace(tzinfo=BEIJING)


@pytest.fixture(params=["checked", "bulk"])
def path(request: pytest.FixtureRequest, connection: sa.Connection) -> Iterator[str]:
    """Every test of the tiny district twice: as a small load runs (per-row reference
    checks, indexes kept up), and as a large one (`session_replication_role = replica`,
    indexes rebuilt: etl.replay's thresholds set to 0)."""
    if request.param == "bulk":
        superuser = connection.execute(
            sa.text("select rolsuper from pg_roles where rolname = current_user")
        ).scalar_one()
        assert superuser, "the bulk path needs a superuser (the managed cluster's owner)"
        patch = request.getfixturevalue("monkeypatch")
        patch.setattr(replay_module, "FAST_MIN_ROWS", 0)
        patch.setattr(replay_module, "BULK_MIN_ROWS", 0)
        patch.setattr(replay_module, "BULK_SHARE", 10**9)  # whatever the tables hold
        rebuilt: list[str] = []
        bulk_tables = replay_module._bulk_tables

        def spy(conn: sa.Connection, counts: dict[str, int]) -> list[str]:
            made = bulk_tables(conn, counts)
            rebuilt.extend(made)
            return made

        patch.setattr(replay_module, "_bulk_tables", spy)
        yield "bulk"
        assert rebuilt  # every test's first load is a bulk one here: its indexes came back
        assert any("uq_case_history_etl_step" in d for d in rebuilt)
        names = connection.execute(
            sa.text("select indexname from pg_indexes where tablename = 'case_history'")
        ).scalars()
        assert {"ix_case_history_case_id", "uq_case_history_etl_step"} <= set(names)
        return
    yield "checked"


@pytest.fixture
def units(connection: sa.Connection, district: Any, path: str) -> None:
    """The tiny district (tests/district.py) with every street's centre and seven
    departments, the district's departments, and two stations of street A named as on
    their doorplates; loaded both ways (`path`)."""
    build_units(connection)
    connection.execute(
        sa.text(
            "insert into units (code, name, kind, street_code) values "
            "(:a1, '测试001城管执法队', 'station', :a), (:a2, '测试001派出所', 'station', :a)"
        ),
        {"a": A, "a1": f"{A}-enforcement", "a2": f"{A}-police"},
    )


def _load(conn: sa.Connection, path: Path, layer: str = "service_requests") -> RunReport:
    report = run_file(conn, path, layer=layer, now=NOW)
    assert report.status == "succeeded"
    return report


def _steps(conn: sa.Connection, source_id: str, layer: str = "service_requests") -> list[Any]:
    key = "service_request_id" if layer == "service_requests" else "enforcement_case_id"
    return [
        (r.action, r.from_state, r.to_state, r.at, r.user_name, r.role)
        for r in conn.execute(
            sa.text(
                f"select h.* from case_history h join cases c on c.id = h.case_id "
                f"join {layer} r on r.id = c.{key} where r.source_id = :s order by h.id"
            ),
            {"s": source_id},
        )
    ]


def _case(conn: sa.Connection, source_id: str, layer: str = "service_requests") -> Any:
    key = "service_request_id" if layer == "service_requests" else "enforcement_case_id"
    return (
        conn.execute(
            sa.text(
                f"select c.* from cases c join {layer} r on r.id = c.{key} where r.source_id = :s"
            ),
            {"s": source_id},
        )
        .mappings()
        .one()
    )


def _snapshot(conn: sa.Connection) -> tuple[list[Any], list[Any]]:
    cases = conn.execute(sa.text("select * from cases order by id")).all()
    steps = conn.execute(sa.text("select * from case_history order by id")).all()
    return [tuple(r) for r in cases], [tuple(r) for r in steps]


def _all_replay(conn: sa.Connection) -> int:
    """Every case's history replays to its row; the number of cases checked."""
    rows = conn.execute(sa.text("select * from cases order by id")).mappings().all()
    for row in rows:
        assert replay(transitions(history(conn, row["id"]))) == case_of(row), row["id"]
    return len(rows)


def _etl(*steps: tuple[str, str, str, dt.datetime]) -> list[Any]:
    return [(a, f, to, at, "etl", "etl") for a, f, to, at in steps]


FULL = dict(
    状态="已办结",
    承办单位=f"{A}-safety",
    派单时间=f"{DAY} 09:30:00",
    签收时间=f"{DAY} 09:50:00",
    响应时间=f"{DAY} 10:10:00",
    联系时间=f"{DAY} 10:10:00",
    办结时间=f"{DAY} 16:00:00",
    回访时间=f"{DAY} 18:00:00",
    归档时间=f"{DAY} 18:05:00",
    是否有效回访="是",
    是否联系="是",
    是否解决="否",
    满意度="基本满意",
)


def _first_rows() -> list[dict[str, str]]:
    east = {"经度": "116.335"}  # street B
    return [
        request_row("R1", 承办单位="城市管理部"),  # dispatched to street A's 城市管理部
        request_row("R2", **FULL),
        request_row("R3", 状态="待派单", 派单时间=""),  # received, never dispatched
        request_row(  # no contact: dispatch, accept, resolve
            "R4",
            状态="已办结",
            承办单位="区城管委",
            签收时间=f"{DAY} 09:40:00",
            办结时间=f"{DAY} 12:00:00",
        ),
        request_row("R5", 状态="已办结", 办结时间=f"{DAY} 12:00:00"),  # no accept: a gap
        request_row("R6", 承办单位="某物业公司"),  # no such unit
        request_row("R7", 状态="处理中", 签收时间=f"{DAY} 09:10:00"),  # accepted before dispatch
        request_row("R8", 承办单位="城市管理部", **east),  # street B's 城市管理部
    ]


def test_histories_from_a_small_extract(
    connection: sa.Connection, units: None, tmp_path: Path
) -> None:
    report = _load(connection, write_csv(tmp_path / "a.csv", _first_rows()))
    d = t("09:30:00")
    expected = {
        "R1": _etl(("dispatch", "received", "dispatched", d)),
        "R2": _etl(
            ("dispatch", "received", "dispatched", d),
            ("accept", "dispatched", "accepted", t("09:50:00")),
            ("contact", "accepted", "contacted", t("10:10:00")),
            ("resolve", "contacted", "resolved", t("16:00:00")),
            ("callback", "resolved", "called_back", t("18:00:00")),
            ("close", "called_back", "closed", t("18:05:00")),
        ),
        "R3": [],
        "R4": _etl(
            ("dispatch", "received", "dispatched", d),
            ("accept", "dispatched", "accepted", t("09:40:00")),
            ("resolve", "accepted", "resolved", t("12:00:00")),
        ),
        "R5": _etl(("dispatch", "received", "dispatched", d)),
        "R6": _etl(("dispatch", "received", "dispatched", d)),
        "R7": _etl(("dispatch", "received", "dispatched", d)),
        "R8": _etl(("dispatch", "received", "dispatched", d)),
    }
    for source_id, steps in expected.items():
        assert _steps(connection, source_id) == steps, source_id
    assert report.cases_created == 8
    assert report.steps_added == sum(len(s) for s in expected.values()) == 14
    states = {s: _case(connection, s)["state"] for s in expected}
    assert states == {
        "R1": "dispatched",
        "R2": "closed",
        "R3": "received",
        "R4": "resolved",
        "R5": "dispatched",
        "R6": "dispatched",
        "R7": "dispatched",
        "R8": "dispatched",
    }
    units_of = {s: _case(connection, s)["main_unit"] for s in expected}
    assert units_of == {
        "R1": f"{A}-city",
        "R2": f"{A}-safety",
        "R3": None,
        "R4": "district-city-management",
        "R5": None,
        "R6": None,
        "R7": None,
        "R8": f"{B}-city",
    }
    r2 = _case(connection, "R2")
    assert (r2["callback_valid"], r2["callback_contacted"], r2["callback_solved"]) == (
        True,
        True,
        False,
    )
    assert r2["rating"] == "基本满意" and r2["version"] == 6
    assert r2["received_at"] == t("09:00:00") and r2["category"] == "环境卫生"
    assert r2["street_code"] == A and r2["updated_at"] == t("18:05:00")
    # the dispatch carries the request's due time (counted from 派单: 环境卫生's limit)
    due = connection.execute(
        sa.text("select due_at from service_requests where source_id = 'R2'")
    ).scalar_one()
    assert r2["due_at"] == due and due > d
    assert report.warnings.get("unknown_unit:某物业公司") == 1
    assert report.warnings.get("replay_gap") == 2  # R5 and R7
    assert _all_replay(connection) == 8


def test_same_file_twice_adds_nothing(
    connection: sa.Connection, units: None, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "a.csv", _first_rows())
    _load(connection, path)
    before = _snapshot(connection)
    again = _load(connection, path)
    assert (again.cases_created, again.steps_added) == (0, 0)
    assert _snapshot(connection) == before


def test_a_later_extract_adds_only_the_new_steps(
    connection: sa.Connection, units: None, tmp_path: Path
) -> None:
    _load(connection, write_csv(tmp_path / "a.csv", _first_rows()))
    later = [
        request_row(  # R1 moved on: accepted and contacted
            "R1",
            状态="处理中",
            承办单位="城市管理部",
            签收时间=f"{DAY} 11:00:00",
            联系时间=f"{DAY} 11:30:00",
        ),
        request_row("R2", **FULL),  # unchanged
        request_row("R3", 状态="已派单", 承办单位="平安建设部", 派单时间=f"{DAY} 13:00:00"),
        request_row("R11", 状态="已派单"),  # new
    ]
    report = _load(connection, write_csv(tmp_path / "b.csv", later))
    assert report.cases_created == 1
    assert report.steps_added == 2 + 1 + 1
    assert _steps(connection, "R1") == _etl(
        ("dispatch", "received", "dispatched", t("09:30:00")),
        ("accept", "dispatched", "accepted", t("11:00:00")),
        ("contact", "accepted", "contacted", t("11:30:00")),
    )
    assert _steps(connection, "R3") == _etl(("dispatch", "received", "dispatched", t("13:00:00")))
    assert _case(connection, "R3")["main_unit"] == f"{A}-safety"
    assert _steps(connection, "R11") == _etl(("dispatch", "received", "dispatched", t("09:30:00")))
    assert len(_steps(connection, "R2")) == 6
    assert _all_replay(connection) == 9


def test_an_older_extract_moves_nothing_back(
    connection: sa.Connection, units: None, tmp_path: Path
) -> None:
    _load(connection, write_csv(tmp_path / "a.csv", [request_row("R2", **FULL)]))
    before = _snapshot(connection)
    older = request_row("R2", 状态="已派单", 承办单位=f"{A}-safety")
    report = _load(connection, write_csv(tmp_path / "old.csv", [older]))
    assert report.steps_added == 0
    assert _snapshot(connection) == before


def test_a_users_transitions_between_loads_are_kept(
    connection: sa.Connection, units: None, tmp_path: Path
) -> None:
    rows = [request_row(s, 承办单位="城市管理部") for s in ("U1", "U2", "U3")]
    _load(connection, write_csv(tmp_path / "a.csv", rows))
    unit = Actor("city-a", "department", f"{A}-city")
    ids = {s: int(_case(connection, s)["id"]) for s in ("U1", "U2", "U3")}
    # U1 accepted in Blockdata at 10:00; U2 accepted, contacted and resolved there;
    # U3 returned to the centre.
    transition(connection, ids["U1"], "accept", 1, unit, {}, t("10:00:00"))
    transition(connection, ids["U2"], "accept", 1, unit, {}, t("10:00:00"))
    transition(connection, ids["U2"], "contact", 2, unit, {}, t("10:20:00"))
    transition(connection, ids["U2"], "resolve", 3, unit, {"result": "已清理"}, t("11:00:00"))
    transition(connection, ids["U3"], "return", 1, unit, {"reason": "不属本部门"}, t("10:00:00"))
    # the hotline's later extract: accepted at 09:45 (before the user's acceptance), then
    # contacted and resolved after it
    later = {
        "状态": "已办结",
        "承办单位": "城市管理部",
        "签收时间": f"{DAY} 09:45:00",
        "联系时间": f"{DAY} 10:30:00",
        "办结时间": f"{DAY} 12:00:00",
    }
    report = _load(
        connection, write_csv(tmp_path / "b.csv", [request_row(s, **later) for s in ids])
    )
    assert report.steps_added == 2
    user = ("city-a", "department")
    d = ("dispatch", "received", "dispatched", t("09:30:00"), "etl", "etl")
    assert _steps(connection, "U1") == [
        d,
        ("accept", "dispatched", "accepted", t("10:00:00"), *user),
        *_etl(
            ("contact", "accepted", "contacted", t("10:30:00")),
            ("resolve", "contacted", "resolved", t("12:00:00")),
        ),
    ]
    assert _steps(connection, "U2") == [
        d,
        ("accept", "dispatched", "accepted", t("10:00:00"), *user),
        ("contact", "accepted", "contacted", t("10:20:00"), *user),
        ("resolve", "contacted", "resolved", t("11:00:00"), *user),
    ]
    assert _case(connection, "U2")["result"] == "已清理"
    assert _steps(connection, "U3") == [
        d,
        ("return", "dispatched", "returned", t("10:00:00"), *user),
    ]
    assert _case(connection, "U3")["state"] == "returned"
    assert _all_replay(connection) == 3


def test_a_failed_load_leaves_cases_and_history_as_they_were(
    connection: sa.Connection, units: None, tmp_path: Path
) -> None:
    _load(connection, write_csv(tmp_path / "a.csv", _first_rows()))
    before = _snapshot(connection)
    later = [request_row("R1", 状态="处理中", 签收时间=f"{DAY} 11:00:00"), request_row("R12")]
    path = write_csv(tmp_path / "b.csv", later)

    def boom(conn: sa.Connection) -> None:  # fails after the replay, inside the run
        assert conn.execute(sa.text("select count(*) from cases")).scalar_one() == 9
        raise RuntimeError("disk full")

    with pytest.raises(EtlError, match="disk full"):
        run_file(connection, path, layer="service_requests", now=NOW, after_load=boom)
    assert _snapshot(connection) == before
    # a file broken half-way (a byte no encoding reads) fails before anything is written
    raw = path.read_bytes()
    (tmp_path / "c.csv").write_bytes(raw[: len(raw) // 2] + b"\xff\xfe\x00" + raw[len(raw) // 2 :])
    with pytest.raises(EtlError):
        run_file(connection, tmp_path / "c.csv", layer="service_requests", now=NOW)
    assert _snapshot(connection) == before


def test_an_old_extract_without_the_new_columns_still_loads(
    connection: sa.Connection, units: None, tmp_path: Path
) -> None:
    old_columns = ["工单编号", "受理时间", "来源渠道", "诉求类别", "地址", "经度", "纬度"]
    old_columns += ["坐标系", "状态", "派单时间", "响应时间", "办结时间"]
    path = tmp_path / "old.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=old_columns)
        writer.writeheader()
        row = request_row("O1", 状态="已办结", 办结时间=f"{DAY} 12:00:00")
        writer.writerow({c: row[c] for c in old_columns})
    report = _load(connection, path)
    assert report.inserted == 1
    assert "missing_column:签收时间" in report.warnings
    # dispatched (no unit); 办结 without 签收 is a gap the chain stops at
    assert _steps(connection, "O1") == _etl(("dispatch", "received", "dispatched", t("09:30:00")))
    assert _case(connection, "O1")["main_unit"] is None
    assert _all_replay(connection) == 1


CASE_COLUMNS = ["案件编号", "立案时间", "案件类型", "执法部门", "是否联合执法", "案情描述"]
CASE_COLUMNS += ["地址", "经度", "纬度", "坐标系", "状态", "结案时间", "办理期限"]


def _case_row(source_id: str, **values: str) -> dict[str, str]:
    row = {c: "" for c in CASE_COLUMNS}
    row.update(
        案件编号=source_id,
        立案时间=f"{DAY} 10:00:00",
        案件类型="占道经营",
        执法部门="城管执法队",
        案情描述="商贩占道经营。",
        地址="北京市西城区测试胡同2号",
        经度="116.305",
        纬度="39.905",
        坐标系="WGS84",
        状态="立案",
        办理期限="15",
    )
    row.update(values)
    return row


def _write_cases(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CASE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_enforcement_cases_replay_likewise(
    connection: sa.Connection, units: None, tmp_path: Path
) -> None:
    layer = "enforcement_cases"
    first = [
        _case_row("Z1", 执法部门="城管执法队、派出所、消防救援站", 是否联合执法="是"),
        _case_row("Z2", 执法部门="交通支队", 状态="已结案", 结案时间="2026-11-05 16:00:00"),
        _case_row("Z3", 执法部门="无名队"),
    ]
    report = _load(connection, _write_cases(tmp_path / "z.csv", first), layer)
    opened = t("10:00:00")
    took = _etl(
        ("dispatch", "received", "dispatched", opened),
        ("accept", "dispatched", "accepted", opened),
    )
    assert _steps(connection, "Z1", layer) == took
    assert _steps(connection, "Z2", layer) == [
        *took,
        *_etl(("resolve", "accepted", "resolved", t("16:00:00", "2026-11-05"))),
    ]
    assert _steps(connection, "Z3", layer) == took
    z1 = _case(connection, "Z1", layer)
    assert (z1["main_unit"], z1["assisting_units"]) == (f"{A}-enforcement", [f"{A}-police"])
    assert z1["due_at"] == t("10:00:00", "2026-11-17") and z1["category"] == "占道经营"
    assert _case(connection, "Z2", layer)["main_unit"] == "district-traffic"
    assert _case(connection, "Z3", layer)["main_unit"] is None
    assert report.warnings.get("unknown_unit:消防救援站") == 1
    assert report.warnings.get("unknown_unit:无名队") == 1
    assert report.steps_added == 7

    before = _snapshot(connection)
    again = _load(connection, _write_cases(tmp_path / "z.csv", first), layer)
    assert again.steps_added == 0 and _snapshot(connection) == before

    later = [_case_row("Z1", 状态="已结案", 结案时间="2026-11-09 11:00:00")]
    report = _load(connection, _write_cases(tmp_path / "z2.csv", later), layer)
    assert report.steps_added == 1
    assert _steps(connection, "Z1", layer) == [
        *took,
        *_etl(("resolve", "accepted", "resolved", t("11:00:00", "2026-11-09"))),
    ]
    assert _all_replay(connection) == 3


def test_the_demo_gives_every_dispatched_request_a_history(
    connection: sa.Connection, tmp_path: Path
) -> None:
    """The demo district (etl/demo) through the production load: every request the extracts
    show dispatched has a case whose history starts with the ETL's dispatch to a known unit,
    and every case replays to its row."""
    from etl.demo.load import generate, load

    generate(tmp_path, requests=1_500, cases=80, targets=10, projects=10)
    report = load(connection, tmp_path)
    for run in report.runs:
        assert run.status == "succeeded"
        assert not [w for w in run.warnings if w.startswith("unknown_unit:")], run.warnings
    missing = connection.execute(
        sa.text(
            "select count(*) from service_requests r where r.dispatched_at is not null "
            "and not exists (select 1 from cases c join case_history h on h.case_id = c.id "
            "where c.service_request_id = r.id and h.action = 'dispatch' and h.role = 'etl' "
            "and c.main_unit is not null)"
        )
    ).scalar_one()
    dispatched = connection.execute(
        sa.text("select count(*) from service_requests where dispatched_at is not null")
    ).scalar_one()
    assert dispatched > 1000 and missing == 0
    closed = connection.execute(
        sa.text("select count(*) from cases where state = 'closed'")
    ).scalar_one()
    assert closed > 0
    assert _all_replay(connection) > 1000


def test_the_machine_takes_the_etls_steps_as_the_extract_has_them() -> None:
    """The ETL's role (never a user's) may dispatch without a unit or a due time, resolve
    without a result, call back without answers, and note its run; a user may not; the ETL
    takes only the extract's steps."""
    from layers.cases import Case, Refused, apply

    at = t("09:30:00")
    case = apply(Case(), "dispatch", "etl", {"assisting_units": [], "etl_run_id": 7}, at)
    assert (case.state, case.main_unit, case.due_at) == ("dispatched", None, None)
    for action, role, fields in (
        ("dispatch", "clerk", {"assisting_units": []}),  # a user names the unit
        ("dispatch", "clerk", {"main_unit": "u", "due_at": at, "etl_run_id": 7}),
    ):
        with pytest.raises(Refused) as refused:
            apply(Case(), action, role, fields, at)
        assert refused.value.status == 400
    case = apply(case, "accept", "etl", {"etl_run_id": 7}, at)
    resolved = apply(case, "resolve", "etl", {}, at)
    assert (resolved.state, resolved.result) == ("resolved", None)
    called = apply(resolved, "callback", "etl", {"rating": None}, at)
    assert (called.state, called.rating, called.callback_valid) == ("called_back", None, None)
    for action, fields in (("return", {"reason": "x"}), ("supervise", {"note": "x"})):
        with pytest.raises(Refused) as refused:
            apply(case, action, "etl", fields, at)
        assert refused.value.status == 403
