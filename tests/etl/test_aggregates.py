"""The request aggregates against direct counts: loads through the ETL, reloads, deletions."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from etl.aggregates import (
    RatesConfig,
    RatesConfigError,
    load_rates,
    refresh_request_aggregates,
    refresh_unless_busy,
    three_rates,
)
from etl.jobs import RunReport, run_file
from layers.aggregates import (
    SPANS,
    period_start,
)
from layers.queries import heat
from layers.queries.window import Window
from tests.aggregates import (
    CATEGORIES,
    CELL,
    FIRST_DAY,
    LOAD_NOW,
    LOCAL_DAY,
    TIMES,
    _by_category_and_total,
    _periods,
    _rows,
    assert_exact,
    direct_heat,
    requests,
)
from tests.district import request_row, write_csv

pytestmark = pytest.mark.usefixtures("district")


def load(conn: sa.Connection, path: Path) -> RunReport:
    """Load requests through the ETL (which refreshes the aggregates), and refresh again."""
    report = run_file(conn, path, layer="service_requests", now=LOAD_NOW)
    assert report.rejected == 0, report.reasons
    refresh_request_aggregates(conn)
    return report


WINDOWS = [
    (dt.date(2026, 10, 5), dt.date(2026, 10, 5)),  # one day
    (dt.date(2026, 9, 28), dt.date(2026, 10, 4)),  # a week across a month end
    (dt.date(2026, 10, 1), dt.date(2026, 10, 31)),  # exactly one month
    (dt.date(2026, 9, 25), dt.date(2026, 11, 6)),  # edges + a whole month
    (dt.date(2026, 10, 1), dt.date(2026, 11, 15)),  # a whole month + the days after
    (dt.date(2026, 8, 1), dt.date(2026, 12, 31)),  # beyond the data
]


def assert_heat_matches(conn: sa.Connection) -> None:
    for since, until in WINDOWS:
        for level in heat.LEVELS:
            for category in (None, "噪声扰民", "没有的类别"):
                for street in (None, "110102003"):
                    got = heat.heat(conn, level, Window(since, until), category, street)
                    want = direct_heat(conn, level, since, until, category, street)
                    assert {i["code"]: i["n"] for i in got["items"]} == dict(want), (
                        level,
                        since,
                        until,
                        category,
                        street,
                    )
                    assert got["total"] == sum(want.values())
                    assert got["unplaced"] == 0


def test_a_load_leaves_the_aggregates_exact(connection: sa.Connection, tmp_path: Path) -> None:
    report = run_file(
        connection,
        write_csv(tmp_path / "r.csv", requests()),
        layer="service_requests",
        now=LOAD_NOW,
    )
    assert "aggregates" in report.timings  # run_file refreshes after loading requests
    assert connection.execute(sa.text("select count(*) from request_dirty_days")).scalar_one() == 0
    assert_exact(connection)
    assert_heat_matches(connection)
    again = refresh_request_aggregates(connection)
    assert (again.full, again.days, again.rows) == (False, 0, {})


def test_the_first_refresh_builds_everything(connection: sa.Connection, tmp_path: Path) -> None:
    load(connection, write_csv(tmp_path / "r.csv", requests(60)))
    # As after `alembic upgrade` on a database that already holds requests.
    connection.execute(sa.text("delete from request_street_daily; delete from request_daily"))
    report = refresh_request_aggregates(connection)
    assert report.full and report.rows["request_daily"] > 0
    assert_exact(connection)


def test_a_reload_with_a_new_category_date_and_status_stays_exact(
    connection: sa.Connection, tmp_path: Path
) -> None:
    rows = requests()
    load(connection, write_csv(tmp_path / "day1.csv", rows))
    moved = rows[1]
    old_day = dt.date.fromisoformat(moved["受理时间"][:10])
    new_day = dt.date(2026, 11, 20)
    changed = [
        dict(rows[0], 诉求类别="供暖" if rows[0]["诉求类别"] != "供暖" else "噪声扰民"),
        # A corrected received time moves the row's later times with it (a resolution
        # before receipt would be rejected).
        {k: f"{new_day} 10:00:00" if v == moved["受理时间"] else v for k, v in moved.items()},
        dict(
            rows[2], 状态="已办结", 是否有效回访="是", 是否联系="是", 是否解决="是", 满意度="满意"
        ),
        request_row("NEW1", 受理时间="2026-11-21 23:59:59", 诉求类别="停车管理"),
    ]
    before = {d: heat.heat(connection, "grid", Window(d, d))["total"] for d in (old_day, new_day)}
    report = load(connection, write_csv(tmp_path / "day2.csv", changed))
    assert (report.inserted, report.updated) == (1, 3)
    assert_exact(connection)
    assert_heat_matches(connection)
    after = {d: heat.heat(connection, "grid", Window(d, d))["total"] for d in (old_day, new_day)}
    assert after == {old_day: before[old_day] - 1, new_day: before[new_day] + 1}


def _marks(conn: sa.Connection) -> dict[dt.date, bool]:
    rows = conn.execute(sa.text("select day, bool_or(place) from request_dirty_days group by 1"))
    return dict(rows.all())


def test_the_triggers_mark_the_days_a_change_touched(
    connection: sa.Connection, tmp_path: Path
) -> None:
    rows = requests(60)
    load(connection, write_csv(tmp_path / "a.csv", rows))
    day = {r["工单编号"]: dt.date.fromisoformat(r["受理时间"][:10]) for r in rows}
    update = "update service_requests set {} where source_id = :id"
    connection.execute(sa.text(update.format("category = '养犬'")), {"id": "Q0000"})
    assert _marks(connection) == {day["Q0000"]: True}
    connection.execute(
        sa.text(update.format("received_at = '2026-12-01 08:00+08'")), {"id": "Q0001"}
    )
    connection.execute(sa.text(update.format("status = '已办结'")), {"id": "Q0002"})
    connection.execute(sa.text(update.format("updated_at = now()")), {"id": "Q0003"})
    marks = _marks(connection)
    assert marks[day["Q0001"]] and marks[dt.date(2026, 12, 1)] and marks[day["Q0000"]]
    assert marks[day["Q0002"]] == (day["Q0002"] in (day["Q0000"], day["Q0001"]))
    report = refresh_request_aggregates(connection)
    assert not report.full and report.days == len(marks)
    assert report.place_days == sum(marks.values())
    assert _marks(connection) == {}
    assert_exact(connection)


def test_status_only_changes_leave_the_heat_tables_alone(
    connection: sa.Connection, tmp_path: Path
) -> None:
    rows = requests(60)
    load(connection, write_csv(tmp_path / "a.csv", rows))
    open_ids = [r["工单编号"] for r in rows if r["状态"] != "已办结"][:3]
    connection.execute(
        sa.text(
            "update service_requests set status = '已办结', callback_valid = true, "
            "satisfaction = '满意' where source_id = any(:ids)"
        ),
        {"ids": open_ids},
    )
    assert not any(_marks(connection).values())
    report = refresh_request_aggregates(connection)
    assert report.place_days == 0 and report.days >= 1
    assert "request_daily" not in report.rows and report.rows["request_street_daily"] >= 1
    assert_exact(connection)


def test_incremental_equals_full_rebuild(connection: sa.Connection, tmp_path: Path) -> None:
    rows = requests()
    load(connection, write_csv(tmp_path / "a.csv", rows[:150]))
    load(connection, write_csv(tmp_path / "b.csv", rows[100:]))
    tables = ["request_daily", "request_periods", "request_cells_daily", "request_cells_periods"]
    incremental = {t: _rows(connection, f"select * from {t}") for t in tables}
    assert refresh_request_aggregates(connection, full=True).full
    assert {t: _rows(connection, f"select * from {t}") for t in tables} == incremental


def test_deletes_direct_writes_and_unplaced_requests(
    connection: sa.Connection, tmp_path: Path
) -> None:
    load(connection, write_csv(tmp_path / "r.csv", requests()))
    connection.execute(
        sa.text("delete from service_requests where source_id in ('Q0003', 'Q0004')")
    )
    # Written by hand, not placed and without a category: in the totals only.
    connection.execute(
        sa.text(
            "insert into service_requests (source, source_id, received_at, status, geom) "
            "values ('manual', 'M1', '2026-10-10 08:00+08', '已派单', "
            "ST_SetSRID(ST_MakePoint(116.31, 39.91), 4326))"
        )
    )
    assert not refresh_request_aggregates(connection).full
    assert_exact(connection)
    day = dt.date(2026, 10, 10)
    for level in ("street", "community", "grid"):
        got = heat.heat(connection, level, Window(day, day))
        total = direct_heat(connection, "cell", day, day).total()
        assert got["total"] == total and got["unplaced"] == 1
    cells = heat.heat(connection, "cell", Window(day, day))
    assert cells["unplaced"] == 0 and sum(i["n"] for i in cells["items"]) == cells["total"]
    assert heat.heat(connection, "grid", Window(day, day), "噪声扰民")["unplaced"] == 0


def test_truncate_means_rebuild_everything(connection: sa.Connection, tmp_path: Path) -> None:
    load(connection, write_csv(tmp_path / "r.csv", requests(30)))
    connection.execute(sa.text("truncate service_requests"))
    assert refresh_request_aggregates(connection).full
    for table in ("request_daily", "request_cells_periods", "request_street_daily"):
        assert connection.execute(sa.text(f"select count(*) from {table}")).scalar_one() == 0


def test_local_days_follow_beijing_time(connection: sa.Connection, tmp_path: Path) -> None:
    rows = [
        request_row("T1", 受理时间="2026-10-31 23:59:59"),
        request_row("T2", 受理时间="2026-11-01 00:00:00"),
    ]
    load(connection, write_csv(tmp_path / "t.csv", rows))
    days = dict(
        connection.execute(
            sa.text("select day, received from request_daily where category is null")
        ).all()
    )
    assert days == {dt.date(2026, 10, 31): 1, dt.date(2026, 11, 1): 1}
    periods = connection.execute(
        sa.text("select span, first_day, received from request_periods where category is null")
    ).all()
    assert sorted(periods) == [
        ("dekad", dt.date(2026, 10, 21), 1),
        ("dekad", dt.date(2026, 11, 1), 1),
        ("month", dt.date(2026, 10, 1), 1),
        ("month", dt.date(2026, 11, 1), 1),
        ("quarter", dt.date(2026, 10, 1), 2),
    ]


def test_rates_config_and_the_three_rates(tmp_path: Path) -> None:
    config = load_rates()
    assert config.k == 0.9
    assert config.weights == {
        "response_rate": 0.10,
        "resolution_rate": 0.50,
        "satisfaction_rate": 0.40,
    }
    counts = {"callbacks": 5, "contacted": 4, "solved": 3, "satisfied": 2, "basic_satisfied": 2}
    rates = three_rates(counts, config)
    assert rates["response_rate"] == pytest.approx(0.8)
    assert rates["resolution_rate"] == pytest.approx(0.6)
    assert rates["satisfaction_rate"] == pytest.approx((2 + 0.9 * 2) / 5)
    assert rates["composite"] == pytest.approx(100 * (0.1 * 0.8 + 0.5 * 0.6 + 0.4 * 0.76))
    assert set(three_rates(dict(counts, callbacks=0), config).values()) == {None}
    other = three_rates(counts, RatesConfig(k=0.5, weights={**config.weights}))
    assert other["satisfaction_rate"] == pytest.approx(3 / 5)
    for text, match in [
        ("k: 2\nweights: {response_rate: .1, resolution_rate: .5, satisfaction_rate: .4}", "k"),
        ("k: .9\nweights: {response_rate: .5, resolution_rate: .5, satisfaction_rate: .4}", "sum"),
        ("k: .9\nweights: {response_rate: .1}", "resolution_rate"),
        ("- 1\n- 2\n", "expected"),
    ]:
        path = tmp_path / "rates.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(RatesConfigError, match=match):
            load_rates(path)


HEAT = ("request_daily", "request_periods", "request_cells_daily", "request_cells_periods")


def _heat_schema(conn: sa.Connection) -> dict[str, Any]:
    """Everything about the heat tables but their rows and identity: columns, indexes,
    constraints, owner, grants, row-level security and policies, storage options."""
    out: dict[str, Any] = {}
    for table in HEAT:
        params = {"t": table}
        out[table] = [
            _rows(
                conn,
                "select attname, format_type(atttypid, atttypmod), attnotnull, attnum, "
                "col_description(attrelid, attnum) from pg_attribute "
                "where attrelid = cast(:t as regclass) and attnum > 0 and not attisdropped",
                **params,
            ),
            _rows(
                conn,
                "select indexname, indexdef from pg_indexes "
                "where schemaname = 'public' and tablename = :t",
                **params,
            ),
            _rows(
                conn,
                "select conname, pg_get_constraintdef(oid) from pg_constraint "
                "where conrelid = cast(:t as regclass)",
                **params,
            ),
            _rows(
                conn,
                "select policyname, permissive, roles::text, cmd, qual, with_check "
                "from pg_policies where schemaname = 'public' and tablename = :t",
                **params,
            ),
            _rows(
                conn,
                "select grantee, privilege_type from information_schema.role_table_grants "
                "where table_schema = 'public' and table_name = :t",
                **params,
            ),
            _rows(
                conn,
                "select pg_get_userbyid(relowner), relrowsecurity, relforcerowsecurity, "
                "reloptions::text, relpersistence from pg_class "
                "where oid = cast(:t as regclass)",
                **params,
            ),
        ]
    return out


def _identities(conn: sa.Connection) -> dict[str, int]:
    return {t: conn.execute(sa.text(f"select '{t}'::regclass::oid")).scalar_one() for t in HEAT}


def _twins_left(conn: sa.Connection) -> list[str]:
    return list(
        conn.execute(sa.text("select tablename from pg_tables where schemaname = 'etl_build'"))
        .scalars()
        .all()
    )


@pytest.fixture
def bulk_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new source's load is a bulk load, however small (and whatever row estimate another
    test's rolled-back index build left in `reltuples`)."""
    import etl.load

    monkeypatch.setattr(etl.load, "_bulk", lambda conn, layer, batch: True)


def test_a_first_bulk_load_builds_the_aggregates_from_its_batch_exactly(
    connection: sa.Connection, tmp_path: Path, bulk_loads: None
) -> None:
    """Into an empty table: the heat tables are built from the batch beside the load, on a
    second connection, and swapped in; every table equals a GROUP BY over the rows."""
    schema = _heat_schema(connection)
    before = _identities(connection)
    already = set(_twins_left(connection))
    report = run_file(
        connection,
        write_csv(tmp_path / "r.csv", requests()),
        layer="service_requests",
        now=LOAD_NOW,
    )
    assert report.inserted == 240 and "rebuild indexes" in report.timings  # bulk mode
    assert _identities(connection) != before  # swapped in
    assert _heat_schema(connection) == schema
    assert set(_twins_left(connection)) == already
    assert_exact(connection)
    assert_heat_matches(connection)
    again = refresh_request_aggregates(connection)
    assert (again.full, again.days, again.rows) == (False, 0, {})


@pytest.mark.parametrize("helper", ["builds the last ones", "fails"])
def test_the_loads_connection_builds_the_twins_not_started_yet(
    connection: sa.Connection,
    tmp_path: Path,
    bulk_loads: None,
    monkeypatch: pytest.MonkeyPatch,
    helper: str,
) -> None:
    """When the load's own work is done before the second connection's, the load's
    connection builds the twins nobody has started; if one fails there, the heat tables
    come from the batch in place, and no twin is left either way."""
    import threading

    from etl.aggregates import HEAT_NAMES, Twins

    take, build = Twins.take, Twins.build
    built: dict[str, str] = {}

    def side_takes_one(self: Twins, last: bool = False) -> str | None:
        if not last and built:
            return None  # the second connection stops after its first twin
        return take(self, last)

    def recorded(self: Twins, conn: sa.Connection, name: str) -> int:
        on = "load" if threading.current_thread() is threading.main_thread() else "side"
        built[name] = on
        if on == "load" and helper == "fails" and list(built.values()).count("load") == 2:
            conn.exec_driver_sql("select 1 / 0")
        return build(self, conn, name)

    monkeypatch.setattr(Twins, "take", side_takes_one)
    monkeypatch.setattr(Twins, "build", recorded)
    schema = _heat_schema(connection)
    before = _identities(connection)
    report = run_file(
        connection,
        write_csv(tmp_path / "r.csv", requests()),
        layer="service_requests",
        now=LOAD_NOW,
    )
    assert report.status == "succeeded" and "rebuild indexes" in report.timings
    assert built[HEAT_NAMES[0]] == "side"
    if helper == "fails":
        assert list(built.values()).count("load") == 2  # the second one failed, none after
        assert _identities(connection) == before  # rebuilt in place from the batch
    else:
        assert built == {HEAT_NAMES[0]: "side", **{n: "load" for n in HEAT_NAMES[1:]}}
        assert _identities(connection) != before  # swapped in
    assert _heat_schema(connection) == schema
    assert not [t for t in _twins_left(connection) if t.endswith(f"_r{report.run_id}")]
    assert_exact(connection)
    assert_heat_matches(connection)


def test_a_bulk_load_beside_other_rows_rebuilds_in_place_exactly(
    connection: sa.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import etl.load

    rows = requests()
    run_file(
        connection, write_csv(tmp_path / "a.csv", rows[:60]), layer="service_requests", now=LOAD_NOW
    )
    schema = _heat_schema(connection)
    before = _identities(connection)
    monkeypatch.setattr(etl.load, "_bulk", lambda conn, layer, batch: True)
    report = run_file(
        connection,
        write_csv(tmp_path / "b.csv", rows[60:]),
        layer="service_requests",
        source="grid-reports",
        now=LOAD_NOW,
    )
    assert report.inserted == 180 and "rebuild indexes" in report.timings
    assert _identities(connection) == before and _heat_schema(connection) == schema
    assert_exact(connection)
    assert_heat_matches(connection)


def _over_days(n: int, days: int, shift: int = 0) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        day = FIRST_DAY + dt.timedelta(days=i % days)
        received = f"{day} {TIMES[i % len(TIMES)]}"
        rows.append(
            request_row(
                f"L{i:04d}",
                受理时间=received,
                派单时间=received,
                经度=f"{116.3005 + (i * 0.00731) % 0.039:.6f}",
                纬度=f"{39.9005 + (i * 0.00317) % 0.019:.6f}",
                诉求类别=CATEGORIES[(i + shift) % len(CATEGORIES)],
            )
        )
    return rows


def test_a_run_spanning_more_than_120_days_swaps_in_rebuilt_tables(
    connection: sa.Connection, tmp_path: Path
) -> None:
    load(connection, write_csv(tmp_path / "a.csv", _over_days(262, 131)))
    schema = _heat_schema(connection)
    before = _identities(connection)
    already = set(_twins_left(connection))
    report = run_file(
        connection,
        write_csv(tmp_path / "b.csv", _over_days(262, 131, shift=1)),
        layer="service_requests",
        now=LOAD_NOW,
    )
    assert report.updated == 262
    assert _identities(connection) != before  # built aside, swapped in
    assert _heat_schema(connection) == schema
    assert set(_twins_left(connection)) == already
    assert_exact(connection)
    assert_heat_matches(connection)


def test_a_rebuild_replaces_the_rows_of_a_table_a_view_depends_on(
    connection: sa.Connection, tmp_path: Path
) -> None:
    """A heat table another object depends on cannot be dropped, one with a trigger would
    lose it: their rows are replaced in place."""
    load(connection, write_csv(tmp_path / "a.csv", requests(60)))
    connection.execute(sa.text("create view daily_totals as select * from request_daily"))
    connection.execute(
        sa.text(
            "create function nothing() returns trigger language plpgsql as "
            "$$ begin return null; end $$; "
            "create trigger audit after truncate on request_cells_daily "
            "for each statement execute function nothing()"
        )
    )
    before = _identities(connection)
    assert refresh_request_aggregates(connection, full=True).full
    after = _identities(connection)
    assert after["request_daily"] == before["request_daily"]
    assert after["request_cells_daily"] == before["request_cells_daily"]
    assert after["request_periods"] != before["request_periods"]
    assert (
        connection.execute(
            sa.text("select count(*) from pg_trigger where tgname = 'audit'")
        ).scalar_one()
        == 1
    )
    assert_exact(connection)
    assert connection.execute(sa.text("select count(*) from daily_totals")).scalar_one() == (
        connection.execute(sa.text("select count(*) from request_daily")).scalar_one()
    )


def test_batch_aggregates_equal_a_group_by_over_the_same_rows(connection: sa.Connection) -> None:
    """The NumPy aggregates of a batch against PostgreSQL's GROUP BY over the same rows —
    requests without a category, without a grid or a street, at midnight, in other years."""
    import pyarrow as pa

    from etl.aggregate_batch import batch_aggregates

    rng = random.Random(5)
    rows = []
    for _ in range(400):
        day = dt.date(2025, 12, 20) + dt.timedelta(days=rng.randrange(120))
        at = dt.datetime.combine(day, dt.time(rng.choice([0, 7, 15, 23]), rng.choice([0, 59])))
        street, community, grid = rng.choice(
            [
                ("110102001", "110102001001", "110102001001001"),
                ("110102001", "110102001002", None),
                ("110102003", None, None),
                (None, None, None),
            ]
        )
        valid = rng.random() < 0.7
        rows.append(
            {
                "received_at": at.replace(tzinfo=dt.timezone(dt.timedelta(hours=8))),
                "street_code": street,
                "community_code": community,
                "grid_code": grid,
                "category": rng.choice([*CATEGORIES, None]),
                "status": rng.choice(["已办结", "处理中"]),
                "callback_valid": valid if rng.random() < 0.9 else None,
                "callback_contacted": rng.choice([True, False, None]),
                "callback_solved": rng.choice([True, False]),
                "satisfaction": rng.choice(["满意", "基本满意", "不满意", None]),
                "geom_x": rng.uniform(116.30, 116.34),
                "geom_y": rng.uniform(39.90, 39.92),
            }
        )
    for i, row in enumerate(rows):
        connection.execute(
            sa.text(
                "insert into service_requests (source, source_id, received_at, street_code, "
                "community_code, grid_code, category, status, callback_valid, "
                "callback_contacted, callback_solved, satisfaction, geom) values ('b', :id, "
                ":received_at, :street_code, :community_code, :grid_code, :category, :status, "
                ":callback_valid, :callback_contacted, :callback_solved, :satisfaction, "
                "ST_SetSRID(ST_MakePoint(:geom_x, :geom_y), 4326))"
            ),
            {"id": f"B{i}", **row},
        )
    batch = batch_aggregates(pa.Table.from_pylist(rows), "Asia/Shanghai")
    for table, keys in (
        ("request_daily", "street_code, community_code, grid_code"),
        ("request_cells_daily", "street_code, cell_x, cell_y"),
    ):
        direct = _rows(
            connection, _by_category_and_total(keys.replace("cell_x, cell_y", CELL), LOCAL_DAY)
        )
        mine = sorted((tuple(r.values()) for r in batch[table].to_pylist()), key=repr)
        assert mine == direct, table
        periods = table.replace("daily", "periods")
        mine = sorted((tuple(r.values()) for r in batch[periods].to_pylist()), key=repr)
        assert mine == _periods(direct), periods
    valid = "callback_valid is true"
    scorecards = _rows(
        connection,
        f"""select {LOCAL_DAY}, street_code, count(*)::int,
                   count(*) filter (where status = '已办结')::int,
                   count(*) filter (where {valid})::int,
                   count(*) filter (where {valid} and callback_contacted)::int,
                   count(*) filter (where {valid} and callback_solved)::int,
                   count(*) filter (where {valid} and satisfaction = '满意')::int,
                   count(*) filter (where {valid} and satisfaction = '基本满意')::int
              from service_requests group by 1, 2""",
    )
    mine = sorted((tuple(r.values()) for r in batch["request_street_daily"].to_pylist()), key=repr)
    assert mine == scorecards


def test_period_starts_in_numpy_equal_the_reference() -> None:
    import numpy as np

    from etl import aggregate_batch

    days = [dt.date(2023, 12, 25) + dt.timedelta(days=i) for i in range(800)]
    numbers = np.array([(d - dt.date(1970, 1, 1)).days for d in days], dtype=np.int64)
    for span in SPANS:
        got = aggregate_batch.period_start(span, numbers)
        want = [(period_start(span, d) - dt.date(1970, 1, 1)).days for d in days]
        assert got.tolist() == want, span


def test_an_intake_refresh_never_rebuilds_a_large_table(
    connection: sa.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full rebuild inside a web request (Open311) would hold its worker for a minute at
    a million requests: the intake's refresh leaves the marks for the next load."""
    import etl.aggregates

    load(connection, write_csv(tmp_path / "r.csv", requests(30)))
    connection.execute(sa.text("analyze service_requests"))
    connection.execute(sa.text("update service_requests set category = '养犬'"))  # stale now
    connection.execute(sa.text("insert into request_dirty_days (day, place) values (null, true)"))
    monkeypatch.setattr(etl.aggregates, "FULL_REBUILD_IN_REQUEST", 29)  # "large": 30 rows
    report = refresh_unless_busy(connection)
    assert report is not None and report.deferred and not report.full
    nulls = "select count(*) from request_dirty_days where day is null"
    assert connection.execute(sa.text(nulls)).scalar_one() == 1
    monkeypatch.setattr(etl.aggregates, "FULL_REBUILD_IN_REQUEST", 30)
    assert refresh_unless_busy(connection).full  # type: ignore[union-attr]
    assert_exact(connection)
