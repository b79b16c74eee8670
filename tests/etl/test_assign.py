"""GridIndex against geopandas.sjoin(predicate="intersects") and brute-force distances."""

from __future__ import annotations

import itertools
import math

import geopandas
import numpy as np
import pandas as pd
import pytest
import shapely

from etl.assign import (
    GridIndex,
    IndexBudgetError,
    TreeIndex,
    build_index,
    index_from_arrays,
    plan_index,
)

R = 6_371_008.8
CENTRE = (116.355, 39.905)  # Xicheng
STEP = 2.0**-10  # degrees; a dyadic step keeps hand-made vertices and midpoints exact


def snap(value: float) -> float:
    """A nearby multiple of 2**-20, so sums and halves of such values are exact."""
    return round(value * 2**20) / 2**20


def frame_of(grids: geopandas.GeoDataFrame, near_m: float) -> dict:
    """The documented metric frame, derived here independently of the module."""
    minx, miny, maxx, maxy = grids.total_bounds
    lon0, lat0 = (minx + maxx) / 2, (miny + maxy) / 2
    ky = R * math.pi / 180
    kx = ky * math.cos(math.radians(lat0))
    return {"lon0": lon0, "lat0": lat0, "kx": kx, "ky": ky, "near_m": near_m}


def reference(
    grids: geopandas.GeoDataFrame, lng: np.ndarray, lat: np.ndarray, near_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """sjoin with ties to the smallest code; near by shapely distance in the local frame."""
    finite = np.flatnonzero(np.isfinite(lng) & np.isfinite(lat))
    pts = geopandas.GeoDataFrame(
        geometry=geopandas.points_from_xy(lng[finite], lat[finite]), crs="EPSG:4326"
    )
    joined = geopandas.sjoin(pts, grids[["code", "geometry"]], predicate="intersects")
    hits = pd.DataFrame(
        {"point": joined.index, "grid": joined["index_right"], "code": joined["code"]}
    )
    first = hits.sort_values(["point", "code", "grid"], kind="stable").drop_duplicates("point")
    grid = np.full(len(lng), -1)
    grid[finite[first["point"].to_numpy()]] = first["grid"].to_numpy()

    f = frame_of(grids, near_m)
    origin, scale = np.array([f["lon0"], f["lat0"]]), np.array([f["kx"], f["ky"]])
    boundaries = shapely.transform(
        shapely.boundary(grids.geometry.array), lambda xy: (xy - origin) * scale
    )
    near = np.zeros(len(lng), dtype=bool)
    inside = np.flatnonzero(grid >= 0)
    pts_m = shapely.points((lng[inside] - f["lon0"]) * f["kx"], (lat[inside] - f["lat0"]) * f["ky"])
    near[inside] = shapely.distance(boundaries[grid[inside]], pts_m) < near_m
    return grid, near


def make_grids(geoms: list, codes: list[str]) -> geopandas.GeoDataFrame:
    return geopandas.GeoDataFrame(
        {
            "code": codes,
            "community_code": [f"C{c[:2]}" for c in codes],
            "street_code": [f"S{c[:1]}" for c in codes],
        },
        geometry=geoms,
        crs="EPSG:4326",
    )


def hand_made() -> geopandas.GeoDataFrame:
    """Squares, two triangles, a grid with a hole and its island, a two-part grid.

    Laid out on a 4 x 3 lattice of ~85 m x 111 m squares:
        row 2: A  B  C  D
        row 1: E  T1/T2 F(hole, island I)  G
        row 0: H (two parts: (0,0) and (2,0))  J  K
    """
    x0, y0 = snap(CENTRE[0]), snap(CENTRE[1])

    def sq(i: float, j: float, w: float = 1, h: float = 1) -> shapely.Polygon:
        return shapely.box(x0 + i * STEP, y0 + j * STEP, x0 + (i + w) * STEP, y0 + (j + h) * STEP)

    def pt(i: float, j: float) -> tuple[float, float]:
        return (x0 + i * STEP, y0 + j * STEP)

    hole = [pt(2.25, 1.25), pt(2.75, 1.25), pt(2.5, 1.75)]
    geoms = [
        sq(0, 2),
        sq(1, 2),
        sq(2, 2),
        sq(3, 2),
        sq(0, 1),
        shapely.Polygon([pt(1, 1), pt(2, 1), pt(2, 2)]),
        shapely.Polygon([pt(1, 1), pt(2, 2), pt(1, 2)]),
        shapely.Polygon(shapely.get_coordinates(sq(2, 1)), holes=[hole]),
        shapely.Polygon(hole),
        sq(3, 1),
        shapely.MultiPolygon([sq(0, 0), sq(2, 0)]),
        sq(1, 0),
        sq(3, 0),
    ]
    codes = [
        "509",
        "301",
        "702",
        "110",
        "604",
        "205",
        "203",
        "408",
        "111",
        "900",
        "350",
        "120",
        "201",
    ]
    return make_grids(geoms, codes)


def voronoi(n_seeds: int, half_m: float, seed: int) -> geopandas.GeoDataFrame:
    """A Voronoi partition of a box around Xicheng, codes in shuffled order."""
    rng = np.random.default_rng(seed)
    hx = half_m / (R * math.pi / 180 * math.cos(math.radians(CENTRE[1])))
    hy = half_m / (R * math.pi / 180)
    box = shapely.box(CENTRE[0] - hx, CENTRE[1] - hy, CENTRE[0] + hx, CENTRE[1] + hy)
    seeds = np.column_stack(
        [
            rng.uniform(box.bounds[0], box.bounds[2], n_seeds),
            rng.uniform(box.bounds[1], box.bounds[3], n_seeds),
        ]
    )
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=box))
    cells = shapely.intersection(cells, box)
    codes = [f"1101{c:05d}" for c in rng.permutation(len(cells))]
    return make_grids(list(cells), codes)


def probe_points(
    grids: geopandas.GeoDataFrame, index: GridIndex, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points, vertices, edge midpoints, points a few metres off edges, lattice
    corners, NaN and infinite coordinates, and far-away points."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = grids.total_bounds
    mx, my = (maxx - minx) * 0.05, (maxy - miny) * 0.05
    f = frame_of(grids, 0)
    parts = [
        np.column_stack(
            [rng.uniform(minx - mx, maxx + mx, n), rng.uniform(miny - my, maxy + my, n)]
        )
    ]

    rings = shapely.get_rings(shapely.get_parts(grids.geometry.array))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[1:] == ring[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    parts += [coords, (a + b) / 2, a + (b - a) / 3]

    pick = rng.integers(0, len(a), n)
    t = rng.uniform(0, 1, (n, 1))
    on = a[pick] + t * (b[pick] - a[pick])
    d = (b[pick] - a[pick]) * np.array([f["kx"], f["ky"]])
    normal = np.column_stack([-d[:, 1], d[:, 0]]) / np.hypot(d[:, 0], d[:, 1])[:, None]
    offset = rng.uniform(-6, 6, (n, 1)) * normal / np.array([f["kx"], f["ky"]])
    parts.append(on + offset)

    x0, y0, dx, dy = index.lattice
    ny, nx = index.shape
    i, j = rng.integers(0, nx, n // 10), rng.integers(0, ny, n // 10)
    parts.append(np.column_stack([x0 + i * dx, y0 + j * dy]))
    parts.append(np.column_stack([x0 + i * dx, rng.uniform(miny, maxy, n // 10)]))

    odd = [[np.nan, CENTRE[1]], [CENTRE[0], np.nan], [np.nan, np.nan], [np.inf, CENTRE[1]]]
    far = [[-np.inf, -np.inf], [0.0, 0.0], [-180.0, 90.0], [1e300, -1e300]]
    parts.append(np.array([*odd, *far]))
    pts = np.concatenate(parts)
    return pts[:, 0].copy(), pts[:, 1].copy()


def check(grids: geopandas.GeoDataFrame, cell_m: float, near_m: float, n: int, seed: int) -> None:
    index = GridIndex(grids, cell_m=cell_m, near_m=near_m)
    lng, lat = probe_points(grids, index, n, seed)
    got = index.assign(lng, lat)
    want_grid, want_near = reference(grids, lng, lat, near_m)
    assert got.grid_index.dtype == np.int32
    np.testing.assert_array_equal(got.grid_index, want_grid)
    np.testing.assert_array_equal(got.near_boundary, want_near)


@pytest.mark.parametrize(("cell_m", "near_m"), [(4.0, 3.0), (2.0, 3.0), (9.7, 3.0), (1.3, 7.5)])
def test_hand_made_tiling_matches_sjoin(cell_m: float, near_m: float) -> None:
    check(hand_made(), cell_m, near_m, n=20_000, seed=1)


@pytest.mark.parametrize(("cell_m", "near_m"), [(4.0, 3.0), (2.0, 3.0), (3.3, 0.0), (6.0, 25.0)])
def test_voronoi_tiling_matches_sjoin(cell_m: float, near_m: float) -> None:
    check(voronoi(200, 1500, seed=2), cell_m, near_m, n=90_000, seed=3)


def test_edges_on_lattice_lines_match_sjoin() -> None:
    """Grid edges lying exactly on cell sides, where rounding decides which cell is which."""
    base = voronoi(30, 400, seed=8)
    minx, miny, maxx, maxy = base.total_bounds
    for cell_m in (2.0, 4.0):
        x0, y0, dx, dy = GridIndex(base, cell_m=cell_m).lattice
        xs = np.r_[minx, x0 + np.arange(7, 500, 23) * dx, maxx]
        ys = np.r_[miny, y0 + np.arange(5, 500, 19) * dy, maxy]
        xs, ys = xs[(xs >= minx) & (xs <= maxx)], ys[(ys >= miny) & (ys <= maxy)]
        boxes = [
            shapely.box(a, b, c, d)
            for a, c in itertools.pairwise(xs)
            for b, d in itertools.pairwise(ys)
        ]
        grids = make_grids(boxes, [f"{i:04d}" for i in range(len(boxes))][::-1])
        assert GridIndex(grids, cell_m=cell_m).lattice == (x0, y0, dx, dy)
        check(grids, cell_m, 3.0, n=20_000, seed=9)


def test_overlapping_grids_match_sjoin() -> None:
    """Bad data (overlaps, a grid inside another) still gives sjoin's answer."""
    grids = voronoi(60, 600, seed=4)
    extra = [
        shapely.Point(CENTRE).buffer(0.001),
        shapely.box(CENTRE[0] - 0.002, CENTRE[1] - 0.0005, CENTRE[0] + 0.004, CENTRE[1]),
        shapely.Point(CENTRE[0] + 0.003, CENTRE[1] + 0.002).buffer(0.00002),
    ]
    more = make_grids(extra, ["110100001", "00000", "zzz"])
    both = pd.concat([grids, more], ignore_index=True)
    for cell_m, near_m in [(2.0, 3.0), (4.0, 3.0)]:
        check(both, cell_m, near_m, n=30_000, seed=5)


def test_ties_go_to_the_smallest_code() -> None:
    grids = hand_made()
    index = GridIndex(grids)
    x0, y0 = snap(CENTRE[0]), snap(CENTRE[1])
    # Shared corner of A, B, E and the triangle T2; shared corner of B, C, T1, T2, F.
    lng = np.array([x0 + STEP, x0 + 2 * STEP, x0 + 1.5 * STEP])
    lat = np.array([y0 + 2 * STEP, y0 + 2 * STEP, y0 + 1.5 * STEP])
    codes = index.codes(index.assign(lng, lat))["grid_code"].tolist()
    assert codes == ["203", "203", "203"]


def test_codes_and_outside_points() -> None:
    grids = hand_made()
    index = GridIndex(grids)
    x0, y0 = snap(CENTRE[0]), snap(CENTRE[1])
    lng = np.array([x0 + 0.5 * STEP, x0 - STEP, np.nan, x0 + 2.5 * STEP])
    lat = np.array([y0 + 2.5 * STEP, y0, y0, y0 + 1.5 * STEP])
    a = index.assign(lng, lat)
    assert a.grid_index.tolist() == [0, -1, -1, 8]
    assert a.near_boundary.tolist() == [False, False, False, False]
    got = index.codes(a)
    assert list(got.columns) == ["grid_code", "community_code", "street_code"]
    assert got.iloc[0].tolist() == ["509", "C50", "S5"]
    assert got.iloc[1].tolist() == [None, None, None]
    assert got.iloc[3].tolist() == ["111", "C11", "S1"]


def test_build_and_sequence_input() -> None:
    grids = hand_made()
    index = GridIndex.build(grids, cell_m=3.0, near_m=2.0)
    lng, lat = probe_points(grids, index, 500, seed=10)
    want = index.assign(lng, lat)
    got = index.assign(pd.Series(lng), list(lat))
    np.testing.assert_array_equal(got.grid_index, want.grid_index)
    np.testing.assert_array_equal(got.near_boundary, want.near_boundary)


def test_empty_input() -> None:
    a = GridIndex(hand_made()).assign(np.array([]), np.array([]))
    assert a.grid_index.shape == (0,) and a.near_boundary.shape == (0,)


def test_crs_must_be_wgs84() -> None:
    grids = hand_made()
    with pytest.raises(ValueError, match="EPSG:3857"):
        GridIndex(grids.to_crs("EPSG:3857"))
    with pytest.raises(ValueError, match="no CRS"):
        GridIndex(grids.set_crs(None, allow_override=True))


def test_bad_input_is_named() -> None:
    grids = hand_made()
    with pytest.raises(ValueError, match="street_code"):
        GridIndex(grids.drop(columns="street_code"))
    lines = grids.copy()
    lines.loc[3, "geometry"] = shapely.LineString([(0, 0), (1, 1)])
    with pytest.raises(ValueError, match=r"code '110'.*LineString"):
        GridIndex(lines)
    with pytest.raises(ValueError, match="max_raster_mb"):
        GridIndex(voronoi(20, 5000, seed=6), cell_m=0.5, max_raster_mb=10)
    with pytest.raises(ValueError, match="1-D"):
        GridIndex(grids).assign(np.zeros(3), np.zeros(2))


def test_callers_geometries_are_left_alone() -> None:
    grids = hand_made()
    GridIndex(grids)
    assert not shapely.is_prepared(grids.geometry.array).any()


def test_distance_exactly_near_m_is_not_near() -> None:
    """near_m set to a point's own distance: that point is not near, as shapely says."""
    grids = hand_made()
    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = grids.total_bounds
    lng, lat = rng.uniform(minx, maxx, 3000), rng.uniform(miny, maxy, 3000)
    grid, _ = reference(grids, lng, lat, 1.0)
    f = frame_of(grids, 1.0)
    origin, scale = np.array([f["lon0"], f["lat0"]]), np.array([f["kx"], f["ky"]])
    boundaries = shapely.transform(
        shapely.boundary(grids.geometry.array), lambda xy: (xy - origin) * scale
    )
    inside = grid >= 0
    pts = shapely.points((lng[inside] - f["lon0"]) * f["kx"], (lat[inside] - f["lat0"]) * f["ky"])
    dist = shapely.distance(boundaries[grid[inside]], pts)
    for near_m in rng.choice(dist[(dist > 0.5) & (dist < 15)], 12, replace=False):
        got = GridIndex(grids, cell_m=2.0, near_m=float(near_m)).assign(lng, lat)
        np.testing.assert_array_equal(got.near_boundary[inside], dist < near_m)
        assert not got.near_boundary[~inside].any()


def test_budget_takes_coarser_cells_with_the_same_answers() -> None:
    grids = voronoi(200, 1500, seed=12)
    fine = build_index(grids, budget_mb=256)
    needs = plan_index(grids, budget_mb=256).estimate_bytes / 1e6
    coarse = build_index(grids, budget_mb=needs * 0.9)
    assert isinstance(fine, GridIndex) and isinstance(coarse, GridIndex)
    assert fine.cell_m == 4.0 and coarse.cell_m > 4.0
    lng, lat = probe_points(grids, coarse, 40_000, seed=13)
    want_grid, want_near = reference(grids, lng, lat, 3.0)
    got = coarse.assign(lng, lat)
    np.testing.assert_array_equal(got.grid_index, want_grid)
    np.testing.assert_array_equal(got.near_boundary, want_near)


def test_the_tree_fallback_gives_the_same_answers() -> None:
    grids = voronoi(200, 1500, seed=14)
    index = build_index(grids, budget_mb=20)  # under the lattice's fixed cost
    assert isinstance(index, TreeIndex)
    lng, lat = probe_points(grids, GridIndex(grids), 40_000, seed=15)
    lng[:3], lat[:3] = np.nan, [39.9, np.nan, np.inf]
    want_grid, want_near = reference(grids, lng, lat, 3.0)
    got = index.assign(lng, lat)
    np.testing.assert_array_equal(got.grid_index, want_grid)
    np.testing.assert_array_equal(got.near_boundary, want_near)


def test_a_budget_the_geometries_exceed_is_refused_by_how_much() -> None:
    grids = voronoi(200, 1500, seed=16)
    vertices = int(shapely.get_num_coordinates(grids.geometry.array).sum())
    with pytest.raises(IndexBudgetError, match=r"about \d+ MB, over the budget of 0.01 MB"):
        plan_index(grids, budget_mb=0.01)
    assert vertices > 1000  # the grids are what needs the memory


@pytest.mark.parametrize("kind", [GridIndex, TreeIndex])
def test_an_index_survives_its_arrays_unchanged(kind: type) -> None:
    grids = voronoi(200, 1500, seed=17)
    index = kind(grids)
    arrays = index.to_arrays()
    assert all(a.dtype != object for a in arrays.values())  # nothing that needs pickle
    again = index_from_arrays(arrays)
    assert type(again) is kind
    lng, lat = probe_points(grids, GridIndex(grids), 20_000, seed=18)
    a, b = index.assign(lng, lat), again.assign(lng, lat)
    np.testing.assert_array_equal(a.grid_index, b.grid_index)
    np.testing.assert_array_equal(a.near_boundary, b.near_boundary)
    pd.testing.assert_frame_equal(index.codes(a), again.codes(b))
