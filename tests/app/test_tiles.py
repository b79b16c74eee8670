"""Vector tiles on the demo district: exact counts, attributes, sizes, GDAL and mapbox-vector-tile;
their versions, cache and seeding on the tiny district.

A committed database of the demo district (loaded through the real ETL) is read through the
Flask test client; tiles are decoded with mapbox_vector_tile and with GDAL's MVT driver. The
change-marking triggers and the seeder are tried on the tiny hand-made district of tests/etl,
in the rolled-back test transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import mapbox_vector_tile
import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from app import db, tile_cache, tile_seed
from app.cli import main
from app.db import make_engine
from etl.aggregates import refresh_request_aggregates
from etl.jobs import run_file
from layers import get_layer
from layers.aggregates import CELL_DLAT, CELL_DLNG, CELL_ORIGIN, period_after, period_start
from layers.queries import tiles
from tests.district import STREETS, request_row, write_csv
from tests.helpers import add_user, login
from tests.plugins.ogc import add_account, live_app

OGRINFO = shutil.which("ogrinfo") or "ogrinfo"  # installed by scripts/system-deps.sh --gdal
LAYER = get_layer("service_requests")
BEIJING = ZoneInfo("Asia/Shanghai")  # the district's (the default BLOCKDATA_TZ)
TILE_BYTES = 500 * 1024
ZOOMS = range(10, 19)


@pytest.fixture(scope="module")
def tiles_url(demo_url: str) -> str:
    """This module's own committed demo database (test_ogc's fixture, built per module)."""
    return demo_url


@pytest.fixture(scope="module")
def engine(tiles_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(tiles_url)
    yield eng
    eng.dispose()


def _app(url: str, **config: Any) -> Iterator[Flask]:
    app = live_app(url, TESTING=True, **config)
    yield app
    app.extensions["blockdata.engine"].dispose()


@pytest.fixture(scope="module")
def district_user(tiles_url: str) -> int:
    uid: int = add_account(tiles_url, "tiles-district")[0]
    return uid


@pytest.fixture(scope="module")
def tiles_app(tiles_url: str) -> Iterator[Flask]:
    """Default settings: raw tiles up to MAX_RAW_POINTS points."""
    yield from _app(tiles_url)


@pytest.fixture(scope="module")
def small_app(tiles_url: str) -> Iterator[Flask]:
    """Aggregates above 200 points a tile, so that the small demo has aggregated zooms."""
    yield from _app(tiles_url, TILE_MAX_RAW_POINTS=200)


@pytest.fixture(scope="module")
def client(tiles_app: Flask, district_user: int) -> FlaskClient:
    return login(tiles_app.test_client(), district_user)


@pytest.fixture(scope="module")
def small(small_app: Flask, district_user: int) -> FlaskClient:
    return login(small_app.test_client(), district_user)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def district_tiles(conn: sa.Connection, z: int) -> list[tuple[int, int]]:
    x0, y0, x1, y1 = conn.exec_driver_sql(
        "select ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
        "from (select ST_Extent(geom) e from streets) s"
    ).one()
    tx0, ty1 = tile_of(x0, y0, z)
    tx1, ty0 = tile_of(x1, y1, z)
    return [(x, y) for x in range(tx0, tx1 + 1) for y in range(ty0, ty1 + 1)]


def in_tile(z: int, x: int, y: int, where: str = "true") -> str:
    """SQL counting the requests inside tile z/x/y, half-open in EPSG:3857."""
    return (
        "select count(*) from service_requests r, "
        f"(select ST_TileEnvelope({z}, {x}, {y}) e) t, "
        "lateral (select ST_Transform(r.geom, 3857) p) m "
        "where ST_X(m.p) >= ST_XMin(t.e) and ST_X(m.p) < ST_XMax(t.e) "
        f"and ST_Y(m.p) >= ST_YMin(t.e) and ST_Y(m.p) < ST_YMax(t.e) and {where}"
    )


def fetch(client: FlaskClient, url: str, **headers: str) -> Any:
    response = client.get(url, headers=headers)
    assert response.status_code in (200, 304), (url, response.get_data(as_text=True)[:300])
    return response


def decode(data: bytes) -> list[dict[str, Any]]:
    layers = mapbox_vector_tile.decode(data)
    return list(layers[LAYER.name]["features"]) if layers else []


def busiest(conn: sa.Connection, z: int) -> tuple[int, int, int]:
    """The tile at zoom z holding the most requests, and how many."""
    n = 2**z
    x, y, count = conn.execute(
        sa.text(
            "select floor((ST_X(geom) + 180) / 360 * :n)::int x, "
            "floor((1 - asinh(tan(radians(ST_Y(geom)))) / pi()) / 2 * :n)::int y, count(*) c "
            "from service_requests group by 1, 2 order by 3 desc limit 1"
        ),
        {"n": n},
    ).one()
    return x, y, count


@pytest.mark.parametrize(
    ("url", "status", "named"),
    [
        ("/tiles/service_requests/23/0/0.pbf", 400, "'23'"),
        ("/tiles/service_requests/a/0/0.pbf", 400, "'a'"),
        ("/tiles/service_requests/-1/0/0.pbf", 400, "'-1'"),
        ("/tiles/service_requests/10/1024/0.pbf", 400, "'1024'"),
        ("/tiles/service_requests/10/0/1024.pbf", 400, "'1024'"),
        ("/tiles/service_requests/10/1.5/0.pbf", 400, "'1.5'"),
        ("/tiles/service_requests/0/1/0.pbf", 400, "'1'"),
        ("/tiles/service_requests/99999999999/0/0.pbf", 400, "'99999999999'"),
        ("/tiles/nope/10/0/0.pbf", 404, "'nope'"),
        ("/tiles/nope.json", 404, "'nope'"),
        ("/tiles/service_requests/14/13487/6207.pbf?nosuch=1", 400, "'nosuch'"),
        ("/tiles/service_requests/14/13487/6207.pbf?bbox=1,2,3,4", 400, "'bbox'"),
        ("/tiles/service_requests/14/13487/6207.pbf?datetime=2026-13-01", 400, "'2026-13-01'"),
        ("/tiles/service_requests/14/13487/6207.pbf?since=soon", 400, "'soon'"),
        ("/tiles/streets/14/13487/6207.pbf?datetime=2026-11-01", 400, "'2026-11-01'"),
        ("/tiles/service_requests.json?category=%00", 400, "\\x00"),
        ("/tiles/service_requests.json?description=x", 400, "'description'"),
    ],
)
def test_bad_tile_requests_are_json_errors(
    client: FlaskClient, url: str, status: int, named: str
) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert response.is_json
    assert named in response.get_json()["message"]


def test_tilejson(client: FlaskClient, engine: sa.Engine) -> None:
    body = fetch(client, "/tiles/service_requests.json?category=环境卫生&since=2026-01-01").json
    assert body["tilejson"] == "3.0.0"
    assert (body["minzoom"], body["maxzoom"]) == (LAYER.min_zoom, LAYER.max_zoom)
    (url,) = body["tiles"]
    assert url.startswith("http://localhost/tiles/service_requests/{z}/{x}/{y}.pbf?")
    assert "category=%E7%8E%AF%E5%A2%83%E5%8D%AB%E7%94%9F" in url and "since=2026-01-01" in url
    with engine.connect() as conn:
        x0, y0, x1, y1 = conn.exec_driver_sql(
            "select ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            "from (select ST_Extent(geom) e from service_requests) s"
        ).one()
    west, south, east, north = body["bounds"]
    assert west <= x0 and south <= y0 and east >= x1 and north >= y1
    assert east - west < 0.2 and north - south < 0.2
    (layer,) = body["vector_layers"]
    assert layer["id"] == "service_requests"
    fields = layer["fields"]
    assert {"category", "status", "received_at", "street_code", "count"} <= set(fields)
    assert not {"id", "description", "address", "etl_run_id", "source_id"} & set(fields)
    grids = fetch(client, "/tiles/grids.json").json["vector_layers"][0]["fields"]
    assert "code" in grids and "count" not in grids


def test_raw_tile_matches_the_database(client: FlaskClient, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        x, y, _ = busiest(conn, 16)
        rows = {
            r["id"]: r
            for r in conn.execute(
                sa.text(
                    "select id, category, status, street_code, received_at, "
                    "(ST_X(p) - ST_XMin(e)) / (ST_XMax(e) - ST_XMin(e)) * 4096 px, "
                    "(ST_YMax(e) - ST_Y(p)) / (ST_XMax(e) - ST_XMin(e)) * 4096 py "
                    "from service_requests, (select ST_TileEnvelope(16, :x, :y) e) t, "
                    "lateral (select ST_Transform(geom, 3857) p) m"
                ),
                {"x": x, "y": y},
            ).mappings()
        }
    # Inside the tile and its 256-pixel buffer (half a pixel of rounding either way).
    inside = {k for k, r in rows.items() if -255.5 < r["px"] < 4351.5 and -255.5 < r["py"] < 4351.5}
    near = {k for k, r in rows.items() if -256.5 < r["px"] < 4352.5 and -256.5 < r["py"] < 4352.5}
    response = fetch(client, f"/tiles/service_requests/16/{x}/{y}.pbf")
    assert response.mimetype == "application/vnd.mapbox-vector-tile"
    assert response.headers["X-Tile-Kind"] == "raw"
    features = decode(response.data)
    got = {f["id"] for f in features}
    assert len(got) == len(features) and inside <= got <= near and len(inside) > 10
    allowed = {f.name for f in tiles.tile_fields(LAYER)} - {"id"}
    for feature in features:
        props = feature["properties"]
        assert set(props) <= allowed and "count" not in props
        want = rows[feature["id"]]
        assert (props["category"], props["status"], props["street_code"]) == (
            want["category"],
            want["status"],
            want["street_code"],
        )
        assert props["received_at"] == want["received_at"].isoformat()
        assert feature["geometry"]["type"] == "Point"


def test_aggregated_tiles_count_exactly(small: FlaskClient, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        total = conn.exec_driver_sql("select count(*) from service_requests").scalar_one()
        for z in (10, 11, 12, 13):
            summed = 0
            for x, y in district_tiles(conn, z):
                response = fetch(small, f"/tiles/service_requests/{z}/{x}/{y}.pbf")
                features = decode(response.data)
                want = conn.exec_driver_sql(in_tile(z, x, y)).scalar_one()
                if want > 200 * 2 or z < 13:
                    assert response.headers["X-Tile-Kind"] == "aggregated", (z, x, y)
                if response.headers["X-Tile-Kind"] != "aggregated":
                    continue
                assert all(set(f["properties"]) == {"count"} for f in features)
                assert all(f["geometry"]["type"] == "Point" for f in features)
                got = sum(f["properties"]["count"] for f in features)
                assert got == want, (z, x, y)
                assert len(features) <= tiles.CELLS**2
                summed += got
            if z < 13:
                assert summed == total, z  # every request in exactly one tile per zoom


def test_filters_apply_to_tiles(small: FlaskClient, engine: sa.Engine) -> None:
    where = (
        "category = '环境卫生' and status = '已办结' "
        "and received_at >= '2026-06-01 00:00+08' and received_at < '2026-09-01 00:00+08'"
    )
    query = "category=环境卫生&status=已办结&datetime=2026-06-01/2026-08-31"
    with engine.connect() as conn:
        x, y = district_tiles(conn, 11)[0]
        for x, y in district_tiles(conn, 11):
            want = conn.exec_driver_sql(in_tile(11, x, y, where)).scalar_one()
            response = fetch(small, f"/tiles/service_requests/11/{x}/{y}.pbf?{query}")
            features = decode(response.data)
            if response.headers["X-Tile-Kind"] == "aggregated":
                assert sum(f["properties"]["count"] for f in features) == want
            else:
                assert all(f["properties"]["category"] == "环境卫生" for f in features)
        x, y, _ = busiest(conn, 15)
        raw = decode(fetch(small, f"/tiles/service_requests/15/{x}/{y}.pbf?street=110102003").data)
        assert all(f["properties"]["street_code"] == "110102003" for f in raw)


def test_worst_tile_of_the_test_data_is_under_500_kb(
    client: FlaskClient, engine: sa.Engine
) -> None:
    sizes = {}
    with engine.connect() as conn:
        for z in range(10, 19):
            x, y, _ = busiest(conn, z)
            response = fetch(client, f"/tiles/service_requests/{z}/{x}/{y}.pbf")
            sizes[z] = len(response.data)
            assert len(decode(response.data)) > 0
    assert max(sizes.values()) < TILE_BYTES, sizes


def test_dense_tiles_aggregate_and_sparse_ones_stay_raw(
    small: FlaskClient, engine: sa.Engine
) -> None:
    """The choice is per tile: at one zoom the dense tile aggregates, a sparse one is raw."""
    with engine.connect() as conn:
        z = next(z for z in range(16, 9, -1) if busiest(conn, z)[2] > 250)
        x, y, count = busiest(conn, z)
        response = fetch(small, f"/tiles/service_requests/{z}/{x}/{y}.pbf")
        assert response.headers["X-Tile-Kind"] == "aggregated"
        got = sum(f["properties"]["count"] for f in decode(response.data))
        assert got == conn.exec_driver_sql(in_tile(z, x, y)).scalar_one() == count
        sparse = [
            (tx, ty)
            for tx, ty in district_tiles(conn, z)
            if 0 < conn.exec_driver_sql(in_tile(z, tx, ty)).scalar_one() < 50
        ]
        assert sparse
        tx, ty = sparse[0]
        response = fetch(small, f"/tiles/service_requests/{z}/{tx}/{ty}.pbf")
        assert response.headers["X-Tile-Kind"] == "raw"
        assert all("id" in f and "count" not in f["properties"] for f in decode(response.data))


def test_polygon_line_and_mixed_layers(client: FlaskClient, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        lon, lat = conn.exec_driver_sql(
            "select ST_X(c), ST_Y(c) from (select ST_Centroid(ST_Extent(geom)) c from streets) s"
        ).one()
        kinds: dict[str, set[str]] = {}
        for name, z in (("grids", 13), ("lanes", 14), ("renovation_projects", 12), ("streets", 10)):
            for x, y in district_tiles(conn, z):
                data = fetch(client, f"/tiles/{name}/{z}/{x}/{y}.pbf").data
                layers = mapbox_vector_tile.decode(data)
                for feature in layers.get(name, {}).get("features", []):
                    kinds.setdefault(name, set()).add(feature["geometry"]["type"])
                    assert "etl_run_id" not in feature["properties"]
                assert len(data) < TILE_BYTES
    assert kinds["grids"] <= {"Polygon", "MultiPolygon"}
    assert kinds["lanes"] <= {"LineString", "MultiLineString"}
    assert {"LineString", "Polygon"} <= {
        k.removeprefix("Multi") for k in kinds["renovation_projects"]
    }
    x, y = tile_of(lon, lat, 9)
    below = fetch(client, f"/tiles/service_requests/9/{x}/{y}.pbf")
    assert below.data == b"" and below.headers["X-Tile-Kind"] == "empty"


def _ogr_features(path: Path, z: int, x: int, y: int) -> str:
    proc = subprocess.run(
        [
            str(OGRINFO),
            "-ro",
            "-al",
            *("-oo", f"Z={z}", "-oo", f"X={x}", "-oo", f"Y={y}", "-oo", "CLIP=NO"),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and "ERROR" not in proc.stderr, proc.stderr
    return proc.stdout


def test_gdal_reads_raw_and_aggregated_tiles(
    client: FlaskClient, small: FlaskClient, engine: sa.Engine, tmp_path: Path
) -> None:
    with engine.connect() as conn:
        x, y, _ = busiest(conn, 17)
        raw = fetch(client, f"/tiles/service_requests/17/{x}/{y}.pbf").data
        (tmp_path / "raw.pbf").write_bytes(raw)
        out = _ogr_features(tmp_path / "raw.pbf", 17, x, y)
        ids = [int(m) for m in re.findall(r"^  mvt_id \(Integer64\) = (\d+)$", out, re.M)]
        assert sorted(ids) == sorted(f["id"] for f in decode(raw)) and ids
        assert "category (String) = " in out
        points = re.findall(r"POINT \(([-0-9.e]+) ([-0-9.e]+)\)", out)
        first = ids[0]
        px, py = conn.execute(
            sa.text(
                "select ST_X(p), ST_Y(p) from (select ST_Transform(geom, 3857) p "
                "from service_requests where id = :id) s"
            ),
            {"id": first},
        ).one()
        pixel = 2 * math.pi * 6378137 / 2**17 / tiles.EXTENT
        gx, gy = map(float, points[0])
        assert abs(gx - px) <= pixel and abs(gy - py) <= pixel

        z = 11
        cx, cy = conn.exec_driver_sql(
            "select ST_X(c), ST_Y(c) "
            "from (select ST_Centroid(ST_Extent(geom)) c from service_requests) s"
        ).one()
        x, y = tile_of(cx, cy, z)
        agg = fetch(small, f"/tiles/service_requests/{z}/{x}/{y}.pbf")
        assert agg.headers["X-Tile-Kind"] == "aggregated"
        (tmp_path / "agg.pbf").write_bytes(agg.data)
        out = _ogr_features(tmp_path / "agg.pbf", z, x, y)
        counts = [int(c) for c in re.findall(r"count \(Integer(?:64)?\) = (\d+)", out)]
        assert counts and sum(counts) == conn.exec_driver_sql(in_tile(z, x, y)).scalar_one()
        assert sum(counts) == sum(f["properties"]["count"] for f in decode(agg.data))


def test_tile_cache_builds_each_tile_once() -> None:
    cache = tile_cache.TileCache(max_bytes=1000)
    calls = []

    def build() -> tuple[bytes, str]:
        calls.append(1)
        time.sleep(0.05)
        return b"x" * 100, "raw"

    threads = [threading.Thread(target=cache.get, args=("k", build)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    for i in range(20):
        cache.get(f"k{i}", lambda: (b"y" * 100, "raw"))
    assert cache._size <= 1000
    assert tile_cache.TileCache(0).get("k", lambda: (b"z", "raw")) == (b"z", "raw")


def test_processes_share_the_tiles_they_build(tmp_path: Path) -> None:
    """As two gunicorn workers do: what one built the other reads; the folder stays bounded."""
    one, other = tile_cache.TileCache(max_bytes=4000), tile_cache.TileCache(max_bytes=4000)
    for cache in (one, other):
        cache.share(tmp_path / "tiles", disk_bytes=4000)
    assert one.get("k1", lambda: (b"\x1a\x00tile", "aggregated")) == (b"\x1a\x00tile", "aggregated")
    assert other.get("k1", lambda: (b"never", "raw")) == (b"\x1a\x00tile", "aggregated")
    assert other.get("k2", lambda: (b"", "empty")) == (b"", "empty")
    assert one.get("k2", lambda: (b"never", "raw")) == (b"", "empty")
    for i in range(40):
        one.get(f"many{i}", lambda: (b"y" * 900, "raw"))
    files = [f for f in (tmp_path / "tiles").rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 4000 + 900
    assert not [f for f in files if f.name.endswith(".tmp")]


def test_the_disk_cache_keeps_what_was_read_last(tmp_path: Path) -> None:
    """Bounded by disk_bytes, least recently used out first: a file read since it was written
    outlives older ones that were not."""
    cache = tile_cache.TileCache(max_bytes=1000)
    cache.share(tmp_path / "tiles", disk_bytes=8000)
    assert (tmp_path / "tiles").stat().st_mode & 0o777 == 0o700
    for i in range(6):
        assert cache.seed(f"a{i:02d}", lambda: (b"x" * 1000, "raw"))
        time.sleep(0.01)
    assert not cache.seed("a00", lambda: (b"never", "raw"))
    assert cache.get("a00", lambda: (b"never", "raw")) == (b"x" * 1000, "raw")  # read: used
    for i in range(6, 12):
        cache.seed(f"a{i:02d}", lambda: (b"y" * 1000, "raw"))
        time.sleep(0.01)
    files, size = cache.disk_usage()
    assert size <= 8000 + 1010 and files < 12
    assert cache.has("a00") and not cache.has("a01")


def test_a_seeding_pass_is_recorded_for_operators(tmp_path: Path) -> None:
    report = tile_seed.SeedReport(built=3, full=True, seconds=1.5)
    report.district[18] = 5
    report.commanders[18] = 4
    tile_seed._record(tmp_path, report)
    status = json.loads((tmp_path / tile_seed.STATUS).read_text(encoding="utf-8"))
    assert status["tiles"] == 9 and status["built"] == 3 and status["full"] is True
    assert status["pid"] == os.getpid() and abs(status["finished_at"] - time.time()) < 60
    assert [p.name for p in tmp_path.iterdir()] == [tile_seed.STATUS]  # no temporary left


def test_one_process_holds_the_seeding_lock(tmp_path: Path) -> None:
    first = tile_seed.seed_lock(tmp_path)
    assert first is not None
    assert tile_seed.seed_lock(tmp_path) is None
    assert tile_seed.lock_holder(tmp_path) == str(os.getpid())
    first.close()
    again = tile_seed.seed_lock(tmp_path)
    assert again is not None
    again.close()


@pytest.mark.parametrize("z", [0, 5, 10, 11, 13, 14, 15, 17, 18])
def test_affected_tiles_are_those_whose_area_reads_the_change(z: int) -> None:
    """`affected` inverts `change_area`: brute force over the tiles around each change."""
    n = 2**z
    for cx, cy in [(215807, 99308), (215808, 99311), (0, 0), (262143, 131071), (131072, 65536)]:
        got = tile_seed.affected(z, [(cx, cy)])
        level = tiles.change_level(z)
        lx, ly = cx >> (18 - level), cy >> (18 - level)
        tx, ty = cx >> (18 - z), cy >> (18 - z)
        want = set()
        for x in range(max(tx - 3, 0), min(tx + 4, n)):
            for y in range(max(ty - 3, 0), min(ty + 4, n)):
                _, x0, x1, y0, y1 = tiles.change_area(z, x, y)
                if x0 <= lx <= x1 and y0 <= ly <= y1:
                    want.add((x, y))
        assert got == want and (tx, ty) in got, (z, cx, cy)


def test_only_idle_connections_are_pinged(tiles_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No round trip per request for pool_pre_ping: a connection idle past PING_AFTER_IDLE is
    pinged, and replaced if the server dropped it; a busier one fails once, then the pool is
    replaced."""
    engine = make_engine(tiles_url, pool_size=2)

    def pooled_pids() -> list[int]:
        conns = [engine.connect() for _ in range(2)]
        pids = [int(c.exec_driver_sql("select pg_backend_pid()").scalar_one()) for c in conns]
        for c in conns:
            c.close()
        with psycopg.connect(tiles_url, autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(pid) from unnest(%s::int[]) pid", (pids,))
            gone = "select not exists (select from pg_stat_activity where pid = any(%s))"
            while not admin.execute(gone, (pids,)).fetchone()[0]:  # type: ignore[index]
                time.sleep(0.01)
        return pids

    try:
        monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)
        dropped = pooled_pids()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("select pg_backend_pid()").scalar_one() not in dropped
        engine.dispose()
        monkeypatch.setattr(db, "PING_AFTER_IDLE", 3600.0)
        pooled_pids()
        with pytest.raises(sa.exc.OperationalError), engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("select 1").scalar_one() == 1
    finally:
        engine.dispose()


def test_the_version_holds_the_callers_zone(connection: sa.Connection) -> None:
    everyone = tiles.data_version(connection, LAYER)
    connection.execute(sa.text("select set_config('blockdata.zone', '110102001', true)"))
    one_street = tiles.data_version(connection, LAYER)
    connection.execute(sa.text("select set_config('blockdata.zone', '110102003', true)"))
    assert len({everyone, one_street, tiles.data_version(connection, LAYER)}) == 3


def _straddling(conn: sa.Connection) -> tuple[int, int, int, str]:
    """A tile holding requests of several streets, one of which has over 250 of them there."""
    for z in range(14, 9, -1):
        n = 2**z
        found = conn.execute(
            sa.text(
                "select floor((ST_X(geom) + 180) / 360 * :n)::int x, "
                "floor((1 - asinh(tan(radians(ST_Y(geom)))) / pi()) / 2 * :n)::int y, "
                "street_code from service_requests group by 1, 2, 3 having count(*) > 250 "
                "order by count(*) desc"
            ),
            {"n": n},
        ).all()
        for x, y, street in found:
            if conn.exec_driver_sql(in_tile(z, x, y, f"street_code <> '{street}'")).scalar_one():
                return z, x, y, street
    raise AssertionError("no tile straddles two streets")


def test_a_commander_gets_only_their_street_from_a_straddling_tile(
    tiles_app: Flask, small_app: Flask, client: FlaskClient, tiles_url: str, engine: sa.Engine
) -> None:
    """Raw and aggregated, after a district user's copy of the same tile was cached."""
    with engine.connect() as conn:
        z, x, y, mine = _straddling(conn)
        own = conn.exec_driver_sql(in_tile(z, x, y, f"street_code = '{mine}'")).scalar_one()
        total = conn.exec_driver_sql(in_tile(z, x, y)).scalar_one()
    assert 0 < own < total
    uid = add_account(tiles_url, f"tiles-commander-{mine}", "commander", mine)[0]
    url = f"/tiles/service_requests/{z}/{x}/{y}.pbf"
    for app in (tiles_app, small_app):
        district = login(app.test_client(), add_account(tiles_url, f"d-{id(app)}")[0])
        everything = fetch(district, url)
        commander = login(app.test_client(), uid)
        response = fetch(commander, url)
        assert response.headers["ETag"] != everything.headers["ETag"]
        features = decode(response.data)
        if response.headers["X-Tile-Kind"] == "aggregated":
            assert sum(f["properties"]["count"] for f in features) == own
            assert sum(f["properties"]["count"] for f in decode(everything.data)) == total
        else:
            assert {f["properties"]["street_code"] for f in features} == {mine}
            assert len(decode(everything.data)) > len(features) >= own
    assert {"raw", "aggregated"} == {
        fetch(login(a.test_client(), uid), url).headers["X-Tile-Kind"]
        for a in (tiles_app, small_app)
    }


def _reader(conn: sa.Connection, zone: str = "*") -> None:
    conn.execute(
        sa.text(
            "select set_config('role', :role, true), set_config('blockdata.zone', :zone, true)"
        ),
        {"role": db.READER_ROLE, "zone": zone},
    )


def _points(data: bytes) -> list[tuple[float, float, int]]:
    return sorted((*f["geometry"]["coordinates"], f["properties"]["count"]) for f in decode(data))


Feature = tuple[int, int, int]  # (x, y) in the tile's 4096 × 4096 grid, y down; count


def _cells(data: bytes) -> list[Feature]:
    """An aggregated tile's features as the MVT encodes them (y down, not flipped)."""
    layers = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})
    features = layers[LAYER.name]["features"] if layers else []
    return sorted((*f["geometry"]["coordinates"], f["properties"]["count"]) for f in features)


def _in_tile(lon: float, lat: float, z: int, x: int, y: int) -> tuple[float, float] | None:
    """The point's place in tile z/x/y as fractions of the tile (Web Mercator, y down), or
    None outside it (half-open: west and south edges in, east and north out)."""
    n = 2**z
    fx = (lon + 180) / 360 * n - x
    fy = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n - y
    return (fx, fy) if 0 <= fx < 1 and 0 < fy <= 1 else None


def _lattice(units: list[tuple[int, float, float]], z: int, x: int, y: int) -> list[Feature]:
    """What an aggregated tile holds for `units` (count, lon, lat): per cell of its 64 × 64
    lattice, the count and the count-weighted mean place, in 4096ths of the tile."""
    cells: dict[tuple[int, int], list[float]] = {}
    for n, lon, lat in units:
        fx, fy = _in_tile(lon, lat, z, x, y) or (-1.0, -1.0)
        assert fx >= 0, "a unit outside its tile"
        cell = cells.setdefault((math.floor(fx * 64), math.floor(fy * 64)), [0, 0.0, 0.0])
        cell[0] += n
        cell[1] += n * lon
        cell[2] += n * lat
    out = []
    for n, lons, lats in cells.values():
        fx, fy = _in_tile(lons / n, lats / n, z, x, y) or (-1.0, -1.0)
        out.append((round(fx * 4096), round(fy * 4096), int(n)))
    return sorted(out)


def _expected(
    engine: sa.Engine, where: str, z: int, x: int, y: int, zone: str = "*"
) -> tuple[list[Feature], list[Feature]]:
    """(the tile from 100 m cells, the tile from points) for the requests matching the SQL
    `where` that `zone` sees, computed here from the rows: from points, each point is a unit;
    from cells, a 100 m cell wholly inside the tile is one unit at its centre, and the
    points of a cell the tile's edges cut are one unit at their mean (layers.aggregates
    defines the cells: 100 m squares from CELL_ORIGIN)."""
    mine = "" if zone == "*" else f" and street_code = '{zone}'"
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f"select ST_X(geom), ST_Y(geom) from service_requests where ({where}){mine}"
        ).all()
    west, east = x / 2**z * 360 - 180, (x + 1) / 2**z * 360 - 180
    north = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / 2**z))))
    south = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 1) / 2**z))))
    inside = [(lon, lat) for lon, lat in rows if _in_tile(lon, lat, z, x, y)]
    by_cell: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for lon, lat in inside:
        cx = math.floor((lon - CELL_ORIGIN[0]) / CELL_DLNG)
        cy = math.floor((lat - CELL_ORIGIN[1]) / CELL_DLAT)
        by_cell.setdefault((cx, cy), []).append((lon, lat))
    units = []
    for (cx, cy), points in by_cell.items():
        w, s = CELL_ORIGIN[0] + cx * CELL_DLNG, CELL_ORIGIN[1] + cy * CELL_DLAT
        if w >= west and w + CELL_DLNG <= east and s >= south and s + CELL_DLAT <= north:
            units.append((len(points), w + CELL_DLNG / 2, s + CELL_DLAT / 2))
        else:
            lons, lats = zip(*points, strict=True)
            units.append((len(points), sum(lons) / len(lons), sum(lats) / len(lats)))
    return _lattice(units, z, x, y), _lattice([(1, lon, lat) for lon, lat in inside], z, x, y)


def _same(got: list[Feature], want: list[Feature]) -> bool:
    """The same features, each place within one unit of the grid (rounding)."""
    if len(got) != len(want):
        return False
    left = list(got)
    for wx, wy, wn in want:
        match = next(
            (g for g in left if g[2] == wn and abs(g[0] - wx) <= 1 and abs(g[1] - wy) <= 1), None
        )
        if match is None:
            return False
        left.remove(match)
    return True


CELL_FILTERS = [
    ("", "true"),
    ("category=环境卫生", "category = '环境卫生'"),
    (
        "datetime=2026-03-05/2026-08-31",
        "received_at >= '2026-03-05 00:00+08' and received_at < '2026-09-01 00:00+08'",
    ),
    (
        "since=2026-02-14&category=噪声扰民,环境卫生",
        "received_at >= '2026-02-14 00:00+08' and category in ('噪声扰民', '环境卫生')",
    ),
    ("until=2026-05-20", "received_at < '2026-05-21 00:00+08'"),
    (  # 新街口 and 什刹海 (and a code no street has): enough points for aggregated tiles
        "datetime=2026-01-01/..&until=2026-10-31&street=110102003,110102012,110102005",
        "received_at >= '2026-01-01 00:00+08' and received_at < '2026-11-01 00:00+08' "
        "and street_code in ('110102003', '110102012', '110102005')",
    ),
]


@pytest.mark.parametrize(("query", "where"), CELL_FILTERS)
def test_low_zoom_tiles_come_from_the_cell_aggregates_exactly(
    small: FlaskClient, engine: sa.Engine, query: str, where: str
) -> None:
    """Filters the aggregates answer: the tile is theirs (cells at their centres), and its
    counts are those of the points in the tile, half-open, as count(*) finds them."""
    used = 0
    with engine.connect() as conn:
        for z in (10, 11, 12, 13):
            for x, y in district_tiles(conn, z):
                response = fetch(small, f"/tiles/service_requests/{z}/{x}/{y}.pbf?{query}")
                want = conn.exec_driver_sql(in_tile(z, x, y, where)).scalar_one()
                if response.headers["X-Tile-Kind"] != "aggregated":
                    assert want <= 200 * 2, (z, x, y)
                    continue
                got = _cells(response.data)
                assert sum(n for _, _, n in got) == want, (query, z, x, y)
                from_cells, from_points = _expected(engine, where, z, x, y)
                assert _same(got, from_cells), (query, z, x, y)
                used += not _same(got, from_points)
    assert used  # the cells' centres are not the points' means: the aggregates were read


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("status=已办结", "status = '已办结'"),
        (
            "datetime=2026-06-01T08:00:00/2026-08-31",
            "received_at >= '2026-06-01 08:00+08' and received_at < '2026-09-01 00:00+08'",
        ),
        (
            "category=环境卫生,停车管理&department=城市管理部",
            "category in ('环境卫生', '停车管理') and department = '城市管理部'",
        ),
    ],
)
def test_filters_the_aggregates_cannot_answer_read_the_points(
    small: FlaskClient, engine: sa.Engine, query: str, where: str
) -> None:
    with engine.connect() as conn:
        # The district's busiest z11 tile for the filter, counted with its buffer (1/16 of
        # the tile each side, where a point is drawn in it): over 200 points, aggregated.
        busiest = max(
            (
                conn.exec_driver_sql(
                    "select count(*) from service_requests where ST_Transform(geom, 3857) "
                    f"&& ST_TileEnvelope(11, {tx}, {ty}, margin => 256.0 / 4096) and ({where})"
                ).scalar_one(),
                tx,
                ty,
            )
            for tx, ty in district_tiles(conn, 11)
        )
    count, x, y = busiest
    assert count > 200 * 1.1, busiest
    assert tiles.cell_filter(LAYER, MultiDict(parse_qsl(query)), BEIJING) is None
    response = fetch(small, f"/tiles/service_requests/11/{x}/{y}.pbf?{query}")
    assert response.headers["X-Tile-Kind"] == "aggregated"
    got = _cells(response.data)
    assert got and _same(got, _expected(engine, where, 11, x, y)[1])


def test_a_commanders_cell_tile_counts_only_their_street(tiles_url: str, engine: sa.Engine) -> None:
    street = "110102003"
    uid = add_account(tiles_url, f"tiles-cells-{street}", "commander", street)[0]
    aggregated = 0
    for app in _app(tiles_url, TILE_MAX_RAW_POINTS=20):
        commander = login(app.test_client(), uid)
        with engine.connect() as conn:
            for x, y in district_tiles(conn, 11):
                response = fetch(commander, f"/tiles/service_requests/11/{x}/{y}.pbf")
                want = conn.exec_driver_sql(in_tile(11, x, y, f"street_code = '{street}'"))
                count = want.scalar_one()
                if response.headers["X-Tile-Kind"] != "aggregated":
                    features = decode(response.data)  # with the points of the tile's buffer
                    assert {f["properties"]["street_code"] for f in features} <= {street}
                    assert len(features) >= count
                    continue
                got = _cells(response.data)
                assert sum(n for _, _, n in got) == count
                assert _same(got, _expected(engine, "true", 11, x, y, street)[0])
                aggregated += 1
    assert aggregated


def test_unrefreshed_aggregates_are_not_read(
    small: FlaskClient, engine: sa.Engine, tiles_url: str
) -> None:
    """A request written without refreshing the aggregates (as a busy intake may leave it):
    the tiles read the points until a refresh, and stay exact."""
    with engine.connect() as conn:
        lon, lat = conn.exec_driver_sql(
            "select ST_X(c), ST_Y(c) from (select ST_Centroid(ST_Extent(geom)) c "
            "from service_requests) s"
        ).one()
        x, y = tile_of(lon, lat, 11)
        url = f"/tiles/service_requests/11/{x}/{y}.pbf"
        before = fetch(small, url)
        assert _same(_cells(before.data), _expected(engine, "true", 11, x, y)[0])
        conn.exec_driver_sql(
            "insert into service_requests (source, source_id, received_at, category, "
            "street_code, geom) select source, 'UNREFRESHED', received_at, category, "
            "street_code, geom from service_requests where geom && "
            f"ST_Expand(ST_SetSRID(ST_MakePoint({lon}, {lat}), 4326), 0.01) limit 1"
        )
        conn.commit()
        try:
            stale = fetch(small, url)
            assert stale.headers["ETag"] != before.headers["ETag"]
            want = conn.exec_driver_sql(in_tile(11, x, y)).scalar_one()
            assert sum(n for _, _, n in _points(stale.data)) == want
            assert _same(_cells(stale.data), _expected(engine, "true", 11, x, y)[1])
        finally:
            conn.exec_driver_sql("delete from service_requests where source_id = 'UNREFRESHED'")
            refresh_request_aggregates(conn)
            conn.commit()
    after = fetch(small, url)
    assert _points(after.data) == _points(before.data)


def test_window_pieces_cover_each_day_once() -> None:
    lo, hi = dt.date(2024, 10, 1), dt.date(2027, 3, 31)  # whole quarters: open ends stop here
    every = [lo + dt.timedelta(days=i) for i in range((hi - lo).days + 1)]

    def days(piece: tuple[str, dt.date | None, dt.date | None]) -> list[dt.date]:
        """The days of the periods of `piece` that start within [lo, hi]."""
        span, first, last = piece
        out = []
        for start in every:
            if period_start(span, start) != start:
                continue
            if (first is None or start >= first) and (last is None or start <= last):
                length = (period_after(span, start) - start).days
                out += [start + dt.timedelta(days=k) for k in range(length)]
        return out

    bounds = [None, dt.date(2025, 1, 1), dt.date(2025, 3, 31), dt.date(2025, 11, 14)]
    bounds += [dt.date(2026, 1, 21), dt.date(2026, 6, 30), dt.date(2026, 12, 31)]
    for since in bounds:
        for until in bounds:
            for categories in (None, ("a",)):
                pieces = tiles.CellFilter(since, until, categories).pieces()
                covered = [d for piece in pieces for d in days(piece)]
                want = [
                    d
                    for d in every
                    if (since is None or d >= since) and (until is None or d <= until)
                ]
                assert sorted(covered) == want, (since, until, categories, pieces)
                if categories:
                    assert {span for span, _, _ in pieces} <= {"month", "day"}


def test_a_cached_tile_costs_two_statements(tiles_app: Flask, client: FlaskClient) -> None:
    """The user lookup, then role, zone and data version in one; the warm-up fills the cache."""
    engine = tiles_app.extensions["blockdata.engine"]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    assert tile_seed.warm(tiles_app, zooms=[10]).tiles > 0
    with engine.connect() as conn:
        x, y = district_tiles(conn, 10)[0]
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        response = fetch(client, f"/tiles/service_requests/10/{x}/{y}.pbf")
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200 and len(statements) == 2, statements
    digest = response.headers["ETag"][3:-1]
    assert digest in tile_cache.tile_cache(tiles_app)._items


def test_blockdata_tiles_seed(tiles_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": tiles_url, "BLOCKDATA_VAR": str(tmp_path)}
    result = CliRunner().invoke(main, ["tiles", "seed", "--zooms", "10-11", "-q"], env=env)
    assert result.exit_code == 0, result.output
    built = int(re.search(r"新建 built ([0-9,]+)", result.output).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert built > 0 and re.search(r"^ +10 +\d+ +\d+$", result.output, re.M), result.output
    files, _ = tile_cache.TileCache(0, tmp_path / "tiles").disk_usage()
    assert files == built and (tmp_path / "tiles").stat().st_mode & 0o777 == 0o700
    again = CliRunner().invoke(main, ["tiles", "seed", "--zooms", "10-11", "-q"], env=env)
    assert again.exit_code == 0 and "新建 built 0," in again.output, again.output
    bad = CliRunner().invoke(main, ["tiles", "seed", "--zooms", "10-19"], env=env)
    assert bad.exit_code == 2 and "'10-19'" in bad.output
    lock = tile_seed.seed_lock(tmp_path / "tiles")
    try:
        held = CliRunner().invoke(main, ["tiles", "seed", "--zooms", "10"], env=env)
    finally:
        assert lock is not None
        lock.close()
    assert held.exit_code == 1 and str(os.getpid()) in held.output


# --- versions and seeding on the tiny district ----------------------------------------------

# Just west of a z10 tile's east edge, so at every zoom 10–18 in the buffer of the tile east
# of its own (the tiny district lies a few kilometres west, in the same z10 tile).
EDGE_LON = tiles.tile_bounds(10, 842, 387)[2] - 1e-6
EDGE_LAT = 39.91
INSIDE = (116.305, 39.905)  # street 110102001, grid 110102001001001


def _tiles_around(lon: float, lat: float) -> dict[str, list[tuple[int, int, int]]]:
    """Per zoom 10–18: the tile holding the point, the one east of it, one three tiles west."""
    out: dict[str, list[tuple[int, int, int]]] = {"own": [], "east": [], "far": []}
    for z in ZOOMS:
        x, y = tile_of(lon, lat, z)
        out["own"].append((z, x, y))
        out["east"].append((z, x + 1, y))
        out["far"].append((z, x - 3, y))
    return out


def _changed(before: list[str], after: list[str]) -> list[bool]:
    return [a != b for a, b in zip(before, after, strict=True)]


def _level18(lon: float, lat: float) -> tuple[int, int]:
    return tile_of(lon, lat, 18)


def _add_request(
    conn: sa.Connection, source_id: str, lon: float, lat: float, street: str | None = None
) -> None:
    conn.execute(
        sa.text(
            "insert into service_requests (source, source_id, received_at, street_code, geom) "
            "values ('test', :sid, now(), :street, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
        ),
        {"sid": source_id, "lon": lon, "lat": lat, "street": street},
    )


@pytest.fixture(scope="module")
def session_engine(database_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


class TestTinyDistrict:
    """The tile versions and the seeder, on the tiny district in the rolled-back test
    transaction: `engine` is the session's test database again here (this module's own
    `engine` is the demo database's), so `connection`, `app` and `district` use it."""

    @pytest.fixture
    def engine(self, session_engine: sa.Engine) -> sa.Engine:
        return session_engine

    @pytest.fixture
    def user(self, app: Flask, connection: sa.Connection, district: Any) -> FlaskClient:
        """A district user of the tiny district."""
        return login(app.test_client(), add_user(connection, "tiny-district"))

    @staticmethod
    def etags(
        client: FlaskClient, wanted: list[tuple[int, int, int]], layer: str = ""
    ) -> list[str]:
        name = layer or LAYER.name
        return [
            fetch(client, f"/tiles/{name}/{z}/{x}/{y}.pbf").headers["ETag"] for z, x, y in wanted
        ]

    def test_a_new_point_changes_its_tile_and_the_neighbour_whose_buffer_holds_it(
        self, user: FlaskClient, connection: sa.Connection
    ) -> None:
        around = _tiles_around(EDGE_LON, EDGE_LAT)
        before = {k: self.etags(user, v) for k, v in around.items()}
        _add_request(connection, "EDGE", EDGE_LON, EDGE_LAT)
        refresh_request_aggregates(connection)  # as the intake does: the aggregates stay fresh
        after = {k: self.etags(user, v) for k, v in around.items()}
        nine = [True] * len(ZOOMS)
        assert _changed(before["own"], after["own"]) == nine
        assert _changed(before["east"], after["east"]) == nine
        assert not any(_changed(before["far"], after["far"]))
        z, x, y = around["own"][-1]
        assert len(decode(fetch(user, f"/tiles/service_requests/{z}/{x}/{y}.pbf").data)) == 1

    def test_moving_a_point_changes_both_places_and_deleting_it_its_place(
        self, user: FlaskClient, connection: sa.Connection
    ) -> None:
        _add_request(connection, "MOVE", EDGE_LON, EDGE_LAT)
        refresh_request_aggregates(connection)
        old, new = _tiles_around(EDGE_LON, EDGE_LAT), _tiles_around(*INSIDE)
        elsewhere = [(z, x, y + 3) for z, x, y in new["own"] if z >= 12]  # z10–11: the same
        watched = old["own"] + new["own"] + elsewhere
        before = self.etags(user, watched)
        connection.execute(
            sa.text(
                "update service_requests set geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) "
                "where source_id = 'MOVE'"
            ),
            {"lon": INSIDE[0], "lat": INSIDE[1]},
        )
        refresh_request_aggregates(connection)
        moved = self.etags(user, watched)
        nine = len(ZOOMS)
        assert all(_changed(before[: 2 * nine], moved[: 2 * nine]))
        assert before[2 * nine :] == moved[2 * nine :]
        connection.execute(sa.text("delete from service_requests where source_id = 'MOVE'"))
        refresh_request_aggregates(connection)
        deleted = self.etags(user, watched)
        assert all(_changed(moved[nine : 2 * nine], deleted[nine : 2 * nine]))
        assert moved[2 * nine :] == deleted[2 * nine :]

    def test_a_commanders_etag_changes_with_writes_in_their_street_only(
        self, app: Flask, user: FlaskClient, connection: sa.Connection
    ) -> None:
        """Tiles over both streets of the tiny district (A west of 116.32, B east): a write
        in B leaves A's commander's ETags as they were and changes B's commander's and the
        district's; a write in A changes A's and the district's, not B's. Moving a request
        from A to B changes all three."""
        in_a, in_b = (116.3195, 39.905), (116.3205, 39.905)  # 170 m apart, across the border
        watched = []
        for z in range(10, 17):
            x, y = tile_of(*in_a, z)
            w, s, e, n = tiles.tile_bounds(z, x, y)  # both points inside the tile itself
            if w <= in_b[0] < e and s <= in_b[1] < n:
                watched.append((z, x, y))
        assert len(watched) >= 5
        a, b = STREETS
        commanders = {
            street: login(
                app.test_client(), add_user(connection, f"c-{street}", "commander", street)
            )
            for street in (a, b)
        }
        clients = {"district": user, a: commanders[a], b: commanders[b]}

        def etags() -> dict[str, list[str]]:
            return {who: self.etags(client, watched) for who, client in clients.items()}

        def changed(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, bool]:
            flags = {who: _changed(before[who], after[who]) for who in before}
            assert all(len(set(f)) == 1 for f in flags.values()), flags  # every zoom alike
            return {who: f[0] for who, f in flags.items()}

        start = etags()
        _add_request(connection, "IN-B", *in_b, street=b)
        refresh_request_aggregates(connection)
        wrote_b = etags()
        assert changed(start, wrote_b) == {"district": True, a: False, b: True}
        _add_request(connection, "IN-A", *in_a, street=a)
        refresh_request_aggregates(connection)
        wrote_a = etags()
        assert changed(wrote_b, wrote_a) == {"district": True, a: True, b: False}
        connection.execute(
            sa.text("update service_requests set street_code = :b where source_id = 'IN-A'"),
            {"b": b},
        )
        refresh_request_aggregates(connection)
        assert changed(wrote_a, etags()) == {"district": True, a: True, b: True}

    def test_a_polygon_marks_every_tile_of_its_box(
        self, user: FlaskClient, connection: sa.Connection
    ) -> None:
        """Moving a grid's polygon: tiles over its old and new box change, others not."""
        cell = "110102001001001"  # 116.30–116.31 × 39.90–39.91
        inside = [(z, *tile_of(116.3, 39.9, z)) for z in (14, 16, 18)]
        inside += [(z, *tile_of(116.309, 39.909, z)) for z in (14, 16, 18)]
        moved_to = [(z, *tile_of(116.339, 39.919, z)) for z in (16, 18)]
        outside = [(z, *tile_of(116.32, 39.905, z)) for z in (16, 18)]
        watched = inside + moved_to + outside
        before = self.etags(user, watched, "grids")
        connection.execute(
            sa.text("update grids set geom = ST_Translate(geom, 0.03, 0.01) where code = :code"),
            {"code": cell},
        )
        after = self.etags(user, watched, "grids")
        want = [True] * (len(inside) + len(moved_to)) + [False] * len(outside)
        assert _changed(before, after) == want

    def test_an_open311_request_written_as_the_reader_marks_its_tiles(
        self, app: Flask, user: FlaskClient, connection: sa.Connection
    ) -> None:
        from app.auth import new_token
        from layers.accounts import api_tokens

        key, digest = new_token()
        uid = add_user(connection, "tiny-open311")
        connection.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
        around = _tiles_around(*INSIDE)
        before = {k: self.etags(user, v) for k, v in around.items()}
        response = app.test_client().post(
            "/open311/v2/requests.json",
            data={
                "api_key": key,
                "service_code": "环境卫生",
                "lat": str(INSIDE[1]),
                "long": str(INSIDE[0]),
                "description": "垃圾",
            },
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        after = {k: self.etags(user, v) for k, v in around.items()}
        assert all(_changed(before["own"], after["own"]))
        assert before["far"] == after["far"]  # the intake refreshed the aggregates

    def test_the_reader_may_neither_read_the_log_nor_renew_an_epoch(
        self, connection: sa.Connection, district: Any
    ) -> None:
        _reader(connection)
        for statement in (
            "select count(*) from tile_changes",
            "select epoch from tile_epochs",
            "select tile_changes_renew('service_requests')",
        ):
            with (
                pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
                connection.begin_nested(),
            ):
                connection.exec_driver_sql(statement)
        _add_request(connection, "READER", *INSIDE)  # the trigger writes the log for it
        connection.exec_driver_sql("reset role")
        marked = "select count(*) from tile_changes where layer = 'service_requests'"
        assert connection.exec_driver_sql(marked).scalar_one() == 5  # one tile, five levels

    def test_truncate_and_a_bulk_load_change_every_tile(
        self,
        user: FlaskClient,
        connection: sa.Connection,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        around = _tiles_around(*INSIDE)
        watched = around["own"] + around["far"]
        epoch = "select epoch from tile_epochs where layer = 'service_requests'"
        first = connection.exec_driver_sql(epoch).scalar_one()
        before = self.etags(user, watched)
        connection.exec_driver_sql("truncate service_requests")
        refresh_request_aggregates(connection, full=True)
        truncated = self.etags(user, watched)
        assert all(_changed(before, truncated))
        second = connection.exec_driver_sql(epoch).scalar_one()
        assert second != first

        monkeypatch.setattr("etl.load.BULK_MIN_ROWS", 1)  # a bulk load skips the row triggers
        _add_request(connection, "OTHER-SOURCE", *INSIDE)
        path = write_csv(tmp_path / "bulk.csv", [request_row("BULK1"), request_row("BULK2")])
        report = run_file(connection, path, layer="service_requests")
        assert report.inserted == 2
        assert connection.exec_driver_sql(epoch).scalar_one() not in (first, second)
        assert all(_changed(truncated, self.etags(user, watched)))

    def test_swept_tiles_are_seeded_again_only_while_the_seeded_set_fits(
        self, app: Flask, user: FlaskClient, tmp_path: Path
    ) -> None:
        app.config["TILE_CACHE_DIR"] = str(tmp_path / "tiles")
        tile_cache.use_disk_cache(app)
        cache = tile_cache.tile_cache(app)
        seeder = tile_seed.Seeder(app, zooms=range(16, 19))
        first = seeder.run()
        assert first.built == first.tiles > 0 and first.fits and first.bytes > 0
        files = sorted(p for p in (tmp_path / "tiles").glob("*/*") if p.is_file())
        files[0].unlink()  # as the sweep would
        again = seeder.run()
        assert again.built == again.tiles == 1  # it fits: the swept tile is seeded again

        cache.disk_bytes = int(first.bytes / 0.9)  # the seeded tiles take 90 % of the bound
        assert not seeder.run().fits  # nothing changed; this pass only measures
        for path in files[:3]:
            path.unlink()
        third = seeder.run()
        assert third.built == 0 and not third.fits  # no re-seeding that would sweep others
        status = tmp_path / "tiles" / tile_seed.STATUS
        tile_seed._record(status.parent, third)
        assert json.loads(status.read_text(encoding="utf-8"))["fits"] is False

    def test_seeding_covers_the_streets_and_requests_then_hit_the_cache(
        self,
        app: Flask,
        user: FlaskClient,
        connection: sa.Connection,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        app.config["TILE_CACHE_DIR"] = str(tmp_path / "tiles")
        directory = tile_cache.use_disk_cache(app)
        built: list[tuple[int, int, int]] = []
        real = tiles.build_tile

        def counted(conn: sa.Connection, layer: Any, z: int, x: int, y: int, *a: Any) -> Any:
            built.append((z, x, y))
            return real(conn, layer, z, x, y, *a)

        monkeypatch.setattr(tiles, "build_tile", counted)
        seeder = tile_seed.Seeder(app)
        report = seeder.run()

        streets = {code: (x0, 39.90, x1, 39.92) for code, (x0, x1) in STREETS.items()}
        want = {code: {z: _intersecting(box, z) for z in ZOOMS} for code, box in streets.items()}
        for z in ZOOMS:
            district_tiles = set().union(*(want[code][z] for code in streets))
            assert report.district[z] == len(district_tiles), z
            assert report.commanders[z] == sum(len(want[code][z]) for code in streets), z
        assert report.full and report.built == report.tiles == len(built)
        files, size = tile_cache.tile_cache(app).disk_usage()
        assert files == report.built and size <= tile_cache.DEFAULT_DISK_BYTES
        assert {p.name for p in directory.iterdir() if p.is_file()} <= {tile_seed.LOCK_FILE}

        commander = login(
            app.test_client(), add_user(connection, "tiny-c", "commander", "110102001")
        )
        built.clear()
        for z in ZOOMS:
            x, y = tile_of(*INSIDE, z)
            for client in (user, commander):
                response = fetch(client, f"/tiles/service_requests/{z}/{x}/{y}.pbf")
                assert response.headers["X-Tile-Kind"] == "raw"
                assert response.headers["X-Tile-Cache"] == "disk"
        assert built == []  # every one read from the disk cache

        mine = "110102001"  # INSIDE's street: its commander's tiles change, the other's not
        _add_request(connection, "SEEDED", *INSIDE, street=mine)
        refresh_request_aggregates(connection)
        hit = {z: tile_seed.affected(z, [_level18(*INSIDE)]) for z in ZOOMS}
        expected = sum(
            len(hit[z] & (set().union(*(want[c][z] for c in streets)))) for z in ZOOMS
        ) + sum(len(hit[z] & want[mine][z]) for z in ZOOMS)
        second = seeder.run()
        assert not second.full and second.built == second.tiles == expected == len(built)
        assert all((x, y) in hit[z] for z, x, y in built)
        assert {(z, *tile_of(*INSIDE, z)) for z in ZOOMS} <= set(built)
        built.clear()
        third = seeder.run()
        assert third.built == third.tiles == 0 and built == []
        z, x, y = 18, *tile_of(*INSIDE, 18)
        features = decode(fetch(user, f"/tiles/service_requests/{z}/{x}/{y}.pbf").data)
        assert [f["properties"].get("source") for f in features] == ["test"] and built == []


def _intersecting(box: tuple[float, float, float, float], z: int) -> set[tuple[int, int]]:
    """The tiles of zoom z whose envelope meets the box (touching included)."""
    w, s, e, n = box
    x0, y0 = tile_of(w, n, z)
    x1, y1 = tile_of(e, s, z)
    out = set()
    for x in range(x0 - 1, x1 + 2):
        for y in range(y0 - 1, y1 + 2):
            tw, ts, te, tn = tiles.tile_bounds(z, x, y)
            if tw <= e and te >= w and ts <= n and tn >= s:
                out.add((x, y))
    return out


def test_etag_304_and_a_new_run_changes_it(
    client: FlaskClient, engine: sa.Engine, tmp_path: Path
) -> None:
    """Last: it loads one more request into the module's database."""
    with engine.connect() as conn:
        x, y, _ = busiest(conn, 17)
        lon, lat = conn.execute(
            sa.text("select ST_X(geom), ST_Y(geom) from service_requests order by id limit 1")
        ).one()
    x, y = tile_of(lon, lat, 17)
    url = f"/tiles/service_requests/17/{x}/{y}.pbf"
    first = fetch(client, url)
    etag = first.headers["ETag"]
    assert etag.startswith('W/"') and first.headers["Cache-Control"].startswith("private")
    assert "Cookie" in first.headers["Vary"]
    again = fetch(client, url, **{"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    filtered = fetch(client, url + "?category=环境卫生")
    assert filtered.headers["ETag"] != etag

    with engine.connect() as conn:
        report = run_file(
            conn,
            write_csv(
                tmp_path / "one.csv",
                [request_row("ETAG1", 经度=f"{lon:.7f}", 纬度=f"{lat:.7f}")],
            ),
            layer="service_requests",
        )
        conn.commit()
    assert report.inserted == 1
    after = fetch(client, url, **{"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["ETag"] != etag
    assert len(decode(after.data)) == len(decode(first.data)) + 1
