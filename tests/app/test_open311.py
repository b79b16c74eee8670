"""Open311 GeoReport v2 on a real PostGIS: every answer checked against the database.

The tiny hand-made district of tests/etl (streets A and B, eight square grids), requests
loaded through the production ETL at times relative to now, and a lane and a landmark for
the address geocoder.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
import shapely
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from etl.aggregates import REFRESH_LOCK
from etl.demo.geography import house_number_point
from etl.jobs import run_file
from etl.rules import load_routing, load_time_limits
from tests.district import request_row, write_csv
from tests.helpers import add_user, call, grid_of, login, token

STREET_A, STREET_B = "110102001", "110102003"
BASE = "/open311/v2"
ZONE = ZoneInfo("Asia/Shanghai")  # the district's (the default BLOCKDATA_TZ)
A = {"经度": "116.305", "纬度": "39.905"}  # grid 110102001001001
A2 = {"经度": "116.315", "纬度": "39.915"}  # grid 110102001002002
B = {"经度": "116.335", "纬度": "39.915"}  # grid 110102003002002


def _local(moment: dt.datetime) -> str:
    return f"{moment.astimezone(ZONE):%Y-%m-%d %H:%M:%S}"


@pytest.fixture
def now() -> dt.datetime:
    return dt.datetime.now(ZONE).replace(microsecond=0)


@pytest.fixture
def loaded(connection: sa.Connection, district: Any, tmp_path: Path, now: dt.datetime) -> None:
    """Requests over the last 200 days in both streets, open and closed, through the ETL."""
    spec = [
        ("R1", 1, "环境卫生", "已派单", A),
        ("R2", 2, "噪声扰民", "已办结", B),
        ("R3", 10, "停车管理", "处理中", A2),
        ("R4", 40, "环境卫生", "已办结", B),
        ("R5", 60, "供暖", "待派单", A),
        ("R6", 89, "违法建设", "已派单", A2),
        ("R7", 120, "环境卫生", "已办结", A),
        ("R8", 200, "噪声扰民", "已派单", B),
    ]
    rows = [
        request_row(
            sid,
            受理时间=_local(now - dt.timedelta(days=days, hours=1)),
            派单时间=_local(now - dt.timedelta(days=days)),
            诉求类别=category,
            状态=status,
            **where,
        )
        for sid, days, category, status, where in spec
    ]
    report = run_file(connection, write_csv(tmp_path / "r.csv", rows), layer="service_requests")
    assert report.inserted == len(rows), report.reasons


@pytest.fixture
def gazetteer(connection: sa.Connection, district: Any) -> None:
    """A lane in grid 110102001001001 with numbers 1–19 (left) and 2–20 (right); a landmark."""
    connection.execute(
        sa.text(
            "insert into lanes (code, name, kind, street_code, left_from, left_to, right_from,"
            " right_to, geom) values ('1101020010000001', '测试胡同', 'hutong', :street,"
            " 1, 19, 2, 20, ST_SetSRID(ST_MakeLine(ST_MakePoint(116.301, 39.905),"
            " ST_MakePoint(116.309, 39.905)), 4326))"
        ),
        {"street": STREET_A},
    )
    connection.execute(
        sa.text(
            "insert into landmarks (code, name, kind, street_code, geom) values"
            " ('L1', '测试小学', 'school', :street,"
            " ST_SetSRID(ST_MakePoint(116.336, 39.916), 4326))"
        ),
        {"street": STREET_B},
    )


def georeport_error(body: Any, code: int, *names: str) -> str:
    """The body is GeoReport's error list; its description is bilingual and names `names`."""
    assert isinstance(body, list) and len(body) == 1, body
    assert body[0]["code"] == code, body
    description = body[0]["description"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in description), description  # Chinese
    assert any(ch.isascii() and ch.isalpha() for ch in description), description  # English
    for name in names:
        assert name in description, (name, description)
    return str(description)


def ids_where(conn: sa.Connection, where: str, **params: Any) -> list[int]:
    """Request ids matching a hand-written SQL condition, newest first."""
    return list(
        conn.execute(
            sa.text(
                f"select id from service_requests where {where} order by received_at desc, id desc"
            ),
            params,
        ).scalars()
    )


def open311_rows(conn: sa.Connection) -> int:
    return int(
        conn.execute(
            sa.text("select count(*) from service_requests where source = 'open311'")
        ).scalar_one()
    )


# --- services ---------------------------------------------------------------------------------


def test_services_are_the_categories_of_the_routing_configuration(
    anonymous: FlaskClient, connection: sa.Connection, district: Any
) -> None:
    key = token(connection, "clerk", STREET_A)
    status, body, _ = call(anonymous, "GET", "/services.json", api_key=key)
    assert status == 200
    routing = load_routing()
    limits = load_time_limits()
    assert [s["service_code"] for s in body] == list(routing.by_category)
    for service in body:
        code = service["service_code"]
        assert service["service_name"] == code
        assert service["group"] == routing.by_category[code]
        assert service["metadata"] is False and service["type"] == "realtime"
        assert routing.by_category[code] in service["description"]
        limit = limits.by_category.get(code, limits.default)
        assert f"{limit.limit:g}" in service["description"]
        assert code in service["keywords"].split(",")
    assert {"环境卫生", "供暖", "咨询"} <= {s["service_code"] for s in body}

    status, body, _ = call(anonymous, "GET", "/services/供暖.json", api_key=key)
    assert (status, body) == (200, {"service_code": "供暖", "attributes": []})
    status, body, _ = call(anonymous, "GET", "/services/没有这种.json", api_key=key)
    georeport_error(body, 404, "没有这种")
    status, body, _ = call(anonymous, "GET", "/services.xml", api_key=key)
    assert status == 400
    georeport_error(body, 400, "xml")


# --- filing requests ---------------------------------------------------------------------------


def stored(conn: sa.Connection, request_id: int) -> Any:
    return conn.execute(
        sa.text(
            "select *, ST_X(geom) as lng, ST_Y(geom) as lat from service_requests where id = :id"
        ),
        {"id": request_id},
    ).one()


def expected_due(category: str, start: dt.datetime) -> dt.datetime:
    """The due time etl.rules gives a category dispatched at `start`."""
    due = load_time_limits().due_at(
        pa.array([category]), pa.array([start], pa.timestamp("us", tz="UTC")), "Asia/Shanghai"
    )
    value: dt.datetime = due[0].as_py()
    return value


def test_post_with_coordinates_places_routes_and_times_the_request(
    anonymous: FlaskClient, connection: sa.Connection, district: Any, now: dt.datetime
) -> None:
    key = token(connection, "district")
    status, body, _ = call(
        anonymous,
        "POST",
        "/requests.json",
        api_key=key,
        service_code="供暖",
        lat="39.915",
        long="116.315",
        description="暖气不热，室温只有十五度。",
        email="resident@example.com",
        first_name="明",
        last_name="王",
        phone="13800000000",
    )
    assert status == 200, body
    assert len(body) == 1
    assert set(body[0]) == {"service_request_id", "case_id", "service_notice", "account_id"}
    assert body[0]["account_id"] is None
    row = stored(connection, body[0]["service_request_id"])
    assert (row.grid_code, row.community_code, row.street_code) == grid_of(
        connection, 116.315, 39.915
    )
    assert row.grid_code == "110102001002002"
    assert (row.lng, row.lat) == (116.315, 39.915)
    assert row.source == "open311" and row.channel == "Open311"
    assert row.category == "供暖" and row.description == "暖气不热，室温只有十五度。"
    assert row.status == "待派单" and row.geocode_quality == "coordinates"
    assert row.department == load_routing().by_category["供暖"] == "社会建设部"
    assert abs(row.received_at - now) < dt.timedelta(minutes=1)
    assert row.due_at == expected_due("供暖", row.received_at)
    assert row.due_at - row.received_at == dt.timedelta(hours=24)
    assert "社会建设部" in body[0]["service_notice"]
    assert f"{row.due_at.astimezone(ZONE):%Y-%m-%d %H:%M}" in body[0]["service_notice"]
    audit = connection.execute(
        sa.text(
            "select user_name, rows, path, filters from audit_log"
            " where action = 'open311_post' order by id desc"
        )
    ).all()
    assert len(audit) == 1
    assert audit[0].user_name == "o311-district-None" and audit[0].rows == 1
    assert audit[0].filters["service_request_id"] == row.id
    assert audit[0].filters["street"] == STREET_A
    assert key not in audit[0].path

    # A JSON body and a bearer header work the same; a workday limit on the Chinese calendar.
    response = anonymous.post(
        f"{BASE}/requests.json",
        json={"service_code": "环境卫生", "lat": 39.905, "long": 116.335, "description": "垃圾"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.get_json()
    row = stored(connection, response.get_json()[0]["service_request_id"])
    assert (row.grid_code, row.community_code, row.street_code) == grid_of(
        connection, 116.335, 39.905
    )
    assert row.department == "城市管理部"
    assert row.due_at == expected_due("环境卫生", row.received_at)
    assert row.due_at - row.received_at > dt.timedelta(days=7)  # seven working days


@pytest.mark.usefixtures("gazetteer")
def test_post_by_address_only_is_geocoded_on_the_lane_or_at_the_landmark(
    anonymous: FlaskClient, connection: sa.Connection
) -> None:
    key = token(connection, "district")
    # 5 is the third of the ten odd numbers: at 2.5/10 of the lane from its start.
    for address, (lng, lat), quality in [
        ("北京市西城区测试胡同5号", (116.303, 39.905), "address"),
        ("西城区 测试胡同１２号院", (116.3054, 39.905), "address"),  # 12: 5.5/10, right side
        ("测试小学门口", (116.336, 39.916), "landmark"),
        # Counted Chinese numerals and a qualifier, as call-takers write them (etl/address.py).
        ("测试胡同五号附近", (116.303, 39.905), "address"),
        ("测试胡同十二号院", (116.3054, 39.905), "address"),
    ]:
        status, body, _ = call(
            anonymous,
            "POST",
            "/requests.json",
            api_key=key,
            service_code="占道经营",
            address_string=address,
            description="门口有人摆摊。",
        )
        assert status == 200, body
        row = stored(connection, body[0]["service_request_id"])
        assert row.lng == pytest.approx(lng, abs=1e-9) and row.lat == pytest.approx(lat, abs=1e-9)
        # The ETL folds full-width digits in addresses (NFKC), as it does for files.
        assert row.address == unicodedata.normalize("NFKC", address)
        assert row.geocode_quality == quality
        assert (row.grid_code, row.community_code, row.street_code) == grid_of(connection, lng, lat)
        assert row.department == "城市管理部"
    # The numbering the demo generator writes its addresses with.
    lane = shapely.LineString([(116.301, 39.905), (116.309, 39.905)])
    for number, lng in ((5, 116.303), (12, 116.3054)):
        first, last = (1, 19) if number % 2 else (2, 20)
        point = house_number_point(lane, first, last, number)
        assert (point.x, point.y) == pytest.approx((lng, 39.905), abs=1e-7)
    status, body, _ = call(
        anonymous,
        "POST",
        "/requests.json",
        api_key=key,
        service_code="占道经营",
        address_string="测试胡同99号",  # beyond the lane's numbers
        description="x",
    )
    georeport_error(body, 400, "address_string", "测试胡同99号")
    assert open311_rows(connection) == 5  # the five above; the refused one added nothing


GOOD = {"service_code": "环境卫生", "lat": "39.905", "long": "116.305", "description": "垃圾"}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"service_code": "不存在的类别"}, "不存在的类别"),
        ({"service_code": None}, "service_code"),
        ({"lat": None, "long": None}, "lat"),
        ({"lat": None, "long": None, "address_id": "A-1"}, "address_id"),
        ({"lat": "39.95", "long": "116.40"}, "116.400000"),  # Beijing, outside the district
        ({"lat": "-39.905", "long": "-116.305"}, "outside"),
        ({"description": None}, "description"),
        ({"description": "很" * 4001}, "4001"),
        ({"address_string": "胡同" * 300}, "address_string"),
        ({"email": "x" * 300 + "@example.com"}, "email"),
        ({"phone": "1" * 51}, "phone"),
        ({"lat": "北纬39.9"}, "北纬39.9"),
        ({"long": "116,305"}, "116,305"),
        ({"lat": "nan"}, "nan"),
        ({"long": "1e3"}, "1e3"),
        ({"lat": "95"}, "95"),
        ({"long": None}, "long"),
        ({"description": "垃圾\x00"}, "description"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_posts_are_400_in_georeport_form_and_store_nothing(
    anonymous: FlaskClient,
    connection: sa.Connection,
    district: Any,
    change: dict[str, str | None],
    named: str,
) -> None:
    key = token(connection, "district")
    fields = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    status, body, _ = call(anonymous, "POST", "/requests.json", api_key=key, **fields)
    assert status == 400
    georeport_error(body, 400, named)
    assert open311_rows(connection) == 0


def test_bad_bodies_and_formats(
    anonymous: FlaskClient, connection: sa.Connection, district: Any
) -> None:
    key = token(connection, "district")
    headers = {"Authorization": f"Bearer {key}"}
    response = anonymous.post(
        f"{BASE}/requests.json", json=["not", "an", "object"], headers=headers
    )
    georeport_error(response.get_json(), 400, "JSON")
    response = anonymous.post(f"{BASE}/requests.json", json={**GOOD, "lat": True}, headers=headers)
    georeport_error(response.get_json(), 400, "lat")
    response = anonymous.post(f"{BASE}/requests.xml", data=GOOD, headers=headers)
    georeport_error(response.get_json(), 400, "xml")
    response = anonymous.post(
        f"{BASE}/requests.json", data={**GOOD, "lat": ["39.905", "39.906"]}, headers=headers
    )
    georeport_error(response.get_json(), 400, "lat")
    assert open311_rows(connection) == 0


# --- reading requests --------------------------------------------------------------------------


@pytest.mark.usefixtures("loaded")
def test_get_requests_filters_match_sql(
    client: FlaskClient, connection: sa.Connection, now: dt.datetime
) -> None:
    recent = "received_at >= now() - interval '90 days'"
    start = (now - dt.timedelta(days=45)).date()
    end = (now - dt.timedelta(days=5)).date()
    old = ids_where(connection, "source_id in ('R7', 'R8')")
    cases: list[tuple[dict[str, str], str, dict[str, Any]]] = [
        ({}, recent, {}),
        ({"service_code": "环境卫生"}, f"{recent} and category = '环境卫生'", {}),
        (
            {"service_code": "环境卫生,噪声扰民"},
            f"{recent} and category in ('环境卫生', '噪声扰民')",
            {},
        ),
        ({"status": "open"}, f"{recent} and status <> '已办结'", {}),
        ({"status": "closed"}, f"{recent} and status = '已办结'", {}),
        ({"status": "open,closed"}, recent, {}),
        (
            {"start_date": start.isoformat(), "end_date": end.isoformat()},
            "received_at >= :lo and received_at < :hi",
            {
                "lo": dt.datetime.combine(start, dt.time(), ZONE),
                "hi": dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), ZONE),
            },
        ),
        (
            {"start_date": (now - dt.timedelta(days=150)).isoformat()},
            "received_at >= :lo and received_at < :hi",
            {"lo": now - dt.timedelta(days=150), "hi": now - dt.timedelta(days=60)},
        ),
        (
            {"end_date": f"{(now - dt.timedelta(days=30)).astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"},
            "received_at > :hi - interval '90 days' and received_at <= :hi",
            {"hi": now - dt.timedelta(days=30)},
        ),
        (
            {"bbox": "116.30,39.90,116.32,39.92"},
            f"{recent} and ST_Intersects(geom,"
            " ST_MakeEnvelope(116.30, 39.90, 116.32, 39.92, 4326))",
            {},
        ),
        ({"street": STREET_B}, f"{recent} and street_code = :s", {"s": STREET_B}),
        (
            {"community": "110102001002"},
            f"{recent} and community_code = '110102001002'",
            {},
        ),
        (
            {"grid": "110102001001001,110102003002002"},
            f"{recent} and grid_code in ('110102001001001', '110102003002002')",
            {},
        ),
        ({"department": "城市管理部"}, f"{recent} and department = '城市管理部'", {}),
        (
            {"service_request_id": ",".join(map(str, old)), "service_code": "供暖"},
            "source_id in ('R7', 'R8')",  # the ids override every other filter
            {},
        ),
    ]
    for params, where, values in cases:
        status, body, _ = call(client, "GET", "/requests.json", **params)
        assert status == 200, (params, body)
        got = [item["service_request_id"] for item in body]
        assert got == ids_where(connection, where, **values), params
        assert got, params  # every case matches something
    # The bbox of street B, the filters combined.
    status, body, _ = call(
        client,
        "GET",
        "/requests.json",
        bbox="116.32,39.90,116.34,39.92",
        status="closed",
        service_code="噪声扰民",
    )
    assert [i["service_request_id"] for i in body] == ids_where(
        connection, f"{recent} and source_id = 'R2'"
    )


@pytest.mark.usefixtures("loaded")
def test_fields_of_a_request_and_the_single_request(
    client: FlaskClient, connection: sa.Connection
) -> None:
    row = connection.execute(
        sa.text(
            "select *, ST_X(geom) as lng, ST_Y(geom) as lat from service_requests"
            " where source_id = 'R3'"
        )
    ).one()
    status, body, _ = call(client, "GET", f"/requests/{row.id}.json")
    assert status == 200 and len(body) == 1
    item = body[0]
    due = f"{row.due_at.astimezone(ZONE):%Y-%m-%d %H:%M}"
    assert item == {
        "service_request_id": row.id,
        "status": "open",
        "status_notes": "处理中",
        "service_name": "停车管理",
        "service_code": "停车管理",
        "description": row.description,
        "agency_responsible": "城市管理部",
        "service_notice": f"由城市管理部办理，办理时限至 {due}",
        "requested_datetime": row.received_at.astimezone(ZONE).isoformat(),
        "updated_datetime": row.updated_at.astimezone(ZONE).isoformat(timespec="seconds"),
        "expected_datetime": row.due_at.astimezone(ZONE).isoformat(),
        "address": row.address,
        "address_id": None,
        "zipcode": None,
        "lat": row.lat,
        "long": row.lng,
        "media_url": None,
        "street_code": STREET_A,
        "community_code": "110102001002",
        "grid_code": "110102001002002",
    }
    assert item["requested_datetime"].endswith("+08:00")
    _, listed, _ = call(client, "GET", "/requests.json", service_request_id=str(row.id))
    assert listed == body
    closed = ids_where(connection, "source_id = 'R2'")[0]
    assert call(client, "GET", f"/requests/{closed}.json")[1][0]["status"] == "closed"
    for missing in ("999999999", "abc", "1e3"):
        status, body, _ = call(client, "GET", f"/requests/{missing}.json")
        assert status == 404
        georeport_error(body, 404, missing)


@pytest.mark.usefixtures("loaded")
def test_paging_walks_every_matching_request_once(
    anonymous: FlaskClient, connection: sa.Connection
) -> None:
    key = token(connection, "analyst")
    want = ids_where(connection, "received_at >= now() - interval '90 days'")
    assert len(want) == 6
    seen: list[int] = []
    params: dict[str, Any] = {"page_size": "4", "api_key": key}
    pages = 0
    while True:
        status, body, headers = call(anonymous, "GET", "/requests.json", **params)
        assert status == 200
        seen += [item["service_request_id"] for item in body]
        pages += 1
        link = headers.get("Link")
        if link is None:
            break
        target, rel = link.split(";")
        assert rel.strip() == 'rel="next"' and key not in target
        query = parse_qs(urlsplit(target.strip("<> ")).query)
        params = {k: v[0] for k, v in query.items()} | {"api_key": key}
    assert seen == want and pages == 2
    paths = connection.execute(sa.text("select path from audit_log")).scalars().all()
    assert paths and not [path for path in paths if path and key in path]  # never logged
    status, body, headers = call(
        anonymous, "GET", "/requests.json", page="3", page_size="4", api_key=key
    )
    assert (status, body) == (200, []) and "Link" not in headers


@pytest.mark.usefixtures("loaded")
@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"status": "pending"}, "pending"),
        ({"start_date": "yesterday"}, "yesterday"),
        ({"start_date": "2026-01-01", "end_date": "2026-06-01"}, "90"),
        ({"start_date": "2026-06-01", "end_date": "2026-05-01"}, "2026-05-01"),
        ({"street": "1101"}, "1101"),
        ({"grid": "11010200100100x"}, "11010200100100x"),
        ({"department": "财务部"}, "财务部"),
        ({"bbox": "116.3,39.9"}, "bbox"),
        ({"page": "0"}, "page"),
        ({"page_size": "1001"}, "1001"),
        ({"service_request_id": "12,x"}, "x"),
        ({"sort": "asc"}, "sort"),
    ],
)
def test_bad_queries_are_400_in_georeport_form(
    client: FlaskClient, params: dict[str, str], named: str
) -> None:
    status, body, _ = call(client, "GET", "/requests.json", **params)
    assert status == 400
    georeport_error(body, 400, named)


# --- who may do what ---------------------------------------------------------------------------


@pytest.mark.usefixtures("loaded")
def test_credentials_and_roles(
    app: Flask, anonymous: FlaskClient, connection: sa.Connection
) -> None:
    for method, path in [
        ("GET", "/requests.json"),
        ("GET", "/services.json"),
        ("POST", "/requests.json"),
    ]:
        status, body, _ = call(anonymous, method, path)
        assert status == 401
        georeport_error(body, 401)
    status, body, _ = call(anonymous, "GET", "/requests.json", api_key="bd_wrong")
    assert status == 401
    georeport_error(body, 401, "token")
    status, body, _ = call(anonymous, "POST", "/requests.json", api_key="bd_wrong", **GOOD)
    assert status == 401 and open311_rows(connection) == 0

    planner = token(connection, "planner")
    status, body, _ = call(anonymous, "GET", "/requests.json", api_key=planner)
    georeport_error(body, 403, "service_requests")
    assert call(anonymous, "GET", "/requests/1.json", api_key=planner)[0] == 403
    assert call(anonymous, "GET", "/services.json", api_key=planner)[0] == 200
    for role in ("planner", "analyst"):
        key = planner if role == "planner" else token(connection, role)
        status, body, _ = call(anonymous, "POST", "/requests.json", api_key=key, **GOOD)
        georeport_error(body, 403, role)
    # A clerk files requests (api_key in a form, or in a JSON body) but may not read them.
    clerk = token(connection, "clerk", STREET_A)  # the street centre's clerk (migration 0019)
    assert call(anonymous, "POST", "/requests.json", api_key=clerk, **GOOD)[0] == 200
    assert call(anonymous, "POST", "/requests.json", json={**GOOD, "api_key": clerk})[0] == 200
    assert call(anonymous, "GET", "/requests.json", api_key=clerk)[0] == 403
    # A session reads, but writing needs a token: this API is not protected against CSRF.
    session = login(app.test_client(), add_user(connection, "o311-session", "district"))
    assert call(session, "GET", "/requests.json")[0] == 200
    status, body, _ = call(session, "POST", "/requests.json", **GOOD)
    georeport_error(body, 401, "api_key")
    assert open311_rows(connection) == 2


@pytest.mark.usefixtures("loaded")
def test_a_commander_files_and_reads_in_their_own_street_only(
    anonymous: FlaskClient, connection: sa.Connection
) -> None:
    key = token(connection, "commander", STREET_A)
    status, body, _ = call(
        anonymous,
        "POST",
        "/requests.json",
        api_key=key,
        **{**GOOD, "lat": "39.915", "long": "116.335"},
    )
    assert status == 403
    georeport_error(body, 403, STREET_B)
    assert open311_rows(connection) == 0
    assert connection.execute(sa.text("select count(*) from request_dirty_days")).scalar() == 0

    status, body, _ = call(anonymous, "POST", "/requests.json", api_key=key, **GOOD)
    assert status == 200
    mine = body[0]["service_request_id"]
    assert stored(connection, mine).street_code == STREET_A

    status, body, _ = call(anonymous, "GET", "/requests.json", api_key=key)
    got = [item["service_request_id"] for item in body]
    assert got == ids_where(
        connection, "received_at >= now() - interval '90 days' and street_code = :s", s=STREET_A
    )
    assert mine in got
    other = ids_where(connection, "street_code = :s", s=STREET_B)[0]
    assert call(anonymous, "GET", f"/requests/{other}.json", api_key=key)[0] == 404
    status, body, _ = call(anonymous, "GET", "/requests.json", api_key=key, street=STREET_B)
    assert (status, body) == (200, [])


def test_the_policy_lets_the_reader_insert_in_its_zone_only(
    connection: sa.Connection, district: Any
) -> None:
    insert = sa.text(
        "insert into service_requests (source, source_id, received_at, street_code, geom)"
        " values ('t', :sid, now(), :street, ST_SetSRID(ST_MakePoint(116.305, 39.905), 4326))"
    )
    connection.exec_driver_sql("set local role blockdata_reader")
    connection.execute(sa.text("select set_config('blockdata.zone', :z, true)"), {"z": STREET_A})
    connection.execute(insert, {"sid": "in", "street": STREET_A})  # marks dirty days too
    # 42501 insufficient_privilege: the policy's WITH CHECK; no UPDATE privilege at all.
    with pytest.raises(sa.exc.ProgrammingError) as refused, connection.begin_nested():
        connection.execute(insert, {"sid": "out", "street": STREET_B})
    assert refused.value.orig.sqlstate == "42501"
    with pytest.raises(sa.exc.ProgrammingError) as refused, connection.begin_nested():
        connection.exec_driver_sql("update service_requests set status = 'x'")
    assert refused.value.orig.sqlstate == "42501"
    connection.exec_driver_sql("reset role")
    assert connection.execute(sa.text("select count(*) from request_dirty_days")).scalar_one() >= 1
    definer = connection.execute(
        sa.text(
            "select prosecdef, proconfig from pg_proc where proname = 'request_aggregates_mark'"
        )
    ).one()
    assert definer.prosecdef and definer.proconfig == ["search_path=pg_catalog, public, pg_temp"]


# --- live ----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("loaded")
def test_a_posted_request_is_live_on_the_command_view_and_in_the_heat(
    client: FlaskClient, anonymous: FlaskClient, connection: sa.Connection, now: dt.datetime
) -> None:
    def heat() -> int:
        body = client.get(
            f"/api/heat/service_requests?level=street&since={now.date()}&until={now.date()}"
        ).get_json()
        return sum(item["n"] for item in body["items"] if item["code"] == STREET_A)

    def latest() -> list[int]:
        body = client.get(f"/api/command/{STREET_A}/latest").get_json()
        return [f["properties"]["id"] for f in body["features"]]

    def street_day() -> int:
        return int(
            connection.execute(
                sa.text(
                    "select coalesce(sum(received), 0) from request_street_daily"
                    " where street_code = :s and day = :d"
                ),
                {"s": STREET_A, "d": now.date()},
            ).scalar_one()
        )

    heat_before, latest_before, day_before = heat(), latest(), street_day()
    key = token(connection, "district")
    status, body, _ = call(anonymous, "POST", "/requests.json", api_key=key, **GOOD)
    assert status == 200
    new = body[0]["service_request_id"]
    assert latest() == [new, *latest_before]
    assert heat() == heat_before + 1
    assert street_day() == day_before + 1
    assert connection.execute(sa.text("select count(*) from request_dirty_days")).scalar() == 0
    assert new in connection.execute(sa.text("select id from request_open")).scalars().all()


def test_a_post_does_not_wait_for_a_bulk_refresh_and_the_next_one_catches_up(
    anonymous: FlaskClient, connection: sa.Connection, engine: sa.Engine, district: Any
) -> None:
    # No ETL run in this test: its refresh would hold the lock until the test's rollback.
    def open_ids() -> set[int]:
        return set(connection.execute(sa.text("select id from request_open")).scalars())

    key = token(connection, "district")
    with engine.connect() as other, other.begin():
        # Another transaction refreshing (a bulk load's rebuild, say) holds the lock.
        other.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(REFRESH_LOCK))))
        status, body, _ = call(anonymous, "POST", "/requests.json", api_key=key, **GOOD)
        assert status == 200
        first = body[0]["service_request_id"]
        assert first not in open_ids()
        assert connection.execute(sa.text("select count(*) from request_dirty_days")).scalar()
    status, body, _ = call(anonymous, "POST", "/requests.json", api_key=key, **GOOD)
    assert status == 200
    assert {first, body[0]["service_request_id"]} <= open_ids()
    assert connection.execute(sa.text("select count(*) from request_dirty_days")).scalar() == 0
