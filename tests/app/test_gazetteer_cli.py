"""`blockdata gazetteer import|build|stats` and `blockdata geocode`, as a clerk runs them
(each commits: a database of its own with the tiny district). Expected codes are read off the
tiny district's layout (tests/district.py): street 110102001 spans 116.30–116.32, its
community 001 116.30–116.31, grid 001 39.90–39.91."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from app.cli import main
from app.db import make_engine
from etl import coords
from tests.etl.committed import committed_database

ROAD = "测试胡同"


@pytest.fixture(scope="module")
def own_url(server_url: str) -> Iterator[str]:
    with committed_database(server_url, "blockdata_gazetteer_cli") as url:
        yield url


def _cli(url: str, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": url})


def _scalar(url: str, sql: str) -> Any:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def _files(tmp: Path) -> tuple[Path, Path, Path]:
    roads = tmp / "roads.geojson"
    roads.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {
                            "道路名称": ROAD,
                            "左起": 1,
                            "左止": 9,
                            "右起": 2,
                            "右止": 10,
                        },
                        "geometry": {
                            "type": "LineString",
                            "coordinates": [[116.305, 39.905], [116.315, 39.905]],
                        },
                    }
                ],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    plates = tmp / "门牌.csv"
    x, y = coords.wgs84_to_gcj02(116.3072, 39.9051)
    with plates.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["街路巷", "门牌", "东坐标", "北坐标"])
        w.writerow([ROAD, "3号", f"{x:.8f}", f"{y:.8f}"])
        w.writerow([ROAD, "五号", "", ""])  # no coordinates: rejected
    mapping = tmp / "门牌.yaml"
    mapping.write_text(
        yaml.safe_dump(
            {
                "columns": {"road": "街路巷", "number": "门牌", "lng": "东坐标", "lat": "北坐标"},
                "crs": "gcj02",
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    return roads, plates, mapping


def test_import_build_stats_and_geocode(own_url: str, tmp_path: Path) -> None:
    roads, plates, mapping = _files(tmp_path)
    got = _cli(own_url, "gazetteer", "import", str(roads), "--kind", "road")
    assert got.exit_code == 0, got.output
    assert "新增 inserted 1 " in got.output

    got = _cli(own_url, "gazetteer", "import", str(plates), "--kind", "address", "--mapping",
               str(mapping))  # fmt: skip
    assert got.exit_code == 0, got.output
    run_id = _scalar(own_url, "select max(id) from etl_runs")
    assert "新增 inserted 1 " in got.output and "missing_coordinates 1" in got.output
    assert f"blockdata etl rejects {run_id}" in got.output

    got = _cli(own_url, "gazetteer", "build")
    assert got.exit_code == 0 and "地名库已生成" in got.output, got.output

    got = _cli(own_url, "gazetteer", "stats", "--json")
    assert got.exit_code == 0, got.output
    counts = json.loads(got.output)
    for table in ("gazetteer_names", "gazetteer_roads", "gazetteer_addresses", "gazetteer_places"):
        assert sum(counts[table].values()) == _scalar(own_url, f"select count(*) from {table}")
    assert counts["gazetteer_addresses"] == {"file:门牌.csv": 1}

    got = _cli(own_url, "geocode", f"北京市西城区{ROAD}3号附近")
    assert got.exit_code == 0, got.output
    first = got.output.splitlines()[0]
    assert first.startswith("门牌 address_point 1.00 116.307200,39.905100 测试胡同3号")
    assert "网格 110102001001001" in first and "限定词 附近" in first

    got = _cli(own_url, "geocode", f"{ROAD}7号", "--json")
    assert got.exit_code == 0, got.output
    best = json.loads(got.output)[0]
    assert best["level"] == "interpolated" and best["grid_code"] == "110102001002001"
    assert best["lng"] == pytest.approx(116.312, abs=1e-6)

    got = _cli(own_url, "geocode", "火星路1号")
    assert got.exit_code == 1 and "未匹配 failed" in got.output


def test_geocode_a_file_of_addresses(own_url: str, tmp_path: Path) -> None:
    roads = _files(tmp_path)[0]
    _cli(own_url, "gazetteer", "import", str(roads), "--kind", "road")
    _cli(own_url, "gazetteer", "build")
    source = tmp_path / "诉求.csv"
    with source.open("w", encoding="gb18030", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["工单编号", "地址"])
        w.writerows([["A1", f"{ROAD}7号"], ["A2", "测试001街道"], ["A3", "火星路1号"], ["A4", ""]])
    out = tmp_path / "out.csv"
    got = _cli(own_url, "geocode", "--file", str(source), "--column", "地址", "--out", str(out))
    assert got.exit_code == 0, got.output
    assert "已写入 wrote 4 行" in got.output and "未匹配 failed 2" in got.output
    with out.open(encoding="utf-8-sig") as fh:
        written = list(csv.DictReader(fh))
    assert [r["工单编号"] for r in written] == ["A1", "A2", "A3", "A4"]
    assert [r["level"] for r in written] == ["interpolated", "street", "failed", "failed"]
    assert written[0]["grid_code"] == "110102001002001"
    assert written[1]["street_code"] == "110102001" and written[1]["grid_code"] == ""
    assert written[2]["lng"] == "" and written[2]["message"]
    assert abs(float(written[0]["lng"]) - 116.312) < 1e-6 and len(written[0]["lng"]) <= 12
    assert {r["ambiguous"] for r in written} == {""}

    to_stdout = _cli(own_url, "geocode", "--file", str(source))
    assert to_stdout.exit_code == 0 and to_stdout.output.count("\n") == 5


def test_bad_invocations_say_why_in_chinese(own_url: str, tmp_path: Path) -> None:
    _, plates, _ = _files(tmp_path)
    got = _cli(own_url, "geocode")
    assert got.exit_code == 2 and "请给出一个地址" in got.output
    got = _cli(own_url, "geocode", "--file", str(plates), "--column", "地址")
    assert got.exit_code == 1 and "文件中没有列" in got.output
    before = _scalar(own_url, "select count(*) from gazetteer_addresses")
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: {lng: 经度}\n", encoding="utf-8")
    got = _cli(own_url, "gazetteer", "import", str(plates), "--kind", "address", "--mapping",
               str(bad))  # fmt: skip
    assert got.exit_code == 1 and "没有列" in got.output
    assert _scalar(own_url, "select count(*) from gazetteer_addresses") == before
