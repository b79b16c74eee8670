"""The geocoder on the demo district and its gazetteer: each match level, ambiguous and failing
inputs, fuzzy names, qualifiers, the batch, reverse geocoding, and the reader role.

Expected values come from the layers and files loaded (tests/gaz_fixtures.py): a lane's own
geometry and ranges through the demo generator's `house_number_point`, the 门牌 file's own
coordinates, the reference list of communities, PostGIS's point-in-polygon — never from the
geocoder's answers."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from typing import Any

import pytest
import shapely
import sqlalchemy as sa
from rapidfuzz import fuzz

from app.db import make_engine
from etl import coords
from etl.demo.geography import DATA_DIR, house_number_point
from etl.geocoder import LEVELS, Geocoder, Match, reverse
from tests.gaz_fixtures import Demo, committed_demo, rows

M_PER_DEG = 111_320.0


@pytest.fixture(scope="module")
def demo(server_url: str) -> Iterator[Demo]:
    with committed_demo(server_url, "blockdata_geocoder") as d:
        yield d


@pytest.fixture(scope="module")
def geocoder(demo: Demo) -> Geocoder:
    engine = make_engine(demo.url)
    try:
        with engine.connect() as conn:
            return Geocoder.load(conn)
    finally:
        engine.dispose()


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    kx = math.cos(math.radians((a[1] + b[1]) / 2))
    return math.hypot((a[0] - b[0]) * kx, a[1] - b[1]) * M_PER_DEG


def units_at(demo: Demo, lng: float, lat: float) -> tuple[str, str, str] | None:
    """(grid, community, street) of the grid covering the point, by PostGIS."""
    found = rows(
        demo.url,
        "select code, community_code, street_code from grids "
        "where ST_Covers(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) order by code limit 1",
        x=lng,
        y=lat,
    )
    return None if not found else (found[0][0], found[0][1], found[0][2])


def assert_placed(demo: Demo, m: Match) -> None:
    """A point match carries the codes of the grid that covers its point, and no more."""
    assert m.lng is not None and m.lat is not None
    assert (m.grid_code, m.community_code, m.street_code) == units_at(demo, m.lng, m.lat)


# --- address point and interpolated ----------------------------------------------------


def test_a_plate_in_the_gazetteer_is_an_address_point_at_the_files_coordinates(
    demo: Demo, geocoder: Geocoder
) -> None:
    with (demo.directory / "gazetteer_addresses.csv").open(encoding="utf-8-sig") as fh:
        plates = list(csv.DictReader(fh))
    assert len(plates) > 1000
    for row in plates[:: len(plates) // 40]:
        lng, lat = coords.gcj02_to_wgs84(float(row["X"]), float(row["Y"]))
        m = geocoder.geocode(row["标准地址"])[0]
        assert m.level == "address_point", (row, m)
        assert m.score == 1.0
        assert m.matched == f"{row['街路巷']}{row['门牌号']}"
        assert metres((m.lng, m.lat), (lng, lat)) < 0.05  # type: ignore[arg-type]
        assert_placed(demo, m)


def _straight_unlisted_lane(demo: Demo) -> Any:
    """A straight lane of one piece whose plates are not in the gazetteer."""
    found = rows(
        demo.url,
        """select l.code, l.name, l.street_code, l.left_from, l.left_to, l.right_from,
                  l.right_to
             from lanes l
            where ST_NPoints(l.geom) = 2 and l.left_to - l.left_from >= 6
              and (select count(*) from lanes o where o.name = l.name) = 1
              and not exists (select 1 from gazetteer_addresses a where a.road = l.name)
            order by l.code limit 1""",
    )
    assert found, "the demo has a straight lane without plates"
    return found[0]


def test_a_number_on_a_lane_without_plates_is_interpolated_on_its_side(
    demo: Demo, geocoder: Geocoder
) -> None:
    lane = _straight_unlisted_lane(demo)
    line = demo.geo.lanes.set_index("code").geometry[lane.code]
    (x0, y0), (x1, y1) = line.coords[0], line.coords[-1]
    for number, lo, hi, side in (
        (lane.left_from + 2, lane.left_from, lane.left_to, 1),  # odd: left
        (lane.right_to, lane.right_from, lane.right_to, -1),  # even: right
    ):
        truth = house_number_point(line, lo, hi, number)
        m = geocoder.geocode(f"北京市西城区{lane.name}{number}号")[0]
        assert m.level == "interpolated", m
        assert m.score == 1.0 and m.matched == f"{lane.name}{number}号"
        # beside the plate's place on the centre line, on the side its parity says
        assert 3.0 <= metres((m.lng, m.lat), (truth.x, truth.y)) <= 20.0  # type: ignore[arg-type]
        cross = (x1 - x0) * (m.lat - y0) - (y1 - y0) * (m.lng - x0)
        assert cross * side > 0
        assert_placed(demo, m)


def test_chinese_numerals_full_width_digits_and_prefixes_read_alike(
    geocoder: Geocoder, demo: Demo
) -> None:
    lane = _straight_unlisted_lane(demo)
    n = lane.left_from + 2
    plain = geocoder.geocode(f"{lane.name}{n}号")[0]
    full_width = str(n).translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})
    for text in (
        f"北京市西城区{lane.name}{full_width}号",
        f"西城区 {lane.name} {n} 号",
        f"{lane.name}{_chinese(n)}号",
    ):
        m = geocoder.geocode(text)[0]
        assert (m.level, m.lng, m.lat, m.grid_code) == (
            plain.level,
            plain.lng,
            plain.lat,
            plain.grid_code,
        ), text


def _chinese(n: int) -> str:
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else digits[tens]) + "十" + ("" if ones == 0 else digits[ones])


def test_compound_building_unit_and_qualifiers_keep_the_plate(
    geocoder: Geocoder, demo: Demo
) -> None:
    lane = _straight_unlisted_lane(demo)
    n = lane.left_from + 2
    plain = geocoder.geocode(f"{lane.name}{n}号")[0]
    m = geocoder.geocode(f"西城区{lane.name}{n}号院3号楼2单元附近")[0]
    assert (m.level, m.lng, m.lat) == (plain.level, plain.lng, plain.lat)
    assert m.qualifiers == ("附近",)
    m = geocoder.geocode(f"{lane.name}{n}号对面")[0]
    assert m.qualifiers == ("对面",) and m.level == "interpolated"


# --- road: no number, out of range, ambiguous --------------------------------------------


def test_a_lane_without_a_number_is_a_road_match_with_its_street_only(
    demo: Demo, geocoder: Geocoder
) -> None:
    lane = _straight_unlisted_lane(demo)
    m = geocoder.geocode(lane.name)[0]
    assert m.level == "road" and m.matched == lane.name
    assert m.street_code == lane.street_code
    assert m.community_code is None and m.grid_code is None  # never more than it has
    assert m.score < 1.0 and not m.ambiguous


def test_a_number_outside_the_ranges_falls_back_to_the_road_and_says_so(
    demo: Demo, geocoder: Geocoder
) -> None:
    lane = _straight_unlisted_lane(demo)
    far = max(lane.left_to, lane.right_to) + 100
    m = geocoder.geocode(f"{lane.name}{far}号")[0]
    assert m.level == "road" and m.grid_code is None
    assert f"{far}号" in m.message and "范围" in m.message


def _split_road(demo: Demo) -> tuple[str, list[str]]:
    found = rows(
        demo.url,
        "select name, array_agg(distinct street_code order by street_code) from lanes "
        "group by name having count(distinct street_code) > 1 order by name limit 1",
    )
    assert found, "the demo has a road through two streets"
    return found[0][0], list(found[0][1])


def test_a_road_through_two_streets_without_a_number_is_ambiguous(
    demo: Demo, geocoder: Geocoder
) -> None:
    name, streets = _split_road(demo)
    m = geocoder.geocode(name)[0]
    assert m.level == "road" and m.ambiguous
    assert list(m.candidates) == streets
    assert m.lng is None and m.lat is None and m.street_code is None
    assert "街道" in m.message


def test_a_street_named_in_front_settles_an_ambiguous_road(demo: Demo, geocoder: Geocoder) -> None:
    name, streets = _split_road(demo)
    street_names = dict(rows(demo.url, "select code, name from streets"))
    for code in streets:
        for text in (f"{street_names[code]}{name}", f"西城区{street_names[code]}{name}"):
            m = geocoder.geocode(text)[0]
            assert m.level == "road" and not m.ambiguous, text
            assert m.street_code == code and m.lng is not None


def test_a_number_in_another_street_than_the_text_names_says_so(
    demo: Demo, geocoder: Geocoder
) -> None:
    lane = _straight_unlisted_lane(demo)
    n = lane.left_from + 2
    streets = dict(rows(demo.url, "select code, name from streets order by code"))
    other = next(code for code in streets if code != lane.street_code)
    plain = geocoder.geocode(f"{lane.name}{n}号")[0]
    assert plain.street_code == lane.street_code and plain.message == ""
    right = geocoder.geocode(f"{streets[lane.street_code]}{lane.name}{n}号")[0]
    assert (right.score, right.message) == (1.0, "")
    m = geocoder.geocode(f"{streets[other]}{lane.name}{n}号")[0]
    assert (m.level, m.lng, m.lat, m.street_code) == (
        "interpolated",
        plain.lng,
        plain.lat,
        lane.street_code,
    )
    assert m.score < plain.score
    assert streets[other] in m.message and streets[lane.street_code] in m.message


# --- landmark, community, street ----------------------------------------------------------


def test_a_landmark_by_name_or_alias_with_its_qualifier(demo: Demo, geocoder: Geocoder) -> None:
    with (demo.directory / "gazetteer_pois.csv").open(encoding="utf-8-sig") as fh:
        pois = [r for r in csv.DictReader(fh) if r["别名"]]
    assert pois
    marks = demo.geo.landmarks.set_index("name")
    for poi in pois[:10]:
        truth = marks.geometry[poi["名称"]]
        for text in (f"{poi['名称']}附近", f"西城区{poi['别名'].split('；')[0]}"):
            m = geocoder.geocode(text)[0]
            assert m.level == "landmark", (text, m)
            assert m.matched == poi["名称"]
            assert metres((m.lng, m.lat), (truth.x, truth.y)) < 0.5  # type: ignore[arg-type]
            assert_placed(demo, m)
        assert geocoder.geocode(f"{poi['名称']}附近")[0].qualifiers == ("附近",)
        near = geocoder.geocode(f"{poi['名称']}3号门")[0]  # a gate of it: the place
        assert (near.level, near.matched) == ("landmark", poi["名称"]) and near.score < 1.0


def _communities() -> list[dict[str, str]]:
    with (DATA_DIR / "xicheng_communities.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_official_community_name_with_or_without_suffix_resolves_to_its_street(
    geocoder: Geocoder,
) -> None:
    communities = _communities()
    assert len(communities) > 200
    wrong = []
    for c in communities:
        official = c["name"]
        short = official.removesuffix("居委会")
        stem = short.removesuffix("社区")
        for text in (official, short, stem):
            m = geocoder.geocode(text)[0]
            if (m.level, m.community_code, m.street_code) != (
                "community",
                c["code"],
                c["street_code"],
            ):
                wrong.append((text, m.level, m.community_code, m.street_code))
            assert m.grid_code is None
    assert wrong == []


def test_fuyoujie_nan_in_three_forms(geocoder: Geocoder) -> None:
    code = next(c["code"] for c in _communities() if c["name"] == "府右街南社区居委会")
    for text in ("府右街南社区居委会", "府右街南社区", "府右街南", "北京市西城区府右街南社区"):
        m = geocoder.geocode(text)[0]
        assert (m.level, m.community_code, m.matched) == ("community", code, "府右街南社区")


def test_a_street_by_its_long_or_short_name(demo: Demo, geocoder: Geocoder) -> None:
    for code, name in rows(demo.url, "select code, name from streets order by code"):
        for text in (name, f"北京市西城区{name}", f"{name}办事处"):
            m = geocoder.geocode(text)[0]
            assert (m.level, m.street_code) == ("street", code), (text, m)
            assert m.community_code is None and m.grid_code is None
            assert m.lng is not None
            assert units_at(demo, m.lng, m.lat)[2] == code  # type: ignore[arg-type, index]
    assert geocoder.geocode("广内街道")[0].matched == "广安门内街道"


def test_an_unknown_place_after_a_street_gives_the_street_only(
    demo: Demo, geocoder: Geocoder
) -> None:
    code, name = rows(demo.url, "select code, name from streets order by code limit 1")[0]
    m = geocoder.geocode(f"{name}火星路999号")[0]
    assert (m.level, m.street_code, m.community_code, m.grid_code) == ("street", code, None, None)


# --- failed, fuzzy -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "火星路1号", "12345", "北京市西城区", "!!!"])
def test_nothing_known_fails_and_says_why(geocoder: Geocoder, text: str) -> None:
    found = geocoder.geocode(text)
    assert len(found) == 1
    m = found[0]
    assert m.level == "failed" and m.score == 0.0
    assert m.lng is None and m.lat is None and m.street_code is None
    assert m.message


def _near_pair(demo: Demo) -> tuple[str, str]:
    """Two lane names one character apart (a fuzzy match of one is near the other)."""
    names = sorted({str(n) for n in demo.geo.lanes["name"] if len(str(n)) >= 5})
    for a in names:
        for b in names:
            if a < b and len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1:
                return a, b
    raise AssertionError("no pair of lane names one character apart")


def test_fuzzy_never_beats_an_exact_name(demo: Demo, geocoder: Geocoder) -> None:
    a, b = _near_pair(demo)
    assert fuzz.ratio(a, b) >= 75
    for name in (a, b):
        best = geocoder.geocode(name)[0]
        assert best.matched == name and not best.message.startswith("模糊")
    exact = geocoder.geocode(a)[0]
    # a typo: one character of `a` changed to one no lane name has there
    i = next(i for i in range(len(a)) if a[i] != b[i])
    typo = a[:i] + "龘" + a[i + 1 :]
    fuzzy = geocoder.geocode(typo)
    assert fuzzy[0].level == "road" and fuzzy[0].matched in (a, b)
    assert fuzzy[0].score < exact.score
    assert all(m.score < 1.0 for m in fuzzy)


def test_a_misspelt_lane_with_a_number_is_placed_with_a_lower_score(
    demo: Demo, geocoder: Geocoder
) -> None:
    lane = _straight_unlisted_lane(demo)
    if len(lane.name) < 5:
        pytest.fail("the chosen lane's name is too short for one typo to stay near")
    n = lane.left_from + 2
    exact = geocoder.geocode(f"{lane.name}{n}号")[0]
    typo = lane.name[:-2] + "龘" + lane.name[-1]
    m = geocoder.geocode(f"{typo}{n}号")[0]
    assert (m.level, m.lng, m.lat) == ("interpolated", exact.lng, exact.lat)
    assert 0 < m.score < exact.score


# --- the interface ------------------------------------------------------------------------


def test_results_are_best_first_and_limited(geocoder: Geocoder, demo: Demo) -> None:
    name = rows(demo.url, "select name from streets order by code limit 1")[0][0]
    lane = _straight_unlisted_lane(demo)
    found = geocoder.geocode(f"{name}{lane.name}{lane.left_from}号", limit=5)
    ranks = [LEVELS.index(m.level) for m in found]
    assert ranks == sorted(ranks)
    assert len(geocoder.geocode(f"{name}{lane.name}{lane.left_from}号", limit=1)) == 1


def test_best_many_answers_each_text_as_geocode_and_equal_texts_once(
    geocoder: Geocoder, demo: Demo
) -> None:
    lane = _straight_unlisted_lane(demo)
    texts = [f"{lane.name}{lane.left_from}号", "府右街南", "火星路1号"] * 3
    got = geocoder.best_many(texts)
    assert [m.matched for m in got] == [geocoder.geocode(t)[0].matched for t in texts]
    assert got[0] is got[3] is got[6]


def test_reverse_gives_street_community_grid_and_nearest_lane(demo: Demo) -> None:
    grid = demo.geo.grids.iloc[len(demo.geo.grids) // 2]
    p = grid.geometry.representative_point()
    lanes = demo.geo.lanes
    nearest = lanes.iloc[int(shapely.distance(lanes.geometry.to_numpy(), p).argmin())]
    community = demo.geo.communities.set_index("code")["name"][grid["community_code"]]
    engine = make_engine(demo.url)
    try:
        with engine.connect() as conn:
            got = reverse(conn, p.x, p.y)
            outside = reverse(conn, 0.0, 0.0)
    finally:
        engine.dispose()
    assert got is not None and outside is None
    assert got["street"]["code"] == grid["street_code"]
    assert got["community"] == {"code": grid["community_code"], "name": community}
    assert got["grid"]["code"] == grid["code"]
    serial = int(str(grid["code"])[-3:])
    assert got["grid"]["label"] == f"{community} 第{serial}网格"
    assert got["grid"]["grid_officer"] == grid["grid_officer"]
    assert got["lane"]["code"] == nearest["code"]
    assert got["lane"]["lane_chief"] == nearest["lane_chief"]
    assert 0 <= got["lane"]["distance_m"] < 2000


def test_a_commanders_connection_loads_the_same_geocoder(demo: Demo, geocoder: Geocoder) -> None:
    """Through the reader role scoped to one street, the gazetteer is whole (another
    street's address is placed in that street, for the caller to drop), while reverse
    geocoding reads the zone-scoped layers and says nothing outside the zone."""
    grids = demo.geo.grids
    mine = grids.iloc[0]
    other = grids[grids["street_code"] != mine["street_code"]].iloc[0]
    lane = _straight_unlisted_lane(demo)
    texts = ["府右街南社区", f"{lane.name}{lane.left_from}号", "展览路街道", "火星路1号"]
    engine = make_engine(demo.url)
    try:
        with engine.connect() as conn:
            conn.execute(
                sa.text(
                    "select set_config('role', 'blockdata_reader', true), "
                    "set_config('blockdata.zone', :zone, true)"
                ),
                {"zone": mine["street_code"]},
            )
            scoped = Geocoder.load(conn)
            inside = reverse(conn, *mine.geometry.representative_point().coords[0])
            outside = reverse(conn, *other.geometry.representative_point().coords[0])
            conn.rollback()
    finally:
        engine.dispose()
    assert scoped.best_many(texts) == geocoder.best_many(texts)
    assert inside is not None and inside["grid"]["code"] == mine["code"]
    assert outside is None


def test_match_as_dict_is_the_api_shape() -> None:
    m = Match("q", "street", 1.0, 1.0, 2.0, "110102001", None, None, "西长安街街道")
    assert set(m.as_dict()) == {
        "query", "level", "score", "lng", "lat", "street_code", "community_code",
        "grid_code", "matched", "ambiguous", "candidates", "qualifiers", "message",
    }  # fmt: skip
    assert m.as_dict()["candidates"] == []
