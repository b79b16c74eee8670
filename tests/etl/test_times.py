"""Times: impossible dates rejected, ISO 8601 offsets honoured, future and out-of-order
times rejected against an injected clock. Expected instants come from Python's datetime."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from etl.jobs import RunReport, run_file
from tests.district import request_row, write_csv

pytestmark = pytest.mark.usefixtures("district")

BEIJING = ZoneInfo("Asia/Shanghai")
# The injected clock: Tuesday 2026-11-10 12:00 in Beijing.
NOW = dt.datetime(2026, 11, 10, 12, 0, tzinfo=BEIJING)


def _run(conn: sa.Connection, path: Path, written: int, **kw: object) -> RunReport:
    report = run_file(conn, path, layer="service_requests", now=kw.pop("now", NOW), **kw)  # type: ignore[arg-type]
    assert report.read == written
    assert report.read == report.inserted + report.updated + report.unchanged + report.rejected
    return report


def _reasons(conn: sa.Connection, run_id: int) -> dict[str, str]:
    rows = conn.execute(
        sa.text("select source_id, reason from etl_rejects where run_id = :id"), {"id": run_id}
    )
    return dict(rows.all())


def _received(conn: sa.Connection) -> dict[str, dt.datetime]:
    rows = conn.execute(sa.text("select source_id, received_at from service_requests"))
    return dict(rows.all())


@pytest.mark.parametrize(
    "value",
    [
        "2025-02-30 09:00:00",
        "2025-02-29",  # 2025 is not a leap year
        "2026-04-31 10:00",
        "2026/06/31 10:00:00",
        "2025年2月30日",
        "2025年2月30日 9:00",
        "20250230090000",
        "2026-10-31 23:59:60",
    ],
)
def test_an_impossible_date_is_bad_date_not_the_next_month(
    connection: sa.Connection, tmp_path: Path, value: str
) -> None:
    rows = [request_row("BAD", 受理时间=value, 派单时间=""), request_row("OK")]
    report = _run(connection, write_csv(tmp_path / "d.csv", rows), written=2)
    assert _reasons(connection, report.run_id) == {"BAD": "bad_date"}
    assert set(_received(connection)) == {"OK"}


def test_real_dates_near_month_ends_still_load(connection: sa.Connection, tmp_path: Path) -> None:
    values = {
        "L1": "2024-02-29 10:00:00",  # a leap day
        "L2": "2026-01-31 23:59:59",
        "L3": "2026-03-01",
        "L4": "2026/3/1 0:30",
        "L5": "2026年10月30日 9:00",
        "L6": "20261031083000",
    }
    rows = [request_row(k, 受理时间=v, 派单时间="") for k, v in values.items()]
    report = _run(connection, write_csv(tmp_path / "ok.csv", rows), written=6)
    assert report.rejected == 0
    expected = {
        "L1": dt.datetime(2024, 2, 29, 10, 0),
        "L2": dt.datetime(2026, 1, 31, 23, 59, 59),
        "L3": dt.datetime(2026, 3, 1),
        "L4": dt.datetime(2026, 3, 1, 0, 30),
        "L5": dt.datetime(2026, 10, 30, 9, 0),
        "L6": dt.datetime(2026, 10, 31, 8, 30),
    }
    assert _received(connection) == {k: v.replace(tzinfo=BEIJING) for k, v in expected.items()}


def test_iso_8601_with_an_offset_is_converted_by_its_offset(
    connection: sa.Connection, tmp_path: Path
) -> None:
    values = {
        "Z1": "2026-11-05T08:30:00+08:00",
        "Z2": "2026-11-05T00:30:00Z",
        "Z3": "2026-11-04T19:30:00-05:00",
        "Z4": "2026-11-05T10:30:00+0200",
        "Z5": "2026-11-05T08:30:00.250+08:00",
        "Z6": "2026-11-05 08:30+08:00",
        "Z7": "2026-11-05T08:30:00.5",  # no offset: Beijing time
    }
    rows = [request_row(k, 受理时间=v, 派单时间="") for k, v in values.items()]
    report = _run(connection, write_csv(tmp_path / "iso.csv", rows), written=7)
    assert report.rejected == 0
    expected = {
        k: dt.datetime.fromisoformat(v.replace(" ", "T")).astimezone(dt.UTC)
        if k != "Z7"
        else dt.datetime.fromisoformat(v).replace(tzinfo=BEIJING)
        for k, v in values.items()
    }
    assert _received(connection) == expected
    assert expected["Z2"] == dt.datetime(2026, 11, 5, 0, 30, tzinfo=dt.UTC)


def test_times_in_the_future_are_rejected_against_the_injected_clock(
    connection: sa.Connection, tmp_path: Path
) -> None:
    rows = [
        request_row("NOW", 受理时间="2026-11-10 12:00:00", 派单时间=""),
        request_row("SKEW", 受理时间="2026-11-10 12:04:59", 派单时间=""),  # within 5 min
        request_row("AHEAD", 受理时间="2026-11-10 12:06:00", 派单时间=""),
        request_row("TYPO", 受理时间="2062-11-02 09:00:00", 派单时间=""),
        request_row("UTC", 受理时间="2026-11-10T04:10:00Z", 派单时间=""),  # 12:10 in Beijing
        request_row(
            "DONE",
            受理时间="2026-11-09 09:00:00",
            状态="已办结",
            办结时间="2026-11-11 09:00:00",
        ),
    ]
    report = _run(connection, write_csv(tmp_path / "f.csv", rows), written=6)
    assert _reasons(connection, report.run_id) == {
        "AHEAD": "future_time",
        "TYPO": "future_time",
        "UTC": "future_time",
        "DONE": "future_time",
    }
    message = connection.execute(
        sa.text("select message from etl_rejects where source_id = 'AHEAD'")
    ).scalar_one()
    assert "2026-11-10 12:06:00" in message and "2026-11-10 12:00" in message

    # The same file a day later: every time but the typo has passed.
    later = _run(
        connection, tmp_path / "f.csv", written=6, now=NOW + dt.timedelta(days=1, minutes=1)
    )
    assert (later.inserted, later.unchanged, later.rejected) == (3, 2, 1)
    assert _reasons(connection, later.run_id) == {"TYPO": "future_time"}


def test_resolved_before_received_is_rejected(connection: sa.Connection, tmp_path: Path) -> None:
    def resolved(source_id: str, at: str) -> dict[str, str]:
        return request_row(
            source_id, 受理时间="2026-11-02 09:00:30", 状态="已办结", 派单时间="", 办结时间=at
        )

    rows = [
        resolved("EARLY", "2026-11-01 18:00:00"),
        resolved("MINUTE", "2026-11-02 09:00"),  # kept to the minute: same moment
        resolved("LATER", "2026-11-02 11:00:00"),
    ]
    report = _run(connection, write_csv(tmp_path / "o.csv", rows), written=3)
    assert _reasons(connection, report.run_id) == {"EARLY": "time_order"}
    assert set(_received(connection)) == {"MINUTE", "LATER"}
    message = connection.execute(
        sa.text("select message from etl_rejects where source_id = 'EARLY'")
    ).scalar_one()
    assert "2026-11-01 18:00:00" in message and "2026-11-02 09:00:30" in message


def test_the_district_time_zone_is_a_parameter(connection: sa.Connection, tmp_path: Path) -> None:
    rows = [request_row("TZ", 受理时间="2026-07-01 09:00:00", 派单时间="")]
    path = write_csv(tmp_path / "tz.csv", rows)
    _run(connection, path, written=1, zone="Europe/Berlin")
    # Summer time in Berlin: UTC+2.
    assert _received(connection) == {"TZ": dt.datetime(2026, 7, 1, 7, 0, tzinfo=dt.UTC)}


def test_a_mappings_datetime_formats_are_used_and_checked(
    connection: sa.Connection, tmp_path: Path
) -> None:
    shipped = (
        Path(__file__).resolve().parents[2] / "etl/mappings/service_requests.yaml"
    ).read_text(encoding="utf-8")
    mapping = tmp_path / "dotted.yaml"
    mapping.write_text(shipped + 'datetime_formats: ["%d.%m.%Y %H:%M"]\n', encoding="utf-8")
    rows = [
        request_row("D1", 受理时间="05.11.2026 08:30", 派单时间=""),
        request_row("D2", 受理时间="30.02.2026 08:30", 派单时间=""),
    ]
    report = run_file(
        connection, write_csv(tmp_path / "dotted.csv", rows), mapping=mapping, now=NOW
    )
    assert report.read == 2
    assert _reasons(connection, report.run_id) == {"D2": "bad_date"}
    assert _received(connection) == {"D1": dt.datetime(2026, 11, 5, 8, 30, tzinfo=BEIJING)}
