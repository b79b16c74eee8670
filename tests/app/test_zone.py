"""One configurable district time zone (BLOCKDATA_TZ): validated at start, followed by the
database session, the ETL's reading of times, the aggregates' days; a change of zone refuses
to mix days until the aggregates are rebuilt."""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from app import create_app, migrate
from app.cli import main
from app.config import ConfigError, from_env
from app.db import make_engine
from etl.aggregates import AggregatesZoneError, refresh_request_aggregates
from etl.jobs import EtlError, run_file
from etl.rules import load_time_limits
from etl.transform import to_utc
from tests.clock import BEIJING, FrozenClock
from tests.district import load_district, request_row, write_csv
from tests.helpers import add_user, drop_database, login, new_database

NEW_YORK = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=BEIJING)
# Local wall-clock times either side of midnight in both zones (Beijing is 13 h ahead of
# New York in November after 1 Nov, 12 h before).
TIMES = [
    "2026-10-31 23:30:00",
    "2026-11-01 00:30:00",
    "2026-11-01 11:30:00",
    "2026-11-01 13:30:00",
    "2026-11-01 22:30:00",
    "2026-11-02 09:00:00",
]


def _rows() -> list[dict[str, str]]:
    return [
        request_row(f"Z{i}", 受理时间=t, 经度="116.305", 纬度="39.905") for i, t in enumerate(TIMES)
    ]


def _days(conn: sa.Connection, zone: ZoneInfo) -> Counter[dt.date]:
    """Requests per local day of `zone`, from the stored instants, in Python."""
    instants = conn.execute(sa.text("select received_at from service_requests")).scalars()
    return Counter(t.astimezone(zone).date() for t in instants)


def _aggregated(conn: sa.Connection) -> Counter[dt.date]:
    rows = conn.execute(
        sa.text("select day, sum(received) from request_daily where category is null group by 1")
    )
    return Counter({day: int(n) for day, n in rows})


def _zone_row(conn: sa.Connection) -> str:
    return str(conn.execute(sa.text("select zone from request_aggregates_zone")).scalar_one())


def _app(connection: sa.Connection, tz: str) -> Flask:
    return create_app(
        {"TESTING": True, "DB_CONNECTION": connection},
        settings=from_env({"BLOCKDATA_TZ": tz}).with_(clock=FrozenClock(NOW)),
    )


def _client(app: Flask, connection: sa.Connection) -> FlaskClient:
    return login(app.test_client(), add_user(connection, f"zone-{id(app)}"))


def test_the_setting_is_checked_and_defaults_to_beijing() -> None:
    assert from_env({}).tz == "Asia/Shanghai"
    assert from_env({"BLOCKDATA_TZ": "America/New_York"}).zone == NEW_YORK
    for bad in ("Mars/Olympus", "UTC+8", "../etc/passwd", "Asia/Shanghai -c role=x", "+08:00"):
        with pytest.raises(ConfigError, match="BLOCKDATA_TZ") as info:
            from_env({"BLOCKDATA_TZ": bad})
        assert repr(bad) in str(info.value)
    result = CliRunner().invoke(main, ["db", "url"], env={"BLOCKDATA_TZ": "Beijing"})
    assert result.exit_code != 0 and "BLOCKDATA_TZ" in result.output
    assert "Traceback" not in result.output


def test_database_sessions_run_in_the_zone(database_url: str) -> None:
    engine = make_engine(database_url, tz="America/New_York")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("show timezone").scalar_one() == "America/New_York"
            local = conn.exec_driver_sql(
                "select (timestamptz '2026-11-02 03:30:00+00')::text"
            ).scalar_one()
        assert local == "2026-11-01 22:30:00-05"
    finally:
        engine.dispose()


def test_source_times_are_read_in_the_zone_given(
    connection: sa.Connection,
    district: Any,
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path / "r.csv", _rows())
    report = run_file(connection, path, layer="service_requests", zone="America/New_York")
    assert report.inserted == len(TIMES)
    stored = dict(
        connection.execute(sa.text("select source_id, received_at from service_requests")).all()
    )
    for i, text in enumerate(TIMES):
        naive = dt.datetime.fromisoformat(text)
        assert stored[f"Z{i}"] == naive.replace(tzinfo=NEW_YORK), text
    # The aggregates were empty: they are keyed on the new zone's days from the first run.
    assert _zone_row(connection) == "America/New_York"
    assert _aggregated(connection) == _days(connection, NEW_YORK)


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York", "Asia/Kolkata"])
def test_wall_clock_times_become_the_instants_they_name(zone: str) -> None:
    """Each time with the offset its zone had then: Beijing kept summer time in 1986–1991,
    New York changes twice a year; a span of one offset is shifted, others converted."""
    texts = ["1988-07-01 12:00:00", "1988-12-01 12:00:00", "2026-07-01 09:00:00"]
    naive = [dt.datetime.fromisoformat(t) for t in texts]
    for values in (naive, naive[2:], naive[:2]):
        got = to_utc(pa.array(values, pa.timestamp("us")), zone).to_pylist()
        assert got == [v.replace(tzinfo=ZoneInfo(zone)) for v in values], (zone, values)


def test_workday_limits_end_on_local_days_of_the_zone() -> None:
    """7 working days after Thursday 19 Nov 23:30 in New York (Friday 12:30 in Beijing)."""
    start = dt.datetime(2026, 11, 19, 23, 30, tzinfo=NEW_YORK)
    due = load_time_limits().due_at(
        pa.array(["噪声扰民"]), pa.array([start], pa.timestamp("us", tz="UTC")), "America/New_York"
    )
    # Fri 20, Mon 23 … Fri 27, Mon 30: the 7th working day; its last second, New York time.
    assert due[0].as_py() == dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=NEW_YORK)
    in_beijing = load_time_limits().due_at(
        pa.array(["噪声扰民"]), pa.array([start], pa.timestamp("us", tz="UTC")), "Asia/Shanghai"
    )
    assert in_beijing[0].as_py() == dt.datetime(2026, 12, 1, 23, 59, 59, tzinfo=BEIJING)


@pytest.fixture
def beijing_days(connection: sa.Connection, district: Any, tmp_path: Path) -> None:
    """Requests loaded and aggregated on Beijing days (the zone the database starts with)."""
    run_file(connection, write_csv(tmp_path / "r.csv", _rows()), layer="service_requests")
    assert _zone_row(connection) == "Asia/Shanghai"
    assert _aggregated(connection) == _days(connection, BEIJING)


def test_another_zone_is_refused_until_the_aggregates_are_rebuilt(
    connection: sa.Connection, beijing_days: None, tmp_path: Path
) -> None:
    before = _aggregated(connection)
    with pytest.raises(AggregatesZoneError, match="rebuild-aggregates") as info:
        refresh_request_aggregates(connection, zone="America/New_York")
    assert "Asia/Shanghai" in str(info.value) and "America/New_York" in str(info.value)
    late = write_csv(tmp_path / "late.csv", [request_row("Z9", 受理时间="2026-11-03 08:00:00")])
    with pytest.raises(EtlError, match="rebuild-aggregates"):
        run_file(connection, late, layer="service_requests", zone="America/New_York")
    count = "select count(*) from service_requests"
    assert connection.execute(sa.text(count)).scalar_one() == len(TIMES)  # nothing loaded
    assert _aggregated(connection) == before and _zone_row(connection) == "Asia/Shanghai"
    # The server in the new zone: figures from aggregates answer 503 naming the fix.
    app = _app(connection, "America/New_York")
    client = _client(app, connection)
    for path in ("/api/heat/service_requests", "/api/streets", "/api/command/110102001/summary"):
        response = client.get(path)
        assert response.status_code == 503, path
        body = response.get_json()
        assert body["error"] == "service_unavailable" and "rebuild-aggregates" in body["message"]
        assert (body["built"], body["configured"]) == ("Asia/Shanghai", "America/New_York")
    assert client.get("/tiles/service_requests/14/13485/6208.pbf").status_code == 200
    # The rebuild: every day counted again in the new zone; the triggers follow it.
    report = refresh_request_aggregates(connection, full=True, zone="America/New_York")
    assert report.full and _zone_row(connection) == "America/New_York"
    assert _aggregated(connection) == _days(connection, NEW_YORK) != before
    run_file(connection, late, layer="service_requests", zone="America/New_York")
    assert _aggregated(connection) == _days(connection, NEW_YORK)
    body = client.get("/api/heat/service_requests?since=2026-11-01&until=2026-11-01").get_json()
    assert body["total"] == _days(connection, NEW_YORK)[dt.date(2026, 11, 1)]
    # And the Beijing server now refuses, the other way round.
    beijing = _client(_app(connection, "Asia/Shanghai"), connection)
    assert beijing.get("/api/heat/service_requests").status_code == 503


@pytest.fixture
def committed_url(server_url: str) -> Iterator[str]:
    name = f"blockdata_test_zone_{os.getpid()}"
    url = new_database(server_url, name)
    try:
        migrate.upgrade(migrate.alembic_config(url))
        yield url
    finally:
        drop_database(server_url, name)


def test_the_rebuild_command(
    committed_url: str, district_files: dict[str, Path], tmp_path: Path
) -> None:
    engine = make_engine(committed_url)
    try:
        with engine.connect() as conn:
            load_district(conn, district_files)
            run_file(conn, write_csv(tmp_path / "r.csv", _rows()), layer="service_requests")
            conn.commit()
        env = {"DATABASE_URL": committed_url, "BLOCKDATA_TZ": "America/New_York"}
        result = CliRunner().invoke(main, ["db", "rebuild-aggregates"], env=env)
        assert result.exit_code == 0, result.output
        assert "America/New_York" in result.output and "Asia/Shanghai" in result.output
        with engine.connect() as conn:
            assert _zone_row(conn) == "America/New_York"
            assert _aggregated(conn) == _days(conn, NEW_YORK)
    finally:
        engine.dispose()
