"""Every run is on record: recorded before it loads, marked failed when it fails or dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from app.cli import main
from app.db import make_engine
from etl.jobs import EtlError, run_file
from tests.district import request_row, write_csv
from tests.etl.committed import committed_database, load, reset, snapshot

BLOCKDATA = Path(sys.executable).with_name("blockdata")


@pytest.fixture(scope="module")
def url(server_url: str) -> Iterator[str]:
    with committed_database(server_url, "blockdata_test_runs") as url:
        yield url


@pytest.fixture
def db(url: str) -> Iterator[sa.Engine]:
    engine = make_engine(url)
    reset(engine)
    yield engine
    engine.dispose()


def runs(url: str) -> list[dict[str, object]]:
    """`blockdata etl runs --json`, as a user would call it."""
    result = CliRunner().invoke(main, ["etl", "runs", "--json"], env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.output)
    return rows


def test_a_failed_run_is_on_record_even_when_its_transaction_is_rolled_back(
    db: sa.Engine, url: str, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with db.connect() as conn:
        with pytest.raises(EtlError) as failed:
            run_file(conn, empty, layer="service_requests")
        conn.rollback()
    run = {r["id"]: r for r in runs(url)}[failed.value.report.run_id]
    assert run["status"] == "failed" and run["file_name"] == "empty.csv"
    assert "empty" in str(run["error"]) or "为空" in str(run["error"])
    assert run["pid"] == os.getpid() and run["finished_at"] is not None


def _waiting_on_advisory(engine: sa.Engine) -> int | None:
    """The backend of a loading session waiting for an advisory lock, if one is."""
    with engine.connect() as conn:
        pid = conn.execute(
            sa.text(
                "select l.pid from pg_locks l join pg_stat_activity a using (pid) "
                "where l.locktype = 'advisory' and not l.granted "
                "and a.datname = current_database() limit 1"
            )
        ).scalar()
    return int(pid) if pid is not None else None


def _alive(engine: sa.Engine, pid: int) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text("select exists (select 1 from pg_stat_activity where pid = :pid)"),
                {"pid": pid},
            ).scalar()
        )


def test_a_killed_run_changes_nothing_and_is_shown_failed(
    db: sa.Engine, url: str, tmp_path: Path
) -> None:
    """SIGKILL a real `blockdata etl run` after it wrote its rows, while it waits to refresh
    the aggregates (another session holds the refresh lock)."""
    first = load(db, write_csv(tmp_path / "a.csv", [request_row(f"K{i}") for i in range(20)]))
    assert first.inserted == 20
    before = snapshot(db)
    changed = [request_row(f"K{i}", 状态="处理中") for i in range(10)]
    changed += [request_row(f"N{i}", 诉求类别="噪声扰民") for i in range(10)]
    path = write_csv(tmp_path / "b.csv", changed)
    with db.connect() as refresh:
        refresh.execute(sa.text("select pg_advisory_lock(hashtext('request_aggregates'))"))
        refresh.commit()
        env = {**os.environ, "DATABASE_URL": url, "BLOCKDATA_VAR": str(tmp_path / "var")}
        process = subprocess.Popen(
            [str(BLOCKDATA), "etl", "run", str(path), "--layer", "service_requests"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 120
            while (backend := _waiting_on_advisory(db)) is None:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the run never reached the refresh"
                time.sleep(0.02)
        finally:
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=60)  # reaps it and closes its pipes
            refresh.execute(sa.text("select pg_advisory_unlock(hashtext('request_aggregates'))"))
            refresh.commit()
    # The loading session notices its client is gone at its next message, and rolls back.
    deadline = time.monotonic() + 120
    while _alive(db, backend):
        assert time.monotonic() < deadline, "the killed run's session stayed"
        time.sleep(0.05)
    assert snapshot(db) == before
    killed = [r for r in runs(url) if r["file_name"] == "b.csv"]
    assert len(killed) == 1
    assert killed[0]["status"] == "failed" and "interrupted" in str(killed[0]["error"])
    assert killed[0]["backend_pid"] == backend and killed[0]["pid"] == process.pid
    listing = CliRunner().invoke(main, ["etl", "runs"], env={"DATABASE_URL": url})
    line = next(x for x in listing.output.splitlines() if "b.csv" in x)
    assert "failed" in line
    assert "interrupted" in listing.output


def test_a_running_run_is_not_marked_interrupted(db: sa.Engine, url: str, tmp_path: Path) -> None:
    """While a run loads, `etl runs` (which marks the dead ones) shows it running."""
    path = write_csv(tmp_path / "c.csv", [request_row(f"R{i}") for i in range(5)])
    with db.connect() as conn:
        report = run_file(conn, path, layer="service_requests")
        listed = {r["id"]: r for r in runs(url)}[report.run_id]
        assert listed["status"] == "running"  # committed 'running'; 'succeeded' not yet
        conn.commit()
    assert {r["id"]: r for r in runs(url)}[report.run_id]["status"] == "succeeded"
