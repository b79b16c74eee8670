"""Loads against readers, with real concurrent sessions on a committed database.

A bulk load needs ACCESS EXCLUSIVE locks; a rebuild of the aggregates swaps tables. Neither
may deadlock a reader, nor keep new readers queued for long, nor wait forever for a reader
that does not finish; when the locks stay busy the load fails and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import etl.load
import etl.locks
from app.db import make_engine
from etl.jobs import EtlError, RunReport
from tests.aggregates import assert_exact
from tests.district import request_row, write_csv
from tests.etl.committed import committed_database, load, reset, snapshot

CATEGORIES = ["环境卫生", "噪声扰民", "停车管理", "供暖"]


@pytest.fixture(scope="module")
def url(server_url: str) -> Iterator[str]:
    with committed_database(server_url, "blockdata_test_locks") as url:
        yield url


@pytest.fixture
def db(url: str) -> Iterator[sa.Engine]:
    engine = make_engine(url, pool_size=24)
    reset(engine)
    yield engine
    engine.dispose()


def spread(
    prefix: str, n: int, days: int, seed: int, category_shift: int = 0
) -> list[dict[str, str]]:
    """`n` requests over `days` days (every day has one), both streets, four categories."""
    rng = random.Random(seed)
    first = dt.date(2026, 6, 1)
    rows = []
    for i in range(n):
        day = first + dt.timedelta(days=i % days)
        received = f"{day} {rng.randrange(24):02d}:{rng.randrange(60):02d}:00"
        rows.append(
            request_row(
                f"{prefix}{i:04d}",
                受理时间=received,
                派单时间=received,
                经度=f"{rng.uniform(116.3002, 116.3398):.6f}",
                纬度=f"{rng.uniform(39.9002, 39.9198):.6f}",
                诉求类别=CATEGORIES[(i + category_shift) % len(CATEGORIES)],
                状态=rng.choice(["已派单", "处理中", "已办结"]),
            )
        )
    return rows


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def load_waiting(engine: sa.Engine) -> bool:
    """Some session waits for an ACCESS EXCLUSIVE lock on service_requests."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "select exists (select 1 from pg_locks where not granted "
                    "and mode = 'AccessExclusiveLock' "
                    "and relation = 'service_requests'::regclass)"
                )
            ).scalar()
        )


def background(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # reported by the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


@pytest.fixture
def bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    """A load of a new source is a bulk load, however small."""
    monkeypatch.setattr(etl.load, "BULK_MIN_ROWS", 1)


def test_a_bulk_load_waits_for_a_reader_without_queueing_new_readers(
    db: sa.Engine, tmp_path: Path, bulk: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        etl.locks,
        "DEFAULT_POLICY",
        etl.locks.LockPolicy(wait=0.3, tries=1000, pause=0.01, max_pause=0.05),
    )
    pauses: list[float] = []
    monkeypatch.setattr(etl.locks, "_sleep", lambda s: (pauses.append(s), time.sleep(s)))
    path = write_csv(tmp_path / "first.csv", spread("B", 120, 30, seed=1))
    # A long export: a repeatable-read transaction that has read the requests and stays open.
    export = db.connect().execution_options(isolation_level="REPEATABLE READ")
    assert export.execute(sa.text("select count(*) from service_requests")).scalar() == 0
    thread, out = background(lambda: load(db, path))
    try:
        wait_for(lambda: load_waiting(db), "the load to ask for its lock")
        # New readers meanwhile: each gets its answer while the export still holds its lock.
        for _ in range(5):
            with db.connect() as reader:
                reader.execute(sa.text("set statement_timeout = '20s'"))
                assert (
                    reader.execute(sa.text("select count(*) from service_requests")).scalar() == 0
                )
                assert reader.execute(sa.text("select count(*) from request_daily")).scalar() == 0
        assert thread.is_alive() and not export.closed
    finally:
        export.commit()
        export.close()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert "error" not in out, out.get("error")
    report: RunReport = out["value"]
    assert report.inserted == 120 and pauses, "the load retried, then loaded"
    with db.connect() as conn:
        assert conn.execute(sa.text("select count(*) from service_requests")).scalar() == 120
        assert_exact(conn)


def test_a_bulk_load_blocked_past_its_tries_fails_and_changes_nothing(
    db: sa.Engine, tmp_path: Path, bulk: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load(db, write_csv(tmp_path / "a.csv", spread("A", 40, 10, seed=2)))
    assert first.inserted == 40
    before = snapshot(db)
    monkeypatch.setattr(
        etl.locks, "DEFAULT_POLICY", etl.locks.LockPolicy(wait=0.2, tries=3, pause=0.01)
    )
    export = db.connect().execution_options(isolation_level="REPEATABLE READ")
    export.execute(sa.text("select count(*) from service_requests"))
    holder = export.execute(sa.text("select pg_backend_pid()")).scalar()
    path = write_csv(tmp_path / "b.csv", spread("B", 200, 10, seed=3))
    thread, out = background(lambda: load(db, path, source="grid-reports"))
    thread.join(timeout=60)
    finished = not thread.is_alive()
    export.commit()
    export.close()
    thread.join(timeout=120)
    assert finished, "the load gave up by itself"
    error = out.get("error")
    assert isinstance(error, EtlError), out
    assert "LockBusy" in str(error) and "service_requests" in str(error)
    assert f"pid {holder}" in str(error)
    assert snapshot(db) == before
    with db.connect() as conn:
        status, message = conn.execute(
            sa.text("select status, error from etl_runs where id = :id"),
            {"id": error.report.run_id},
        ).one()
    assert status == "failed" and "LockBusy" in message


READS = {
    "summary": [
        "select count(*) from streets",
        "select sum(received) from request_street_daily",
        "select count(*) from request_open",
        "select sum(received) from request_daily where category is null",
        "select count(*) from request_periods where span = 'month'",
        "select count(*) from grids",
    ],
    "heat": [
        "select sum(received) from (select received from request_daily union all "
        "select received from request_periods) h",
    ],
    "cells": [
        "select count(*) from request_cells_daily d join request_cells_periods p "
        "using (street_code, cell_x, cell_y)",
    ],
    "latest": ["select max(received_at) from service_requests where street_code is not null"],
    "scorecard_then_rows": [
        "select sum(received) from request_street_daily",
        "select count(*) from service_requests",
    ],
    "rows_then_heat": [
        "select count(*) from service_requests",
        "select sum(received) from request_cells_daily",
    ],
}


EVERY_READ = [statement for statements in READS.values() for statement in statements]


def readers(
    engine: sa.Engine, n: int, stop: threading.Event, errors: list[str]
) -> list[threading.Thread]:
    """`n` clients reading as the pages do — several statements in one transaction, in many
    orders, some shuffled — until `stop`."""

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with engine.connect() as conn:
            conn.execute(sa.text("set statement_timeout = '60s'"))
            conn.commit()
            while not stop.is_set():
                statements = list(READS[rng.choice(list(READS))])
                if rng.random() < 0.3:
                    statements = rng.sample(EVERY_READ, 3)
                try:
                    with conn.begin():
                        for statement in statements:
                            conn.execute(sa.text(statement))
                except sa.exc.DBAPIError as exc:
                    errors.append(f"{type(exc.orig).__name__}: {exc.orig}")
                time.sleep(rng.uniform(0.001, 0.01))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.parametrize("repetition", range(3))
def test_sixteen_readers_a_bulk_load_and_a_long_rebuild_never_deadlock(
    db: sa.Engine, tmp_path: Path, bulk: None, repetition: int
) -> None:
    """A reload spanning 130 days rebuilds the heat tables aside and swaps them in while a
    new source's first load runs in bulk mode; 16 clients read throughout."""
    hotline = spread("H", 260, 130, seed=10 + repetition)
    assert load(db, write_csv(tmp_path / "hotline.csv", hotline)).inserted == 260
    changed = spread("H", 260, 130, seed=10 + repetition, category_shift=1)
    grid = write_csv(tmp_path / "grid.csv", spread("G", 300, 60, seed=20 + repetition))
    stop = threading.Event()
    errors: list[str] = []
    clients = readers(db, 16, stop, errors)
    try:
        time.sleep(0.2)
        bulk_thread, bulk_out = background(lambda: load(db, grid, source="grid-reports"))
        long_thread, long_out = background(
            lambda: load(db, write_csv(tmp_path / "hotline2.csv", changed))
        )
        for thread in (bulk_thread, long_thread):
            thread.join(timeout=300)
            assert not thread.is_alive()
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=120)
    assert errors == []
    assert "error" not in bulk_out, bulk_out.get("error")
    assert "error" not in long_out, long_out.get("error")
    assert bulk_out["value"].inserted == 300
    assert long_out["value"].updated == 260
    with db.connect() as conn:
        assert conn.execute(sa.text("select count(*) from service_requests")).scalar() == 560
        assert_exact(conn)
