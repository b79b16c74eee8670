"""OGC API – Features: GDAL's own client against a live server, and the Flask test client.

The live tests serve a committed database of the demo district (a few thousand requests loaded
through the real ETL) with waitress in a thread, and read it with `ogrinfo` and `ogr2ogr`.
The test-client tests load a tiny hand-made district into the rolled-back test transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import ogc, ogc_openapi
from app.db import make_engine
from layers import get_layer
from layers.queries import features, params, slices
from tests.helpers import add_user, json_error, login, request_ids
from tests.plugins.ogc import add_account, live_app, serve

# GDAL's client is part of the set-up (scripts/system-deps.sh --gdal): missing, it fails.
OGRINFO = shutil.which("ogrinfo") or "ogrinfo"
OGR2OGR = shutil.which("ogr2ogr") or "ogr2ogr"


@dataclass(frozen=True)
class Live:
    base: str
    token: str

    def gdal(self, tool: str | None, *args: str, cwd: Path | None = None) -> str:
        """Run a GDAL tool against the server, with the bearer token in every request."""
        header = f"Authorization: Bearer {self.token}"
        return _gdal(str(tool), "--config", "GDAL_HTTP_HEADERS", header, *args, cwd=cwd)


@pytest.fixture(scope="module")
def live(demo_url: str) -> Iterator[Live]:
    _, token = add_account(demo_url, "gdal-analyst", "analyst")
    with serve(live_app(demo_url)) as base:
        yield Live(base, token)


@pytest.fixture(scope="module")
def demo_engine(demo_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(demo_url)
    yield engine
    engine.dispose()


def _gdal(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        list(args), capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )
    assert proc.returncode == 0, f"{' '.join(args)} failed: {proc.stderr}{proc.stdout}"
    assert "ERROR" not in proc.stderr, proc.stderr
    return proc.stdout


def test_ogrinfo_lists_every_collection_with_one_geometry_type(live: Live) -> None:
    out = live.gdal(OGRINFO, "-ro", f"OAPIF:{live.base}/ogc")
    listed = dict(
        (line.split(": ", 1)[1].split(" (title")[0], line.rsplit("(", 1)[1].rstrip(")"))
        for line in out.splitlines()
        if line[:1].isdigit()
    )
    assert listed == {
        "streets": "Multi Polygon",
        "communities": "Multi Polygon",
        "grids": "Multi Polygon",
        "lanes": "Line String",
        "service_halls": "Point",
        "service_requests": "Point",
        "enforcement_cases": "Point",
        "relocation_targets": "Point",
        "renovation_projects_lines": "Multi Line String",
        "renovation_projects_areas": "Multi Polygon",
    }


def test_ogrinfo_summary_counts_every_request(live: Live, demo_engine: sa.Engine) -> None:
    out = live.gdal(OGRINFO, "-ro", "-so", f"OAPIF:{live.base}/ogc", "service_requests")
    with demo_engine.connect() as conn:
        count = conn.exec_driver_sql("select count(*) from service_requests").scalar_one()
    assert f"Feature Count: {count}" in out
    assert "Geometry: Point" in out
    assert "description: String" in out and "etl_run_id" not in out


def _gpkg_rows(path: Path, table: str) -> dict[int, dict[str, Any]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return {int(r["id"]): dict(r) for r in db.execute(f'select * from "{table}"')}


def _gpkg_geometry(blob: bytes) -> Any:
    """The shapely geometry of a GeoPackage blob (header, optional envelope, then WKB)."""
    import shapely

    envelope = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(blob[3] >> 1) & 7]
    return shapely.from_wkb(blob[8 + envelope :])


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def test_ogr2ogr_copies_every_request_with_its_values(
    live: Live, demo_engine: sa.Engine, tmp_path: Path
) -> None:
    out = tmp_path / "requests.gpkg"
    live.gdal(OGR2OGR, "-f", "GPKG", str(out), f"OAPIF:{live.base}/ogc", "service_requests")
    copied = _gpkg_rows(out, "service_requests")
    with demo_engine.connect() as conn:
        rows = {
            r["id"]: r
            for r in conn.execute(
                sa.text(
                    "select id, source_id, category, status, street_code, grid_code, "
                    "near_boundary, callback_solved, received_at, resolved_at, "
                    "ST_X(geom) x, ST_Y(geom) y from service_requests"
                )
            ).mappings()
        }
    assert len(copied) == len(rows) > 2000
    assert set(copied) == set(rows)
    for key in sorted(rows)[:: max(1, len(rows) // 200)]:
        want, got = rows[key], copied[key]
        for name in ("source_id", "category", "status", "street_code", "grid_code"):
            assert got[name] == want[name], (key, name)
        assert bool(got["near_boundary"]) == want["near_boundary"]
        if want["callback_solved"] is None:
            assert got["callback_solved"] is None
        else:
            assert bool(got["callback_solved"]) == want["callback_solved"]
        assert _as_datetime(got["received_at"]) == want["received_at"]
        assert _as_datetime(got["resolved_at"]) == want["resolved_at"]
        point = _gpkg_geometry(got["geom"])
        # The features carry 7 decimals (layers.queries.features; was 9, with 1e-9 here).
        half = 0.5e-7 + 1e-12
        assert abs(point.x - want["x"]) <= half and abs(point.y - want["y"]) <= half, key


@pytest.mark.parametrize(
    ("collection", "dimension", "geometry"),
    [
        ("renovation_projects_lines", 1, "MULTILINESTRING"),
        ("renovation_projects_areas", 2, "MULTIPOLYGON"),
        ("grids", None, "MULTIPOLYGON"),
    ],
)
def test_ogr2ogr_copies_typed_collections(
    live: Live,
    demo_engine: sa.Engine,
    tmp_path: Path,
    collection: str,
    dimension: int | None,
    geometry: str,
) -> None:
    out = tmp_path / f"{collection}.gpkg"
    live.gdal(OGR2OGR, "-f", "GPKG", str(out), f"OAPIF:{live.base}/ogc", collection)
    table = "renovation_projects" if dimension else collection
    where = f"where ST_Dimension(geom) = {dimension}" if dimension else ""
    with demo_engine.connect() as conn:
        count = conn.exec_driver_sql(f"select count(*) from {table} {where}").scalar_one()
        area = conn.exec_driver_sql(
            f"select sum(ST_Area(geom) + ST_Length(geom) + ST_Perimeter(geom)) from {table} {where}"
        ).scalar_one()
    assert count > 0
    with sqlite3.connect(out) as db:
        got = db.execute(f'select count(*) from "{collection}"').fetchone()[0]
        kind = db.execute(
            "select geometry_type_name from gpkg_geometry_columns where table_name = ?",
            (collection,),
        ).fetchone()[0]
        shapes = [_gpkg_geometry(r[0]) for r in db.execute(f'select geom from "{collection}"')]
    assert (got, kind) == (count, geometry)
    assert sum(g.area + g.length for g in shapes) == pytest.approx(area, rel=1e-9)


def test_live_server_answers_next_links_to_the_end(live: Live, demo_engine: sa.Engine) -> None:
    import urllib.request

    url: str | None = f"{live.base}/ogc/collections/service_requests/items?limit=1000"
    seen: list[int] = []
    while url:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {live.token}"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.headers["Content-Type"].startswith("application/geo+json")
            page = json.loads(resp.read())
        seen += [f["id"] for f in page["features"]]
        assert page["numberReturned"] == len(page["features"])
        url = next((lk["href"] for lk in page["links"] if lk["rel"] == "next"), None)
    with demo_engine.connect() as conn:
        ids = [r[0] for r in conn.exec_driver_sql("select id from service_requests order by id")]
    assert seen == ids


# --- the Flask test client on the tiny district ---------------------------------------------


@pytest.fixture
def ogc_app(app: Flask) -> Flask:
    if ogc.bp.name not in app.blueprints:
        app.register_blueprint(ogc.bp)
    return app


@pytest.fixture
def ogc_client(ogc_app: Flask, connection: sa.Connection) -> FlaskClient:
    """Logged in as a district user, who may read every layer of every street."""
    return login(ogc_app.test_client(), add_user(connection, "ogc-district"))


def _items(client: FlaskClient, collection: str = "service_requests", **params: Any) -> Any:
    query = urllib.parse.urlencode(params, doseq=True)
    response = client.get(f"/ogc/collections/{collection}/items?{query}")
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/geo+json"
    return response.get_json()


def _ids(client: FlaskClient, **params: Any) -> list[int]:
    return [f["id"] for f in _items(client, **params)["features"]]


def test_landing_conformance_and_api(ogc_client: FlaskClient) -> None:
    landing = ogc_client.get("/ogc/").get_json()
    assert ogc_client.get("/ogc").get_json() == landing  # no redirect for the bare root
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "alternate", "service-desc", "service-doc", "conformance", "data"} <= rels
    conf = ogc_client.get("/ogc/conformance").get_json()["conformsTo"]
    for cls in ("core", "geojson", "oas30", "html"):
        assert f"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/{cls}" in conf
    api = ogc_client.get("/ogc/api")
    assert api.mimetype == "application/vnd.oai.openapi+json"
    doc = json.loads(api.data)
    assert doc["openapi"].startswith("3.0")
    assert "/collections/service_requests/items" in doc["paths"]


def test_html_in_chinese_without_external_assets(ogc_client: FlaskClient, loaded: int) -> None:
    for url in (
        "/ogc/",
        "/ogc/conformance",
        "/ogc/api",
        "/ogc/collections",
        "/ogc/collections/service_requests",
        "/ogc/collections/service_requests/items?limit=5",
    ):
        response = ogc_client.get(url, headers={"Accept": "text/html,*/*;q=0.8"})
        assert response.status_code == 200, url
        assert response.mimetype == "text/html", url
        page = response.get_data(as_text=True)
        assert 'lang="zh-CN"' in page and "数据集合" in page
        assert "http://cdn" not in page and "https://" not in page and "<script" not in page
    page = ogc_client.get("/ogc/collections/service_requests/items?f=html&limit=5").get_data(
        as_text=True
    )
    assert "下一页" in page and "受理时间" in page
    first = _ids(ogc_client, limit=1)[0]
    one = ogc_client.get(f"/ogc/collections/service_requests/items/{first}?f=html")
    assert one.status_code == 200 and "诉求类别" in one.get_data(as_text=True)


def test_collections_describe_every_layer(ogc_client: FlaskClient, loaded: int) -> None:
    body = ogc_client.get("/ogc/collections").get_json()
    ids = [c["id"] for c in body["collections"]]
    assert ids == [c.id for c in features.collections()]
    assert len(ids) == 10 and "renovation_projects" not in ids
    requests = ogc_client.get("/ogc/collections/service_requests").get_json()
    lo, hi = requests["extent"]["temporal"]["interval"][0]
    assert lo.startswith("2026-11-01T08:00:00") and hi.startswith("2026-11-03T19:00:00")
    names = {p["name"] for p in requests["properties"]}
    assert "description" in names and "etl_run_id" not in names
    message = json_error(ogc_client, "/ogc/collections/renovation_projects", 404)
    assert "renovation_projects_lines" in message
    json_error(ogc_client, "/ogc/collections/nope", 404)


def test_paging_walks_every_feature_once(
    ogc_client: FlaskClient, connection: sa.Connection, loaded: int
) -> None:
    seen: list[int] = []
    url: str | None = "/ogc/collections/service_requests/items?limit=7"
    pages = 0
    while url:
        body = ogc_client.get(url).get_json()
        pages += 1
        assert "numberMatched" not in body
        assert body["numberReturned"] == len(body["features"]) <= 7
        seen += [f["id"] for f in body["features"]]
        links = {(lk["rel"], lk["type"]): lk["href"] for lk in body["links"]}
        assert ("self", "application/geo+json") in links and ("alternate", "text/html") in links
        url = links.get(("next", "application/geo+json"))
    assert pages == 9
    assert seen == request_ids(connection)  # sorted, no duplicates, no gaps
    filtered = []
    url = "/ogc/collections/service_requests/items?limit=4&category=噪声扰民"
    while url:
        body = ogc_client.get(url).get_json()
        filtered += [f["id"] for f in body["features"]]
        url = next((lk["href"] for lk in body["links"] if lk["rel"] == "next"), None)
        assert url is None or "category=" in urllib.parse.unquote(url)
    assert filtered == request_ids(connection, "category = '噪声扰民'")


def test_paging_admin_layer_by_text_code(ogc_client: FlaskClient, district: Any) -> None:
    codes = []
    url: str | None = "/ogc/collections/grids/items?limit=3"
    while url:
        body = ogc_client.get(url).get_json()
        for feature in body["features"]:
            assert feature["geometry"]["type"] == "MultiPolygon"
            codes.append(feature["id"])
        url = next((lk["href"] for lk in body["links"] if lk["rel"] == "next"), None)
    assert codes == sorted(c[0] for c in district)
    # A text cursor holding a lone surrogate (which UTF-8 cannot carry) is a 400, not a 500.
    bad_cursor = "/ogc/collections/grids/items?cursor=Ilx1ZDgwMCI"
    assert "Ilx1ZDgwMCI" in json_error(ogc_client, bad_cursor)


def test_features_carry_only_published_columns(ogc_client: FlaskClient, loaded: int) -> None:
    feature = _items(ogc_client, limit=1)["features"][0]
    props = feature["properties"]
    assert props["id"] == feature["id"]
    assert "etl_run_id" not in props and "geom" not in props
    assert set(props) == {f.name for f in get_layer("service_requests").published}
    assert feature["geometry"]["type"] == "Point"
    assert props["received_at"].endswith("+08:00")


def test_bbox(ogc_client: FlaskClient, connection: sa.Connection, loaded: int) -> None:
    box = "116.305,39.904,116.32,39.912"
    got = _ids(ogc_client, bbox=box, limit=1000)
    want = request_ids(
        connection, "ST_Intersects(geom, ST_MakeEnvelope(116.305, 39.904, 116.32, 39.912, 4326))"
    )
    assert got == want and 0 < len(got) < 60
    # Crossing the antimeridian: everything east of 170 or west of 116.31.
    assert _ids(ogc_client, bbox="170,-90,116.31,90", limit=1000) == request_ids(
        connection, "ST_X(geom) <= 116.31"
    )
    assert _ids(ogc_client, bbox="116.305,39.904,0,116.32,39.912,10", limit=1000) == want
    crs = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert _ids(ogc_client, bbox=box, limit=1000, **{"bbox-crs": crs}) == want


def test_datetime(ogc_client: FlaskClient, connection: sa.Connection, loaded: int) -> None:
    def between(a: str, b: str) -> list[int]:
        return request_ids(connection, "received_at between :a and :b", a=a, b=b)

    at = "2026-11-01T10:00:00+08:00"
    assert _ids(ogc_client, datetime=at) == request_ids(connection, "received_at = :t", t=at)
    assert len(_ids(ogc_client, datetime="2026-11-01T02:00:00Z")) == 1
    assert len(_ids(ogc_client, datetime="2026-11-01T10:00:00")) == 1  # naive is Beijing time
    closed = "2026-11-01T10:00:00+08:00/2026-11-01T20:00:00+08:00"
    assert _ids(ogc_client, datetime=closed) == between(
        "2026-11-01 10:00+08", "2026-11-01 20:00+08"
    )
    assert len(_ids(ogc_client, datetime=closed)) == 11
    assert _ids(ogc_client, datetime="../2026-11-01T09:00:00+08:00") == between(
        "2000-01-01", "2026-11-01 09:00+08"
    )
    assert _ids(ogc_client, datetime="2026-11-03T12:00:00+08:00/..") == between(
        "2026-11-03 12:00+08", "2100-01-01"
    )
    assert _ids(ogc_client, datetime="2026-11-03T12:00:00+08:00/") == between(
        "2026-11-03 12:00+08", "2100-01-01"
    )
    # A date is its whole (Beijing) day; intervals of dates include both days.
    assert len(_ids(ogc_client, datetime="2026-11-02", limit=100)) == 24
    assert len(_ids(ogc_client, datetime="2026-11-01/2026-11-02", limit=100)) == 40
    assert len(_ids(ogc_client, since="2026-11-03", limit=100)) == 20
    assert len(_ids(ogc_client, until="2026-11-01", limit=100)) == 16
    assert len(_ids(ogc_client, datetime="../..", limit=100)) == 60
    message = json_error(ogc_client, "/ogc/collections/grids/items?datetime=2026-11-01")
    assert "grids" in message and "2026-11-01" in message


def test_property_filters(ogc_client: FlaskClient, connection: sa.Connection, loaded: int) -> None:
    assert _ids(ogc_client, category="环境卫生") == request_ids(connection, "category = '环境卫生'")
    assert _ids(ogc_client, category="环境卫生", status="处理中") == request_ids(
        connection, "category = '环境卫生' and status = '处理中'"
    )
    assert _ids(ogc_client, category="环境卫生,停车管理") == request_ids(
        connection, "category in ('环境卫生', '停车管理')"
    )
    assert _ids(ogc_client, category=["环境卫生", "停车管理"]) == _ids(
        ogc_client, category="环境卫生,停车管理"
    )
    in_b = request_ids(connection, "street_code = '110102003'")
    assert _ids(ogc_client, street="110102003") == in_b
    assert _ids(ogc_client, street_code="110102003") == _ids(ogc_client, street="110102003")
    assert _ids(ogc_client, category="没有这个类别") == []
    message = json_error(ogc_client, "/ogc/collections/service_requests/items?description=垃圾")
    assert "'description'" in message
    message = json_error(ogc_client, "/ogc/collections/service_requests/items?nosuch=1")
    assert "'nosuch'" in message
    json_error(ogc_client, "/ogc/collections/service_requests/items?category=")
    json_error(ogc_client, "/ogc/collections/enforcement_cases/items?joint=maybe")


def test_limits(ogc_client: FlaskClient, loaded: int) -> None:
    assert len(_ids(ogc_client)) == 60
    assert len(_items(ogc_client, limit=5)["features"]) == 5
    assert len(_items(ogc_client, limit=10000)["features"]) == 60
    message = json_error(ogc_client, "/ogc/collections/service_requests/items?limit=10001")
    assert "10000" in message and "10001" in message
    for bad in ("0", "-1", "abc", "1.5", "", "99999999999"):
        message = json_error(ogc_client, f"/ogc/collections/service_requests/items?limit={bad}")
        assert repr(bad) in message


def test_single_item(ogc_client: FlaskClient, connection: sa.Connection, loaded: int) -> None:
    first = request_ids(connection)[0]
    response = ogc_client.get(f"/ogc/collections/service_requests/items/{first}")
    assert response.status_code == 200 and response.mimetype == "application/geo+json"
    body = response.get_json()
    assert body["id"] == first and body["type"] == "Feature"
    assert body["properties"]["source_id"] == "T000"
    assert {lk["rel"] for lk in body["links"]} >= {"self", "alternate", "collection"}
    grid = ogc_client.get("/ogc/collections/grids/items/110102001001001").get_json()
    assert grid["properties"]["community_code"] == "110102001001"
    for missing in ("999999999", "abc", "1.5", "-1", "99999999999999999999999"):
        message = json_error(ogc_client, f"/ogc/collections/service_requests/items/{missing}", 404)
        assert missing in message
    json_error(ogc_client, "/ogc/collections/grids/items/nope", 404)
    json_error(ogc_client, "/ogc/collections/nope/items/1", 404)
    json_error(ogc_client, "/ogc/collections/renovation_projects_lines/items/1", 404)


BAD_ITEMS = [
    "bbox=1,2,3",
    "bbox=a,b,c,d",
    "bbox=nan,39,116,40",
    "bbox=116,39,inf,40",
    "bbox=116,39,117,95",
    "bbox=116,40,117,39",
    "bbox=116,39,117,40&bbox=1,2,3,4",
    "bbox-crs=EPSG:3857&bbox=116,39,117,40",
    "crs=EPSG:4326",
    "datetime=2026-13-45",
    "datetime=yesterday",
    "datetime=2026-11-03/2026-11-01",
    "datetime=a/b/c",
    "datetime=0001-01-01T00:00:00%2B14:00",
    "since=tomorrow",
    "cursor=!!!",
    "cursor=eyJhIjoxfQ",
    "cursor=IjEi",
    "f=xml",
    "limit=1&limit=2",
    "category=%00",
    "category=" + "x" * 600,
    "status=1'%20OR%20'1'='1;drop%20table%20service_requests",
]


@pytest.mark.parametrize("query", BAD_ITEMS)
def test_bad_input_is_a_json_400(ogc_client: FlaskClient, loaded: int, query: str) -> None:
    url = f"/ogc/collections/service_requests/items?{query}"
    if query.startswith("status="):  # SQL in a value is a value: nothing matches
        assert ogc_client.get(url).get_json()["features"] == []
        return
    message = json_error(ogc_client, url)
    value = urllib.parse.unquote(query.split("=", 1)[1].split("&")[0])
    assert value[:30].replace("\x00", "\\x00") in message


def test_openapi_documents_exactly_the_accepted_parameters(
    ogc_client: FlaskClient, loaded: int
) -> None:
    doc = ogc_client.get("/ogc/api").get_json(force=True)
    for c in features.collections():
        documented = [
            p["name"] for p in doc["paths"][f"/collections/{c.id}/items"]["get"]["parameters"]
        ]
        assert documented == ogc_openapi.items_parameters(c), c.id
        for name in documented:  # every documented parameter is accepted
            value = {
                "limit": "5",
                "bbox": "116,39,117,40",
                "cursor": params.encode_cursor(0 if c.integer_key else ""),
                "f": "json",
                "bbox-crs": slices.CRS84,
                "crs": slices.CRS84,
            }.get(name, "2026-11-01")
            if name in slices.TIME_PARAMS and c.layer.time_field is None:
                continue
            if name in ("joint", "near_boundary"):
                value = "true"
            response = ogc_client.get(f"/ogc/collections/{c.id}/items?{name}={value}")
            assert response.status_code == 200, (c.id, name, response.get_json())


def test_anonymous_callers_get_401(ogc_app: Flask, loaded: int) -> None:
    anonymous = ogc_app.test_client()
    for url in ("/ogc/collections", "/ogc/collections/service_requests/items", "/ogc/api"):
        response = anonymous.get(url)
        assert response.status_code == 401 and response.is_json, url
        assert "features" not in response.get_data(as_text=True)


def test_roles_see_only_their_layers(
    ogc_app: Flask, connection: sa.Connection, loaded: int
) -> None:
    planner = login(ogc_app.test_client(), add_user(connection, "ogc-planner", "planner"))
    listed = {c["id"] for c in planner.get("/ogc/collections").get_json()["collections"]}
    assert "renovation_projects_lines" in listed and "service_requests" not in listed
    assert planner.get("/ogc/collections/service_requests/items").status_code == 403
    assert planner.get("/ogc/collections/grids/items").status_code == 200


def test_a_commander_sees_only_their_street(
    ogc_app: Flask, connection: sa.Connection, loaded: int
) -> None:
    """Through pages, next links, bbox and ids: the database's row-level security decides."""
    mine, other = "110102001", "110102003"
    commander = login(
        ogc_app.test_client(), add_user(connection, "ogc-commander", "commander", mine)
    )
    own = request_ids(connection, "street_code = :s", s=mine)
    theirs = request_ids(connection, "street_code = :s", s=other)
    assert own and theirs
    seen: list[int] = []
    url: str | None = "/ogc/collections/service_requests/items?limit=7"
    while url:
        body = commander.get(url).get_json()
        seen += [f["id"] for f in body["features"]]
        assert {f["properties"]["street_code"] for f in body["features"]} <= {mine}
        url = next((lk["href"] for lk in body["links"] if lk["rel"] == "next"), None)
    assert seen == own
    everything = "116.2,39.8,116.5,40.0"
    assert _ids(commander, bbox=everything, limit=1000) == own
    assert _ids(commander, street=other) == []
    assert commander.get(f"/ogc/collections/service_requests/items/{theirs[0]}").status_code == 404
    grids = _items(commander, "grids", limit=100)["features"]
    assert {g["properties"]["street_code"] for g in grids} == {mine}
