"""layers.queries.features and layers.queries.export with a plain connection, no Flask app:
pages of features read as the district and as a commander (access.scope), and an export,
checked against independent SQL (ST_X / ST_Y rounded to the published precision)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import flask
import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from etl.jobs import run_file
from layers import get_layer
from layers.queries import access, export, features, slices
from tests.district import request_row, write_csv

DECIMALS = 7  # docs/benchmarks.md, "GeoJSON precision"
A, B = "110102001", "110102003"
NOW = dt.datetime(2026, 11, 18, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def precise(connection: sa.Connection, district: Any, tmp_path: Path) -> int:
    """30 requests over both streets, their coordinates given to 11 decimals."""
    rows = [
        request_row(
            f"P{i:03d}",
            经度=f"{116.30151236567 + (i % 10) * 0.0038:.11f}",
            纬度=f"{39.90157656321 + (i // 10) * 0.003:.11f}",
            诉求类别=("噪声扰民", "环境卫生")[i % 2],
        )
        for i in range(30)
    ]
    report = run_file(connection, write_csv(tmp_path / "p.csv", rows), layer="service_requests")
    assert report.inserted == 30, report.reasons
    return report.inserted


def _truth(conn: sa.Connection, where: str = "true", **binds: Any) -> dict[int, list[float]]:
    """id → [lon, lat] rounded to DECIMALS, read as the owner, before any scope."""
    rows = conn.execute(
        sa.text(f"select id, ST_X(geom), ST_Y(geom) from service_requests where {where}"),
        binds,
    )
    return {r[0]: [round(r[1], DECIMALS), round(r[2], DECIMALS)] for r in rows}


def _walk(conn: sa.Connection, collection: str, limit: int, **conds: Any) -> list[dict[str, Any]]:
    """Every feature of `collection`, page after page of `limit`."""
    c = features.find(collection)
    layer = c.layer
    where = [layer.table.c[k] == v for k, v in conds.items()]
    out: list[dict[str, Any]] = []
    after = None
    while True:
        page, after = features.page(conn, c, where, limit, after)
        assert len(page) <= limit
        out += [json.loads(text) for text in page]
        if after is None:
            return out
        assert len(page) == limit and out[-1]["id"] == after


def test_the_precision_is_the_documented_one() -> None:
    assert features.COORDINATE_DECIMALS == DECIMALS


@pytest.mark.parametrize(("zone", "street"), [(access.DISTRICT, None), (A, A), (B, B)])
def test_pages_as_district_and_commander_hold_every_row_of_the_zone(
    connection: sa.Connection, precise: int, zone: str, street: str | None
) -> None:
    truth = _truth(connection, "street_code = :s" if street else "true", s=street)
    assert 0 < len(truth) <= precise
    if street is not None:
        assert len(truth) < precise  # a commander sees less than the district
    access.scope(connection, zone)
    got = _walk(connection, "service_requests", 4)
    assert [f["id"] for f in got] == sorted(truth)
    for f in got:
        assert f["type"] == "Feature" and f["geometry"]["type"] == "Point"
        assert f["geometry"]["coordinates"] == truth[f["id"]], f["id"]
        assert set(f["properties"]) == {x.name for x in get_layer("service_requests").published}
    assert not flask.has_app_context()


def test_a_condition_narrows_the_pages(connection: sa.Connection, precise: int) -> None:
    truth = _truth(connection, "category = '噪声扰民' and street_code = :s", s=A)
    access.scope(connection, A)
    got = _walk(connection, "service_requests", 3, category="噪声扰民")
    assert [f["id"] for f in got] == sorted(truth) and truth


def test_coordinates_are_rounded_to_the_precision(connection: sa.Connection, precise: int) -> None:
    """The stored points have 11 decimals (the 8th a 6: rounding and cutting differ); the
    features have DECIMALS, rounded."""
    raw = connection.execute(sa.text("select ST_X(geom) from service_requests")).scalars().all()
    assert all(round(x, 11) != round(x, DECIMALS) for x in raw)
    c = features.find("service_requests")
    page, _ = features.page(connection, c, [], 100)
    for f in map(json.loads, page):
        lon, lat = f["geometry"]["coordinates"]
        assert len(repr(lon).split(".")[1]) <= DECIMALS and repr(lon).endswith("4")
        assert len(repr(lat).split(".")[1]) <= DECIMALS and repr(lat).endswith("6")


def test_one_feature_and_none(connection: sa.Connection, precise: int) -> None:
    truth = _truth(connection)
    c = features.find("service_requests")
    key = min(truth)
    text = features.one(connection, c, key)
    assert text is not None
    assert json.loads(text)["geometry"]["coordinates"] == truth[key]
    assert features.one(connection, c, max(truth) + 1000) is None


def test_a_mixed_layer_is_two_collections_and_its_name_a_hint() -> None:
    ids = [c.id for c in features.collections() if c.layer.name == "renovation_projects"]
    assert ids == ["renovation_projects_lines", "renovation_projects_areas"]
    with pytest.raises(features.NotFound) as caught:
        features.find("renovation_projects")
    assert caught.value.status == 404
    assert "renovation_projects_lines" in caught.value.message
    assert caught.value.body()["collection"] == "renovation_projects"


@pytest.mark.parametrize(("zone", "street"), [(access.DISTRICT, None), (A, A)])
def test_an_export_without_flask_holds_the_same_features(
    connection: sa.Connection, precise: int, tmp_path: Path, zone: str, street: str | None
) -> None:
    truth = _truth(connection, "street_code = :s" if street else "true", s=street)
    access.scope(connection, zone)
    chosen = slices.parse_slice(get_layer("service_requests"), MultiDict())
    path = tmp_path / "out.geojson"
    prov = export.export_file(connection, chosen, "geojson", path, "tester", NOW)
    body = json.loads(path.read_text("utf-8"))
    # Read after the export, whose transaction now writes times in the district's zone.
    paged = {f["id"]: f for f in _walk(connection, "service_requests", 7)}
    assert prov["rows"] == len(truth) == len(body["features"])
    assert body["provenance"]["generated_at"] == "2026-11-18T20:00:00+08:00"
    exported = {f["id"]: f for f in body["features"]}
    assert sorted(exported) == sorted(truth)
    for key, f in exported.items():
        assert f["geometry"]["coordinates"] == truth[key]
        assert f == paged[key]  # the OGC page's feature, byte for byte the same object
    assert not flask.has_app_context()


def test_features_and_export_load_neither_flask_nor_app() -> None:
    probe = (
        "import sys, layers.queries.features, layers.queries.export\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'app')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
