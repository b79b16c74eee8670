"""The demo district's geography: real codes and names, exact nesting, a usable gazetteer."""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
import shapely.affinity

from etl.demo.geography import (
    LAYERS,
    Geography,
    generate_geography,
    house_number_point,
    load_reference,
    street_coverage,
    write_geography,
)
from etl.demo.names import FAMOUS_LANDMARKS, FAMOUS_LANES

UTM = "EPSG:32650"  # an independent metric CRS for the checks
STREETS_FILE = Path(__file__).parents[2] / "etl" / "demo" / "data" / "xicheng_streets.geojson"
COLUMNS = {
    "district": ["code", "name", "geometry"],
    "streets": ["code", "name", "commander", "area_km2", "geometry"],
    "communities": ["code", "name", "street_code", "geometry"],
    "grids": ["code", "community_code", "street_code", "grid_officer", "geometry"],
    "lanes": [
        "code",
        "name",
        "kind",
        "street_code",
        "lane_chief",
        "rectification_status",
        "left_from",
        "left_to",
        "right_from",
        "right_to",
        "geometry",
    ],
    "service_halls": ["code", "name", "street_code", "address", "phone", "geometry"],
    "landmarks": ["code", "name", "kind", "street_code", "address", "geometry"],
}
GEOM_TYPES = {
    "district": {"Polygon"},
    "streets": {"MultiPolygon"},
    "communities": {"MultiPolygon"},
    "grids": {"Polygon"},
    "lanes": {"LineString"},
    "service_halls": {"Point"},
    "landmarks": {"Point"},
}
ADDRESS = re.compile(r"^北京市西城区(?P<lane>.+?)(?P<number>\d+)号$")


@pytest.fixture(scope="module")
def timed() -> tuple[Geography, float]:
    """The seed-42 geography and the CPU seconds it took (robust to a busy host)."""
    start = time.process_time()
    geo = generate_geography(42)
    return geo, time.process_time() - start


@pytest.fixture(scope="module")
def geo(timed: tuple[Geography, float]) -> Geography:
    return timed[0]


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, pd.DataFrame]:
    return load_reference()


def _attributes(df: gpd.GeoDataFrame) -> pd.DataFrame:
    return pd.DataFrame(df.drop(columns="geometry"))


def _wkb(df: gpd.GeoDataFrame) -> list[bytes]:
    return list(shapely.to_wkb(df.geometry.to_numpy()))


def _assert_tiles(parts: np.ndarray, whole: shapely.Geometry) -> None:
    """Parts cover whole exactly, without overlaps: areas add up and the union is equal."""
    assert shapely.is_valid(parts).all()
    assert shapely.is_valid(whole)
    union = shapely.union_all(parts)
    assert shapely.equals(union, whole)
    assert shapely.symmetric_difference(union, whole).area <= 1e-12 * whole.area
    assert abs(shapely.area(parts).sum() - whole.area) <= 1e-9 * whole.area


def _assert_no_overlaps(polys: np.ndarray) -> None:
    tree = shapely.STRtree(polys)
    i, j = tree.query(polys, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    assert len(i) > 0
    assert not shapely.overlaps(polys[i], polys[j]).any()
    assert (shapely.area(shapely.intersection(polys[i], polys[j])) == 0.0).all()


def _assert_nested(geo: Geography) -> None:
    """The exact nesting and tiling of grids, communities, streets and the district."""
    grids, comms, streets = geo.grids, geo.communities, geo.streets
    for layer in (grids, comms, streets):
        assert shapely.coverage_is_valid(layer.geometry.to_numpy())
    _assert_no_overlaps(grids.geometry.to_numpy())
    _assert_no_overlaps(comms.geometry.to_numpy())
    _assert_no_overlaps(streets.geometry.to_numpy())
    for code, group in grids.groupby("community_code"):
        _assert_tiles(group.geometry.to_numpy(), comms.set_index("code").geometry[code])
    for code, group in comms.groupby("street_code"):
        _assert_tiles(group.geometry.to_numpy(), streets.set_index("code").geometry[code])
    _assert_tiles(streets.geometry.to_numpy(), geo.district.geometry.iloc[0])
    # Every grid lies in exactly one community, and that is the one its code names.
    inner = shapely.point_on_surface(grids.geometry.to_numpy())
    hit_grid, hit_comm = shapely.STRtree(comms.geometry.to_numpy()).query(
        inner, predicate="intersects"
    )
    assert np.array_equal(np.sort(hit_grid), np.arange(len(grids)))
    assert (
        comms["code"].to_numpy()[hit_comm] == grids["community_code"].to_numpy()[hit_grid]
    ).all()


def test_same_seed_same_output_and_other_seed_differs(geo: Geography) -> None:
    again = generate_geography(42)
    other = generate_geography(7)
    for layer in LAYERS:
        a, b = getattr(geo, layer), getattr(again, layer)
        pd.testing.assert_frame_equal(_attributes(a), _attributes(b))
        assert _wkb(a) == _wkb(b), layer
    assert _wkb(geo.grids) != _wkb(other.grids)
    assert _wkb(geo.streets) != _wkb(other.streets)
    assert list(geo.lanes["name"]) != list(other.lanes["name"])
    assert list(geo.streets["commander"]) != list(other.streets["commander"])


def test_layers_have_the_glossary_columns(geo: Geography) -> None:
    for layer in LAYERS:
        df = getattr(geo, layer)
        assert list(df.columns) == COLUMNS[layer], layer
        assert df.crs is not None and df.crs.to_epsg() == 4326, layer
        assert set(df.geom_type) <= GEOM_TYPES[layer], layer
        assert shapely.is_valid(df.geometry.to_numpy()).all(), layer
    assert geo.district["code"].tolist() == ["110102"]
    assert geo.district["name"].tolist() == ["西城区"]
    minx, miny, maxx, maxy = geo.district.total_bounds
    assert 116.29 < minx < maxx < 116.42 and 39.85 < miny < maxy < 39.98


@pytest.fixture(scope="module")
def real() -> gpd.GeoDataFrame:
    """The real street boundaries as the file holds them, indexed by the 9-digit street code."""
    df = gpd.read_file(STREETS_FILE)
    df["street_code"] = [f"{int(c):012d}"[:9] for c in df["code"]]
    return df.set_index("street_code")


def test_streets_are_the_real_boundaries(
    geo: Geography, reference: tuple[pd.DataFrame, pd.DataFrame], real: gpd.GeoDataFrame
) -> None:
    sref, _ = reference
    streets = geo.streets.set_index("code")
    assert list(streets.index) == list(sref["code"])
    assert list(streets["name"]) == list(sref["name"])
    assert sorted(real.index) == sorted(streets.index)
    assert (real["Name"][streets.index] == streets["name"]).all()
    # The same polygons, up to the 1e-7° grid: where a grid edge crosses a street boundary
    # the crossing is rounded onto the grid (under a centimetre).
    for code, geom in streets.geometry.items():
        want = real.geometry[code]
        assert shapely.hausdorff_distance(geom, want) <= 1e-7, code
        assert shapely.symmetric_difference(geom, want).area <= 1e-7 * want.length, code
        assert geom.geom_type == "MultiPolygon" and shapely.get_num_geometries(geom) == 1, code
        # labelPoint is [lat, lng]: read that way it lies in its street.
        lat, lng = real.loc[code, "labelPoint"]
        assert geom.contains(shapely.Point(lng, lat)), code
    # The union of the streets is the district, and the district is the file's outline.
    outline = shapely.union_all(real.geometry.to_numpy())
    district = geo.district.geometry.iloc[0]
    assert district.geom_type == "Polygon" and not district.interiors
    assert shapely.hausdorff_distance(district, outline) <= 1e-7
    assert shapely.symmetric_difference(district, outline).area <= 1e-7 * outline.length
    metric = geo.streets.to_crs(UTM).set_index("code")
    real_centroids = gpd.GeoSeries(
        gpd.points_from_xy(sref["centroid_lng"], sref["centroid_lat"]), crs=4326
    ).to_crs(UTM)
    offsets = metric.centroid.distance(real_centroids.set_axis(sref["code"]), align=True)
    assert (offsets < 300.0).all(), offsets[offsets >= 300.0]
    ratio = metric.area.to_numpy() / 1e6 / sref["area_km2"].to_numpy()
    assert ((ratio > 0.99) & (ratio < 1.01)).all(), ratio
    assert abs(metric.area.sum() / 1e6 - 50.53) < 0.01 * 50.53
    np.testing.assert_allclose(streets["area_km2"], metric.area / 1e6, rtol=2e-3)
    assert streets["commander"].str.fullmatch(r"[\u4e00-\u9fff]{2,3}").all()
    assert streets["commander"].is_unique


def test_no_grid_crosses_a_real_street_boundary(geo: Geography, real: gpd.GeoDataFrame) -> None:
    grids = geo.grids.geometry.to_numpy()
    polys = real.geometry.to_numpy()
    own = polys[[list(real.index).index(c) for c in geo.grids["street_code"]]]
    # Up to the grid's rounding (1e-7°) each grid is inside the real street its code names ...
    outside = shapely.area(shapely.difference(grids, own))
    assert (outside <= 1e-7 * shapely.length(grids)).all()
    assert shapely.covered_by(grids, shapely.buffer(own, 1e-7, join_style="mitre")).all()
    # ... and reaches into no other street further than that.
    g, k = shapely.STRtree(polys).query(grids, predicate="intersects")
    other = real.index.to_numpy()[k] != geo.grids["street_code"].to_numpy()[g]
    assert other.sum() > 100  # grids along a boundary touch the street beyond it
    inter = shapely.intersection(grids[g[other]], polys[k[other]])
    assert (shapely.area(inter) <= 1e-7 * shapely.length(grids[g[other]])).all()
    inner = shapely.buffer(polys[k[other]], -1e-7, join_style="mitre")
    assert not shapely.intersects(grids[g[other]], inner).any()


def _nudged(geoms: np.ndarray) -> np.ndarray:
    """The real streets with slivers: one grown by 3e-7° (overlaps), one shrunk (gaps)."""
    out = geoms.copy()
    out[6] = shapely.buffer(out[6], 3e-7, join_style="mitre")  # 什刹海 over its neighbours
    out[5] = shapely.buffer(out[5], -3e-7, join_style="mitre")  # 金融街 leaves gaps
    out[0] = shapely.affinity.translate(out[0], 2e-7, -1e-7)  # 西长安街 off the grid
    return out


def test_street_coverage_closes_slivers_gaps_and_overlaps(real: gpd.GeoDataFrame) -> None:
    sref, _ = load_reference()
    raw = _nudged(real.geometry[sref["code"]].to_numpy())
    snapped = shapely.set_precision(raw, 1e-7)
    assert not shapely.coverage_is_valid(snapped)  # the input is broken
    fixed = street_coverage(raw)
    assert len(fixed) == 15
    assert shapely.is_valid(fixed).all()
    assert shapely.coverage_is_valid(fixed)
    assert (shapely.get_type_id(fixed) == 3).all()  # one Polygon each
    i, j = shapely.STRtree(fixed).query(fixed, predicate="intersects")
    keep = i < j
    assert (shapely.area(shapely.intersection(fixed[i[keep]], fixed[j[keep]])) == 0.0).all()
    # The union is the input's outline (its holes, the gaps, filled) ...
    union = shapely.union_all(snapped)
    outline = shapely.union_all([shapely.Polygon(p.exterior) for p in shapely.get_parts(union)])
    assert shapely.symmetric_difference(shapely.union_all(fixed), outline).area < 1e-15
    # ... and each street moved by no more than its slivers.
    moved = shapely.area(shapely.symmetric_difference(fixed, snapped))
    perimeter = shapely.length(snapped)
    assert (moved <= 4e-7 * perimeter).all()
    assert moved[[0, 5, 6]].min() > 0.0
    # A clean coverage comes back unchanged.
    clean = shapely.set_precision(real.geometry[sref["code"]].to_numpy(), 1e-7)
    assert shapely.equals(street_coverage(clean), clean).all()


def test_levels_nest_and_tile_the_district_exactly(geo: Geography) -> None:
    _assert_nested(geo)
    # Each community and street is one contiguous piece.
    assert (shapely.get_num_geometries(geo.communities.geometry.to_numpy()) == 1).all()
    assert (shapely.get_num_geometries(geo.streets.geometry.to_numpy()) == 1).all()


def test_coordinates_lie_on_the_seven_decimal_grid(geo: Geography) -> None:
    for layer in LAYERS:
        xy = shapely.get_coordinates(getattr(geo, layer).geometry.to_numpy())
        assert np.array_equal(xy, np.round(xy, 7)), layer


def test_communities_are_the_real_ones_in_their_real_streets(
    geo: Geography, reference: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, cref = reference
    comms = geo.communities
    assert list(comms["code"]) == list(cref["code"])
    assert list(comms["street_code"]) == list(cref["street_code"])
    assert list(comms["name"]) == [n.removesuffix("居委会") for n in cref["name"]]
    assert comms.loc[comms["code"] == "110102001004", "name"].item() == "府右街南社区"
    counts = comms.groupby("street_code").size()
    assert counts.to_dict() == cref.groupby("street_code").size().to_dict()
    streets = geo.streets.set_index("code").geometry
    assert shapely.covered_by(
        comms.geometry.to_numpy(), streets[comms["street_code"]].to_numpy()
    ).all()


def test_grid_codes_follow_the_unit_grid_scheme(geo: Geography) -> None:
    grids = geo.grids
    assert 1800 <= len(grids) <= 2200
    assert grids["code"].is_unique
    assert grids["code"].str.fullmatch(r"\d{15}").all()
    assert (grids["code"].str[:12] == grids["community_code"]).all()
    assert (grids["code"].str[:9] == grids["street_code"]).all()
    assert (grids["code"].str[12:] != "000").all()
    assert set(grids["community_code"]) == set(geo.communities["code"])
    assert grids["grid_officer"].str.fullmatch(r"[\u4e00-\u9fff]{2,3}").all()
    # Grids spread roughly by area: grid count per street tracks the street's area.
    per_street = grids.groupby("street_code").size()
    area = geo.streets.set_index("code")["area_km2"]
    density = per_street / area[per_street.index]
    assert density.max() / density.min() < 1.3
    # Block-sized: about 158 m apart (2.5 ha); none tiny (they joined a neighbour), none huge.
    ha = geo.grids.to_crs(UTM).area.to_numpy() / 1e4
    median = float(np.median(ha))
    assert 2.0 < median < 3.0
    assert ha.min() >= 0.3 * median
    assert ha.max() <= 4.0 * median


def test_lanes_lie_in_their_streets_with_consistent_house_numbers(geo: Geography) -> None:
    lanes = geo.lanes
    assert 1300 <= len(lanes) <= 1700
    assert lanes["code"].is_unique
    assert (lanes["code"].str[1:4] == lanes["street_code"].str[-3:]).all()
    assert lanes["code"].str.fullmatch(r"L\d{7}").all()
    assert set(lanes["kind"]) == {"胡同", "街", "路", "大街", "巷"}
    assert set(lanes["rectification_status"]) <= {"未整治", "整治中", "已整治", "已验收"}
    streets = geo.streets.set_index("code").geometry
    assert shapely.within(lanes.geometry.to_numpy(), streets[lanes["street_code"]].to_numpy()).all()
    assert (lanes["left_from"] % 2 == 1).all() and (lanes["left_to"] % 2 == 1).all()
    assert (lanes["right_from"] % 2 == 0).all() and (lanes["right_to"] % 2 == 0).all()
    assert (lanes["left_from"] <= lanes["left_to"]).all()
    assert (lanes["right_from"] <= lanes["right_to"]).all()
    # A name may repeat only for pieces of one road, with disjoint number ranges.
    for _, group in lanes.groupby("name"):
        spans = sorted(zip(group["left_from"], group["right_to"], strict=True))
        for (_, hi), (lo, _) in itertools.pairwise(spans):
            assert lo > hi
    assert lanes["lane_chief"].str.fullmatch(r"[\u4e00-\u9fff]{2,3}").all()


def test_roads_are_long_and_straight_and_hutongs_short_and_east_west(geo: Geography) -> None:
    lanes = geo.lanes.assign(length=geo.lanes.to_crs(UTM).length)
    ends = shapely.get_coordinates(shapely.boundary(geo.lanes.to_crs(UTM).geometry.to_numpy()))
    chord = np.hypot(*(ends[1::2] - ends[0::2]).T)
    dx, dy = (ends[1::2] - ends[0::2]).T
    lanes = lanes.assign(straightness=chord / lanes["length"], east_west=np.abs(dx) > np.abs(dy))
    mean = lanes.groupby("kind")["length"].mean()
    assert min(mean["大街"], mean["路"]) > 2 * mean["胡同"]
    assert mean["胡同"] < 400.0
    roads = lanes[lanes["kind"].isin(["大街", "路"])]
    assert (roads["straightness"] > 0.98).mean() > 0.95
    assert lanes.loc[lanes["kind"] == "胡同", "east_west"].mean() > 0.65


def test_famous_lanes_are_near_where_they_really_are(geo: Geography) -> None:
    real = {
        "西单北大街": (116.3736, 39.9118),
        "金融大街": (116.3595, 39.9140),
        "砖塔胡同": (116.3695, 39.9219),
        "大栅栏街": (116.3912, 39.8960),
        "琉璃厂西街": (116.3808, 39.8955),
        "护国寺街": (116.3694, 39.9358),
        "百万庄大街": (116.3390, 39.9265),
        "三里河路": (116.3330, 39.9225),
        "白纸坊西街": (116.3492, 39.8765),
        "菜市口大街": (116.3745, 39.8808),
        "广安门内大街": (116.3628, 39.8897),
        "德胜门内大街": (116.3800, 39.9438),
        "新街口南大街": (116.3727, 39.9372),
        "阜成门内大街": (116.3645, 39.9235),
    }
    lanes = geo.lanes.to_crs(UTM)
    for name, (lng, lat) in real.items():
        pieces = lanes[lanes["name"] == name]
        assert len(pieces) >= 1, name
        point = gpd.GeoSeries(gpd.points_from_xy([lng], [lat]), crs=4326).to_crs(UTM).iloc[0]
        assert pieces.distance(point).min() < 300.0, name


def test_service_halls_one_per_street_inside_it(geo: Geography) -> None:
    halls = geo.service_halls
    assert sorted(halls["street_code"]) == sorted(geo.streets["code"])
    assert halls["code"].is_unique and halls["name"].is_unique
    names = dict(zip(geo.streets["code"], geo.streets["name"], strict=True))
    for row in halls.itertuples():
        assert row.name in (
            f"{names[row.street_code]}公共服务大厅",
            f"{names[row.street_code]}市民服务中心",
        )
    assert halls["phone"].str.fullmatch(r"010-[68]\d{7}").all()
    streets = geo.streets.set_index("code").geometry
    assert shapely.within(halls.geometry.to_numpy(), streets[halls["street_code"]].to_numpy()).all()


def test_landmarks_are_unique_and_inside_their_streets(geo: Geography) -> None:
    marks = geo.landmarks
    assert 200 <= len(marks) <= 500
    assert marks["code"].is_unique and marks["name"].is_unique
    kinds = {
        "school",
        "hospital",
        "market",
        "station",
        "compound",
        "construction_site",
        "park",
        "office",
    }
    assert set(marks["kind"]) == kinds
    streets = geo.streets.set_index("code").geometry
    assert shapely.within(marks.geometry.to_numpy(), streets[marks["street_code"]].to_numpy()).all()
    addresses = pd.concat([marks["address"], geo.service_halls["address"]])
    assert addresses.is_unique
    stations = set(marks.loc[marks["kind"] == "station", "name"])
    for name in (
        "西单",
        "西四",
        "平安里",
        "新街口",
        "阜成门",
        "车公庄",
        "动物园",
        "南礼士路",
        "复兴门",
        "长椿街",
        "宣武门",
        "菜市口",
        "广安门内",
        "牛街",
        "陶然亭",
        "虎坊桥",
        "珠市口",
        "前门",
    ):
        assert f"{name}站" in stations, name


def test_zoo_wholesale_markets_cluster_in_zhanlanlu(geo: Geography) -> None:
    marks = geo.landmarks.to_crs(UTM).set_index("name")
    zoo = gpd.GeoSeries(gpd.points_from_xy([116.3390], [39.9390]), crs=4326).to_crs(UTM).iloc[0]
    for name in (
        "天皓成服装批发市场",
        "金开利德服装批发市场",
        "众合服装批发市场",
        "世纪天乐国际服装批发市场",
    ):
        assert marks.loc[name, "street_code"] == "110102009", name
        assert marks.loc[name, "kind"] == "market"
        assert marks.geometry[name].distance(zoo) < 700.0, name


def test_famous_landmarks_are_near_where_they_really_are(
    geo: Geography, real: gpd.GeoDataFrame
) -> None:
    marks = geo.landmarks.to_crs(UTM).set_index("name")
    streets = real.to_crs(UTM)
    moved_in = 0
    for name, _, (lng, lat), street_code in FAMOUS_LANDMARKS:
        place = gpd.GeoSeries(gpd.points_from_xy([lng], [lat]), crs=4326).to_crs(UTM).iloc[0]
        assert marks.geometry[name].distance(place) < 400.0, name
        # The street named for it; else the real street its place is in; else (just outside
        # the district) the nearest one.
        dist = streets.distance(place)
        if street_code:
            want = street_code
        elif dist.min() == 0.0:
            want = dist.idxmin()
        else:
            assert dist.min() < 300.0, name
            want, moved_in = dist.idxmin(), moved_in + 1
        assert marks.loc[name, "street_code"] == want, name
    assert moved_in >= 1  # 前门站 stands just beyond the real boundary


def test_every_famous_lane_is_on_the_map(geo: Geography) -> None:
    lanes = geo.lanes.to_crs(UTM)
    assert {n for n, _ in FAMOUS_LANES} <= set(lanes["name"])
    for name, pts in FAMOUS_LANES:
        line = gpd.GeoSeries([shapely.LineString(pts)], crs=4326).to_crs(UTM).iloc[0]
        # Nudged sideways or moved in from beyond the real boundary: by 300 m at most.
        pieces = lanes.geometry[lanes["name"] == name].to_numpy()
        ends = shapely.points(shapely.get_coordinates(pieces))
        assert shapely.distance(ends, line).max() <= 300.0, name


def test_addresses_resolve_to_their_point_on_the_lane(geo: Geography) -> None:
    lanes = geo.lanes
    points = pd.concat([geo.landmarks, geo.service_halls])
    for row in points.itertuples():
        m = ADDRESS.match(row.address)
        assert m, row.address
        number = int(m["number"])
        odd = number % 2 == 1
        lo = lanes["left_from"] if odd else lanes["right_from"]
        hi = lanes["left_to"] if odd else lanes["right_to"]
        match = lanes[(lanes["name"] == m["lane"]) & (lo <= number) & (number <= hi)]
        assert len(match) == 1, row.address
        lane = match.iloc[0]
        assert lane["street_code"] == row.street_code, row.address
        first, last = (
            (lane["left_from"], lane["left_to"]) if odd else (lane["right_from"], lane["right_to"])
        )
        expected = house_number_point(lane.geometry, int(first), int(last), number)
        assert shapely.equals_exact(expected, row.geometry, tolerance=0.0), row.address
        assert lane.geometry.distance(row.geometry) < 1e-6, row.address


def test_generation_is_fast(timed: tuple[Geography, float]) -> None:
    # About 2.5 s of CPU on the 2-core dev machine.
    assert timed[1] < 10.0


def test_written_files_round_trip_and_still_tile(geo: Geography, tmp_path: Path) -> None:
    paths = write_geography(geo, tmp_path / "a")
    assert {k: p.name for k, p in paths.items()} == {k: f"{k}.geojson" for k in LAYERS}
    again = write_geography(generate_geography(42), tmp_path / "b")
    for layer in LAYERS:
        assert paths[layer].read_bytes() == again[layer].read_bytes(), layer
    read = {layer: pyogrio.read_dataframe(paths[layer]) for layer in LAYERS}
    for layer in LAYERS:
        original, back = getattr(geo, layer), read[layer]
        assert list(back.columns) == COLUMNS[layer], layer
        assert back.crs.to_epsg() == 4326
        for col in COLUMNS[layer][:-1]:
            assert list(back[col]) == list(original[col]), (layer, col)
        assert shapely.equals_exact(
            back.geometry.to_numpy(), original.geometry.to_numpy(), tolerance=0.0
        ).all(), layer
    _assert_nested(Geography(**read))
