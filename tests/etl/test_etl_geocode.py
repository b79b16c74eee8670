"""Address-only rows are geocoded in the ETL run (etl/geocode.py, etl/transform.py `_locate`).

Expected places are computed here (tests/etl_fixtures.py: the lane numbering by shapely,
the grid by shapely containment), never read back from the geocoder.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import shapely
import sqlalchemy as sa

from etl.demo.extracts import CASE_COLUMNS
from etl.geocode import geocode_addresses
from etl.geocoder import Geocoder
from etl.jobs import RunReport, run_file
from etl.place import fill_in, placer_for
from tests.district import request_row, write_csv
from tests.etl_fixtures import (
    CROSSING_LANE,
    CROSSING_PIECE,
    LANDMARK,
    STREET_A,
    STREET_B,
    TEST_LANE,
    codes_at,
    community_box,
    gazetteer,
    stored,
)

pytestmark = pytest.mark.usefixtures("district")


def address_only(source_id: str, address: str, **values: str) -> dict[str, str]:
    return request_row(source_id, 地址=address, 经度="", 纬度="", 坐标系="", **values)


def _rejects(conn: sa.Connection, run_id: int) -> dict[str, dict[str, object]]:
    rows = conn.execute(
        sa.text("select source_id, reason, message, retryable from etl_rejects where run_id = :r"),
        {"r": run_id},
    ).mappings()
    return {r["source_id"]: dict(r) for r in rows}


def _run(conn: sa.Connection, path: Path, **kw: object) -> RunReport:
    report = run_file(conn, path, **({"layer": "service_requests"} | kw))  # type: ignore[arg-type]
    assert report.read == report.inserted + report.updated + report.unchanged + report.rejected
    return report


def test_address_only_rows_are_placed_with_their_level_and_only_the_codes_it_allows(
    connection: sa.Connection, tmp_path: Path
) -> None:
    # The tiny district's community names repeat in both streets: one gets a name of its own.
    connection.execute(
        sa.text("update communities set name = '百万庄社区' where code = '110102003002'")
    )
    gazetteer(connection)
    rows = [
        request_row("C1"),  # coordinates: as before
        address_only("G1", "北京市西城区测试胡同5号"),
        # (0, 0) is no coordinate; full-width digits and 号院 as call-takers write them
        request_row("G2", 地址="测试胡同１２号院", 经度="0", 纬度="0"),
        address_only("G3", "西城区测试小学"),
        address_only("G4", "西城区百万庄社区居委会"),
        address_only("G5", "测试003街道"),
        address_only("G6", "测试胡同五号附近"),  # the same house as G1
        address_only("F1", "不存在路99号"),
        address_only("F2", "跨界街"),  # a road through both streets, no number
        address_only("G7", "测试003街道测试001社区"),  # a community name both streets have
        address_only("F3", "测试001社区"),  # … without its street
        address_only("G8", "测试003街道跨界街"),  # the road, in the street named
    ]
    report = _run(connection, write_csv(tmp_path / "r.csv", rows))
    got = stored(connection)
    assert set(got) == {"C1", "G1", "G2", "G3", "G4", "G5", "G6", "G7", "G8"}
    assert got["C1"]["geocode_quality"] == "coordinates"

    # A house on the lane: its point by the lane's numbering, its grid by containment.
    for source_id, number in [("G1", 5), ("G2", 12), ("G6", 5)]:
        x, y = TEST_LANE.point(number)
        row = got[source_id]
        assert row["geocode_quality"] == "interpolated", source_id
        assert (row["x"], row["y"]) == pytest.approx((x, y), abs=5e-6)
        assert (row["street_code"], row["community_code"], row["grid_code"]) == codes_at(x, y)
    # A landmark: at its point, in its grid.
    x, y = LANDMARK[4]
    assert got["G3"]["geocode_quality"] == "landmark"
    assert (got["G3"]["x"], got["G3"]["y"]) == pytest.approx((x, y), abs=1e-9)
    assert (got["G3"]["street_code"], got["G3"]["community_code"], got["G3"]["grid_code"]) == (
        codes_at(x, y)
    )
    # A community: its community and street, no grid; a point inside the community.
    g4 = got["G4"]
    assert g4["geocode_quality"] == "community"
    assert (g4["street_code"], g4["community_code"], g4["grid_code"]) == (
        STREET_B,
        "110102003002",
        None,
    )
    assert community_box("110102003002").contains(shapely.Point(g4["x"], g4["y"]))
    assert g4["near_boundary"] is False
    g7 = got["G7"]
    assert (g7["geocode_quality"], g7["street_code"], g7["community_code"], g7["grid_code"]) == (
        "community",
        STREET_B,
        "110102003001",
        None,
    )
    assert community_box("110102003001").contains(shapely.Point(g7["x"], g7["y"]))
    # A road: on the road's piece in the street named; no grid (a road is no house).
    g8 = got["G8"]
    assert (g8["geocode_quality"], g8["street_code"], g8["grid_code"]) == ("road", STREET_B, None)
    assert CROSSING_PIECE.line.distance(shapely.Point(g8["x"], g8["y"])) < 1e-9
    # A street: the street only.
    g5 = got["G5"]
    assert g5["geocode_quality"] == "street"
    assert (g5["street_code"], g5["community_code"], g5["grid_code"]) == (STREET_B, None, None)

    rejects = _rejects(connection, report.run_id)
    assert {k: (v["reason"], v["retryable"]) for k, v in rejects.items()} == {
        "F1": ("geocode_failed", True),
        "F2": ("geocode_ambiguous", True),
        "F3": ("geocode_ambiguous", True),
    }
    for source_id, address in [("F1", "不存在路99号"), ("F2", "跨界街")]:
        message = str(rejects[source_id]["message"])
        assert address in message and any("\u4e00" <= ch <= "\u9fff" for ch in message)
    for source_id in ("F2", "F3"):
        message = str(rejects[source_id]["message"])
        assert STREET_A in message and STREET_B in message
    assert CROSSING_LANE.name in str(rejects["F2"]["message"])

    # Filling in finer codes later (an admin import) gives a community or street match no
    # grid: its point stands in for the area.
    fill_in(connection, placer_for(connection))
    after = stored(connection)
    assert (after["G4"]["grid_code"], after["G5"]["community_code"]) == (None, None)
    assert after["G1"]["grid_code"] == codes_at(*TEST_LANE.point(5))[2]

    assert report.geocoded == {
        "interpolated": 3,
        "landmark": 1,
        "community": 2,
        "street": 1,
        "road": 1,
    }
    warnings = connection.execute(
        sa.text("select warnings from etl_runs where id = :r"), {"r": report.run_id}
    ).scalar_one()
    assert warnings["geocoded:interpolated"] == 3 and warnings["reject:geocode_failed"] == 1
    assert any("geocoded" in line and "interpolated 3" in line for line in report.lines())


def test_every_layer_with_an_address_is_geocoded_enforcement_cases_too(
    connection: sa.Connection, tmp_path: Path
) -> None:
    gazetteer(connection)
    path = tmp_path / "cases.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CASE_COLUMNS)
        writer.writeheader()
        for case_id, address in [("Z1", "测试胡同7号"), ("Z2", "测试小学"), ("Z3", "无名巷1号")]:
            writer.writerow(
                {c: "" for c in CASE_COLUMNS}
                | {
                    "案件编号": case_id,
                    "立案时间": "2026-11-02 09:00:00",
                    "案件类型": "占道经营",
                    "地址": address,
                    "状态": "立案",
                }
            )
    report = _run(connection, path, layer="enforcement_cases")
    got = stored(connection, "enforcement_cases")
    x, y = TEST_LANE.point(7)
    assert got["Z1"]["geocode_quality"] == "interpolated"
    assert (got["Z1"]["x"], got["Z1"]["y"]) == pytest.approx((x, y), abs=5e-6)
    assert (got["Z1"]["street_code"], got["Z1"]["community_code"], got["Z1"]["grid_code"]) == (
        codes_at(x, y)
    )
    assert got["Z2"]["grid_code"] == codes_at(*LANDMARK[4])[2]
    assert report.reasons == {"geocode_failed": 1}


def test_an_empty_gazetteer_keeps_address_rows_as_retryable_failures(
    connection: sa.Connection, tmp_path: Path
) -> None:
    report = _run(connection, write_csv(tmp_path / "r.csv", [address_only("A", "测试胡同5号")]))
    assert report.inserted == 0
    assert {
        k: (v["reason"], v["retryable"]) for k, v in _rejects(connection, report.run_id).items()
    } == {"A": ("geocode_failed", True)}


class _Counting:
    """The real geocoder, counting what it is asked."""

    def __init__(self, geocoder: Geocoder) -> None:
        self.geocoder = geocoder
        self.asked: list[list[str]] = []

    def best_many(self, texts: list[str]) -> list[object]:
        self.asked.append(list(texts))
        return list(self.geocoder.best_many(texts))


def test_the_batch_spread_over_the_rows_equals_geocoding_each_row(
    connection: sa.Connection,
) -> None:
    gazetteer(connection)
    geocoder = Geocoder.load(connection)
    texts = [f"测试胡同{n}号" for n in range(1, 25)] + ["测试小学", "测试003街道", "跨界街", "无名"]
    rng = random.Random(5)
    rows = [rng.choice(texts) for _ in range(500)] + [None, None]
    counting = _Counting(geocoder)
    todo = np.array([r is not None for r in rows]) & (np.arange(len(rows)) % 7 != 0)
    found = geocode_addresses(counting, pa.array(rows, pa.string()), todo)
    # One batch, each distinct text once.
    assert len(counting.asked) == 1
    asked = counting.asked[0]
    assert sorted(asked) == sorted({r for r, t in zip(rows, todo, strict=True) if t})
    for i, text in enumerate(rows):
        if not todo[i]:
            assert found.level[i] is None and np.isnan(found.lng[i]) and not found.failed[i]
            continue
        assert text is not None
        best = geocoder.geocode(text)[0]
        placed = best.level != "failed" and not best.ambiguous
        assert found.failed[i] == (best.level == "failed")
        assert found.ambiguous[i] == best.ambiguous
        assert found.level[i] == (best.level if placed else None)
        if placed:
            assert (found.lng[i], found.lat[i]) == (best.lng, best.lat)
            assert found.codes["street_code"][i] == best.street_code
        else:
            assert found.message[i] and np.isnan(found.lng[i])
