"""Damaged files lose nothing silently: stray quotes, cut files, NUL bytes, decimal commas,
workbooks with several sheets. Tiny hand-made files through the production ETL."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import sqlalchemy as sa

from etl.jobs import EtlError, RunReport, run_file
from tests.district import REQUEST_COLUMNS, request_row, write_csv

pytestmark = pytest.mark.usefixtures("district")


def _run(conn: sa.Connection, path: Path, written: int, **kw: object) -> RunReport:
    """A run that must succeed; `written` is the number of rows the test put in the file."""
    report = run_file(conn, path, layer=kw.pop("layer", "service_requests"), **kw)  # type: ignore[arg-type]
    assert report.read == written
    assert report.read == report.inserted + report.updated + report.unchanged + report.rejected
    return report


def _ids(conn: sa.Connection, table: str = "service_requests") -> set[str]:
    return set(conn.execute(sa.text(f"select source_id from {table}")).scalars())


def _rejects(conn: sa.Connection, run_id: int) -> list[dict[str, object]]:
    return [
        dict(r)
        for r in conn.execute(
            sa.text(
                "select row_number, source_id, reason, message, raw from etl_rejects "
                "where run_id = :id order by row_number"
            ),
            {"id": run_id},
        ).mappings()
    ]


def _csv_lines(rows: list[dict[str, str]], columns: list[str] = REQUEST_COLUMNS) -> list[str]:
    """The file's lines as the csv module writes them (header first), without line ends."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().split("\n")[:-1]


def test_a_stray_quote_rejects_its_row_and_the_rows_after_it_load(
    connection: sa.Connection, tmp_path: Path
) -> None:
    # Every third description holds a comma, so the writer quotes it: the stray quote's
    # field would otherwise end at the next of those.
    rows = [
        request_row(f"S{i:02d}", 诉求内容="路灯不亮，晚上很黑" if i % 3 else "占道经营, 早市")
        for i in range(20)
    ]
    lines = _csv_lines(rows)
    assert lines[5].startswith("S04,")
    # Row 5 (line 6 of the file): its description opens a quote that never closes.
    lines[5] = lines[5].replace(",路灯不亮", ',"路灯不亮', 1)
    assert lines[5].count('"') == 1
    path = tmp_path / "stray.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = _run(connection, path, written=20)
    assert (report.inserted, report.rejected) == (19, 1)
    assert report.reasons == {"bad_quote": 1}
    assert _ids(connection) == {f"S{i:02d}" for i in range(20)} - {"S04"}
    (reject,) = _rejects(connection, report.run_id)
    assert reject["row_number"] == 5
    assert "line 6" in str(reject["message"])
    assert "S04" in str(reject["raw"])
    # The rows after it keep their own values: not swallowed into the bad one.
    descriptions = dict(
        connection.execute(sa.text("select source_id, description from service_requests")).all()
    )
    assert descriptions["S05"] == "路灯不亮，晚上很黑"
    assert descriptions["S06"] == "占道经营, 早市"


def test_a_line_break_inside_quotes_is_one_value_not_a_bad_row(
    connection: sa.Connection, tmp_path: Path
) -> None:
    rows = [request_row(f"M{i}") for i in range(3)]
    rows[1]["诉求内容"] = "第一行\n第二行, 还有逗号"
    path = write_csv(tmp_path / "multi.csv", rows)
    report = _run(connection, path, written=3)
    assert (report.inserted, report.rejected) == (3, 0)
    text = connection.execute(
        sa.text("select description from service_requests where source_id = 'M1'")
    ).scalar_one()
    assert text == "第一行\n第二行, 还有逗号"


def test_a_file_cut_inside_its_last_quoted_field_stores_no_cut_value(
    connection: sa.Connection, tmp_path: Path
) -> None:
    # The platform's export quotes every value; the id is the last column.
    columns = [c for c in REQUEST_COLUMNS if c != "工单编号"] + ["工单编号"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(request_row(f"GD20261102-{i:04d}") for i in range(4))
    data = out.getvalue().encode("utf-8")
    cut = data[: data.rindex(b"GD20261102-0003") + len("GD2026110")]
    assert cut.endswith(b'"GD2026110')
    path = tmp_path / "cut.csv"
    path.write_bytes(cut)

    report = _run(connection, path, written=4)
    assert (report.inserted, report.rejected) == (3, 1)
    assert report.reasons == {"truncated": 1}
    assert _ids(connection) == {f"GD20261102-{i:04d}" for i in range(3)}
    (reject,) = _rejects(connection, report.run_id)
    assert reject["row_number"] == 4 and "GD2026110" in str(reject["raw"])


def test_a_nul_byte_rejects_its_row_and_the_rest_loads(
    connection: sa.Connection, tmp_path: Path
) -> None:
    rows = [request_row(f"N{i}") for i in range(4)]
    rows[2]["诉求内容"] = "井盖\x00丢失"
    path = write_csv(tmp_path / "nul.csv", rows)
    report = _run(connection, path, written=4)
    assert (report.inserted, report.rejected) == (3, 1)
    assert report.reasons == {"nul_byte": 1}
    (reject,) = _rejects(connection, report.run_id)
    assert reject["row_number"] == 3 and "诉求内容" in str(reject["message"])
    assert reject["raw"]["诉求内容"] == "井盖\u2400丢失"  # type: ignore[index]
    assert _ids(connection) == {"N0", "N1", "N3"}


def test_a_decimal_comma_in_a_coordinate_is_a_bad_number(
    connection: sa.Connection, tmp_path: Path
) -> None:
    rows = [
        request_row("C1", 经度="116,305"),  # quoted by the writer: one value "116,305"
        request_row("C2", 纬度="39,905"),
        request_row("C3", 经度="116 305"),
        request_row("C4", 经度="1,16305"),
        request_row("OK"),
    ]
    report = _run(connection, write_csv(tmp_path / "comma.csv", rows), written=5)
    assert report.inserted == 1 and report.reasons == {"bad_number": 4}
    for reject in _rejects(connection, report.run_id):
        assert reject["reason"] == "bad_number"
    stored = connection.execute(sa.text("select ST_X(geom) from service_requests")).scalar_one()
    assert stored == pytest.approx(116.305)


RELOCATION_COLUMNS = [
    "项目编号",
    "名称",
    "经度",
    "纬度",
    "坐标系",
    "建筑面积(平方米)",
    "商户数",
    "进度(%)",
]


def test_numbers_keep_their_value_or_are_rejected(
    connection: sa.Connection, tmp_path: Path
) -> None:
    def row(source_id: str, area: str, merchants: str = "3", progress: str = "50") -> list[str]:
        return [source_id, "测试市场", "116.305", "39.905", "WGS84", area, merchants, progress]

    good = {
        "G1": (row("G1", "1,234.5"), 1234.5, 3, 50.0),
        "G2": (row("G2", "120㎡"), 120.0, 3, 50.0),
        "G3": (row("G3", "120 平方米", merchants="12户"), 120.0, 12, 50.0),
        "G4": (row("G4", "12,345,678", progress="85%"), 12345678.0, 3, 85.0),
        "G5": (row("G5", "１２０．５"), 120.5, 3, 50.0),
    }
    bad = [
        row("B1", "12,5"),  # a decimal comma, not 125
        row("B2", "1 200"),  # not 1200
        row("B3", "1,2,3"),
        row("B4", "120", merchants="1个2"),  # a unit inside the number
        row("B5", "5%0"),
    ]
    path = tmp_path / "relocation.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(RELOCATION_COLUMNS)
        writer.writerows([r for r, *_ in good.values()] + bad)
    report = _run(connection, path, written=10, layer="relocation_targets", crs="wgs84")
    assert report.inserted == 5 and report.reasons == {"bad_number": 5}
    stored = {
        r[0]: tuple(r[1:])
        for r in connection.execute(
            sa.text("select source_id, floor_area_m2, merchants, progress from relocation_targets")
        )
    }
    assert stored == {k: tuple(v[1:]) for k, v in good.items()}


def _workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    wb.save(path)
    return path


def _sheet(ids: list[str]) -> list[list[object]]:
    return [REQUEST_COLUMNS, *([request_row(i)[c] or None for c in REQUEST_COLUMNS] for i in ids)]


def test_the_sheet_holding_the_data_is_read_whatever_its_place(
    connection: sa.Connection, tmp_path: Path
) -> None:
    notes = [["说明"], ["本表由12345平台导出"], ["导出时间: 2026-11-03"]]
    path = _workbook(tmp_path / "book.xlsx", {"说明": notes, "工单": _sheet(["W1", "W2", "W3"])})
    report = _run(connection, path, written=3)
    assert report.inserted == 3 and _ids(connection) == {"W1", "W2", "W3"}
    # The run names the sheet it read and the one it left.
    assert report.warnings["read_sheet:工单"] == 3
    assert report.warnings["ignored_sheet:说明"] == 2


def test_data_spread_over_sheets_is_refused_unless_one_is_chosen(
    connection: sa.Connection, tmp_path: Path
) -> None:
    path = _workbook(
        tmp_path / "months.xlsx",
        {"11月": _sheet(["A1", "A2"]), "12月": _sheet(["B1", "B2", "B3"])},
    )
    with pytest.raises(EtlError, match=r"11月.*12月.*--sheet") as info:
        run_file(connection, path, layer="service_requests")
    assert _ids(connection) == set()
    status = connection.execute(
        sa.text("select status from etl_runs where id = :id"), {"id": info.value.report.run_id}
    ).scalar_one()
    assert status == "failed"

    report = _run(connection, path, written=3, sheet="12月")
    assert _ids(connection) == {"B1", "B2", "B3"}
    assert report.warnings["read_sheet:12月"] == 3
    assert report.warnings["ignored_sheet:11月"] == 2
    options = connection.execute(
        sa.text("select options from etl_runs where id = :id"), {"id": report.run_id}
    ).scalar_one()
    assert options["sheet"] == "12月"

    with pytest.raises(EtlError, match="没有这个工作表 no sheet '1月'"):
        run_file(connection, path, layer="service_requests", sheet="1月")


def test_missing_columns_name_the_sheet(connection: sa.Connection, tmp_path: Path) -> None:
    path = _workbook(tmp_path / "cols.xlsx", {"导出": [["编号", "时间"], ["A", "2026-11-01"]]})
    with pytest.raises(EtlError, match=r"sheet '导出'.*编号"):
        run_file(connection, path, layer="service_requests")
