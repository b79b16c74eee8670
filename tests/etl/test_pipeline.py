"""The ETL end to end on real PostGIS: messiness, re-runs, failures, formats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from etl import coords
from etl.jobs import EtlError, RunReport, run_file
from tests.district import REQUEST_COLUMNS, request_row, write_csv

pytestmark = pytest.mark.usefixtures("district")


def _run(conn: sa.Connection, path: Path, written: int, **kw: object) -> RunReport:
    """A successful run of a file the test wrote `written` rows to."""
    report = run_file(conn, path, layer=kw.pop("layer", "service_requests"), **kw)  # type: ignore[arg-type]
    assert report.read == written
    assert report.read == report.inserted + report.updated + report.unchanged + report.rejected
    stored = conn.execute(
        sa.text(
            "select read, inserted, updated, unchanged, rejected, status from etl_runs "
            "where id = :id"
        ),
        {"id": report.run_id},
    ).one()
    assert tuple(stored) == (
        report.read,
        report.inserted,
        report.updated,
        report.unchanged,
        report.rejected,
        "succeeded",
    )
    return report


def _rejects(conn: sa.Connection, run_id: int) -> dict[str, dict[str, object]]:
    rows = conn.execute(
        sa.text(
            "select source_id, reason, message, retryable, raw, row_number from etl_rejects "
            "where run_id = :id"
        ),
        {"id": run_id},
    ).mappings()
    return {f"{r['row_number']}": dict(r) for r in rows}


def _count(conn: sa.Connection, table: str = "service_requests") -> int:
    return int(conn.exec_driver_sql(f"select count(*) from {table}").scalar_one())


def test_clean_rows_land_in_their_grid_with_department_and_due(
    connection: sa.Connection, tmp_path: Path
) -> None:
    rows = [
        request_row("A1"),  # grid 110102001001001
        request_row("A2", 经度="116.335", 纬度="39.915", 诉求类别="噪声扰民"),  # 110102003002002
    ]
    report = _run(connection, write_csv(tmp_path / "r.csv", rows), 2)
    assert (report.inserted, report.rejected) == (2, 0)
    got = dict(
        connection.execute(
            sa.text(
                "select source_id, grid_code || '/' || community_code || '/' || street_code"
                " || '/' || department from service_requests"
            )
        ).all()
    )
    assert got == {
        "A1": "110102001001001/110102001001/110102001/城市管理部",
        "A2": "110102003002002/110102003002/110102003/平安建设部",
    }
    due = connection.execute(
        sa.text(
            "select to_char(due_at at time zone 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI') "
            "from service_requests where source_id = 'A1'"
        )
    ).scalar_one()
    # Dispatched Monday 2026-11-02: 7 working days later is Wednesday 2026-11-11.
    assert due == "2026-11-11 23:59"


def test_gcj02_and_bd09_rows_are_converted_before_assignment(
    connection: sa.Connection, tmp_path: Path
) -> None:
    # A point 30 m inside grid 110102001002001's west edge: its GCJ-02 form lies ~500 m east.
    lng, lat = 116.3103, 39.9050
    glng, glat = coords.wgs84_to_gcj02(lng, lat)
    blng, blat = coords.wgs84_to_bd09(lng, lat)
    rows = [
        request_row("G1", 经度=f"{glng:.7f}", 纬度=f"{glat:.7f}", 坐标系="GCJ-02"),
        request_row("B1", 经度=f"{blng:.7f}", 纬度=f"{blat:.7f}", 坐标系="百度"),
        request_row("D1", 经度=f"{glng:.7f}", 纬度=f"{glat:.7f}", 坐标系=""),  # file default
    ]
    report = _run(connection, write_csv(tmp_path / "r.csv", rows), 3, crs=None)
    assert report.inserted == 3
    result = connection.execute(
        sa.text(
            "select source_id, grid_code, ST_X(geom), ST_Y(geom) from service_requests "
            "order by source_id"
        )
    ).all()
    for source_id, grid, x, y in result:
        assert grid == "110102001002001", source_id
        assert abs(x - lng) < 1e-6 and abs(y - lat) < 1e-6, source_id


def test_each_kind_of_messiness_is_handled(connection: sa.Connection, tmp_path: Path) -> None:
    rows = [
        request_row("OK1"),
        request_row("SWAP", 经度="39.905", 纬度="116.305"),
        request_row("OUT", 经度="116.50", 纬度="39.95"),
        request_row("ZERO", 经度="0", 纬度="0"),
        request_row("ADDR", 经度="", 纬度=""),
        request_row("NOLOC", 经度="", 纬度="", 地址=""),
        request_row("DUP"),
        request_row("DUP"),
        request_row("VER", 状态="已派单"),
        request_row("VER", 状态="处理中", 响应时间="2026-11-02 10:00:00"),
        request_row("BADDATE", 受理时间="2026-13-45 25:61"),
        request_row("", 诉求类别="环境卫生"),
        request_row("NOCAT", 诉求类别=""),
        request_row("  WS1\t", 经度=" １１６．３０５ ", 纬度="３９．９０５", 状态=" 已派单 "),
        request_row("BADSTATUS", 状态="不知道"),
        request_row("BADCRS", 坐标系="火星文"),
    ]
    report = _run(connection, write_csv(tmp_path / "messy.csv", rows), 16)
    loaded = dict(
        connection.execute(
            sa.text("select source_id, geocode_quality || ':' || status from service_requests")
        ).all()
    )
    assert loaded == {
        "OK1": "coordinates:已派单",
        "SWAP": "coordinates_swapped:已派单",
        "DUP": "coordinates:已派单",
        "VER": "coordinates:处理中",
        "WS1": "coordinates:已派单",
    }
    assert report.warnings.get("swapped_lnglat") == 1
    rejects = _rejects(connection, report.run_id)
    by_row = {int(k): (v["reason"], v["retryable"]) for k, v in rejects.items()}
    assert by_row == {
        3: ("outside_district", True),
        # an address the (empty) gazetteer does not know: kept until it grows
        4: ("geocode_failed", True),
        5: ("geocode_failed", True),
        6: ("no_location", False),
        7: ("duplicate", False),
        9: ("superseded", False),
        11: ("bad_date", False),
        12: ("missing_required", False),
        13: ("missing_required", False),
        15: ("bad_value", False),
        16: ("unknown_crs", False),
    }
    # Raw content is kept as the source wrote it, and messages name the bad value.
    assert rejects["11"]["raw"]["受理时间"] == "2026-13-45 25:61"
    assert "2026-13-45 25:61" in str(rejects["11"]["message"])
    assert "不知道" in str(rejects["15"]["message"])
    assert "火星文" in str(rejects["16"]["message"])


def test_rerun_changes_nothing_and_a_later_extract_progresses(
    connection: sa.Connection, tmp_path: Path
) -> None:
    first = write_csv(tmp_path / "day1.csv", [request_row(f"R{i}") for i in range(5)])
    assert _run(connection, first, 5).inserted == 5
    again = _run(connection, first, 5)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 5)

    later_rows = [
        request_row(
            "R0",
            状态="已办结",
            响应时间="2026-11-02 10:00:00",
            办结时间="2026-11-03 10:00:00",
            是否有效回访="是",
            是否联系="是",
            是否解决="是",
            满意度="满意",
        ),
        request_row("R1", 状态="处理中", 响应时间="2026-11-02 10:00:00"),
        request_row("R9"),
    ]
    later = write_csv(tmp_path / "day2.csv", later_rows)
    report = _run(connection, later, 3)
    assert (report.inserted, report.updated, report.unchanged) == (1, 2, 0)
    status = dict(
        connection.execute(sa.text("select source_id, status from service_requests")).all()
    )
    assert status["R0"] == "已办结" and status["R1"] == "处理中" and status["R2"] == "已派单"
    solved = connection.execute(
        sa.text(
            "select callback_valid, callback_solved, satisfaction from service_requests "
            "where source_id = 'R0'"
        )
    ).one()
    assert tuple(solved) == (True, True, "满意")

    # Loading the older extract again never moves a status backwards.
    stale = _run(connection, first, 5)
    assert (stale.inserted, stale.updated, stale.unchanged) == (0, 0, 5)
    assert stale.warnings.get("stale_version") == 2
    status = dict(
        connection.execute(sa.text("select source_id, status from service_requests")).all()
    )
    assert status["R0"] == "已办结" and status["R1"] == "处理中"


def test_gbk_file_is_detected_and_loaded(connection: sa.Connection, tmp_path: Path) -> None:
    rows = [
        request_row(
            "GBK1",
            诉求内容="噪声扰民，夜间施工",
            受理时间="2026/11/2 9:05",
            派单时间="2026/11/2 9:30",
        )
    ]
    path = write_csv(tmp_path / "gbk.csv", rows, encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    assert _run(connection, path, 1).inserted == 1
    text, received = connection.execute(
        sa.text(
            "select description, to_char(received_at at time zone 'Asia/Shanghai', "
            "'YYYY-MM-DD HH24:MI') from service_requests"
        )
    ).one()
    assert text == "噪声扰民，夜间施工"
    assert received == "2026-11-02 09:05"


def test_xlsx_file_with_real_datetime_cells(connection: sa.Connection, tmp_path: Path) -> None:
    import datetime as dt

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(REQUEST_COLUMNS)
    row = request_row("X1")
    row["受理时间"] = dt.datetime(2026, 11, 2, 8, 15)  # type: ignore[assignment]
    row["经度"] = 116.305  # type: ignore[assignment]
    row["纬度"] = 39.905  # type: ignore[assignment]
    ws.append([row[c] if row[c] != "" else None for c in REQUEST_COLUMNS])
    wb.save(tmp_path / "app.xlsx")
    assert _run(connection, tmp_path / "app.xlsx", 1).inserted == 1
    received = connection.execute(
        sa.text(
            "select to_char(received_at at time zone 'Asia/Shanghai', 'HH24:MI') "
            "from service_requests"
        )
    ).scalar_one()
    assert received == "08:15"


def test_truncated_file_loads_what_is_whole_and_keeps_the_rest(
    connection: sa.Connection, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "t.csv", [request_row(f"T{i}") for i in range(4)])
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b"T3") + 30])  # cut the last row mid-way
    report = _run(connection, path, 4)
    assert report.inserted == 3
    assert report.reasons == {"bad_row": 1}
    raw = next(iter(_rejects(connection, report.run_id).values()))["raw"]
    assert "T3" in raw["_text"]


def _failed(conn: sa.Connection, path: Path, match: str) -> None:
    before = _count(conn)
    with pytest.raises(EtlError, match=match) as info:
        run_file(conn, path, layer="service_requests")
    assert _count(conn) == before
    status, error = conn.execute(
        sa.text("select status, error from etl_runs where id = :id"),
        {"id": info.value.report.run_id},
    ).one()
    assert status == "failed" and error


def test_wrong_encoding_fails_cleanly(connection: sa.Connection, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(",".join(REQUEST_COLUMNS).encode("utf-8")[:5] + b"\x80\xff\x80\xff\n1,2\n")
    _failed(connection, path, "encoding|编码")


def test_utf8_file_with_gbk_rows_further_down_fails_without_loading(
    connection: sa.Connection, tmp_path: Path
) -> None:
    good = [request_row(f"M{i}") for i in range(3)]
    path = write_csv(tmp_path / "mixed.csv", good, encoding="utf-8")
    with path.open("ab") as fh:
        fh.write(",".join(request_row("M9", 诉求内容="夜间施工").values()).encode("gbk") + b"\n")
    _failed(connection, path, "UTF|utf|编码|parse")


def test_missing_required_columns_fail_and_unknown_columns_are_ignored(
    connection: sa.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "cols.csv"
    path.write_text("编号,时间,内容\nA,2026-11-01,x\n", encoding="utf-8")
    _failed(connection, path, "工单编号")

    extra = tmp_path / "extra.csv"
    rows = [dict(request_row("E1"), 备注="多余的列")]
    with extra.open("w", encoding="utf-8", newline="") as fh:
        import csv

        writer = csv.DictWriter(fh, fieldnames=[*REQUEST_COLUMNS, "备注"])
        writer.writeheader()
        writer.writerows(rows)
    report = _run(connection, extra, 1)
    assert report.inserted == 1
    assert report.warnings == {"ignored_column:备注": 1}


def test_zero_row_file_and_empty_file(connection: sa.Connection, tmp_path: Path) -> None:
    header_only = write_csv(tmp_path / "none.csv", [])
    report = _run(connection, header_only, 0)
    assert (report.read, report.inserted, report.rejected) == (0, 0, 0)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    _failed(connection, empty, "empty|为空")


def test_a_load_interrupted_midway_leaves_the_database_as_it_was(
    connection: sa.Connection, tmp_path: Path
) -> None:
    first = write_csv(tmp_path / "a.csv", [request_row(f"K{i}") for i in range(3)])
    _run(connection, first, 3)
    snapshot = connection.exec_driver_sql(
        "select source_id, status, updated_at from service_requests order by 1"
    ).all()
    changed = write_csv(
        tmp_path / "b.csv",
        [request_row("K0", 状态="处理中"), request_row("K7")],
    )

    def crash(conn: sa.Connection) -> None:
        # The rows are in: the upsert has run when the process dies.
        assert conn.exec_driver_sql("select count(*) from service_requests").scalar_one() == 4
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_file(connection, changed, layer="service_requests", after_load=crash)
    after = connection.exec_driver_sql(
        "select source_id, status, updated_at from service_requests order by 1"
    ).all()
    assert after == snapshot
    assert (
        connection.exec_driver_sql(
            "select count(*) from etl_rejects r join etl_runs u on u.id = r.run_id "
            "where u.file_name = 'b.csv'"
        ).scalar_one()
        == 0
    )


def test_geojson_renovation_projects_lines_and_polygons(
    connection: sa.Connection, tmp_path: Path
) -> None:
    features = [
        {
            "type": "Feature",
            "properties": {
                "项目编号": "ZZ0001",
                "项目名称": "测试胡同整治",
                "类型": "背街小巷整治",
                "阶段": "施工",
                "进度(%)": 40,
                "计划开始": "2026-03-01",
                "计划完成": "2026-12-31",
                "实际开始": "2026-03-15",
                "实际完成": None,
            },
            "geometry": {
                "type": "LineString",
                "coordinates": [[116.301, 39.905], [116.309, 39.905]],
            },
        },
        {
            "type": "Feature",
            "properties": {
                "项目编号": "ZZ0002",
                "项目名称": "测试小区改造",
                "类型": "老旧小区改造",
                "阶段": "完成",
                "进度(%)": 100,
                "计划开始": "2025-03-01",
                "计划完成": "2025-12-31",
                "实际开始": "2025-03-15",
                "实际完成": "2025-12-20",
            },
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [
                        [116.331, 39.911],
                        [116.339, 39.911],
                        [116.339, 39.919],
                        [116.331, 39.919],
                        [116.331, 39.911],
                    ]
                ],
            },
        },
        {
            "type": "Feature",
            "properties": {
                "项目编号": "ZZ0003",
                "项目名称": "区外项目",
                "类型": "街区更新",
                "阶段": "规划",
                "进度(%)": 0,
            },
            "geometry": {"type": "Point", "coordinates": [116.5, 39.5]},
        },
    ]
    path = tmp_path / "projects.geojson"
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
        encoding="utf-8",
    )
    report = _run(connection, path, 3, layer="renovation_projects")
    assert (report.inserted, report.rejected) == (2, 1)
    got = connection.execute(
        sa.text(
            "select source_id, GeometryType(geom), grid_code, phase, progress, actual_end "
            "from renovation_projects order by 1"
        )
    ).all()
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in got] == [
        ("ZZ0001", "LINESTRING", "110102001001001", "施工", 40.0),
        ("ZZ0002", "POLYGON", "110102003002002", "完成", 100.0),
    ]
    assert got[0][5] is None and str(got[1][5]) == "2025-12-20"


def _schema(conn: sa.Connection) -> list[tuple[str, str]]:
    indexes = conn.exec_driver_sql(
        "select indexname, indexdef from pg_indexes where tablename = 'service_requests'"
    ).all()
    constraints = conn.exec_driver_sql(
        "select conname, pg_get_constraintdef(oid) from pg_constraint "
        "where conrelid = 'service_requests'::regclass"
    ).all()
    triggers = conn.exec_driver_sql(
        "select tgname, tgenabled::text from pg_trigger "
        "where tgrelid = 'service_requests'::regclass and not tgisinternal"
    ).all()
    assert triggers, "the aggregates' change triggers exist"
    return sorted([*map(tuple, indexes), *map(tuple, constraints), *map(tuple, triggers)])


@pytest.mark.parametrize("checks", ["switched off", "dropped"])
def test_bulk_mode_rebuilds_every_index_and_key(
    connection: sa.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: str
) -> None:
    """The foreign keys' checks are switched off for the COPY (a superuser loads), or the
    keys are dropped and re-added (anyone else): either way the schema comes back whole."""
    import etl.load

    # Bulk mode whatever the table's row estimate: an index build of another test's rolled
    # back load leaves `reltuples` behind (it is not transactional).
    monkeypatch.setattr(etl.load, "_bulk", lambda conn, layer, batch: True)
    if checks == "dropped":
        monkeypatch.setattr(etl.load, "_checks_switchable", lambda conn, layer: False)
    before = _schema(connection)
    report = run_file(
        connection,
        write_csv(tmp_path / "b.csv", [request_row(f"B{i}") for i in range(6)]),
        layer="service_requests",
    )
    assert report.inserted == 6 and "rebuild indexes" in report.timings
    assert _schema(connection) == before
    assert _count(connection) == 6
    # The rebuilt keys hold: a second load of the same rows merges instead of duplicating.
    again = run_file(connection, tmp_path / "b.csv", layer="service_requests")
    assert (again.inserted, again.unchanged) == (0, 6)


AGGREGATES = (
    "request_daily",
    "request_periods",
    "request_cells_daily",
    "request_cells_periods",
    "request_street_daily",
    "request_open",
)


def _tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return int((lon + 180) / 360 * n), int(y)


def _state(conn: sa.Connection, client: FlaskClient) -> dict[str, object]:
    """Everything a load can change: the rows, every aggregate table, the tiles' change log
    and epochs, and the ETags of the tiles over the district."""
    state: dict[str, object] = {}
    for table in ("service_requests", *AGGREGATES, "tile_changes", "tile_epochs"):
        rows = conn.exec_driver_sql(f"select * from {table}").all()
        state[table] = sorted((tuple(r) for r in rows), key=repr)
    etags = {}
    for z in (12, 14, 16):
        x0, y1 = _tile_xy(116.30, 39.90, z)
        x1, y0 = _tile_xy(116.34, 39.92, z)
        step = 2 if z == 16 else 1  # every other z16 tile: a quarter of them, still dozens
        for x in range(x0, x1 + 1, step):
            for y in range(y0, y1 + 1, step):
                response = client.get(f"/tiles/service_requests/{z}/{x}/{y}.pbf")
                assert response.status_code == 200, response.get_data(as_text=True)[:200]
                etags[(z, x, y)] = response.headers["ETag"]
    state["etags"] = etags
    return state


@pytest.mark.parametrize("bulk", [False, True], ids=["merge", "bulk"])
def test_loading_a_file_again_changes_nothing(
    connection: sa.Connection,
    client: FlaskClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bulk: bool,
) -> None:
    import etl.load

    if bulk:  # the first load in bulk mode, as a source's first large extract is
        monkeypatch.setattr(etl.load, "BULK_MIN_ROWS", 1)
    rows = [
        request_row(
            f"I{i}",
            受理时间=f"2026-10-{1 + i % 28:02d} {i % 24:02d}:15:00",
            经度=f"{116.301 + (i * 0.0037) % 0.038:.5f}",
            纬度=f"{39.901 + (i * 0.0011) % 0.018:.5f}",
            诉求类别=["环境卫生", "噪声扰民", "停车管理", "供暖"][i % 4],
            状态=["已派单", "处理中", "已办结"][i % 3],
        )
        for i in range(60)
    ] + [request_row("I-bad", 受理时间="not a date")]
    path = write_csv(tmp_path / "same.csv", rows)
    first = _run(connection, path, len(rows))
    assert (first.inserted, first.rejected) == (60, 1)
    before = _state(connection, client)
    assert len(before["service_requests"]) == 60  # type: ignore[arg-type]
    again = _run(connection, path, len(rows))
    assert (again.inserted, again.updated, again.unchanged, again.rejected) == (0, 0, 60, 1)
    assert _state(connection, client) == before
    # Each run keeps its own rejects: the same row, for the same reason.
    assert _rejects(connection, again.run_id).keys() == _rejects(connection, first.run_id).keys()


def test_a_bulk_load_checks_what_its_rows_refer_to(connection: sa.Connection) -> None:
    """With the per-row foreign-key checks switched off, the rows' codes are checked once:
    a code no grid, community or street has fails the load, naming it."""
    import pyarrow as pa

    from etl.load import _hold_references
    from layers import get_layer

    layer = get_layer("service_requests")
    run_id = connection.execute(
        sa.text(
            "insert into etl_runs (layer, source) values ('service_requests', 't') returning id"
        )
    ).scalar_one()
    good = pa.table({"street_code": ["110102001"], "grid_code": ["110102001001001"]})
    _hold_references(connection, layer, good, run_id)  # no error: both exist
    bad = pa.table({"street_code": ["110102001"], "grid_code": ["999"]})
    with pytest.raises(ValueError, match=r"grids.*999"):
        _hold_references(connection, layer, bad, run_id)
    with pytest.raises(ValueError, match="etl_runs"):
        _hold_references(connection, layer, good, run_id + 1000)
