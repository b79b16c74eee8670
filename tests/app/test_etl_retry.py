"""`blockdata etl retry RUN_ID`: a run's retryable rejects re-run after the gazetteer grew.

On a committed database (the CLI commits as a user's command does), the tiny district,
the gazetteer built from lanes inserted here; expected places computed by shapely
(tests/etl_fixtures.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from app.cli import main
from app.db import make_engine
from etl.jobs import EtlError, retry_run
from layers.gazetteer import TABLES as GAZETTEER_TABLES
from tests.district import request_row, write_csv
from tests.etl.committed import committed_database, reset
from tests.etl_fixtures import (
    NEW_LANE,
    TEST_LANE,
    Lane,
    build_gazetteer,
    codes_at,
    insert_lane,
    stored,
)

NAMELESS = Lane(
    "1101020010000009", "无名巷", "110102001", (116.311, 39.902), (116.319, 39.902), (1, 9), (2, 10)
)


@pytest.fixture(scope="module")
def url(server_url: str) -> Iterator[str]:
    with committed_database(server_url, "blockdata_test_retry") as url:
        yield url


@pytest.fixture
def db(url: str) -> Iterator[sa.Engine]:
    engine = make_engine(url)
    reset(engine)
    names = ", ".join(["lanes", "landmarks", *(t.name for t in GAZETTEER_TABLES)])
    with engine.begin() as conn:
        conn.execute(sa.text(f"truncate {names} cascade"))
        insert_lane(conn, TEST_LANE)
        build_gazetteer(conn)
    yield engine
    engine.dispose()


def cli(url: str, tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main, list(args), env={"DATABASE_URL": url, "BLOCKDATA_VAR": str(tmp_path / "var")}
    )


def add_lane(engine: sa.Engine, lane: Lane) -> None:
    """The gazetteer grows: a lane is added and the gazetteer rebuilt from the layers."""
    with engine.begin() as conn:
        insert_lane(conn, lane)
        build_gazetteer(conn)


def address_only(source_id: str, address: str, **values: str) -> dict[str, str]:
    return request_row(source_id, 地址=address, 经度="", 纬度="", 坐标系="", **values)


def run_of(engine: sa.Engine, run_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.text("select * from etl_runs where id = :r"), {"r": run_id})
        return dict(row.mappings().one())


def rejects_of(engine: sa.Engine, run_id: int) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select * from etl_rejects where run_id = :r"), {"r": run_id}
        ).mappings()
        return {r["source_id"]: dict(r) for r in rows}


def loaded(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        got = stored(conn)
        runs = {
            r.source_id: r.etl_run_id
            for r in conn.execute(sa.text("select source_id, etl_run_id from service_requests"))
        }
    return {k: v | {"run": runs[k]} for k, v in got.items()}


def run_id_in(output: str) -> int:
    found = re.search(r"运行 run (\d+)", output)
    assert found, output
    return int(found[1])


def test_retry_loads_what_the_grown_gazetteer_places_and_never_a_row_twice(
    db: sa.Engine, url: str, tmp_path: Path
) -> None:
    rows = [
        request_row("OK1"),
        address_only("A1", "测试胡同3号"),
        address_only("N1", "新建胡同5号"),
        address_only("N2", "西城区新建胡同１２号附近"),
        address_only("N3", "无名巷9号"),
        request_row("BAD", 受理时间="2026-13-45"),
    ]
    path = write_csv(tmp_path / "day.csv", rows)
    first = cli(url, tmp_path, "etl", "run", str(path), "--layer", "service_requests")
    assert first.exit_code == 0, first.output
    run1 = run_id_in(first.output)
    assert "新增 inserted 2" in first.output and "geocode_failed 3" in first.output
    assert set(loaded(db)) == {"OK1", "A1"}

    add_lane(db, NEW_LANE)
    second = cli(url, tmp_path, "etl", "retry", str(run1))
    assert second.exit_code == 0, second.output
    run2 = run_id_in(second.output)
    assert f"retry of run {run1}" in second.output
    assert (
        "读取 read 3 = 新增 inserted 2 + 更新 updated 0 + 未变 unchanged 0 + 拒绝 rejected 1"
        in (second.output)
    )
    # The remaining reject, with its reason and the geocoder's message.
    assert re.search(r"row 5 +geocode_failed +N3 .*无名巷9号.*可重试 retryable", second.output)

    got = loaded(db)
    assert set(got) == {"OK1", "A1", "N1", "N2"}
    for source_id, number in [("N1", 5), ("N2", 12)]:
        x, y = NEW_LANE.point(number)
        row = got[source_id]
        assert (row["x"], row["y"]) == pytest.approx((x, y), abs=5e-6)
        assert (row["street_code"], row["community_code"], row["grid_code"]) == codes_at(x, y)
        assert (row["geocode_quality"], row["run"]) == ("interpolated", run2)
    assert got["A1"]["run"] == run1

    record = run_of(db, run2)
    assert (record["retry_of"], record["status"], record["file_name"]) == (
        run1,
        "succeeded",
        "day.csv",
    )
    assert (record["read"], record["inserted"], record["rejected"]) == (3, 2, 1)
    old = rejects_of(db, run1)
    assert {k: v["retried_in"] for k, v in old.items()} == {
        "N1": run2,
        "N2": run2,
        "N3": run2,
        "BAD": None,  # not retryable: a bad date stays the source's to fix
    }
    assert {k: (v["reason"], v["retryable"]) for k, v in rejects_of(db, run2).items()} == {
        "N3": ("geocode_failed", True)
    }
    listed = cli(url, tmp_path, "etl", "runs", "--json")
    assert {r["id"]: r["retry_of"] for r in json.loads(listed.output)} == {run1: None, run2: run1}
    listed = cli(url, tmp_path, "etl", "runs")
    assert f"重试运行 retry of run {run1}" in listed.output
    shown = cli(url, tmp_path, "etl", "rejects", str(run1))
    assert re.search(rf"row 3 +geocode_failed +N1 .*retried in run {run2}", shown.output)
    assert re.search(r"row 6 +bad_date +BAD ", shown.output)

    # Again: only what the retry still rejected is taken; nothing is loaded twice.
    third = cli(url, tmp_path, "etl", "retry", str(run1))
    assert third.exit_code == 0, third.output
    run3 = run_id_in(third.output)
    assert "读取 read 1 = 新增 inserted 0" in third.output
    assert set(loaded(db)) == {"OK1", "A1", "N1", "N2"}
    assert loaded(db)["N1"]["run"] == run2

    add_lane(db, NAMELESS)
    fourth = cli(url, tmp_path, "etl", "retry", str(run3))
    assert fourth.exit_code == 0, fourth.output
    assert "新增 inserted 1" in fourth.output and "仍被拒绝" not in fourth.output
    x, y = NAMELESS.point(9)
    assert (loaded(db)["N3"]["x"], loaded(db)["N3"]["y"]) == pytest.approx((x, y), abs=5e-6)

    done = cli(url, tmp_path, "etl", "retry", str(run1))
    assert done.exit_code == 0, done.output
    assert "没有待重试的行" in done.output
    with db.connect() as conn:
        assert conn.execute(sa.text("select count(*) from service_requests")).scalar_one() == 5
        assert conn.execute(sa.text("select count(*) from etl_runs")).scalar_one() == 4


def test_a_row_a_later_run_loaded_is_not_loaded_again_by_a_retry(
    db: sa.Engine, url: str, tmp_path: Path
) -> None:
    day1 = write_csv(tmp_path / "day1.csv", [address_only("N1", "新建胡同5号")])
    first = cli(url, tmp_path, "etl", "run", str(day1), "--layer", "service_requests")
    run1 = run_id_in(first.output)
    # The next extract has the record again, now with its coordinates.
    day2 = write_csv(tmp_path / "day2.csv", [request_row("N1", 状态="处理中")])
    second = cli(url, tmp_path, "etl", "run", str(day2), "--layer", "service_requests")
    run2 = run_id_in(second.output)
    add_lane(db, NEW_LANE)
    retried = cli(url, tmp_path, "etl", "retry", str(run1))
    assert retried.exit_code == 0, retried.output
    assert "already_loaded 1" in retried.output and "新增 inserted 0" in retried.output
    row = loaded(db)["N1"]
    assert (row["run"], row["geocode_quality"]) == (run2, "coordinates")
    assert (row["x"], row["y"]) == pytest.approx((116.305, 39.905))
    run3 = run_id_in(retried.output)
    assert {k: (v["reason"], v["retryable"]) for k, v in rejects_of(db, run3).items()} == {
        "N1": ("already_loaded", False)
    }


def _state(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for table in ("service_requests", "etl_rejects", "cases", "request_cells_daily"):
            rows = conn.execute(sa.text(f"select * from {table}")).all()
            out[table] = sorted((tuple(r) for r in rows), key=repr)
    return out


def test_a_failed_retry_leaves_the_database_as_it_was(
    db: sa.Engine, url: str, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "day.csv", [request_row("OK1"), address_only("N1", "新建胡同5号")])
    run1 = run_id_in(
        cli(url, tmp_path, "etl", "run", str(path), "--layer", "service_requests").output
    )
    add_lane(db, NEW_LANE)
    before = _state(db)

    def crash(conn: sa.Connection) -> None:
        assert conn.execute(sa.text("select count(*) from service_requests")).scalar_one() == 2
        raise RuntimeError("disk full")

    with db.connect() as conn:
        with pytest.raises(EtlError) as failed:
            retry_run(conn, run1, after_load=crash)
        conn.commit()  # as the CLI does: keeps the failed run's record
    assert _state(db) == before
    record = run_of(db, failed.value.report.run_id)
    assert (record["status"], record["retry_of"]) == ("failed", run1)
    assert "disk full" in record["error"]
    # Nothing was lost: the reject still waits, and a retry loads it.
    assert rejects_of(db, run1)["N1"]["retried_in"] is None
    again = cli(url, tmp_path, "etl", "retry", str(run1))
    assert again.exit_code == 0 and "新增 inserted 1" in again.output, again.output


def test_retrying_no_such_run_or_a_failed_one_says_why(
    db: sa.Engine, url: str, tmp_path: Path
) -> None:
    missing = cli(url, tmp_path, "etl", "retry", "99999")
    assert missing.exit_code != 0 and "没有这次运行" in missing.output
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    failed = cli(url, tmp_path, "etl", "run", str(empty), "--layer", "service_requests")
    assert failed.exit_code != 0
    with db.connect() as conn:
        run_id = conn.execute(sa.text("select max(id) from etl_runs")).scalar_one()
    refused = cli(url, tmp_path, "etl", "retry", str(run_id))
    assert refused.exit_code != 0 and "未成功" in refused.output


def _waiting_backend(engine: sa.Engine) -> int | None:
    """A session of this database waiting for a lock, if one is."""
    with engine.connect() as conn:
        pid = conn.execute(
            sa.text(
                "select pid from pg_stat_activity where datname = current_database() "
                "and wait_event_type = 'Lock' limit 1"
            )
        ).scalar()
    return int(pid) if pid is not None else None


def test_two_retries_of_one_run_at_once_take_each_reject_once(
    db: sa.Engine, url: str, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "day.csv", [address_only("N1", "新建胡同5号")])
    run1 = run_id_in(
        cli(url, tmp_path, "etl", "run", str(path), "--layer", "service_requests").output
    )
    add_lane(db, NEW_LANE)

    def other() -> object:
        with db.connect() as conn:
            report = retry_run(conn, run1)
            conn.commit()
            return report

    with db.connect() as conn, ThreadPoolExecutor(max_workers=1) as pool:
        first = retry_run(conn, run1)  # not committed yet: its rejects stay locked
        second = pool.submit(other)
        deadline = time.monotonic() + 60
        while _waiting_backend(db) is None and not second.done():
            assert time.monotonic() < deadline, "the second retry never waited"
            time.sleep(0.05)
        conn.commit()
        assert second.result() is None  # it found the rejects taken
    assert first is not None and first.inserted == 1
    assert set(loaded(db)) == {"N1"}
