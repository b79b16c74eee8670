"""A whole city (~16,000 km², 4,096 grids) through `blockdata admin import`.

The placement index fits its memory budget by taking coarser cells (or, below that, an
STRtree), and a build that cannot fit rolls the import back with a clear message.
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import geopandas
import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from click.testing import CliRunner, Result

from app.commands.admin import admin
from etl.assign import GridIndex, TreeIndex
from etl.place import DEFAULT_BUDGET_MB, Placer, build_placer
from layers import get_layer

CENTRE = (116.4, 40.2)
SIDE_KM = math.sqrt(16_000)  # 126.5 km
# Per side: 4 streets, 16 communities, 4,096 grids. (Few, large communities: each
# statement's tile bookkeeping then renews the layer instead of marking a million tiles.)
STREETS, COMMUNITIES, GRIDS = 2, 4, 64
SUB = 4  # vertices per grid side: 16-vertex rings with jittered, shared vertices
R = 6_371_008.8


def city(seed: int = 11) -> dict[str, geopandas.GeoDataFrame]:
    """Streets, communities and grids tiling a square city exactly (shared vertices)."""
    rng = np.random.default_rng(seed)
    ky = R * math.pi / 180 / 1000  # km per degree of latitude
    kx = ky * math.cos(math.radians(CENTRE[1]))
    hx, hy = SIDE_KM / 2 / kx, SIDE_KM / 2 / ky
    n = GRIDS * SUB
    xs = np.linspace(CENTRE[0] - hx, CENTRE[0] + hx, n + 1)
    ys = np.linspace(CENTRE[1] - hy, CENTRE[1] + hy, n + 1)
    vx, vy = np.meshgrid(xs, ys, indexing="ij")
    step_x, step_y = xs[1] - xs[0], ys[1] - ys[0]
    inner = (slice(1, n), slice(1, n))  # the outer boundary stays straight
    vx[inner] += rng.uniform(-0.3, 0.3, (n - 1, n - 1)) * step_x
    vy[inner] += rng.uniform(-0.3, 0.3, (n - 1, n - 1)) * step_y

    def ring(i0: int, j0: int, size: int) -> shapely.Polygon:
        """The cell of `size` x `size` vertex steps from vertex (i0, j0), counter-clockwise."""
        path = (
            [(i0 + t, j0) for t in range(size)]
            + [(i0 + size, j0 + t) for t in range(size)]
            + [(i0 + size - t, j0 + size) for t in range(size)]
            + [(i0, j0 + size - t) for t in range(size)]
        )
        return shapely.Polygon([(vx[i, j], vy[i, j]) for i, j in path])

    per_c, per_s = GRIDS // COMMUNITIES, COMMUNITIES // STREETS
    grid_rows, community_rows, street_rows = [], [], []
    for si in range(STREETS):
        for sj in range(STREETS):
            street = f"110199{si * STREETS + sj + 1:03d}"
            span = per_s * per_c * SUB
            street_rows.append((street, ring(si * span, sj * span, span)))
            for ci in range(per_s):
                for cj in range(per_s):
                    community = f"{street}{ci * per_s + cj + 1:03d}"
                    gi0, gj0 = (si * per_s + ci) * per_c, (sj * per_s + cj) * per_c
                    community_rows.append(
                        (community, street, ring(gi0 * SUB, gj0 * SUB, per_c * SUB))
                    )
                    for gi in range(per_c):
                        for gj in range(per_c):
                            code = f"{community}{gi * per_c + gj + 1:03d}"
                            geom = ring((gi0 + gi) * SUB, (gj0 + gj) * SUB, SUB)
                            grid_rows.append((code, community, geom))
    return {
        "street": geopandas.GeoDataFrame(
            {
                "code": [r[0] for r in street_rows],
                "name": [f"街道{r[0][-3:]}" for r in street_rows],
            },
            geometry=[r[1] for r in street_rows],
            crs="EPSG:4326",
        ),
        "community": geopandas.GeoDataFrame(
            {
                "code": [r[0] for r in community_rows],
                "name": [f"社区{r[0][-6:]}" for r in community_rows],
                "street_code": [r[1] for r in community_rows],
            },
            geometry=[r[2] for r in community_rows],
            crs="EPSG:4326",
        ),
        "grid": geopandas.GeoDataFrame(
            {"code": [r[0] for r in grid_rows], "community_code": [r[1] for r in grid_rows]},
            geometry=[r[2] for r in grid_rows],
            crs="EPSG:4326",
        ),
    }


@pytest.fixture(scope="module")
def city_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("city")
    out = {}
    for level, gdf in city().items():
        out[level] = root / f"{level}.gpkg"
        gdf.to_file(out[level], engine="pyogrio")
    return out


@pytest.fixture
def committed(engine: sa.Engine) -> Iterator[None]:
    """The CLI commits: remove what it wrote, children first (without the tile triggers,
    which would mark every tile of the city)."""
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("set local session_replication_role = replica")
            for name in ("grids", "communities", "streets"):
                conn.execute(sa.delete(get_layer(name).table))


def imported(env: dict[str, str], path: Path, level: str) -> Result:
    return CliRunner().invoke(admin, ["import", str(path), "--level", level], env=env)


def count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"select count(*) from {table}").scalar_one())


@pytest.mark.slow
def test_a_whole_city_imports_and_places_within_the_memory_budget(
    database_url: str,
    engine: sa.Engine,
    committed: None,
    city_files: dict[str, Path],
    tmp_path: Path,
) -> None:
    env = {"DATABASE_URL": database_url, "BLOCKDATA_VAR": str(tmp_path / "var")}
    area = city()["grid"].to_crs("EPSG:32650").area.sum() / 1e6
    assert 15_000 < area < 17_000  # km²: the size of the test, checked
    for level in ("street", "community"):
        result = imported(env, city_files[level], level)
        assert result.exit_code == 0, result.output

    # The default budget: the grids load and the index takes coarser cells to fit.
    result = imported(env, city_files["grid"], "grid")
    assert result.exit_code == 0, result.output
    assert count(engine, "grids") == 4096
    line = next(x for x in result.output.splitlines() if "placement index" in x)
    cell_m = float(line.split("placement index: ")[1].split(" ")[0])
    assert cell_m > 4.0

    with engine.connect() as conn:
        tracemalloc.start()
        try:
            placer = build_placer(conn, DEFAULT_BUDGET_MB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        grids = geopandas.read_postgis(
            "select code, geom from grids", conn, geom_col="geom", crs="EPSG:4326"
        )
    assert isinstance(placer.index, GridIndex)
    assert placer.index.cell_m == pytest.approx(cell_m, rel=1e-2)
    assert peak <= DEFAULT_BUDGET_MB * 1e6, f"build peak {peak / 1e6:.0f} MB"

    # Every point lands where geopandas.sjoin puts it (an independent placement).
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = grids.total_bounds
    lng = rng.uniform(minx - 0.05, maxx + 0.05, 50_000)
    lat = rng.uniform(miny - 0.05, maxy + 0.05, 50_000)
    points = geopandas.GeoDataFrame(geometry=geopandas.points_from_xy(lng, lat), crs="EPSG:4326")
    joined = geopandas.sjoin(points, grids, predicate="intersects", how="left")
    expected = joined.groupby(level=0)["code"].min().reindex(range(len(lng)))
    got = placer.place(lng, lat).grid_code
    assert np.array_equal(
        np.array([None if isinstance(v, float) else v for v in expected], dtype=object), got
    )
    assert 0 < np.mean([g is None for g in got]) < 0.2  # some outside, most inside


@pytest.mark.slow
def test_a_budget_no_lattice_fits_falls_back_to_a_tree_with_the_same_answers() -> None:
    grids = city()["grid"]
    units = geopandas.GeoDataFrame(
        {
            "unit": grids["code"],
            "grid_code": grids["code"],
            "community_code": grids["community_code"],
            "street_code": grids["code"].str[:9],
        },
        geometry=grids.geometry,
        crs="EPSG:4326",
    )
    tree, lattice = Placer(units, 20), Placer(units, DEFAULT_BUDGET_MB)
    assert isinstance(tree.index, TreeIndex) and isinstance(lattice.index, GridIndex)
    rng = np.random.default_rng(8)
    minx, miny, maxx, maxy = tree.bounds
    lng, lat = rng.uniform(minx, maxx, 20_000), rng.uniform(miny, maxy, 20_000)
    # Points a metre east of the grids' own vertices: near a boundary.
    vertices = shapely.get_coordinates(grids.geometry.array[:200])
    lng = np.concatenate([lng, vertices[:, 0] + 1.2e-5])
    lat = np.concatenate([lat, vertices[:, 1]])
    a, b = tree.place(lng, lat), lattice.place(lng, lat)
    assert list(a.grid_code) == list(b.grid_code)
    assert np.array_equal(a.near_boundary, b.near_boundary)
    assert a.near_boundary.sum() > 100
    # And both agree with geopandas.sjoin.
    points = geopandas.GeoDataFrame(geometry=geopandas.points_from_xy(lng, lat), crs="EPSG:4326")
    joined = geopandas.sjoin(points, grids, predicate="intersects", how="left")
    expected = joined.groupby(level=0)["code"].min().reindex(range(len(lng)))
    assert [None if isinstance(v, float) else v for v in expected] == list(a.grid_code)
