"""Admin import: tiny hand-made districts written as GeoJSON, GeoPackage and Shapefile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas
import numpy as np
import pytest
import shapely
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from app.commands.admin import admin
from app.db import make_engine
from etl import coords
from etl.admin import (
    AdminFileError,
    AdminImportError,
    AdminReport,
    Problem,
    import_admin,
    read_admin_file,
    validate_admin,
)
from layers import get_layer, landmarks

W, MID, E = 116.30, 116.31, 116.32
S, HALF, N = 39.90, 39.905, 39.91
QW = 116.305  # splits the communities of street 甲 into two grids each

STREET_A, STREET_B = "110999001", "110999002"
A1, A2, B1 = "110999001001", "110999001002", "110999002001"
EXAMPLE_MAPPING = Path(__file__).resolve().parents[2] / "etl/mappings/admin_example.yaml"


def streets() -> geopandas.GeoDataFrame:
    return geopandas.GeoDataFrame(
        {
            "code": [STREET_A, STREET_B],
            "name": ["测试甲街道", "测试乙街道"],
            "commander": ["张伟", "李娜"],
        },
        geometry=[box(W, S, MID, N), box(MID, S, E, N)],
        crs="EPSG:4326",
    )


def communities() -> geopandas.GeoDataFrame:
    return geopandas.GeoDataFrame(
        {
            "code": [A1, A2, B1],
            "name": ["甲一社区", "甲二社区", "乙一社区"],
            "street_code": [STREET_A, STREET_A, STREET_B],
        },
        geometry=[box(W, S, MID, HALF), box(W, HALF, MID, N), box(MID, S, E, N)],
        crs="EPSG:4326",
    )


def grids() -> geopandas.GeoDataFrame:
    """Six grids: two per community; street_code is left to be derived."""
    return geopandas.GeoDataFrame(
        {
            "code": [f"{c}{k:03d}" for c in (A1, A2, B1) for k in (1, 2)],
            "community_code": [A1, A1, A2, A2, B1, B1],
            "grid_officer": ["王芳", "刘洋", "陈静", "杨帆", "赵磊", "黄敏"],
        },
        geometry=[
            box(W, S, QW, HALF),
            box(QW, S, MID, HALF),
            box(W, HALF, QW, N),
            box(QW, HALF, MID, N),
            box(MID, S, E, HALF),
            box(MID, HALF, E, N),
        ],
        crs="EPSG:4326",
    )


def write(gdf: geopandas.GeoDataFrame, path: Path, **kw: object) -> Path:
    gdf.to_file(path, engine="pyogrio", **kw)
    return path


def count(conn: sa.Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def load_parents(conn: sa.Connection) -> None:
    import_admin(conn, streets(), "street")
    import_admin(conn, communities(), "community")


def load_district(conn: sa.Connection, tmp_path: Path) -> list[AdminReport]:
    """The clean district: streets as Shapefile, communities as GPKG, grids as GeoJSON."""
    return [
        import_admin(conn, write(streets(), tmp_path / "streets.shp"), "street"),
        import_admin(conn, write(communities(), tmp_path / "communities.gpkg"), "community"),
        import_admin(conn, write(grids(), tmp_path / "grids.geojson"), "grid"),
    ]


def problems_of(
    conn: sa.Connection, path_or_gdf: object, level: str, **kw: object
) -> list[Problem]:
    with pytest.raises(AdminImportError) as info:
        import_admin(conn, path_or_gdf, level, **kw)  # type: ignore[arg-type]
    assert not info.value.report.ok()
    return info.value.report.problems


def only(problems: list[Problem], kind: str) -> Problem:
    found = [p for p in problems if p.kind == kind]
    assert len(found) == 1, problems
    return found[0]


def inside(p: Problem, area: shapely.Geometry) -> bool:
    assert p.lng is not None and p.lat is not None, p
    return bool(area.contains(Point(p.lng, p.lat)))


def test_clean_district_imports_reimports_unchanged_and_updates_one_change(
    connection: sa.Connection, tmp_path: Path
) -> None:
    first = load_district(connection, tmp_path)
    assert [(r.read, r.inserted, r.updated, r.unchanged) for r in first] == [
        (2, 2, 0, 0),
        (3, 3, 0, 0),
        (6, 6, 0, 0),
    ]
    assert all(r.ok() and not r.problems for r in first)
    grid_table = get_layer("grids").table
    derived = connection.execute(
        sa.select(grid_table.c.street_code).where(grid_table.c.code == f"{B1}001")
    ).scalar_one()
    assert derived == STREET_B
    names = dict(connection.execute(sa.select(get_layer("streets").table.c["code", "name"])).all())
    assert names == {STREET_A: "测试甲街道", STREET_B: "测试乙街道"}

    again = load_district(connection, tmp_path)
    assert [(r.inserted, r.updated, r.unchanged) for r in again] == [
        (0, 0, 2),
        (0, 0, 3),
        (0, 0, 6),
    ]

    changed = communities()
    changed.loc[1, "name"] = "甲二社区(新)"
    report = import_admin(connection, changed, "community")
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 2)
    table = get_layer("communities").table
    name = connection.execute(sa.select(table.c.name).where(table.c.code == A2)).scalar_one()
    assert name == "甲二社区(新)"


def test_geometry_change_is_an_update(connection: sa.Connection, tmp_path: Path) -> None:
    load_district(connection, tmp_path)
    changed = grids()
    changed.loc[0, "geometry"] = Polygon([(W, S), (116.3025, S), (QW, S), (QW, HALF), (W, HALF)])
    report = import_admin(connection, changed, "grid")
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 5)


def test_gap_is_found_located_and_nothing_written(
    connection: sa.Connection, tmp_path: Path
) -> None:
    load_parents(connection)
    grid_table = get_layer("grids").table
    bad = grids()
    bad.loc[0, "geometry"] = box(W, S, 116.304, HALF)
    problems = problems_of(connection, write(bad, tmp_path / "gap.geojson"), "grid")
    gap = only(problems, "gap")
    assert gap.code == A1
    assert inside(gap, box(116.304, S, QW, HALF))
    assert A1 in gap.message and "m²" in gap.message and "平方米" in gap.message
    assert count(connection, grid_table) == 0


def test_overlap_between_siblings_is_located(connection: sa.Connection, tmp_path: Path) -> None:
    load_district(connection, tmp_path)
    bad = grids()
    bad.loc[0, "geometry"] = box(W, S, 116.306, HALF)
    problems = problems_of(connection, bad, "grid")
    overlap = only(problems, "overlap")
    assert overlap.code == f"{A1}001" and f"{A1}002" in overlap.message
    assert inside(overlap, box(QW, S, 116.306, HALF))
    assert {p.kind for p in problems} == {"overlap"}


def test_overlap_between_streets(connection: sa.Connection) -> None:
    bad = streets()
    bad.loc[0, "geometry"] = box(W, S, 116.312, N)
    overlap = only(problems_of(connection, bad, "street"), "overlap")
    assert inside(overlap, box(MID, S, 116.312, N))


def test_child_outside_parent_is_located(connection: sa.Connection, tmp_path: Path) -> None:
    import_admin(connection, streets(), "street")
    bad = communities()
    bad.loc[0, "geometry"] = box(W, S - 0.001, MID, HALF)
    problems = problems_of(connection, write(bad, tmp_path / "c.gpkg"), "community")
    outside = only(problems, "outside_parent")
    assert outside.code == A1 and STREET_A in outside.message
    assert inside(outside, box(W, S - 0.001, MID, S))
    assert count(connection, get_layer("communities").table) == 0


def test_bow_tie_is_invalid_at_its_crossing(connection: sa.Connection, tmp_path: Path) -> None:
    load_district(connection, tmp_path)
    bad = grids()
    bad.loc[0, "geometry"] = Polygon([(W, S), (QW, HALF), (QW, S), (W, HALF), (W, S)])
    problems = problems_of(connection, write(bad, tmp_path / "bow.geojson"), "grid")
    invalid = only(problems, "invalid_geometry")
    assert invalid.code == f"{A1}001" and "Self-intersection" in invalid.message
    assert invalid.lng == pytest.approx((W + QW) / 2) and invalid.lat == pytest.approx(
        (S + HALF) / 2
    )


def test_duplicate_code(connection: sa.Connection, tmp_path: Path) -> None:
    load_district(connection, tmp_path)
    bad = grids()
    bad.loc[1, "code"] = bad.loc[0, "code"]
    dup = only(problems_of(connection, bad, "grid"), "duplicate_code")
    assert dup.code == f"{A1}001" and "row 2" in dup.message
    assert inside(dup, box(QW, S, MID, HALF))


def test_missing_parent(connection: sa.Connection, tmp_path: Path) -> None:
    load_district(connection, tmp_path)
    bad = grids()
    bad.loc[5, "community_code"] = "110999009009"
    missing = only(problems_of(connection, bad, "grid"), "missing_parent")
    assert missing.code == f"{B1}002" and "110999009009" in missing.message
    assert inside(missing, box(MID, HALF, E, N))


def test_community_of_unknown_street(connection: sa.Connection) -> None:
    import_admin(connection, streets(), "street")
    bad = communities()
    bad.loc[2, "street_code"] = "110999777"
    missing = only(problems_of(connection, bad, "community"), "missing_parent")
    assert "110999777" in missing.message


def test_grid_street_must_match_its_community(connection: sa.Connection, tmp_path: Path) -> None:
    load_district(connection, tmp_path)
    bad = grids()
    bad["street_code"] = [STREET_A] * 6
    problems = problems_of(connection, bad, "grid")
    assert {p.kind for p in problems} == {"parent_mismatch"}
    assert [p.code for p in problems] == [f"{B1}001", f"{B1}002"]
    assert STREET_A in problems[0].message and STREET_B in problems[0].message


def test_missing_required_field(connection: sa.Connection) -> None:
    bad = streets()
    bad.loc[1, "name"] = "  "
    missing = only(problems_of(connection, bad, "street"), "missing_field")
    assert missing.code == STREET_B and "name" in missing.message


def test_wrong_geometry_types(connection: sa.Connection, tmp_path: Path) -> None:
    load_district(connection, tmp_path)
    bad = grids()
    bad.loc[0, "geometry"] = LineString([(W, S), (QW, HALF)])
    bad.loc[1, "geometry"] = Point(QW, S)
    wrong = [p for p in problems_of(connection, bad, "grid") if p.kind == "wrong_geometry_type"]
    assert sorted(p.code or "" for p in wrong) == [f"{A1}001", f"{A1}002"]
    assert any("is a Point" in p.message and "Multipolygon" in p.message for p in wrong)


def test_polygon_and_one_part_multipolygon_grids_are_stored_alike(
    connection: sa.Connection,
) -> None:
    import_admin(connection, streets(), "street")
    import_admin(connection, communities(), "community")
    multi = grids()
    multi.geometry = [MultiPolygon([g]) if i % 2 else g for i, g in enumerate(multi.geometry)]
    assert import_admin(connection, multi, "grid").inserted == 6
    table = get_layer("grids").table
    rows = connection.execute(
        sa.select(sa.func.ST_GeometryType(table.c.geom), sa.func.ST_NumGeometries(table.c.geom))
    ).all()
    assert set(rows) == {("ST_MultiPolygon", 1)}


def test_code_too_long_for_its_column(connection: sa.Connection) -> None:
    bad = streets()
    bad.loc[0, "code"] = "1109990010"
    problem = only(problems_of(connection, bad, "street"), "code_format")
    assert "1109990010" in problem.message and "9" in problem.message


def test_file_without_crs_needs_crs(connection: sa.Connection, tmp_path: Path) -> None:
    path = write(streets(), tmp_path / "nocrs.shp")
    path.with_suffix(".prj").unlink()
    with pytest.raises(AdminFileError, match="--crs"):
        import_admin(connection, path, "street")
    assert count(connection, get_layer("streets").table) == 0
    report = import_admin(connection, path, "street", crs="EPSG:4490")
    assert report.inserted == 2 and not report.notes


def test_crs_option_contradicting_the_file_is_noted(tmp_path: Path) -> None:
    path = write(streets().to_crs("EPSG:3857"), tmp_path / "m.gpkg")
    gdf = read_admin_file(path, "street", crs="EPSG:4547")
    assert any("EPSG:3857" in n and "EPSG:4547" in n for n in gdf.attrs["admin_notes"])
    assert gdf.crs == "EPSG:4326"


@pytest.mark.parametrize("epsg", ["EPSG:3857", "EPSG:4490", "EPSG:4547"])
def test_file_is_reprojected(connection: sa.Connection, tmp_path: Path, epsg: str) -> None:
    path = write(streets().to_crs(epsg), tmp_path / "streets.gpkg")
    import_admin(connection, path, "street")
    table = get_layer("streets").table
    rows = connection.execute(
        sa.select(table.c.code, sa.func.ST_AsBinary(table.c.geom)).order_by(table.c.code)
    ).all()
    for (_, wkb), original in zip(rows, streets().geometry, strict=True):
        got = shapely.from_wkb(wkb)
        tol = 0.0 if epsg == "EPSG:4490" else 1e-8  # CGCS2000 is taken as WGS84 as it is
        assert shapely.hausdorff_distance(got, original) <= tol


def test_gcj02_file_is_shifted_back(connection: sa.Connection, tmp_path: Path) -> None:
    shifted = streets()
    shifted.geometry = shapely.transform(
        shifted.geometry.values,
        lambda xy: np.column_stack(coords.wgs84_to_gcj02(xy[:, 0], xy[:, 1])),
    )
    path = write(shifted, tmp_path / "gcj.geojson")
    import_admin(connection, path, "street", crs="gcj02")
    table = get_layer("streets").table
    wkb = connection.execute(
        sa.select(sa.func.ST_AsBinary(table.c.geom)).where(table.c.code == STREET_A)
    ).scalar_one()
    assert shapely.hausdorff_distance(shapely.from_wkb(wkb), streets().geometry[0]) < 1e-8


def test_mapping_with_other_column_names(connection: sa.Connection, tmp_path: Path) -> None:
    import_admin(connection, streets(), "street")
    source = communities().rename(
        columns={"code": "XZQDM", "name": "XZQMC", "street_code": "SSJDDM"}
    )
    path = write(source, tmp_path / "社区.gpkg")
    mapping = {
        "columns": {"code": "XZQDM", "name": "XZQMC", "street_code": "SSJDDM"},
        "code_pattern": r"^\d{12}$",
    }
    report = import_admin(connection, path, "community", mapping=mapping)
    assert report.inserted == 3

    bad = source.copy()
    bad.loc[0, "XZQDM"] = "11099900100X"
    path = write(bad, tmp_path / "bad.gpkg")
    problem = only(problems_of(connection, path, "community", mapping=mapping), "code_format")
    assert "11099900100X" in problem.message

    with pytest.raises(AdminFileError, match="JDDM"):
        read_admin_file(path, "community", {"columns": {"street_code": "JDDM", "code": "XZQDM"}})
    with pytest.raises(AdminFileError, match="commander"):
        read_admin_file(path, "community", {"columns": {"commander": "XZQMC"}})


def test_mapping_defaults_fill_blank_fields(connection: sa.Connection) -> None:
    import_admin(connection, streets(), "street")
    source = communities().drop(columns="street_code").iloc[:2]
    report = import_admin(
        connection, source, "community", mapping={"defaults": {"street_code": STREET_A}}
    )
    assert report.inserted == 2


def test_gbk_shapefile_with_cpg_and_with_the_example_mapping(
    connection: sa.Connection, tmp_path: Path
) -> None:
    import_admin(connection, streets(), "street")
    source = communities().rename(
        columns={"code": "XZQDM", "name": "XZQMC", "street_code": "SSJDDM"}
    )
    with_cpg = write(source.to_crs("EPSG:4490"), tmp_path / "gbk.shp", encoding="GBK")
    assert with_cpg.with_suffix(".cpg").read_text().strip().upper() == "GBK"
    mapping = yaml.safe_load(EXAMPLE_MAPPING.read_text(encoding="utf-8"))
    del mapping["encoding"]
    gdf = read_admin_file(with_cpg, "community", mapping)
    assert list(gdf["name"]) == ["甲一社区", "甲二社区", "乙一社区"]

    bare = write(source, tmp_path / "bare.shp", encoding="GBK")
    bare.with_suffix(".cpg").unlink()
    bare.with_suffix(".prj").unlink()
    with pytest.raises(AdminFileError, match="GBK"):
        read_admin_file(bare, "community", {"columns": mapping["columns"], "crs": "EPSG:4490"})
    example = yaml.safe_load(EXAMPLE_MAPPING.read_text(encoding="utf-8"))
    report = import_admin(connection, bare, "community", mapping=example)
    assert report.inserted == 3
    table = get_layer("communities").table
    names = connection.execute(sa.select(table.c.name).order_by(table.c.code)).scalars().all()
    assert names == ["甲一社区", "甲二社区", "乙一社区"]


def test_dry_run_counts_and_writes_nothing(connection: sa.Connection) -> None:
    report = import_admin(connection, streets(), "street", dry_run=True)
    assert report.dry_run and (report.inserted, report.updated) == (2, 0)
    assert count(connection, get_layer("streets").table) == 0


def test_units_missing_from_the_file_are_kept_and_noted(connection: sa.Connection) -> None:
    import_admin(connection, streets(), "street")
    report = import_admin(connection, streets().iloc[:1], "street")
    assert report.ok() and report.unchanged == 1
    assert any(STREET_B in n for n in report.notes)
    assert count(connection, get_layer("streets").table) == 2


def test_validate_admin_returns_problems_without_raising(connection: sa.Connection) -> None:
    bad = streets()
    bad.loc[0, "geometry"] = Polygon()
    problems = validate_admin(connection, "street", bad)
    assert [p.kind for p in problems] == ["empty_geometry"]


def lanes_and_points() -> dict[str, geopandas.GeoDataFrame]:
    lanes = geopandas.GeoDataFrame(
        {
            "code": ["L0010001", "L0010002", "L0010003", "L0020001"],
            "name": ["甲一胡同", "甲二条", "越界胡同", "乙一街"],
            "street_code": [STREET_A, STREET_A, STREET_A, STREET_B],
            "left_from": [1, 1, 1, 1],
        },
        geometry=[
            LineString([(116.301, 39.902), (116.309, 39.902)]),
            LineString([(116.301, 39.904), (MID + 0.00003, 39.904)]),  # ~2.6 m into 乙
            LineString([(116.301, 39.906), (MID + 0.0005, 39.906)]),  # ~43 m into 乙
            LineString([(116.315, 39.906), (116.315, N + 0.001)]),  # out of the district
        ],
        crs="EPSG:4326",
    )
    halls = geopandas.GeoDataFrame(
        {"code": ["H001", "H002"], "name": ["甲大厅", "乙大厅"], "street_code": [STREET_A, "X"]},
        geometry=[Point(116.305, 39.905), Point(116.315, 39.905)],
        crs="EPSG:4326",
    )
    marks = geopandas.GeoDataFrame(
        {
            "code": ["P0010001", "P0010002"],
            "name": ["测试小学", "城外公园"],
            "kind": ["school", "park"],
            "street_code": [STREET_A, None],
        },
        geometry=[Point(116.302, 39.902), Point(116.35, 39.95)],
        crs="EPSG:4326",
    )
    return {"lane": lanes, "service_hall": halls, "landmark": marks}


def test_lanes_and_points_lie_in_their_street(connection: sa.Connection, tmp_path: Path) -> None:
    load_district(connection, tmp_path)
    data = lanes_and_points()
    problems = problems_of(connection, write(data["lane"], tmp_path / "lanes.geojson"), "lane")
    assert sorted((p.kind, p.code) for p in problems) == [
        ("outside_district", "L0020001"),
        ("outside_parent", "L0010003"),
    ]
    out = only(problems, "outside_parent")
    assert out.lng == pytest.approx(MID + 0.0005) and out.lat == pytest.approx(39.906)
    assert "42." in out.message or "43." in out.message
    assert import_admin(connection, data["lane"].iloc[:2], "lane").inserted == 2

    hall = only(problems_of(connection, data["service_hall"], "service_hall"), "missing_parent")
    assert hall.code == "H002" and "'X'" in hall.message
    mark = only(problems_of(connection, data["landmark"], "landmark"), "outside_district")
    assert mark.code == "P0010002" and mark.lng == pytest.approx(116.35)
    assert count(connection, landmarks) == 0


def test_unknown_level_and_missing_code_column(tmp_path: Path) -> None:
    path = write(streets(), tmp_path / "s.geojson")
    with pytest.raises(AdminFileError, match="district"):
        read_admin_file(path, "district")
    renamed = write(streets().rename(columns={"code": "DM"}), tmp_path / "r.geojson")
    with pytest.raises(AdminFileError, match="DM"):
        read_admin_file(renamed, "street")


@pytest.fixture
def committed(engine: sa.Engine) -> Iterator[None]:
    """The CLI commits: remove whatever it wrote, children first."""
    try:
        yield
    finally:
        with engine.begin() as conn:
            for name in ("grids", "communities", "streets"):
                conn.execute(sa.delete(get_layer(name).table))


def test_cli_import_reports_and_exits(database_url: str, committed: None, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": database_url}
    path = write(streets(), tmp_path / "streets.geojson")
    result = runner.invoke(admin, ["import", str(path), "--level", "street", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "inserted 2" in result.output

    result = runner.invoke(admin, ["import", str(path), "--level", "street"], env=env)
    assert result.exit_code == 0, result.output
    assert "新增 inserted 2" in result.output

    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            assert count(conn, get_layer("streets").table) == 2
    finally:
        engine.dispose()

    bad = communities()
    bad.loc[0, "geometry"] = box(W, S - 0.001, MID, HALF)
    path = write(bad, tmp_path / "communities.gpkg")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("code_pattern: '^1109\\d{8}$'\n", encoding="utf-8")
    result = runner.invoke(
        admin,
        ["import", str(path), "--level", "community", "--mapping", str(mapping)],
        env=env,
    )
    assert result.exit_code == 1, result.output
    line = next(x for x in result.output.splitlines() if x.strip().startswith("outside_parent"))
    assert A1 in line and "116.3" in line and "39.899" in line

    result = runner.invoke(admin, ["import", str(tmp_path / "streets.geojson"), "--level", "x"])
    assert result.exit_code == 2


def test_cli_file_error_is_a_clean_message(database_url: str, tmp_path: Path) -> None:
    path = write(streets(), tmp_path / "nocrs.shp")
    path.with_suffix(".prj").unlink()
    result = CliRunner().invoke(
        admin, ["import", str(path), "--level", "street"], env={"DATABASE_URL": database_url}
    )
    assert result.exit_code == 1
    assert "--crs" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_demo_geography_imports_cleanly_at_every_level(
    connection: sa.Connection, tmp_path: Path
) -> None:
    from etl.demo.geography import generate_geography, write_geography

    paths = write_geography(generate_geography(42), tmp_path)
    order = [
        ("street", "streets"),
        ("community", "communities"),
        ("grid", "grids"),
        ("lane", "lanes"),
        ("service_hall", "service_halls"),
        ("landmark", "landmarks"),
    ]
    for level, layer in order:
        report = import_admin(connection, paths[layer], level)
        assert report.ok(), report.problems[:5]
        assert report.inserted == report.read > 0
    again = import_admin(connection, paths["grids"], "grid")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, again.read)


def test_children_before_parents_is_one_clear_problem(connection: sa.Connection) -> None:
    problems = problems_of(connection, communities(), "community")
    missing = only(problems, "missing_parent")
    assert missing.code is None and "import them first" in missing.message
    assert STREET_A in missing.message


def test_multi_layer_geopackage(tmp_path: Path) -> None:
    path = tmp_path / "district.gpkg"
    write(communities(), path, layer="communities")
    write(streets(), path, layer="streets")
    assert list(read_admin_file(path, "street")["code"]) == [STREET_A, STREET_B]
    assert len(read_admin_file(path, "street", layer="communities")) == 3
    other = tmp_path / "other.gpkg"
    write(streets(), other, layer="a")
    write(streets(), other, layer="b")
    with pytest.raises(AdminFileError, match=r"\['a', 'b'\]"):
        read_admin_file(other, "street")
