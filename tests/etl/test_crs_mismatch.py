"""A file in the wrong coordinate system stops the run and names the likely system.

The test points are converted from WGS84 with the published formulas, transcribed in
tests/etl/test_coords.py (not etl/coords.py), and their true grids come from the tiny
district's boxes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from app.commands.etl import etl
from app.db import make_engine
from etl.jobs import EtlError, run_file
from tests.coords_reference import ref_wgs84_to_bd09, ref_wgs84_to_gcj02
from tests.district import grid_cells, request_row, write_csv
from tests.etl.committed import committed_database

Convert = Callable[[float, float], tuple[float, float]]


def lattice(x0: float = 116.3015, columns: int = 10) -> list[tuple[float, float]]:
    """WGS84 points 0.004° apart inside the district, off every grid edge."""
    return [(x0 + 0.004 * i, 39.9015 + 0.004 * j) for i in range(columns) for j in range(5)]


def true_grid(x: float, y: float) -> str:
    (code,) = [c for c, _, _, (x0, y0, x1, y1) in grid_cells() if x0 < x < x1 and y0 < y < y1]
    return code


def rows_of(points: list[tuple[float, float]], convert: Convert | None, crs: str) -> list[dict]:
    rows = []
    for i, (x, y) in enumerate(points):
        sx, sy = convert(x, y) if convert else (x, y)
        rows.append(request_row(f"P{i:03d}", 经度=f"{sx:.7f}", 纬度=f"{sy:.7f}", 坐标系=crs))
    return rows


def _count(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("select count(*) from service_requests")).scalar_one())


@pytest.mark.usefixtures("district")
@pytest.mark.parametrize(
    ("convert", "points", "likely"),
    [
        (ref_wgs84_to_bd09, lattice(), "BD-09"),
        (ref_wgs84_to_gcj02, lattice(x0=116.3115, columns=8), "GCJ-02"),
    ],
    ids=["bd09", "gcj02"],
)
def test_points_declared_wgs84_in_another_system_stop_the_run(
    connection: sa.Connection,
    tmp_path: Path,
    convert: Convert,
    points: list[tuple[float, float]],
    likely: str,
) -> None:
    path = write_csv(tmp_path / "shifted.csv", rows_of(points, convert, "WGS84"))
    with pytest.raises(EtlError, match=f"coordinate system mismatch.*as {likely}") as info:
        run_file(connection, path, layer="service_requests")
    # Nothing placed, nothing loaded, no rejects; the run recorded as failed with the reason.
    assert _count(connection) == 0
    status, error, rejects = connection.execute(
        sa.text(
            "select status, error, (select count(*) from etl_rejects where run_id = r.id) "
            "from etl_runs r where id = :id"
        ),
        {"id": info.value.report.run_id},
    ).one()
    assert status == "failed" and rejects == 0
    assert f"--crs {likely.replace('-', '').lower()}" in error
    assert "--allow-crs-mismatch" in error


@pytest.mark.usefixtures("district")
def test_bd09_points_declared_bd09_land_in_their_true_grid(
    connection: sa.Connection, tmp_path: Path
) -> None:
    points = lattice()
    path = write_csv(tmp_path / "bd.csv", rows_of(points, ref_wgs84_to_bd09, "百度"))
    report = run_file(connection, path, layer="service_requests")
    assert (report.read, report.inserted, report.rejected) == (50, 50, 0)
    stored = {
        r[0]: (r[1], r[2])
        for r in connection.execute(
            sa.text("select source_id, grid_code, coord_system from service_requests")
        )
    }
    assert stored == {f"P{i:03d}": (true_grid(*p), "bd09") for i, p in enumerate(points)}


@pytest.mark.usefixtures("district")
def test_the_override_loads_as_declared_and_says_so(
    connection: sa.Connection, tmp_path: Path
) -> None:
    points = lattice()
    path = write_csv(tmp_path / "bd.csv", rows_of(points, ref_wgs84_to_bd09, "WGS84"))
    report = run_file(connection, path, layer="service_requests", allow_crs_mismatch=True)
    assert report.warnings["crs_mismatch:wgs84->bd09"] == 50
    # As declared: the shifted points that still fall in the district load (in wrong
    # grids), the others are rejected as outside.
    shifted = [ref_wgs84_to_bd09(*p) for p in points]
    inside = [p for p in shifted if 116.30 < p[0] < 116.34 and 39.90 < p[1] < 39.92]
    assert report.inserted == len(inside) and report.reasons == {
        "outside_district": 50 - len(inside)
    }
    options = connection.execute(
        sa.text("select options from etl_runs where id = :id"), {"id": report.run_id}
    ).scalar_one()
    assert options["allow_crs_mismatch"] is True


@pytest.mark.usefixtures("district")
def test_right_points_with_a_few_outside_load_without_alarm(
    connection: sa.Connection, tmp_path: Path
) -> None:
    rows = rows_of(lattice(), None, "WGS84")
    rows += [
        request_row(f"OUT{i}", 经度=f"{116.50 + i / 100}", 纬度="39.95", 坐标系="WGS84")
        for i in range(3)
    ]
    gx, gy = ref_wgs84_to_gcj02(116.305, 39.905)
    # Too few GCJ-02 rows to judge: not checked.
    rows.append(request_row("GCJ", 经度=f"{gx:.7f}", 纬度=f"{gy:.7f}", 坐标系="GCJ-02"))
    report = run_file(connection, write_csv(tmp_path / "ok.csv", rows), layer="service_requests")
    assert report.read == 54
    assert report.inserted == 51 and report.reasons == {"outside_district": 3}
    assert not any(k.startswith("crs_mismatch") for k in report.warnings)
    systems = dict(
        connection.execute(
            sa.text("select coord_system, count(*) from service_requests group by 1")
        ).all()
    )
    assert systems == {"wgs84": 50, "gcj02": 1}


@pytest.mark.usefixtures("district")
def test_a_geojson_in_gcj02_declared_wgs84_stops_the_run(
    connection: sa.Connection, tmp_path: Path
) -> None:
    import json

    features = []
    for i, (x, y) in enumerate(lattice(x0=116.3115, columns=8)):
        ring = [ref_wgs84_to_gcj02(x + dx, y + dy) for dx, dy in [(0, 0), (4e-4, 0), (0, 4e-4)]]
        features.append(
            {
                "type": "Feature",
                "properties": {"项目编号": f"Z{i}", "项目名称": "整治", "阶段": "施工"},
                "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
            }
        )
    path = tmp_path / "projects.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), "utf-8")
    with pytest.raises(EtlError, match="as GCJ-02"):
        run_file(connection, path, layer="renovation_projects")
    assert connection.execute(sa.text("select count(*) from renovation_projects")).scalar() == 0
    report = run_file(connection, path, layer="renovation_projects", crs="gcj02")
    assert (report.inserted, report.rejected) == (40, 0)


@pytest.fixture(scope="module")
def committed_url(server_url: str) -> Iterator[str]:
    """A database of its own with the tiny district: the CLI commits."""
    with committed_database(server_url, "blockdata_test_crs") as url:
        yield url


def test_cli_fails_names_the_system_and_the_override_loads(
    committed_url: str, tmp_path: Path
) -> None:
    # No 坐标系 in the rows: the mapping's default (GCJ-02) applies, or --crs.
    rows = rows_of(lattice(), ref_wgs84_to_bd09, "")
    for row in rows:
        row.update(受理时间="2025-06-02 09:00:00", 派单时间="2025-06-02 09:30:00")
    path = write_csv(tmp_path / "baidu.csv", rows)
    env = {"DATABASE_URL": committed_url}
    runner = CliRunner()
    args = ["run", str(path), "--layer", "service_requests", "--no-progress"]
    result = runner.invoke(etl, args, env=env)
    assert result.exit_code == 1, result.output
    assert "failed" in result.output and "--crs bd09" in result.output
    assert "Traceback" not in result.output

    engine = make_engine(committed_url, pool_size=1)
    try:
        with engine.connect() as conn:
            assert _count(conn) == 0
            status = conn.execute(
                sa.text("select status from etl_runs order by id desc limit 1")
            ).scalar_one()
            assert status == "failed"
        result = runner.invoke(etl, [*args, "--crs", "bd09"], env=env)
        assert result.exit_code == 0, result.output
        with engine.connect() as conn:
            grids = dict(
                conn.execute(sa.text("select source_id, grid_code from service_requests")).all()
            )
        assert grids == {f"P{i:03d}": true_grid(*p) for i, p in enumerate(lattice())}

        again = write_csv(
            tmp_path / "baidu2.csv", [dict(r, 工单编号=r["工单编号"] + "b") for r in rows]
        )
        result = runner.invoke(etl, ["run", str(again), *args[2:], "--allow-crs-mismatch"], env=env)
        assert result.exit_code == 0, result.output
        assert "crs_mismatch:gcj02->bd09 50" in result.output
    finally:
        engine.dispose()
