"""Re-loading a file changes nothing: the table's rows and the aggregates are compared before
and after, not only the loader's counters; `read` is the number of rows the test wrote."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from etl.jobs import RunReport, run_file
from tests.district import REQUEST_COLUMNS, request_row, write_csv

pytestmark = pytest.mark.usefixtures("district")

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
AGGREGATES = (
    "request_daily",
    "request_periods",
    "request_cells_daily",
    "request_cells_periods",
    "request_street_daily",
    "request_open",
)


def _snapshot(conn: sa.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the layer and of the aggregates, in a stable order."""
    out = {}
    for table in ("service_requests", *AGGREGATES):
        rows = conn.execute(sa.text(f"select * from {table}")).all()
        out[table] = sorted((tuple(r) for r in rows), key=repr)
    return out


def _rows() -> list[dict[str, str]]:
    rows = []
    for i in range(30):
        day = dt.date(2026, 11, 1) + dt.timedelta(days=i % 15)
        row = request_row(
            f"R{i:02d}",
            受理时间=f"{day} {8 + i % 10:02d}:15:00",
            派单时间=f"{day} {8 + i % 10:02d}:45:00",
            经度=f"{116.3015 + (i % 8) * 0.005:.4f}",
            纬度=f"{39.9015 + (i % 4) * 0.005:.4f}",
            诉求类别=["环境卫生", "噪声扰民", "供暖", "停车管理"][i % 4],
        )
        if i % 3 == 0:
            row.update(
                状态="已办结",
                办结时间=f"{day} 18:00:00",
                是否有效回访="是",
                是否联系="是",
                是否解决="是" if i % 2 else "否",
                满意度="满意" if i % 2 else "不满意",
            )
        rows.append(row)
    rows[4]["诉求内容"] = "第一行\n第二行"  # read by the record-by-record reader
    rows[7]["受理时间"] = "2025-02-30 09:00:00"  # rejected: bad_date
    rows[9]["经度"] = "116,31"  # rejected: bad_number
    rows.append(dict(rows[2]))  # rejected: duplicate
    return rows


def _load(conn: sa.Connection, path: Path, written: int) -> RunReport:
    report = run_file(conn, path, layer="service_requests", now=NOW)
    assert report.read == written
    assert report.read == report.inserted + report.updated + report.unchanged + report.rejected
    return report


def _check_reload(conn: sa.Connection, path: Path, written: int) -> None:
    first = _load(conn, path, written)
    assert first.reasons == {"bad_date": 1, "bad_number": 1, "duplicate": 1}
    assert first.inserted == written - 3
    before = _snapshot(conn)
    assert len(before["service_requests"]) == written - 3
    assert before["request_daily"] and before["request_open"]

    again = _load(conn, path, written)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, written - 3)
    assert again.reasons == first.reasons
    assert _snapshot(conn) == before


def test_reloading_a_csv_changes_no_row_and_no_aggregate(
    connection: sa.Connection, tmp_path: Path
) -> None:
    rows = _rows()
    path = write_csv(tmp_path / "requests.csv", rows)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) == len(rows) == 31
    _check_reload(connection, path, len(rows))


def test_reloading_a_workbook_changes_no_row_and_no_aggregate(
    connection: sa.Connection, tmp_path: Path
) -> None:
    from openpyxl import Workbook

    rows = _rows()
    wb = Workbook()
    ws = wb.active
    ws.append(REQUEST_COLUMNS)
    for row in rows:
        ws.append([row[c] or None for c in REQUEST_COLUMNS])
    wb.save(tmp_path / "requests.xlsx")
    _check_reload(connection, tmp_path / "requests.xlsx", len(rows))
