"""The gazetteer loaded from a district's real-format files on the tiny district: a GeoJSON of
roads, a GCJ-02 CSV of 门牌 with Chinese headers and its mapping, an XLSX of places with
aliases; bad rows kept with their reasons, a bad file loading nothing; `build`.

The tiny district (tests/district.py): street 110102001 spans 116.30–116.32, its
communities 001 (116.30–116.31) and 002 (116.31–116.32), grids 001 (39.90–39.91) and 002
(39.91–39.92) in each: the expected codes below are read off that layout by hand."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from etl import coords
from etl.gazetteer import GazetteerFileError, build, import_file
from etl.geocoder import Geocoder
from etl.jobs import EtlError

ROAD = "测试胡同"  # 116.305 → 116.315 along 39.905: odd numbers on its left (north)
M_PER_DEG = 111_320.0


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    kx = math.cos(math.radians(39.9))
    return math.hypot((a[0] - b[0]) * kx, a[1] - b[1]) * M_PER_DEG


def _roads_file(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
        encoding="utf-8",
    )
    return path


def _road(name: str, coords_: list[Any], **props: Any) -> dict[str, Any]:
    kind = "MultiLineString" if isinstance(coords_[0][0], list) else "LineString"
    return {
        "type": "Feature",
        "properties": {"名称": name, **props},
        "geometry": {"type": kind, "coordinates": coords_},
    }


def _load_road(connection: sa.Connection, tmp_path: Path) -> None:
    path = _roads_file(
        tmp_path / "roads.geojson",
        [
            _road(
                ROAD,
                [[116.305, 39.905], [116.315, 39.905]],
                左侧起始门牌=1,
                左侧终止门牌=9,
                右侧起始门牌=2,
                右侧终止门牌=10,
            )
        ],
    )
    report = import_file(connection, path, "road")
    assert (report.inserted, report.rejected) == (1, 0)


def _plates_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["标准地址", "X", "Y", "备注"])
        writer.writerows(rows)
    return path


def _gcj(lng: float, lat: float) -> list[str]:
    x, y = coords.wgs84_to_gcj02(lng, lat)
    return [f"{x:.8f}", f"{y:.8f}"]


MAPPING = {"columns": {"address": "标准地址", "lng": "X", "lat": "Y"}, "crs": "GCJ-02"}


def test_plates_from_a_gcj02_csv_with_chinese_headers_and_a_mapping(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    _load_road(connection, tmp_path)
    mapping = tmp_path / "plates.yaml"
    mapping.write_text(yaml.safe_dump(MAPPING, allow_unicode=True), encoding="utf-8")
    path = _plates_csv(
        tmp_path / "门牌.csv",
        [
            [f"北京市西城区{ROAD}3号", *_gcj(116.3072, 39.9051), "好"],
            [f"{ROAD}甲5号", *_gcj(116.3091, 39.9052), "好"],
            [f"{ROAD}7号", "", "", "缺坐标"],
            [ROAD, *_gcj(116.31, 39.905), "无门牌号"],
            [f"{ROAD}9号", "abc", "39.9", "坐标不是数字"],
            [f"{ROAD}11号", "0", "0", "零点"],
            [f"{ROAD}三号", *_gcj(116.3, 39.9), "重复"],
        ],
    )
    report = import_file(connection, path, "address", mapping)
    assert report.status == "succeeded"
    assert (report.read, report.inserted, report.rejected) == (7, 2, 5)
    assert report.reasons == {
        "missing_coordinates": 1,
        "bad_address": 1,
        "bad_coordinates": 1,
        "outside": 1,
        "duplicate": 1,
    }
    kept = connection.execute(
        sa.text("select row_number, reason, raw from etl_rejects where run_id = :r order by 1"),
        {"r": report.run_id},
    ).all()
    assert [r.row_number for r in kept] == [4, 5, 6, 7, 8]  # header is row 1
    assert kept[0].raw["备注"] == "缺坐标"  # the whole row is kept, not only mapped columns

    build(connection)
    geocoder = Geocoder.load(connection)
    m = geocoder.geocode(f"西城区{ROAD}3号")[0]
    assert m.level == "address_point" and m.score == 1.0
    assert _metres((m.lng, m.lat), (116.3072, 39.9051)) < 0.05  # type: ignore[arg-type]
    assert (m.grid_code, m.community_code, m.street_code) == (
        "110102001001001",
        "110102001001",
        "110102001",
    )
    assert geocoder.geocode(f"{ROAD}甲5号")[0].level == "address_point"
    # no plate for 5 itself, nor for 7: interpolated on the left (north) of the line
    seven = geocoder.geocode(f"{ROAD}7号")[0]
    assert seven.level == "interpolated"
    # the 4th of five odd numbers: (3 + 0.5) / 5 of the way from 116.305 to 116.315
    assert seven.lng == pytest.approx(116.312, abs=1e-6)
    assert 0 < (seven.lat - 39.905) * M_PER_DEG <= 20  # type: ignore[operator]
    assert seven.grid_code == "110102001002001"
    assert geocoder.geocode(f"{ROAD}10号")[0].lat < 39.905  # type: ignore[operator]


def test_a_file_without_the_mapped_columns_loads_nothing(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    path = tmp_path / "plates.csv"
    pd.DataFrame({"地址": [f"{ROAD}3号"], "经度X": ["116.3"]}).to_csv(path, index=False)
    before = connection.execute(sa.text("select count(*) from gazetteer_addresses")).scalar()
    with pytest.raises(EtlError, match="缺少必需的列"):
        import_file(connection, path, "address")
    after = connection.execute(sa.text("select count(*) from gazetteer_addresses")).scalar()
    assert after == before
    status = connection.execute(
        sa.text("select status, error from etl_runs order by id desc limit 1")
    ).one()
    assert status.status == "failed" and "缺少必需的列" in status.error


def test_a_mapping_naming_a_missing_column_or_an_unknown_system_is_refused(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    path = _plates_csv(tmp_path / "p.csv", [[f"{ROAD}3号", *_gcj(116.3072, 39.9051), ""]])
    with pytest.raises(EtlError, match="没有列"):
        import_file(connection, path, "address", {"columns": {"lng": "经度"}})
    with pytest.raises(EtlError, match="坐标系"):
        import_file(connection, path, "address", {"crs": "火星坐标系统2"})
    with pytest.raises(GazetteerFileError, match="kind"):
        import_file(connection, path, "plates")


def test_importing_the_same_file_again_replaces_its_rows_and_counts_what_changed(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    _load_road(connection, tmp_path)
    path = _plates_csv(tmp_path / "p.csv", [[f"{ROAD}3号", *_gcj(116.3072, 39.9051), ""]])
    import_file(connection, path, "address", MAPPING)
    _plates_csv(
        path,
        [[f"{ROAD}3号", *_gcj(116.3075, 39.9051), ""], [f"{ROAD}5号", *_gcj(116.31, 39.9051), ""]],
    )
    again = import_file(connection, path, "address", MAPPING)
    assert (again.inserted, again.updated, again.unchanged) == (1, 1, 0)
    same = import_file(connection, path, "address", MAPPING)
    assert (same.inserted, same.updated, same.unchanged) == (0, 0, 2)
    got = connection.execute(
        sa.text("select number, ST_X(geom) from gazetteer_addresses order by number")
    ).all()
    assert [r[0] for r in got] == [3, 5]
    assert got[0][1] == pytest.approx(116.3075, abs=1e-6)


def test_places_with_aliases_from_a_workbook(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    path = tmp_path / "poi.xlsx"
    pd.DataFrame(
        {
            "编号": ["S1", "S2", "S3"],
            "名称": ["北京市第八十八中学", "测试菜市场", ""],
            "别名": ["八十八中；88中", "", "无名"],
            "类别": ["学校", "市场", "学校"],
            "经度": [116.333, 116.311, 116.3],
            "纬度": [39.915, 39.901, 39.9],
        }
    ).to_excel(path, index=False)
    report = import_file(connection, path, "poi")
    assert (report.inserted, report.rejected, report.reasons) == (2, 1, {"missing_name": 1})
    again = import_file(connection, path, "poi")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    other = tmp_path / "poi2.xlsx"
    pd.read_excel(path, dtype=str, engine="openpyxl").to_excel(other, index=False)
    taken = import_file(connection, other, "poi")  # the same codes, another file
    assert (taken.inserted, taken.reasons) == (0, {"duplicate": 2, "missing_name": 1})
    build(connection)
    geocoder = Geocoder.load(connection)
    for text in ("北京市第八十八中学", "八十八中附近", "西城区88中"):
        m = geocoder.geocode(text)[0]
        assert (m.level, m.matched) == ("landmark", "北京市第八十八中学"), text
        assert (m.lng, m.lat) == pytest.approx((116.333, 39.915))
        # 116.333, 39.915: street 110102003 (116.32–116.34), its community 002 (116.33–), grid 002
        assert (m.grid_code, m.street_code) == ("110102003002002", "110102003")
    assert geocoder.geocode("八十八中附近")[0].qualifiers == ("附近",)


def test_roads_with_parity_pieces_and_bad_rows(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    path = _roads_file(
        tmp_path / "roads.geojson",
        [
            _road(  # two pieces, every number on the left (连续编号), none on the right
                "测试大街",
                [[[116.301, 39.915], [116.309, 39.915]], [[116.311, 39.915], [116.319, 39.915]]],
                左侧起始门牌=1,
                左侧终止门牌=4,
                左侧单双="全",
            ),
            _road(
                "错单双路",
                [[116.30, 39.91], [116.31, 39.91]],
                左侧起始门牌=1,
                左侧终止门牌=9,
                左侧单双="双",
            ),
            _road("错范围路", [[116.30, 39.91], [116.31, 39.91]], 左侧起始门牌=9, 左侧终止门牌=1),
            _road("", [[116.30, 39.91], [116.31, 39.91]]),
        ],
    )
    report = import_file(connection, path, "road")
    assert report.reasons == {"bad_parity": 1, "bad_range": 1, "missing_name": 1}
    again = import_file(connection, path, "road")
    assert (again.inserted, again.unchanged, again.rejected) == (0, 1, 3)
    assert connection.execute(
        sa.text("select count(*), min(street_code) from gazetteer_roads where name = '测试大街'")
    ).one() == (2, "110102001")
    geocoder = Geocoder.load(connection)
    two = geocoder.geocode("测试大街2号")[0]  # 'all': 2 is on the left, the second of four
    assert two.level == "interpolated" and two.lat > 39.915  # type: ignore[operator]
    assert geocoder.geocode("错单双路3号")[0].level == "failed"


def test_build_derives_names_and_keeps_imports(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    _load_road(connection, tmp_path)
    first = build(connection)
    again = build(connection)
    assert (first.names, first.roads) == (again.names, again.roads)
    names = set(
        connection.execute(
            sa.text("select name from gazetteer_names where code = '110102001001'")
        ).scalars()
    )
    assert {"测试001社区", "测试001社区居委会", "测试001", "测试001居委会"} <= names
    assert (
        connection.execute(
            sa.text("select count(*) from gazetteer_roads where source <> 'build'")
        ).scalar()
        == 1
    )
    geocoder = Geocoder.load(connection)
    # 测试001社区 is the name of a community in each street: ambiguous until a street says
    m = geocoder.geocode("测试001社区")[0]
    assert m.ambiguous and m.candidates == ("110102001", "110102003") and m.lng is None
    m = geocoder.geocode("测试003街道测试001社区")[0]
    assert (m.level, m.community_code, m.street_code) == ("community", "110102003001", "110102003")


def test_the_demos_files_are_written_again_when_the_boundaries_are_newer(tmp_path: Path) -> None:
    import os

    from etl.demo.gazetteer import ADDRESSES, ADDRESSES_MAPPING, POIS, POIS_MAPPING, _stale

    assert _stale(tmp_path)  # none written yet
    for name in ("grids.geojson", "lanes.geojson", "landmarks.geojson"):
        (tmp_path / name).write_text("{}", encoding="utf-8")
        os.utime(tmp_path / name, (1_000, 1_000))
    for name in (ADDRESSES, ADDRESSES_MAPPING, POIS, POIS_MAPPING):
        (tmp_path / name).write_text("", encoding="utf-8")
        os.utime(tmp_path / name, (2_000, 2_000))
    assert not _stale(tmp_path)
    os.utime(tmp_path / "lanes.geojson", (3_000, 3_000))  # the demo generated again
    assert _stale(tmp_path)


def test_an_empty_gazetteer_loads_and_fails_politely(connection: sa.Connection) -> None:
    geocoder = Geocoder.load(connection)
    m = geocoder.geocode("西城区砖塔胡同23号")[0]
    assert m.level == "failed" and m.message
