"""Benchmark GridIndex.assign against geopandas.sjoin and a points STRtree.

    python bench/bench_assign.py [--points N] [--cell-m 4 2] [--geography voronoi|city]
                                 [--budget-mb 256] [--profile]

Uses the demo geography's grids when `etl.demo.geography.generate_geography` exists, else
(or with --geography voronoi) a Voronoi tiling of a 50 km² box around Xicheng into ~2,000
grids; --geography city tiles a 16,000 km² box (a whole city) into --grids Voronoi grids.
Points cluster like service requests: Gaussian hotspots over a uniform background,
~1% outside the district. Every method is timed end to end from lng/lat arrays to one grid
per point, ties to the smallest code, and each answer is checked against sjoin's.

Besides the lattices of --cell-m, it builds what the ETL builds: `build_index` within
--budget-mb (the finest lattice that fits, else the STRtree fallback), and the fallback
itself. Each build's peak memory is measured with tracemalloc in a separate, untimed build
(NumPy arrays; GEOS geometries are not seen by tracemalloc).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import pstats
import sys
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import geopandas
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etl.assign import M_PER_DEG, GridIndex, TreeIndex, build_index
from etl.place import DEFAULT_BUDGET_MB

CENTRE = (116.355, 39.905)  # Xicheng
AREA_KM2 = 50.0
CITY_KM2 = 16_000.0


def voronoi_grids(n: int, seed: int, area_km2: float = AREA_KM2) -> geopandas.GeoDataFrame:
    """An exact tiling of a box of `area_km2` around Xicheng by ~n Voronoi cells."""
    rng = np.random.default_rng(seed)
    half_m = math.sqrt(area_km2) * 1000 / 2
    hx = half_m / (M_PER_DEG * math.cos(math.radians(CENTRE[1])))
    hy = half_m / M_PER_DEG
    box = shapely.box(CENTRE[0] - hx, CENTRE[1] - hy, CENTRE[0] + hx, CENTRE[1] + hy)
    seeds = np.column_stack(
        [rng.uniform(box.bounds[0], box.bounds[2], n), rng.uniform(box.bounds[1], box.bounds[3], n)]
    )
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=box))
    cells = shapely.intersection(cells, box)
    cells = cells[~shapely.is_empty(cells)]
    codes = rng.permutation(len(cells))
    return geopandas.GeoDataFrame(
        {
            "code": [f"110102{c:06d}" for c in codes],
            "community_code": [f"110102{c // 8:06d}" for c in codes],
            "street_code": [f"110102{c // 130:03d}" for c in codes],
        },
        geometry=cells,
        crs="EPSG:4326",
    )


def demo_grids(seed: int) -> geopandas.GeoDataFrame | None:
    """The colleague's demo geography, when it is there."""
    try:
        from etl.demo.geography import generate_geography
    except ImportError:
        return None
    try:
        geo: Any = generate_geography(seed)
    except Exception as exc:  # a colleague's module, possibly mid-edit: fall back, say why
        print(f"etl.demo.geography failed ({exc!r}); using the Voronoi tiling", file=sys.stderr)
        return None
    grids = geo["grids"] if isinstance(geo, dict) else geo.grids
    return geopandas.GeoDataFrame(grids)


def request_points(
    grids: geopandas.GeoDataFrame, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hotspots (70%) over a uniform background, ~1% outside the district."""
    rng = np.random.default_rng(seed + 1)
    district = shapely.union_all(grids.geometry.array)
    minx, miny, maxx, maxy = district.bounds
    ky = M_PER_DEG
    kx = ky * math.cos(math.radians((miny + maxy) / 2))
    n_out = n // 100
    n_hot = int(0.7 * (n - n_out))
    n_bg = n - n_out - n_hot

    def inside(count: int, draw: Callable[[int], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        got: list[np.ndarray] = []
        need = count
        while need > 0:
            x, y = draw(int(need * 1.3) + 16)
            keep = shapely.contains_xy(district, x, y)
            got.append(np.column_stack([x[keep], y[keep]])[:need])
            need -= len(got[-1])
        return np.concatenate(got)

    spots = 40
    sx = rng.uniform(minx, maxx, spots)
    sy = rng.uniform(miny, maxy, spots)
    sigma = rng.uniform(80, 400, spots)
    weight = rng.pareto(1.5, spots) + 1
    weight /= weight.sum()

    def hot(k: int) -> tuple[np.ndarray, np.ndarray]:
        which = rng.choice(spots, size=k, p=weight)
        return (
            sx[which] + rng.normal(0, 1, k) * sigma[which] / kx,
            sy[which] + rng.normal(0, 1, k) * sigma[which] / ky,
        )

    def background(k: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.uniform(minx, maxx, k), rng.uniform(miny, maxy, k)

    ring = 1000.0  # metres beyond the bounding box
    ox = rng.uniform(minx - ring / kx, maxx + ring / kx, n_out * 20)
    oy = rng.uniform(miny - ring / ky, maxy + ring / ky, n_out * 20)
    out = ~shapely.intersects_xy(district, ox, oy)
    pts = np.concatenate(
        [inside(n_hot, hot), inside(n_bg, background), np.column_stack([ox, oy])[out][:n_out]]
    )
    pts = pts[rng.permutation(len(pts))]
    return pts[:, 0].copy(), pts[:, 1].copy()


def min_code(n: int, point: np.ndarray, grid: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """One grid per point from (point, grid) hits: the smallest code, -1 when none."""
    best = np.full(n, len(rank), dtype=np.int64)
    np.minimum.at(best, point, rank[grid])
    by_rank = np.argsort(rank)
    return np.where(best < len(rank), by_rank[np.minimum(best, len(rank) - 1)], -1)


def by_sjoin(grids: geopandas.GeoDataFrame, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
    pts = geopandas.GeoDataFrame(geometry=geopandas.points_from_xy(lng, lat), crs=grids.crs)
    joined = geopandas.sjoin(pts, grids[["geometry"]], predicate="intersects", how="inner")
    rank = _rank(grids)
    return min_code(len(lng), joined.index.to_numpy(), joined["index_right"].to_numpy(), rank)


def by_point_tree(grids: geopandas.GeoDataFrame, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
    tree = shapely.STRtree(shapely.points(lng, lat))
    grid, point = tree.query(grids.geometry.array, predicate="intersects")
    return min_code(len(lng), point, grid, _rank(grids))


def _rank(grids: geopandas.GeoDataFrame) -> np.ndarray:
    order = np.argsort(grids["code"].to_numpy(dtype=object), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def peak_mb(fn: Callable[[], Any]) -> float:
    """Peak memory (MB) that tracemalloc sees while `fn` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any, float]:
    """Best time, last result, median time."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result, float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--cell-m", type=float, nargs="+", default=[4.0])
    parser.add_argument("--near-m", type=float, default=3.0)
    parser.add_argument("--geography", choices=["demo", "voronoi", "city"], default="demo")
    parser.add_argument("--grids", type=int, default=None, help="Voronoi grids (2,000; city 4,000)")
    parser.add_argument("--budget-mb", type=float, default=DEFAULT_BUDGET_MB)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile one assign call")
    args = parser.parse_args()

    grids = demo_grids(args.seed) if args.geography == "demo" else None
    source = f"etl.demo.geography seed {args.seed}"
    if args.geography == "city":
        count = args.grids or 4000
        grids = voronoi_grids(count, args.seed, CITY_KM2)
        source = f"Voronoi tiling of {CITY_KM2:,.0f} km²"
    elif grids is None:
        grids, source = voronoi_grids(args.grids or 2000, args.seed), "Voronoi tiling"
    lng, lat = request_points(grids, args.points, args.seed)
    n = len(lng)
    vertices = int(shapely.get_num_coordinates(grids.geometry.array).sum())
    print(f"{len(grids)} grids ({source}, {vertices} vertices), {n:,} points\n")

    t_sjoin, ref, _ = timed(lambda: by_sjoin(grids, lng, lat))
    t_tree, tree_ans, _ = timed(lambda: by_point_tree(grids, lng, lat))
    rows = [
        ("geopandas.sjoin (intersects)", t_sjoin, n / t_sjoin, "incl. points_from_xy"),
        (
            "STRtree on points, query each grid",
            t_tree,
            n / t_tree,
            "incl. shapely.points; "
            + ("matches sjoin" if np.array_equal(tree_ans, ref) else "DIFFERS from sjoin"),
        ),
    ]
    builds: list[tuple[str, Callable[[], Any]]] = [
        (f"cell {cell_m:g} m", partial(GridIndex, grids, cell_m=cell_m, near_m=args.near_m))
        for cell_m in args.cell_m
        if args.geography != "city"  # a 4 m lattice over a city does not fit: see the budget
    ]
    builds.append(
        (
            f"budget {args.budget_mb:g} MB",
            partial(build_index, grids, args.budget_mb, near_m=args.near_m),
        )
    )
    builds.append(("STRtree fallback", partial(TreeIndex, grids, near_m=args.near_m)))
    for label, build in builds:
        t_build, index, _ = timed(build)
        peak = peak_mb(build)
        repeat = 5 if isinstance(index, GridIndex) else 1
        t_assign, got, t_median = timed(partial(index.assign, lng, lat), repeat=repeat)
        same = np.array_equal(got.grid_index, ref)
        mismatches = int((got.grid_index != ref).sum())
        name = type(index).__name__
        if isinstance(index, GridIndex):
            pip, dist = index.exact_fractions(lng, lat)
            what = (
                f"cell {index.cell_m:.3g} m: raster {index.raster_nbytes / 1e6:.1f} MB "
                f"({index.shape[1]}x{index.shape[0]}), with cell lists {index.nbytes / 1e6:.1f} MB"
            )
            exact = f"exact PIP {pip:.2%}, exact distance ≤{dist:.2%}"
        else:
            what, exact = "no lattice", "every point tested exactly"
        rows.append(
            (f"{name} build, {label}", t_build, math.nan, f"{what}; build peak {peak:.0f} MB")
        )
        rows.append(
            (
                f"{name}.assign, {label}",
                t_assign,
                n / t_assign,
                f"median {n / t_median:,.0f}/s; "
                f"{'matches sjoin' if same else f'{mismatches} DIFFER from sjoin'}; {exact}, "
                f"near {got.near_boundary.mean():.1%}",
            )
        )
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(index.assign, lng, lat)
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
            print(out.getvalue())

    print("| method | seconds | points/s | notes |")
    print("|---|---:|---:|---|")
    for name, sec, rate, note in rows:
        rate_s = "—" if math.isnan(rate) else f"{rate:,.0f}"
        print(f"| {name} | {sec:.3f} | {rate_s} | {note} |")
    inside = ref >= 0
    print(f"\n{inside.mean():.2%} of points inside the district; assign: best of 5 runs")
    print("(the STRtree fallback: one run).")
    print(pd.Series({"python": sys.version.split()[0], "shapely": shapely.__version__}).to_string())


if __name__ == "__main__":
    main()
