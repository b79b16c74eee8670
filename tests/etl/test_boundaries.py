"""Boundaries as official files carry them, loaded through the production admin import.

12-digit statistical codes (统计用区划代码), attribute names of the national standard
(XZQDM / XZQMC), values transformed by the mapping (regex, slice, prefix), a grid in two
parts, and events loaded before the finer levels exist, filled in when they arrive.

The tiny district: streets 甲 (W–MID) and 乙 (MID–E) over S–N; communities 甲一 (south half
of 甲), 甲二 (north half), 乙一 (all of 乙); 甲一 has two grids, the first in two parts
(west and east thirds), the second the middle third; 甲二 and 乙一 one grid each.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas
import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from shapely.geometry import MultiPolygon, box

from app.commands.admin import admin
from etl.admin import AdminFileError, AdminImportError, import_admin
from etl.jobs import EtlError, run_file
from layers import get_layer
from tests.district import request_row, write_csv

W, MID, E = 116.30, 116.32, 116.34
S, HALF, N = 39.90, 39.91, 39.92
T1, T2 = 116.30 + 0.02 / 3, 116.30 + 0.04 / 3  # thirds of 甲一, west to east
# One metre in degrees of longitude here (R = 6,371,008.8 m), for points near an edge.
M_LNG = 1 / (6_371_008.8 * math.pi / 180 * math.cos(math.radians(39.91)))

A, B = "110102001", "110102003"
A1, A2, B1 = "110102001001", "110102001002", "110102003001"
G11, G12, G21, G31 = f"{A1}001", f"{A1}002", f"{A2}001", f"{B1}001"


def streets_file(tmp_path: Path, codes: tuple[str, str] = (A + "000", B + "000")) -> Path:
    """Streets as a boundary file carries them: 12-digit codes, the office's full name."""
    gdf = geopandas.GeoDataFrame(
        {"XZQDM": list(codes), "XZQMC": ["甲街道办事处", "乙街道办事处"]},
        geometry=[box(W, S, MID, N), box(MID, S, E, N)],
        crs="EPSG:4326",
    )
    path = tmp_path / "streets.geojson"
    gdf.to_file(path, engine="pyogrio")
    return path


STREETS_MAPPING = {
    "columns": {
        "code": "XZQDM",  # 12 digits ending in 000: stored as the street's 9
        "name": {"column": "XZQMC", "regex": "^(.*?)(办事处)?$"},
    }
}


def communities_file(tmp_path: Path) -> Path:
    """Communities: 12-digit codes, the street's 12-digit code, committee names."""
    gdf = geopandas.GeoDataFrame(
        {
            "XZQDM": [A1, A2, B1],
            "XZQMC": ["甲一社区居委会", "甲二社区居委会", "乙一社区"],
            "SSJD": [A + "000", A + "000", B + "000"],
        },
        geometry=[box(W, S, MID, HALF), box(W, HALF, MID, N), box(MID, S, E, N)],
        crs="EPSG:4326",
    )
    path = tmp_path / "communities.geojson"
    gdf.to_file(path, engine="pyogrio")
    return path


COMMUNITIES_MAPPING = {
    "columns": {
        "code": "XZQDM",
        "name": {"column": "XZQMC", "regex": "^(.*?)(居委会)?$", "group": 1},
        "street_code": "SSJD",
    }
}


def grids_file(tmp_path: Path) -> Path:
    """Grids: a 20-character system id whose characters 5–19 are the grid code; 甲一's
    first grid in two parts."""
    gdf = geopandas.GeoDataFrame(
        {
            "WGID": [f"WG-{c}-X" for c in (G11, G12, G21, G31)],
            "SQ": [A1[6:], A1[6:], A2[6:], B1[6:]],  # the community without the county
        },
        geometry=[
            MultiPolygon([box(W, S, T1, HALF), box(T2, S, MID, HALF)]),
            box(T1, S, T2, HALF),
            box(W, HALF, MID, N),
            box(MID, S, E, N),
        ],
        crs="EPSG:4326",
    )
    path = tmp_path / "grids.geojson"
    gdf.to_file(path, engine="pyogrio")
    return path


GRIDS_MAPPING = {
    "columns": {
        "code": {"column": "WGID", "slice": [3, 18]},
        "community_code": {"column": "SQ", "prefix": "110102"},
    }
}


def write_mapping(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def rows(conn: sa.Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sa.text(sql)).all()]


@pytest.fixture
def committed(engine: sa.Engine) -> Iterator[None]:
    """The CLI commits: remove what it wrote, children first."""
    try:
        yield
    finally:
        with engine.begin() as conn:
            for name in ("grids", "communities", "streets"):
                conn.execute(sa.delete(get_layer(name).table))


def test_cli_imports_official_codes_transformed_values_and_a_two_part_grid(
    database_url: str, engine: sa.Engine, committed: None, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url, "BLOCKDATA_VAR": str(tmp_path / "var")}
    runner = CliRunner()
    for level, path, doc in [
        ("street", streets_file(tmp_path), STREETS_MAPPING),
        ("community", communities_file(tmp_path), COMMUNITIES_MAPPING),
        ("grid", grids_file(tmp_path), GRIDS_MAPPING),
    ]:
        mapping = write_mapping(tmp_path / f"{level}.yaml", doc)
        result = runner.invoke(
            admin, ["import", str(path), "--level", level, "--mapping", str(mapping)], env=env
        )
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
    assert f"1 grid(s) in several parts, each stored whole under its one code: ['{G11}']" in (
        result.output
    )
    with engine.connect() as conn:
        assert rows(conn, "select code, name from streets order by code") == [
            (A, "甲街道"),
            (B, "乙街道"),
        ]
        assert rows(conn, "select code, name, street_code from communities order by code") == [
            (A1, "甲一社区", A),
            (A2, "甲二社区", A),
            (B1, "乙一社区", B),
        ]
        assert rows(
            conn,
            "select code, community_code, street_code, ST_GeometryType(geom),"
            " ST_NumGeometries(geom) from grids order by code",
        ) == [
            (G11, A1, A, "ST_MultiPolygon", 2),
            (G12, A1, A, "ST_MultiPolygon", 1),
            (G21, A2, A, "ST_MultiPolygon", 1),
            (G31, B1, B, "ST_MultiPolygon", 1),
        ]
        # Both parts of the two-part grid are stored: its area is two thirds of 甲一's.
        ratio = conn.execute(
            sa.text(
                "select ST_Area(g.geom) / ST_Area(c.geom) from grids g"
                " join communities c on c.code = g.community_code where g.code = :g"
            ),
            {"g": G11},
        ).scalar_one()
        assert ratio == pytest.approx(2 / 3, rel=1e-9)


def test_requests_in_either_part_of_a_two_part_grid_are_placed_in_it(
    connection: sa.Connection, tmp_path: Path
) -> None:
    import_admin(connection, streets_file(tmp_path), "street", STREETS_MAPPING)
    import_admin(connection, communities_file(tmp_path), "community", COMMUNITIES_MAPPING)
    import_admin(connection, grids_file(tmp_path), "grid", GRIDS_MAPPING)
    y = 39.905
    points = {"west": (W + 0.001, G11), "middle": (116.31, G12), "east": (MID - 0.001, G11)}
    csv = write_csv(
        tmp_path / "r.csv",
        [request_row(name, 经度=str(x), 纬度=str(y)) for name, (x, _) in points.items()],
    )
    assert run_file(connection, csv, layer="service_requests").inserted == 3
    placed = dict(rows(connection, "select source_id, grid_code from service_requests"))
    assert placed == {name: grid for name, (_, grid) in points.items()}


@pytest.mark.parametrize(
    ("level", "bad", "why"),
    [
        ("street", "110102001001", "community's 12-digit statistical code"),
        ("community", "110102001000", "statistical code of street 110102001"),
    ],
)
def test_a_code_that_cannot_be_mapped_is_refused_by_name(
    connection: sa.Connection, tmp_path: Path, level: str, bad: str, why: str
) -> None:
    if level == "street":
        path, doc = streets_file(tmp_path, (bad, B + "000")), STREETS_MAPPING
    else:
        import_admin(connection, streets_file(tmp_path), "street", STREETS_MAPPING)
        path, doc = communities_file(tmp_path), COMMUNITIES_MAPPING
        frame = geopandas.read_file(path)
        frame.loc[0, "XZQDM"] = bad
        frame.to_file(path, engine="pyogrio")
    table = get_layer("streets" if level == "street" else "communities").table
    before = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    with pytest.raises(AdminImportError) as info:
        import_admin(connection, path, level, doc)
    problems = [p for p in info.value.report.problems if p.kind == "code_format"]
    assert len(problems) == 1, info.value.report.problems
    assert bad in problems[0].message and why in problems[0].message
    assert problems[0].lng is not None  # located on the unit
    after = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    assert after == before


def test_a_street_code_of_a_child_level_is_refused_on_the_community_too(
    connection: sa.Connection, tmp_path: Path
) -> None:
    import_admin(connection, streets_file(tmp_path), "street", STREETS_MAPPING)
    path = communities_file(tmp_path)
    frame = geopandas.read_file(path)
    frame.loc[1, "SSJD"] = A1  # a community's code where the street's belongs
    frame.to_file(path, engine="pyogrio")
    with pytest.raises(AdminImportError) as info:
        import_admin(connection, path, "community", COMMUNITIES_MAPPING)
    [problem] = [p for p in info.value.report.problems if p.kind == "code_format"]
    assert problem.code == A2
    assert A1 in problem.message and "street_code" in problem.message


def test_a_value_the_mapping_regex_does_not_match_is_a_problem_by_row(
    connection: sa.Connection, tmp_path: Path
) -> None:
    doc = {"columns": {"code": {"column": "XZQDM", "regex": r"^(\d{9})000$"}, "name": "XZQMC"}}
    path = streets_file(tmp_path, (A + "000", "11010200300X"))
    with pytest.raises(AdminImportError) as info:
        import_admin(connection, path, "street", doc)
    [problem] = info.value.report.problems
    assert problem.kind == "code_format" and "11010200300X" in problem.message
    assert "row 2" in problem.message
    doc["columns"]["code"]["regex"] = r"^(\d{9})\d{3}$"
    report = import_admin(connection, streets_file(tmp_path), "street", doc)
    assert report.inserted == 2


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ({"column": "XZQDM", "slise": [0, 9]}, r"columns\.code has unknown key\(s\) \['slise'\]"),
        ({"slice": [0, 9]}, r"columns\.code needs `column:`"),
        ({"column": "XZQDM", "slice": "0:9"}, r"columns\.code\.slice must be \[start, end\]"),
        ({"column": "XZQDM", "slice": [0, 9, 1]}, r"columns\.code\.slice must be"),
        ({"column": "XZQDM", "regex": "(unclosed"}, r"columns\.code\.regex is not a valid"),
        ({"column": "XZQDM", "regex": "(a)(b)", "group": 3}, r"columns\.code\.group 3 is not"),
        ({"column": "XZQDM", "group": 1}, r"columns\.code\.group needs `regex:`"),
        ({"column": "XZQDM", "prefix": ["1"]}, r"columns\.code\.prefix must be text"),
        ({"column": "NOPE", "slice": [0, 9]}, r"mapped column\(s\) \['NOPE'\] are not"),
    ],
)
def test_bad_column_transforms_are_named(
    connection: sa.Connection, tmp_path: Path, source: dict[str, Any], named: str
) -> None:
    doc = {"columns": {"code": source, "name": "XZQMC"}}
    with pytest.raises(AdminFileError, match=named):
        import_admin(connection, streets_file(tmp_path), "street", doc)


def test_the_shipped_example_mapping_reads_an_official_community_file(
    connection: sa.Connection, tmp_path: Path
) -> None:
    example = Path(__file__).resolve().parents[2] / "etl/mappings/admin_example.yaml"
    doc = yaml.safe_load(example.read_text(encoding="utf-8"))
    import_admin(connection, streets_file(tmp_path), "street", STREETS_MAPPING)
    frame = geopandas.read_file(communities_file(tmp_path)).rename(columns={"SSJD": "SSJDDM"})
    path = tmp_path / "official.shp"  # GBK, no .cpg, no .prj: the mapping says both
    frame.to_file(path, engine="pyogrio", encoding="GBK")
    path.with_suffix(".cpg").unlink()
    path.with_suffix(".prj").unlink()
    report = import_admin(connection, path, "community", doc)
    assert report.inserted == 3
    assert rows(connection, "select code, name, street_code from communities order by code") == [
        (A1, "甲一社区", A),
        (A2, "甲二社区", A),
        (B1, "乙一社区", B),
    ]


def test_events_load_with_streets_only_and_are_filled_in_as_finer_levels_arrive(
    connection: sa.Connection, tmp_path: Path
) -> None:
    import_admin(connection, streets_file(tmp_path), "street", STREETS_MAPPING)
    # Where each request lies, from the boxes above; p4 is 1 m east of the edge between the
    # two grids of 甲一 (near a grid's boundary, far from any street's or community's).
    spots = {
        "p1": (116.305, 39.905, A, A1, G11),
        "p2": (116.31, 39.915, A, A2, G21),
        "p3": (116.33, 39.915, B, B1, G31),
        "p4": (T1 + M_LNG, 39.905, A, A1, G12),
    }
    csv = write_csv(
        tmp_path / "r.csv",
        [request_row(k, 经度=f"{x:.9f}", 纬度=str(y)) for k, (x, y, *_) in spots.items()]
        + [request_row("far", 经度="116.40", 纬度="39.905")],
    )
    report = run_file(connection, csv, layer="service_requests")
    assert (report.inserted, report.rejected) == (4, 1), report.reasons
    assert report.reasons == {"outside_district": 1}
    project = tmp_path / "projects.geojson"
    line = {"type": "LineString", "coordinates": [[116.301, 39.905], [116.305, 39.905]]}
    project.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"项目编号": "L1", "项目名称": "胡同整治", "阶段": "施工"},
                        "geometry": line,
                    }
                ],
            }
        ),
        "utf-8",
    )
    assert run_file(connection, project, layer="renovation_projects").inserted == 1

    def placed() -> dict[str, tuple[Any, ...]]:
        return {
            r[0]: tuple(r[1:])
            for r in rows(
                connection,
                "select source_id, street_code, community_code, grid_code, near_boundary"
                " from service_requests union all select source_id, street_code,"
                " community_code, grid_code, near_boundary from renovation_projects",
            )
        }

    assert placed() == {
        **{k: (s, None, None, False) for k, (_, _, s, _, _) in spots.items()},
        "L1": (A, None, None, False),
    }

    report = import_admin(connection, communities_file(tmp_path), "community", COMMUNITIES_MAPPING)
    assert report.filled == {"service_requests": 4, "renovation_projects": 1}
    assert any("filled in" in note for note in report.notes)
    assert placed() == {
        **{k: (s, c, None, False) for k, (_, _, s, c, _) in spots.items()},
        "L1": (A, A1, None, False),
    }

    report = import_admin(connection, grids_file(tmp_path), "grid", GRIDS_MAPPING)
    assert report.filled == {"service_requests": 4, "renovation_projects": 1}
    # The line's midpoint (116.303, 39.905) lies in the west part of the two-part grid.
    assert placed() == {
        **{k: (s, c, g, k == "p4") for k, (_, _, s, c, g) in spots.items()},
        "L1": (A, A1, G11, False),
    }
    # The heat aggregates follow: each grid counts its request.
    heat = rows(
        connection,
        "select grid_code, sum(received)::int from request_daily"
        " where category is null group by grid_code order by grid_code",
    )
    assert heat == [(G11, 1), (G12, 1), (G21, 1), (G31, 1)]

    # Nothing left to fill: a re-import changes no event.
    again = import_admin(connection, grids_file(tmp_path), "grid", GRIDS_MAPPING)
    assert again.filled == {} and again.unchanged == 4


def test_a_load_with_no_boundaries_at_all_fails_naming_the_import(
    connection: sa.Connection, tmp_path: Path
) -> None:
    csv = write_csv(tmp_path / "r.csv", [request_row("x")])
    with pytest.raises(EtlError, match="admin import"):
        run_file(connection, csv, layer="service_requests")


def test_dry_run_of_finer_level_fills_nothing(connection: sa.Connection, tmp_path: Path) -> None:
    import_admin(connection, streets_file(tmp_path), "street", STREETS_MAPPING)
    csv = write_csv(tmp_path / "r.csv", [request_row("x", 经度="116.305", 纬度="39.905")])
    run_file(connection, csv, layer="service_requests")
    report = import_admin(
        connection, communities_file(tmp_path), "community", COMMUNITIES_MAPPING, dry_run=True
    )
    assert report.filled == {"service_requests": 1}  # what the import would do
    assert rows(connection, "select community_code from service_requests") == [(None,)]
    assert rows(connection, "select count(*) from communities") == [(0,)]


def test_a_placement_index_over_budget_rolls_the_import_back_with_a_clear_message(
    database_url: str, engine: sa.Engine, committed: None, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url, "BLOCKDATA_VAR": str(tmp_path / "var")}
    runner = CliRunner()
    steps = [
        ("street", streets_file(tmp_path), STREETS_MAPPING),
        ("community", communities_file(tmp_path), COMMUNITIES_MAPPING),
    ]
    for level, path, doc in steps:
        mapping = write_mapping(tmp_path / f"{level}.yaml", doc)
        args = ["import", str(path), "--level", level, "--mapping", str(mapping)]
        assert runner.invoke(admin, args, env=env).exit_code == 0
    mapping = write_mapping(tmp_path / "grid.yaml", GRIDS_MAPPING)
    args = ["import", str(grids_file(tmp_path)), "--level", "grid", "--mapping", str(mapping)]
    result = runner.invoke(admin, args, env={**env, "BLOCKDATA_PLACEMENT_MB": "0.001"})
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not an exception
    assert "Traceback" not in result.output
    line = next(x for x in result.output.splitlines() if x.strip().startswith("placement"))
    assert "定位索引" in line and "0.001 MB" in line and "BLOCKDATA_PLACEMENT_MB" in line
    assert "nothing was written" in result.output
    with engine.connect() as conn:
        assert rows(conn, "select count(*) from grids") == [(0,)]
        assert rows(conn, "select count(*) from communities") == [(3,)]
    result = runner.invoke(admin, ["import", "x", "--level", "grid"], env=env)
    assert result.exit_code == 2  # (click's own check of the path)
    result = runner.invoke(admin, args, env={**env, "BLOCKDATA_PLACEMENT_MB": "lots"})
    assert result.exit_code == 1 and "BLOCKDATA_PLACEMENT_MB" in result.output
    assert runner.invoke(admin, args, env=env).exit_code == 0
    with engine.connect() as conn:
        assert rows(conn, "select count(*) from grids") == [(4,)]
