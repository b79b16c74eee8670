"""Demo district geography on the real street boundaries of Beijing Xicheng (西城区).

The 15 streets are the real polygons of data/xicheng_streets.geojson (MIT licence, notice in
data/LICENSE-xicheng_streets.geojson.txt), put on the 1e-7 degree grid as an exact coverage.
One planar partition — the Voronoi diagram of about 2,000 grid seeds noded once together with
every street boundary — gives the grids, so each grid lies in exactly one street;
communities are grown inside each street from its grids, and communities, streets and the
district are unions of grid cells, so the levels nest and tile exactly. Lanes, service halls
and landmarks are laid out inside their streets, with house numbers a geocoder can interpolate.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
import shapely.affinity
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry
from shapely.ops import substring

from etl.demo import names

DISTRICT_CODE = "110102"
DISTRICT_NAME = "西城区"
CRS = "EPSG:4326"
METRIC_CRS = "+proj=laea +lat_0=39.91 +lon_0=116.36 +ellps=WGS84 +units=m +no_defs"
GRID_SIZE = 1e-7
DATA_DIR = Path(__file__).parent / "data"

STREETS_FILE = DATA_DIR / "xicheng_streets.geojson"  # the real boundaries (MIT, see LICENSE-…)

GRID_SPACING_M = 158.0
SEED_MARGIN = 0.1  # seeds keep this share of the spacing inside their street
TINY_GRID = 0.3  # grids smaller than this share of the median join a neighbour in their street

# Lanes. Streets inside the old city wall are hutong country; outer ones have more roads.
CENTRE = (116.3913, 39.9075)  # 天安门: house numbers start at a lane's end nearer the centre
OLD_CITY = frozenset(f"110102{s}" for s in ("001", "003", "011", "012", "013", "015", "017", "018"))
MIXED = frozenset(("110102014", "110102016"))
LANE_DENSITY = {"old": 40.0, "mixed": 30.0, "outer": 19.0}  # lanes per km²
ROAD_SHARE = {"old": 0.05, "mixed": 0.12, "outer": 0.25}
SMALL_KINDS = {
    "old": {"胡同": 0.78, "巷": 0.10, "街": 0.12},
    "mixed": {"胡同": 0.55, "巷": 0.20, "街": 0.25},
    "outer": {"胡同": 0.30, "巷": 0.30, "街": 0.40},
}
ROADS = ("大街", "路")
LANE_LENGTH = {
    "大街": (700.0, 1600.0),
    "路": (400.0, 1200.0),
    "街": (200.0, 600.0),
    "胡同": (150.0, 600.0),
    "巷": (60.0, 220.0),
}
MIN_LENGTH = {"大街": 300.0, "路": 300.0, "街": 120.0, "胡同": 80.0, "巷": 50.0}
NUMBER_SPACING = {
    "大街": (20.0, 35.0),
    "路": (18.0, 30.0),
    "街": (12.0, 20.0),
    "胡同": (7.0, 12.0),
    "巷": (7.0, 12.0),
}
EAST_WEST = {"大街": 0.5, "路": 0.5, "街": 0.6, "胡同": 0.8, "巷": 0.6}
STATUSES = ("未整治", "整治中", "已整治", "已验收")
STATUS_P = (0.15, 0.20, 0.35, 0.30)
INNER_MARGIN_M = 15.0  # lanes keep this far inside their street's boundary
FAMOUS_REACH_M = 300.0  # a famous place this far outside its street is moved into it
FAMOUS_KEEP = 0.75  # a famous lane keeping less of its length in the district is moved
FAMOUS_OFFSETS_M = (0.0, 40.0, -40.0, 80.0, -80.0, 120.0, -120.0, 160.0, -160.0, 200.0, -200.0)
# Generated landmarks per kind, spread over the streets by area.
LANDMARK_QUOTA = {
    "compound": 60,
    "school": 30,
    "hospital": 26,
    "market": 20,
    "construction_site": 26,
    "park": 18,
    "office": 24,
}
LAYERS = ("district", "streets", "communities", "grids", "lanes", "service_halls", "landmarks")


@dataclass(frozen=True)
class Geography:
    """The demo district's layers, all GeoDataFrames in EPSG:4326."""

    district: gpd.GeoDataFrame
    streets: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    lanes: gpd.GeoDataFrame
    service_halls: gpd.GeoDataFrame
    landmarks: gpd.GeoDataFrame


class _Frame:
    """Forward and inverse transforms between EPSG:4326 and the local equal-area frame."""

    def __init__(self) -> None:
        self._fwd = Transformer.from_crs(CRS, METRIC_CRS, always_xy=True)
        self._inv = Transformer.from_crs(METRIC_CRS, CRS, always_xy=True)

    def to_metric(self, geom: Any) -> Any:
        return shapely.transform(
            geom, lambda c: np.column_stack(self._fwd.transform(c[:, 0], c[:, 1]))
        )

    def to_lnglat(self, geom: Any) -> Any:
        return shapely.transform(
            geom, lambda c: np.column_stack(self._inv.transform(c[:, 0], c[:, 1]))
        )

    def xy_metric(self, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
        x, y = self._fwd.transform(lng, lat)
        return np.column_stack([x, y])


def load_reference() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The embedded reference tables of streets and communities, codes as strings."""
    streets = pd.read_csv(DATA_DIR / "xicheng_streets.csv", dtype={"code": str})
    communities = pd.read_csv(
        DATA_DIR / "xicheng_communities.csv", dtype={"code": str, "street_code": str}
    )
    return streets, communities


def load_streets(sref: pd.DataFrame) -> np.ndarray:
    """The real street polygons of STREETS_FILE in the order of the reference table.

    The file's `code` is the 12-digit statistical code; its first 9 digits are the street's.
    """
    df = pyogrio.read_dataframe(STREETS_FILE)
    code = df["code"].astype("int64").astype(str).str[:9]
    if sorted(code) != sorted(sref["code"]):
        raise ValueError(f"{STREETS_FILE.name} does not hold the reference streets")
    by_code = dict(zip(code, df.geometry.to_numpy(), strict=True))
    return np.array([by_code[c] for c in sref["code"]], dtype=object)


def street_coverage(geoms: np.ndarray) -> np.ndarray:
    """The streets as an exact coverage on the 1e-7 grid, whatever slivers the input has.

    Every boundary is noded together on the grid and the plane between them polygonized;
    each face goes to the street that holds it (the first, where two overlap); a gap between
    streets inside the outline goes to the neighbour it shares most boundary with. The union
    is the outline of the input, its holes filled. A clean input comes back as it was.
    """
    geoms = shapely.set_precision(geoms, GRID_SIZE)
    noded = shapely.union_all(shapely.boundary(geoms), grid_size=GRID_SIZE)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    faces = faces[shapely.area(faces) > 0]
    outline = shapely.union_all(
        [shapely.Polygon(p.exterior) for p in shapely.get_parts(shapely.union_all(geoms))]
    )
    reps = shapely.point_on_surface(faces)
    faces, reps = faces[shapely.within(reps, outline)], reps[shapely.within(reps, outline)]
    owner = np.full(len(faces), -1, dtype=np.int64)
    face, street = shapely.STRtree(geoms).query(reps, predicate="within")
    for f, k in sorted(zip(face.tolist(), street.tolist(), strict=True), reverse=True):
        owner[f] = k  # the lowest street index wins
    if (owner < 0).any():
        adj = _adjacency(np.arange(len(faces)), _shared_edges(faces))
        while (owner < 0).any():
            before = int((owner < 0).sum())
            for f in np.flatnonzero(owner < 0).tolist():
                best = max(((w, n) for n, w in adj[f].items() if owner[n] >= 0), default=None)
                if best is not None:
                    owner[f] = owner[best[1]]
            if int((owner < 0).sum()) == before:
                raise ValueError("a gap between the streets touches none of them")
    out = [shapely.coverage_union_all(faces[owner == k]) for k in range(len(geoms))]
    return np.array(out, dtype=object)


def _seed_points(streets_m: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Grid seeds: a jittered square lattice (city blocks run north-south and east-west).

    Only points well inside a street are kept; returns them and their street's index.
    """
    s = GRID_SPACING_M
    minx, miny, maxx, maxy = shapely.total_bounds(streets_m)
    ox, oy = rng.uniform(0.0, s, 2)
    gx, gy = np.meshgrid(
        np.arange(minx - s + ox, maxx + s, s), np.arange(miny - s + oy, maxy + s, s)
    )
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    pts = pts + rng.uniform(-0.32, 0.32, pts.shape) * s
    inner = shapely.buffer(streets_m, -SEED_MARGIN * s)
    point, street = shapely.STRtree(inner).query(shapely.points(pts), predicate="within")
    order = np.argsort(point, kind="stable")
    return pts[point[order]], street[order]


def _faces(
    streets: np.ndarray, outline: BaseGeometry, seeds: np.ndarray, frame: _Frame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Voronoi faces of the seeds, noded once with every street boundary on the 1e-7 grid.

    Returns the faces (EPSG:4326), the index of the seed each belongs to and of the street
    it lies in: a face never crosses a street boundary.
    """
    s = GRID_SPACING_M
    outline_m = frame.to_metric(outline)
    edges = shapely.voronoi_polygons(
        shapely.multipoints(seeds), only_edges=True, extend_to=outline_m.buffer(4 * s)
    )
    edges = frame.to_lnglat(shapely.intersection(edges, outline_m.buffer(2 * s)))
    noded = shapely.union(edges, shapely.union_all(shapely.boundary(streets)), grid_size=GRID_SIZE)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    faces = faces[shapely.area(faces) > 0]
    face, street = shapely.STRtree(streets).query(
        shapely.point_on_surface(faces), predicate="within"
    )
    order = np.argsort(face, kind="stable")
    faces, street = faces[face[order]], street[order]
    reps_m = frame.to_metric(shapely.point_on_surface(faces))
    nearest = shapely.STRtree(shapely.points(seeds)).query_nearest(reps_m, all_matches=False)
    owner = np.empty(len(faces), dtype=np.int64)
    owner[nearest[0]] = nearest[1]
    return faces, owner, street


def _shared_edges(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of polygons that share boundary segments, with the shared length in metres.

    Relies on neighbours having identical vertices, which a single noded partition gives.
    """
    rings, ring_poly = shapely.get_rings(polys, return_index=True)
    coords, ring_idx = shapely.get_coordinates(rings, return_index=True)
    same = ring_idx[:-1] == ring_idx[1:]
    qa = np.rint(coords[:-1][same] / GRID_SIZE).astype(np.int64)
    qb = np.rint(coords[1:][same] / GRID_SIZE).astype(np.int64)
    owner = ring_poly[ring_idx[:-1][same]]
    swap = (qa[:, 0] > qb[:, 0]) | ((qa[:, 0] == qb[:, 0]) & (qa[:, 1] > qb[:, 1]))
    lo = np.where(swap[:, None], qb, qa)
    hi = np.where(swap[:, None], qa, qb)
    key = np.column_stack([lo, hi])
    order = np.lexsort(key.T[::-1])
    key, owner, lo, hi = key[order], owner[order], lo[order], hi[order]
    dup = np.all(key[1:] == key[:-1], axis=1)
    i, j = owner[:-1][dup], owner[1:][dup]
    d = (hi - lo)[:-1][dup] * GRID_SIZE
    lat = np.radians(lo[:-1][dup][:, 1] * GRID_SIZE)
    length = np.hypot(d[:, 0] * 111320.0 * np.cos(lat), d[:, 1] * 110574.0)
    keep = i != j
    return i[keep], j[keep], length[keep]


def _adjacency(
    labels: np.ndarray, pairs: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> dict[int, dict[int, float]]:
    """Shared boundary length between labelled groups, from item-level shared edges."""
    i, j, length = pairs
    li, lj = labels[i], labels[j]
    adj: dict[int, dict[int, float]] = {int(k): {} for k in np.unique(labels)}
    for a, b, w in zip(li.tolist(), lj.tolist(), length.tolist(), strict=True):
        if a != b:
            adj[a][b] = adj[a].get(b, 0.0) + w
            adj[b][a] = adj[b].get(a, 0.0) + w
    return adj


def _merge_into(labels: np.ndarray, adj: dict[int, dict[int, float]], g: int, h: int) -> None:
    """Relabel group g as h and merge its adjacency into h's."""
    labels[labels == g] = h
    for n, w in adj.pop(g).items():
        del adj[n][g]
        if n != h:
            adj[h][n] = adj[h].get(n, 0.0) + w
            adj[n][h] = adj[n].get(h, 0.0) + w


def _build_grids(
    owner: np.ndarray,
    seed_street: np.ndarray,
    face_street: np.ndarray,
    face_area: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """Face → grid labels: one contiguous cell per seed inside its street.

    A seed keeps the largest face of its cell that lies in its own street; the other faces
    (pieces cut off by a street boundary, or beyond it) join the neighbour in their street
    they share most boundary with; grids smaller than TINY_GRID x the median do the same.
    """
    same = face_street[pairs[0]] == face_street[pairs[1]]
    pairs = (pairs[0][same], pairs[1][same], pairs[2][same])  # never merge across streets
    labels = owner.copy()
    adj_face = _adjacency(np.arange(len(owner)), pairs)
    home = seed_street[owner] == face_street
    order = np.lexsort((np.arange(len(owner)), -face_area, ~home, owner))
    first = np.ones(len(owner), dtype=bool)
    first[1:] = owner[order][1:] != owner[order][:-1]
    orphan = np.zeros(len(owner), dtype=bool)
    orphan[order[~first]] = True
    orphan |= ~home
    while orphan.any():
        before = int(orphan.sum())
        for f in np.flatnonzero(orphan).tolist():
            best = max(((w, n) for n, w in adj_face[f].items() if not orphan[n]), default=None)
            if best is not None:
                labels[f] = labels[best[1]]
                orphan[f] = False
        if int(orphan.sum()) == before:  # a part of a street without seeds: a grid of its own
            labels[orphan] = labels.max() + 1 + np.arange(before)
            break
    adj = _adjacency(labels, pairs)
    area = {int(g): float(face_area[labels == g].sum()) for g in np.unique(labels)}
    threshold = TINY_GRID * float(np.median(list(area.values())))
    heap = [(a, g) for g, a in area.items()]
    heapq.heapify(heap)
    while heap:
        a, g = heapq.heappop(heap)
        if g not in adj or a != area[g]:
            continue
        if a >= threshold:
            break
        if not adj[g]:  # alone in its street
            continue
        _, h = max((w, n) for n, w in adj[g].items())
        _merge_into(labels, adj, g, h)
        area[h] += area.pop(g)
        heapq.heappush(heap, (area[h], h))
    return labels


def _grow_regions(
    members: np.ndarray,
    n: int,
    xy: np.ndarray,
    area: np.ndarray,
    adj: dict[int, dict[int, float]],
    rng: np.random.Generator,
) -> np.ndarray:
    """Split members (grid ids, contiguous) into n contiguous regions of varied size.

    Centres come from weighted k-means; regions then grow over shared edges, the one
    furthest below its target area claiming next, so every region is contiguous.
    """
    pts, w = xy[members], area[members]
    share = rng.lognormal(0.0, 0.3, n)
    targets = share / share.sum() * w.sum()
    chosen = [int(rng.integers(len(members)))]
    dmin = ((pts - pts[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(1, n):
        chosen.append(int(dmin.argmax()))
        dmin = np.minimum(dmin, ((pts - pts[chosen[-1]]) ** 2).sum(axis=1))
    centres = pts[chosen].copy()
    for _ in range(20):
        lab = ((pts[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
        for r in range(n):
            m = lab == r
            if m.any():
                centres[r] = (pts[m] * w[m, None]).sum(axis=0) / w[m].sum()
    index = {int(g): i for i, g in enumerate(members.tolist())}
    region = np.full(len(members), -1, dtype=np.int64)
    got = np.zeros(n)
    frontier: list[list[tuple[float, int]]] = [[] for _ in range(n)]
    taken: set[int] = set()

    def claim(r: int, i: int) -> None:
        region[i] = r
        got[r] += w[i]
        for v in adj[int(members[i])]:
            j = index.get(v)
            if j is not None and region[j] < 0:
                heapq.heappush(frontier[r], (float(((pts[j] - centres[r]) ** 2).sum()), j))

    for r in range(n):
        d = ((pts - centres[r]) ** 2).sum(axis=1)
        d[list(taken)] = np.inf
        i = int(d.argmin())
        taken.add(i)
        claim(r, i)
    while (region < 0).any():
        best = None
        for r in range(n):
            while frontier[r] and region[frontier[r][0][1]] >= 0:
                heapq.heappop(frontier[r])
            if frontier[r]:
                ratio = got[r] / targets[r]
                if best is None or ratio < best[0]:
                    best = (ratio, r)
        if best is None:
            raise RuntimeError("region growing stalled: members are not contiguous")
        r = best[1]
        claim(r, heapq.heappop(frontier[r])[1])
    return region


def _serpentine(xy: np.ndarray, band: float) -> np.ndarray:
    """Order points in north-to-south bands, alternating west-east and east-west."""
    row = np.floor((xy[:, 1].max() - xy[:, 1]) / band).astype(np.int64)
    x = np.where(row % 2 == 0, xy[:, 0], -xy[:, 0])
    return np.lexsort((x, row))


def _person_names(rng: np.random.Generator, count: int, used: set[str]) -> list[str]:
    """Fictional Chinese person names (surname + one or two given characters), unique in used."""
    surnames = np.array(list(names.SURNAMES))
    chars = np.array(list(names.GIVEN_CHARS))
    p = 1.0 / (np.arange(len(surnames)) + 8.0)
    p /= p.sum()
    out: list[str] = []
    while len(out) < count:
        given = rng.choice(chars, size=1 if rng.random() < 0.3 else 2, replace=False)
        name = str(surnames[rng.choice(len(surnames), p=p)]) + "".join(given.tolist())
        if name not in used:
            used.add(name)
            out.append(name)
    return out


@dataclass
class _Units:
    """The admin partition: grid polygons and their community and street indices."""

    grid_geom: np.ndarray
    grid_xy: np.ndarray
    grid_community: np.ndarray
    grid_street: np.ndarray


def _admin_units(
    rng: np.random.Generator, frame: _Frame, sref: pd.DataFrame, cref: pd.DataFrame
) -> _Units:
    """Build grids from one partition of the real streets, then group them in communities."""
    streets = street_coverage(load_streets(sref))
    outline = shapely.coverage_union_all(streets)
    seeds, seed_street = _seed_points(frame.to_metric(streets), rng)
    faces, owner, face_street = _faces(streets, outline, seeds, frame)
    faces_m = frame.to_metric(faces)
    face_area = shapely.area(faces_m)
    pairs = _shared_edges(faces)
    labels = _build_grids(owner, seed_street, face_street, face_area, pairs)
    _, face_grid = np.unique(labels, return_inverse=True)
    n = int(face_grid.max()) + 1
    area = np.bincount(face_grid, face_area, n)
    fc = shapely.get_coordinates(shapely.centroid(faces_m))
    xy = (
        np.column_stack(
            [
                np.bincount(face_grid, face_area * fc[:, 0], n),
                np.bincount(face_grid, face_area * fc[:, 1], n),
            ]
        )
        / area[:, None]
    )
    adj = _adjacency(face_grid, pairs)
    street = np.zeros(n, dtype=np.int64)
    street[face_grid] = face_street

    community = np.full(n, -1, dtype=np.int64)
    for k, code in enumerate(sref["code"]):
        members = np.flatnonzero(street == k)
        rows = np.flatnonzero((cref["street_code"] == code).to_numpy())
        region = _grow_regions(members, len(rows), xy, area, adj, rng)
        rxy = np.array([xy[members[region == r]].mean(axis=0) for r in range(len(rows))])
        height = np.ptp(xy[members, 1]) + 1.0
        order = _serpentine(rxy, height / np.ceil(np.sqrt(len(rows))))
        rank = np.empty(len(rows), dtype=np.int64)
        rank[order] = np.arange(len(rows))
        community[members] = rows[rank[region]]

    geoms = np.empty(n, dtype=object)
    groups = np.split(np.argsort(face_grid, kind="stable"), np.cumsum(np.bincount(face_grid))[:-1])
    for g, idx in enumerate(groups):
        geoms[g] = faces[idx[0]] if len(idx) == 1 else shapely.coverage_union_all(faces[idx])
    return _Units(geoms, xy, community, street)


@dataclass
class _LaneDraft:
    """A lane in the metric frame before codes, people and house numbers are given."""

    name: str
    kind: str
    street: int
    line: shapely.LineString
    first: int = 0
    count: int = 0


def _kind_of(name: str) -> str:
    """A lane's kind from its name (names ending in 条 are hutongs)."""
    for kind in ("大街", "路", "街", "巷"):
        if name.endswith(kind):
            return kind
    return "胡同"


def _street_class(code: str) -> str:
    return "old" if code in OLD_CITY else "mixed" if code in MIXED else "outer"


def _orient(line: shapely.LineString, centre: shapely.Point) -> shapely.LineString:
    """Start a line at the end nearer the centre, as Beijing house numbering does."""
    start, end = shapely.points(shapely.get_coordinates(line)[[0, -1]])
    return line.reverse() if start.distance(centre) > end.distance(centre) else line


def _too_close(line: BaseGeometry, others: list[shapely.LineString], d: float) -> bool:
    """Whether line runs alongside other lanes (closer than d) beyond its crossings and ends."""
    if not others:
        return False
    arr = np.asarray(others, dtype=object)
    near = arr[shapely.dwithin(arr, line, d)]
    if len(near) == 0:
        return False
    crossing = int(shapely.intersects(near, line).sum())
    zone = shapely.union_all(shapely.buffer(near, d, quad_segs=4))
    return bool(line.intersection(zone).length > 2.0 * d * (crossing + 1) + 1.0)


_Placement = tuple[float, shapely.LineString, list[tuple[int, shapely.LineString]]]


def _place_famous(
    base: shapely.LineString,
    offsets: tuple[float, ...],
    tree: shapely.STRtree,
    inner: list[BaseGeometry],
    placed: list[shapely.LineString],
) -> _Placement | None:
    """The best sideways offset of a lane: its pieces inside streets (100 m or more)."""
    best: _Placement | None = None
    for off in offsets:
        cand = base if off == 0.0 else shapely.offset_curve(base, off)
        pieces = []
        for k in sorted(tree.query(cand).tolist()):
            for part in shapely.get_parts(shapely.intersection(cand, inner[k])):
                if (
                    part.geom_type == "LineString"
                    and part.length >= 100.0
                    and not _too_close(part, placed, 25.0)
                ):
                    pieces.append((k, part))
        score = sum(p.length for _, p in pieces) - 150.0 * len(pieces) - 0.5 * abs(off)
        if pieces and (best is None or score > best[0]):
            best = (score, cand, pieces)
    return best


def _kept(placement: _Placement | None) -> float:
    return 0.0 if placement is None else sum(p.length for _, p in placement[2])


def _famous_lanes(
    frame: _Frame, inner: list[BaseGeometry], centre: shapely.Point
) -> list[_LaneDraft]:
    """Famous lanes near their real place, nudged sideways to stay inside one street.

    A lane that would keep less than FAMOUS_KEEP of its length (it runs off the district's
    real boundary) is moved, the least distance up to FAMOUS_REACH_M that keeps it whole;
    one that cannot be moved so is left as it fits, or out if nothing of it fits.
    """
    tree = shapely.STRtree(inner)
    drafts: list[_LaneDraft] = []
    placed: list[shapely.LineString] = []
    angles = np.arange(8) * np.pi / 4
    for name, pts in names.FAMOUS_LANES:
        base = _orient(frame.to_metric(shapely.LineString(pts)), centre)
        best = _place_famous(base, FAMOUS_OFFSETS_M, tree, inner, placed)
        if _kept(best) < FAMOUS_KEEP * base.length:
            for dist in np.arange(50.0, FAMOUS_REACH_M + 1.0, 50.0):
                moves = [
                    _place_famous(
                        shapely.affinity.translate(base, dist * np.cos(a), dist * np.sin(a)),
                        (0.0,),
                        tree,
                        inner,
                        placed,
                    )
                    for a in angles
                ]
                moved = max(moves, key=_kept)
                if _kept(moved) >= 0.9 * base.length:
                    best = moved
                    break
        if best is None:
            continue
        _, cand, pieces = best
        pieces.sort(key=lambda kp: cand.project(kp[1].interpolate(0.5, normalized=True)))
        for k, part in pieces:
            a, b = shapely.points(shapely.get_coordinates(part)[[0, -1]])
            if cand.project(a) > cand.project(b):
                part = part.reverse()
            drafts.append(_LaneDraft(name, _kind_of(name), k, part))
            placed.append(part)
    return drafts


def _random_point(rng: np.random.Generator, poly: BaseGeometry) -> np.ndarray:
    minx, miny, maxx, maxy = poly.bounds
    for _ in range(1000):
        p = rng.uniform((minx, miny), (maxx, maxy))
        if shapely.contains_xy(poly, p[0], p[1]):
            return p
    raise RuntimeError("could not sample a point inside a street")


def _candidate_lane(
    rng: np.random.Generator, kind: str, poly: BaseGeometry, existing: list[shapely.LineString]
) -> shapely.LineString | None:
    """A random lane of the kind inside poly; small lanes stop at the lanes they meet."""
    p = _random_point(rng, poly)
    length = rng.uniform(*LANE_LENGTH[kind])
    road = kind in ROADS
    ang = rng.normal(0.0, 0.03 if road else 0.06)
    if rng.random() >= EAST_WEST[kind]:
        ang += np.pi / 2
    u = np.array([np.cos(ang), np.sin(ang)])
    if road or rng.random() < 0.7:
        coords = [p - u * length / 2, p + u * length / 2]
    else:
        normal = np.array([-u[1], u[0]]) * rng.choice([-1.0, 1.0]) * rng.uniform(6.0, 18.0)
        mid = p + u * rng.uniform(-length / 4, length / 4)
        coords = [p - u * length / 2, mid, mid + normal, p + u * length / 2 + normal]
    centre = shapely.Point(p)
    parts = [
        g
        for g in shapely.get_parts(shapely.intersection(shapely.LineString(coords), poly))
        if g.geom_type == "LineString"
    ]
    if not parts:
        return None
    line = min(parts, key=lambda g: g.distance(centre))
    if not road and existing:
        arr = np.asarray(existing, dtype=object)
        hits = arr[shapely.intersects(arr, line)]
        if len(hits):
            xy = shapely.get_coordinates(shapely.intersection(hits, line))
            at = np.sort(shapely.line_locate_point(line, shapely.points(xy)))
            s0 = line.project(centre)
            lo = at[at < s0 - 1.0]
            hi = at[at > s0 + 1.0]
            line = substring(
                line, lo.max() if len(lo) else 0.0, hi.min() if len(hi) else line.length
            )
    if line.geom_type != "LineString" or line.length < MIN_LENGTH[kind]:
        return None
    if _too_close(line, existing, 120.0 if road else 28.0):
        return None
    return line


def _lane_name(rng: np.random.Generator, kind: str, street_code: str, used: set[str]) -> str:
    """A generated lane name, unique in the district."""
    own = names.STREET_CORES[street_code]
    for _ in range(500):
        core = str(rng.choice(own)) if rng.random() < 0.35 else str(rng.choice(names.LANE_CORES))
        prefix = (
            "" if core[0] in "东西南北前后大小新中上下" else str(rng.choice(names.LANE_PREFIXES))
        )
        name = prefix + core + str(rng.choice(names.KIND_SUFFIXES[kind]))
        if name not in used:
            used.add(name)
            return name
    raise RuntimeError(f"ran out of lane names for street {street_code}")


def _generated_lanes(
    rng: np.random.Generator,
    codes: list[str],
    inner: list[BaseGeometry],
    areas_km2: np.ndarray,
    drafts: list[_LaneDraft],
    used_names: set[str],
    centre: shapely.Point,
) -> list[_LaneDraft]:
    """Generated roads, then small lanes, per street, up to the street's lane density."""
    out: list[_LaneDraft] = []
    for k, code in enumerate(codes):
        cls = _street_class(code)
        existing = [d.line for d in drafts if d.street == k]
        target = max(0, round(LANE_DENSITY[cls] * areas_km2[k]) - len(existing))
        n_roads = round(target * ROAD_SHARE[cls])
        small = SMALL_KINDS[cls]
        kinds = [
            str(rng.choice(ROADS, p=(0.3, 0.7) if cls == "old" else (0.15, 0.85)))
            for _ in range(n_roads)
        ] + [str(rng.choice(list(small), p=list(small.values()))) for _ in range(target - n_roads)]
        for kind in kinds:
            for _ in range(30):
                line = _candidate_lane(rng, kind, inner[k], existing)
                if line is not None:
                    existing.append(line)
                    name = _lane_name(rng, kind, code, used_names)
                    out.append(_LaneDraft(name, kind, k, _orient(line, centre)))
                    break
    return out


def _number_lanes(rng: np.random.Generator, drafts: list[_LaneDraft]) -> None:
    """House numbers by side (odd left, even right), continuing across pieces of one name."""
    base: dict[str, int] = {}
    for d in drafts:
        d.count = max(2, round(d.line.length / rng.uniform(*NUMBER_SPACING[d.kind])))
        d.first = base.get(d.name, 0)
        base[d.name] = d.first + d.count


def house_number_point(
    line: shapely.LineString, first: int, last: int, number: int
) -> shapely.Point:
    """Where a house number stands on a lane: the side's numbers spread evenly along the line.

    The i-th number of a side (first, first + 2, ..., last) sits at fraction (i + 0.5) / n of
    the line's length measured in degrees from its start; the point is snapped to 1e-7°.
    """
    n = (last - first) // 2 + 1
    t = ((number - first) // 2 + 0.5) / n
    return shapely.set_precision(
        shapely.line_interpolate_point(line, t, normalized=True), GRID_SIZE
    )


def _lane_root(name: str) -> str:
    """A lane name without its kind suffix, for naming things that stand on it."""
    suffixes = {s for group in names.KIND_SUFFIXES.values() for s in group}
    suffixes |= {"外大街", "内大街", "条"}
    for suffix in sorted(suffixes, key=lambda s: (-len(s), s)):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def address_text(lane_name: str, number: int) -> str:
    """The postal form of a house number on a lane: 北京市西城区砖塔胡同23号."""
    return f"北京市{DISTRICT_NAME}{lane_name}{number}号"


class _Addresses:
    """House numbers handed out on the lanes, so that every address is unique."""

    def __init__(
        self, lanes: gpd.GeoDataFrame, lines_m: np.ndarray, street_idx: np.ndarray
    ) -> None:
        self.lanes = lanes
        self.lines_m = lines_m
        self.street_idx = street_idx
        self.used: dict[int, set[int]] = {}

    def take(self, lane: int, odd: bool, t: float) -> tuple[int, shapely.Point] | None:
        """Take the free number of one side nearest fraction t of the lane; None if full."""
        row = self.lanes.iloc[lane]
        side = ("left_from", "left_to") if odd else ("right_from", "right_to")
        lo, hi = int(row[side[0]]), int(row[side[1]])
        numbers = np.arange(lo, hi + 1, 2)
        target = t * len(numbers) - 0.5
        used = self.used.setdefault(lane, set())
        for i in np.argsort(np.abs(np.arange(len(numbers)) - target), kind="stable").tolist():
            n = int(numbers[i])
            if n not in used:
                used.add(n)
                return n, house_number_point(row.geometry, lo, hi, n)
        return None

    def release(self, lane: int, number: int) -> None:
        self.used[lane].discard(number)

    def near(
        self, street: int, point_m: shapely.Point, famous_bonus: float = 0.0
    ) -> tuple[int, int, shapely.Point]:
        """The free house number nearest a point on the street's lanes: (lane, number, point).

        A famous lane counts as famous_bonus metres nearer: big places face the main roads.
        """
        idx = np.flatnonzero(self.street_idx == street)
        dist = shapely.distance(self.lines_m[idx], point_m)
        famous = self.lanes["name"].iloc[idx].isin([name for name, _ in names.FAMOUS_LANES])
        dist -= famous_bonus * famous.to_numpy()
        order = np.argsort(dist, kind="stable")
        for lane in idx[order].tolist():
            line = self.lines_m[lane]
            s = line.project(point_m)
            a = line.interpolate(max(s - 1.0, 0.0))
            b = line.interpolate(min(s + 1.0, line.length))
            left = (b.x - a.x) * (point_m.y - a.y) - (b.y - a.y) * (point_m.x - a.x) >= 0
            for odd in (left, not left):
                got = self.take(lane, odd, s / line.length)
                if got is not None:
                    return lane, got[0], got[1]
        raise RuntimeError(f"street {street} has no free house number left")


def _multi(geom: BaseGeometry) -> BaseGeometry:
    return shapely.MultiPolygon([geom]) if geom.geom_type == "Polygon" else geom


def _lanes_frame(
    rng: np.random.Generator,
    drafts: list[_LaneDraft],
    frame: _Frame,
    codes: list[str],
    street_geoms: np.ndarray,
    people: set[str],
) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """The lanes layer (and the lanes' metric lines, in the same order)."""
    lines_m = np.array([d.line for d in drafts], dtype=object)
    geoms = shapely.set_precision(frame.to_lnglat(lines_m), GRID_SIZE)
    street = np.array([d.street for d in drafts])
    ok = (shapely.get_type_id(geoms) == 1) & shapely.contains(street_geoms[street], geoms)
    mid = shapely.get_coordinates(shapely.line_interpolate_point(lines_m, 0.5, normalized=True))
    order = [
        i
        for k in range(len(codes))
        for i in np.flatnonzero((street == k) & ok)[
            _serpentine(mid[(street == k) & ok], 250.0)
        ].tolist()
    ]
    serial: dict[int, int] = {}
    rows = []
    for i in order:
        d = drafts[i]
        serial[d.street] = serial.get(d.street, 0) + 1
        rows.append(
            {
                "code": f"L{codes[d.street][-3:]}{serial[d.street]:04d}",
                "name": d.name,
                "kind": d.kind,
                "street_code": codes[d.street],
                "left_from": 2 * d.first + 1,
                "left_to": 2 * (d.first + d.count) - 1,
                "right_from": 2 * d.first + 2,
                "right_to": 2 * (d.first + d.count),
            }
        )
    df = pd.DataFrame(rows)
    df.insert(4, "lane_chief", _person_names(rng, len(df), people))
    df.insert(5, "rectification_status", rng.choice(STATUSES, size=len(df), p=STATUS_P))
    for col in ("left_from", "left_to", "right_from", "right_to"):
        df[col] = df[col].astype("int64")
    lanes = gpd.GeoDataFrame(df, geometry=list(geoms[order]), crs=CRS)
    return lanes, lines_m[order]


def _landmark_street(
    hint: str, point_m: shapely.Point, codes: list[str], street_geoms_m: np.ndarray
) -> int | None:
    """The street a famous landmark stands in (its index), or None to leave it out.

    The street it must be in (hint), else the street it falls in, else the nearest one within
    FAMOUS_REACH_M (a place just outside the district's real boundary moves in).
    """
    if hint:
        return codes.index(hint)
    dist = shapely.distance(street_geoms_m, point_m)
    k = int(np.argmin(dist))
    return k if dist[k] <= FAMOUS_REACH_M else None


def _landmarks(
    rng: np.random.Generator,
    frame: _Frame,
    sref: pd.DataFrame,
    addresses: _Addresses,
    street_geoms: np.ndarray,
    communities: gpd.GeoDataFrame,
) -> gpd.GeoDataFrame:
    """Famous landmarks at the free address nearest their real place, then generated ones."""
    codes = sref["code"].tolist()
    lanes = addresses.lanes
    rows: list[dict[str, object]] = []
    street_geoms_m = frame.to_metric(street_geoms)
    for name, kind, (lng, lat), hint in names.FAMOUS_LANDMARKS:
        pt = frame.to_metric(shapely.Point(lng, lat))
        k = _landmark_street(hint, pt, codes, street_geoms_m)
        if k is None:  # too far outside the district to stand for the real place
            continue
        lane, number, point = addresses.near(k, pt, famous_bonus=150.0)
        address = address_text(str(lanes["name"].iloc[lane]), number)
        rows.append(
            {"name": name, "kind": kind, "street": k, "address": address, "geometry": point}
        )

    taken = {str(r["name"]) for r in rows}
    comm_tree = shapely.STRtree(communities.geometry.to_numpy())
    area = sref["area_km2"].to_numpy(dtype=float)
    for kind, total in LANDMARK_QUOTA.items():
        quota = np.floor(total * area / area.sum() + rng.random(len(area))).astype(int)
        for k, q in enumerate(quota.tolist()):
            idx = np.flatnonzero(addresses.street_idx == k)
            w = shapely.length(addresses.lines_m[idx])
            placed = 0
            for _ in range(40 * q):
                if placed == q:
                    break
                lane = int(rng.choice(idx, p=w / w.sum()))
                got = addresses.take(lane, bool(rng.random() < 0.5), float(rng.random()))
                if got is None:
                    continue
                number, point = got
                lane_name = str(lanes["name"].iloc[lane])
                name = ""
                if kind == "compound" and rng.random() < 0.4:
                    name = f"{lane_name}{number}号院"
                elif kind == "hospital" and rng.random() < 0.6:
                    hit = comm_tree.query(point, predicate="intersects")
                    if len(hit):
                        name = f"{communities['name'].iloc[int(hit.min())]}卫生服务站"
                else:
                    template = str(rng.choice(names.LANDMARK_TEMPLATES[kind]))
                    name = template.format(core=_lane_root(lane_name))
                if not name or name in taken:
                    addresses.release(lane, number)
                    continue
                taken.add(name)
                address = address_text(lane_name, number)
                rows.append(
                    {"name": name, "kind": kind, "street": k, "address": address, "geometry": point}
                )
                placed += 1

    df = pd.DataFrame(rows).sort_values("street", kind="stable").reset_index(drop=True)
    df["street_code"] = [codes[k] for k in df["street"]]
    serial = df.groupby("street").cumcount() + 1
    df["code"] = [f"P{c[-3:]}{i:04d}" for c, i in zip(df["street_code"], serial, strict=True)]
    columns = ["code", "name", "kind", "street_code", "address"]
    return gpd.GeoDataFrame(df[columns], geometry=list(df["geometry"]), crs=CRS)


def _service_halls(
    rng: np.random.Generator,
    sref: pd.DataFrame,
    addresses: _Addresses,
    street_geoms_m: np.ndarray,
) -> gpd.GeoDataFrame:
    """One public service hall per street, at a free address near the street's middle."""
    rows = []
    for k, (code, street_name) in enumerate(zip(sref["code"], sref["name"], strict=True)):
        lane, number, point = addresses.near(k, shapely.point_on_surface(street_geoms_m[k]))
        suffix = "公共服务大厅" if rng.random() < 0.5 else "市民服务中心"
        rows.append(
            {
                "code": f"H{code[-3:]}",
                "name": f"{street_name}{suffix}",
                "street_code": code,
                "address": address_text(str(addresses.lanes["name"].iloc[lane]), number),
                "phone": f"010-{rng.choice(['6', '8'])}{int(rng.integers(0, 10_000_000)):07d}",
                "geometry": point,
            }
        )
    df = pd.DataFrame(rows)
    return gpd.GeoDataFrame(df.drop(columns="geometry"), geometry=list(df["geometry"]), crs=CRS)


def _admin_layers(
    rng: np.random.Generator,
    frame: _Frame,
    units: _Units,
    sref: pd.DataFrame,
    cref: pd.DataFrame,
    people: set[str],
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The grids, communities, streets and district layers; the coarser are unions of grids."""
    codes = sref["code"].tolist()
    n_grid = len(units.grid_geom)
    grid_code = np.empty(n_grid, dtype=object)
    for c in range(len(cref)):
        members = np.flatnonzero(units.grid_community == c)
        order = _serpentine(units.grid_xy[members], 1.5 * GRID_SPACING_M)
        for serial, g in enumerate(members[order].tolist(), start=1):
            grid_code[g] = f"{cref['code'].iloc[c]}{serial:03d}"
    gorder = np.argsort(grid_code.astype(str), kind="stable")
    grids = gpd.GeoDataFrame(
        {
            "code": grid_code[gorder].astype(str),
            "community_code": cref["code"].to_numpy()[units.grid_community[gorder]].astype(str),
            "street_code": np.asarray(codes)[units.grid_street[gorder]],
            "grid_officer": _person_names(rng, n_grid, people),
        },
        geometry=list(units.grid_geom[gorder]),
        crs=CRS,
    )

    comm_geoms = [
        _multi(shapely.coverage_union_all(units.grid_geom[units.grid_community == c]))
        for c in range(len(cref))
    ]
    communities = gpd.GeoDataFrame(
        {
            "code": cref["code"].astype(str).to_numpy(),
            "name": cref["name"].str.removesuffix("居委会").to_numpy(),
            "street_code": cref["street_code"].astype(str).to_numpy(),
        },
        geometry=comm_geoms,
        crs=CRS,
    )
    street_geoms = np.array(
        [
            _multi(shapely.coverage_union_all(units.grid_geom[units.grid_street == k]))
            for k in range(len(codes))
        ],
        dtype=object,
    )
    street_geoms_m = frame.to_metric(street_geoms)
    streets = gpd.GeoDataFrame(
        {
            "code": codes,
            "name": sref["name"].tolist(),
            "commander": _person_names(rng, len(codes), people),
            "area_km2": np.round(shapely.area(street_geoms_m) / 1e6, 4),
        },
        geometry=list(street_geoms),
        crs=CRS,
    )
    district = gpd.GeoDataFrame(
        {"code": [DISTRICT_CODE], "name": [DISTRICT_NAME]},
        geometry=[shapely.coverage_union_all(units.grid_geom)],
        crs=CRS,
    )
    return grids, communities, streets, district


def generate_geography(seed: int = 42) -> Geography:
    """Generate the demo district's geography; the same seed gives identical layers."""
    rng = np.random.default_rng(seed)
    frame = _Frame()
    sref, cref = load_reference()
    codes = sref["code"].tolist()
    units = _admin_units(rng, frame, sref, cref)
    people: set[str] = set()

    grids, communities, streets, district = _admin_layers(rng, frame, units, sref, cref, people)
    street_geoms = streets.geometry.to_numpy()
    street_geoms_m = frame.to_metric(street_geoms)

    inner = list(shapely.buffer(street_geoms_m, -INNER_MARGIN_M))
    centre = frame.to_metric(shapely.Point(CENTRE))
    drafts = _famous_lanes(frame, inner, centre)
    used_names = {d.name for d in drafts}
    drafts += _generated_lanes(
        rng, codes, inner, streets["area_km2"].to_numpy(), drafts, used_names, centre
    )
    _number_lanes(rng, drafts)
    lanes, lines_m = _lanes_frame(rng, drafts, frame, codes, street_geoms, people)
    street_idx = np.array([codes.index(c) for c in lanes["street_code"]])
    addresses = _Addresses(lanes, lines_m, street_idx)
    halls = _service_halls(rng, sref, addresses, street_geoms_m)
    landmarks = _landmarks(rng, frame, sref, addresses, street_geoms, communities)
    return Geography(district, streets, communities, grids, lanes, halls, landmarks)


def write_geography(geo: Geography, out_dir: Path) -> dict[str, Path]:
    """Write each layer as <layer>.geojson (coordinates to 7 decimals); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for layer in LAYERS:
        path = out_dir / f"{layer}.geojson"
        path.unlink(missing_ok=True)
        pyogrio.write_dataframe(
            getattr(geo, layer),
            path,
            layer=layer,
            driver="GeoJSON",
            layer_options={"COORDINATE_PRECISION": 7, "WRITE_BBOX": "NO"},
        )
        paths[layer] = path
    return paths
