"""Search and areas through the API, on a demo district (15 streets), as every role concerned.

Expected places and figures come from the rows, read here with SQL of the test's own (the
grid label built here from the community's name and the code's last three digits), never
through layers.queries.search or areas. Two commanders of two different streets each find
their own street's places, requests and cases and never the other's; the analyst finds
requests but no case (it works none); the planner searches places but reads no request; a
department may use none of it. Bad parameters are 400 with a Chinese JSON error.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.config import from_env
from app.db import make_engine
from tests.clock import BEIJING, FrozenClock, day_start
from tests.helpers import add_unit, add_user, get, json_error, login, ok
from tests.plugins.ogc import demo_database

END = dt.date(2026, 11, 18)
NOW = dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING)
ROLES = ("district", "analyst", "planner", "assessor", "department", "clerk", "grid_officer")


@dataclass
class Demo:
    app: Flask
    engine: sa.Engine
    users: dict[str, int]
    a: str  # the first commander's street
    b: str  # the second's


@pytest.fixture(scope="module")
def demo(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    name = f"blockdata_test_search_{os.getpid()}"
    sizes = {"requests": 3000, "cases": 150, "targets": 10, "projects": 10, "end": END}
    with demo_database(server_url, name, tmp_path_factory.mktemp("demo"), **sizes) as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            # the two busiest streets: both have requests and cases
            a, b = conn.exec_driver_sql(
                "select street_code from service_requests where street_code is not null "
                "group by 1 order by count(*) desc, 1 limit 2"
            ).scalars()
            unit = add_unit(conn)
            users = {
                role: add_user(
                    conn,
                    f"search-{role}",
                    role,
                    a if role in ("clerk", "grid_officer") else None,
                    unit if role in ("department", "assessor") else None,
                )
                for role in ROLES
            }
            users["commander-a"] = add_user(conn, "search-commander-a", "commander", a)
            users["commander-b"] = add_user(conn, "search-commander-b", "commander", b)
        app = create_app(
            {"DATABASE_URL": url, "TESTING": True},
            settings=from_env().with_(clock=FrozenClock(NOW)),
        )
        try:
            yield Demo(app, engine, users, a, b)
        finally:
            app.extensions["blockdata.engine"].dispose()
            engine.dispose()


def client(demo: Demo, who: str) -> FlaskClient:
    return login(demo.app.test_client(), demo.users[who])


def rows(demo: Demo, sql: str, **params: Any) -> list[sa.Row[Any]]:
    with demo.engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def community_of(demo: Demo, street: str) -> sa.Row[Any]:
    """A community of `street` whose name is unique in the district and in no lane's or
    landmark's name."""
    return rows(
        demo,
        "select c.code, c.name from communities c where c.street_code = :s "
        "and (select count(*) from communities o where o.name like '%' || c.name || '%') = 1 "
        "and not exists (select from lanes l where l.name like '%' || c.name || '%') "
        "order by c.code limit 1",
        s=street,
    )[0]


def grid_of(demo: Demo, street: str) -> tuple[str, str]:
    """A grid of `street` with requests in the last 30 days, and its label."""
    code, community = rows(
        demo,
        "select g.code, c.name from grids g join communities c on c.code = g.community_code "
        "join service_requests r on r.grid_code = g.code where g.street_code = :s "
        "group by 1, 2 order by count(*) desc, 1 limit 1",
        s=street,
    )[0]
    return code, f"{community} 第{int(code[-3:])}网格"


def found(body: dict[str, Any], kind: str) -> list[str]:
    return [r["code"] for r in body["results"] if r["kind"] == kind]


def streets_of(body: dict[str, Any]) -> set[str | None]:
    return {r["street_code"] for r in body["results"]}


# --- search ---------------------------------------------------------------------------------


def test_community_by_name_short_name_and_official_name(demo: Demo) -> None:
    code, name = community_of(demo, demo.b)
    short = name.removesuffix("社区")
    for text in (name, short, f"{short}社区居委会", f"北京市西城区{name}"):
        body = ok(client(demo, "district"), "/api/search", q=text)
        first = body["results"][0]
        assert (first["kind"], first["code"], first["label"]) == ("community", code, name), text
        assert first["street_code"] == demo.b
        # the point to fly to lies in the community, the box holds it
        inside = rows(
            demo,
            "select ST_Contains(geom, ST_SetSRID(ST_Point(:x, :y), 4326)) from communities "
            "where code = :c",
            x=first["lng"],
            y=first["lat"],
            c=code,
        )[0][0]
        assert inside
        x0, y0, x1, y1 = first["bbox"]
        assert x0 <= first["lng"] <= x1 and y0 <= first["lat"] <= y1


def test_grid_by_label_and_by_code(demo: Demo) -> None:
    code, label = grid_of(demo, demo.a)
    for text in (label, code, f"网格 {code}"):
        body = ok(client(demo, "district"), "/api/search", q=text)
        first = body["results"][0]
        assert (first["kind"], first["code"], first["label"]) == ("grid", code, label), text


def test_commanders_never_find_the_other_street(demo: Demo) -> None:
    for me, mine, theirs in (("commander-a", demo.a, demo.b), ("commander-b", demo.b, demo.a)):
        c = client(demo, me)
        own_code, own_name = community_of(demo, mine)
        their_code, their_name = community_of(demo, theirs)
        assert found(ok(c, "/api/search", q=own_name), "community")[0] == own_code
        body = ok(c, "/api/search", q=their_name)
        assert their_code not in found(body, "community")
        assert streets_of(body) <= {mine}
        grid, label = grid_of(demo, theirs)
        body = ok(c, "/api/search", q=label)
        assert grid not in found(body, "grid")
        assert streets_of(body) <= {mine}
        # a street's code prefix finds only the caller's own units
        assert streets_of(ok(c, "/api/search", q=theirs[:6], limit=50)) <= {mine}


def _request_in(demo: Demo, street: str) -> tuple[str, int | None]:
    source_id, case_id = rows(
        demo,
        "select r.source_id, c.id from service_requests r "
        "join cases c on c.service_request_id = r.id "
        "where r.street_code = :s order by r.id limit 1",
        s=street,
    )[0]
    return str(source_id), int(case_id)


def test_work_order_numbers_by_role_and_street(demo: Demo) -> None:
    source_id, case_id = _request_in(demo, demo.b)
    district = ok(client(demo, "district"), "/api/search", q=source_id)
    first = district["results"][0]
    assert (first["kind"], first["code"], first["case_id"]) == ("request", source_id, case_id)
    point = rows(
        demo,
        "select ST_X(geom), ST_Y(geom) from service_requests where source_id = :s",
        s=source_id,
    )[0]
    assert (first["lng"], first["lat"]) == (round(point[0], 6), round(point[1], 6))
    # a prefix finds it too (and only requests of that prefix)
    prefix = ok(client(demo, "district"), "/api/search", q=source_id[:-2], limit=50)
    assert source_id in found(prefix, "request")
    assert all(c.startswith(source_id[:-2]) for c in found(prefix, "request"))
    assert found(ok(client(demo, "commander-b"), "/api/search", q=source_id), "request") == [
        source_id
    ]
    assert ok(client(demo, "commander-a"), "/api/search", q=source_id)["results"] == []
    # the analyst reads requests but works no case: no case number with it
    analyst = ok(client(demo, "analyst"), "/api/search", q=source_id)["results"]
    assert [(r["code"], r["case_id"]) for r in analyst] == [(source_id, None)]
    # the planner reads no request
    assert ok(client(demo, "planner"), "/api/search", q=source_id)["results"] == []


def test_case_numbers_by_role_and_street(demo: Demo) -> None:
    _, case_id = _request_in(demo, demo.b)
    for text in (f"#{case_id}", f"案件{case_id}"):
        body = ok(client(demo, "district"), "/api/search", q=text)
        assert found(body, "case") == [str(case_id)]
        assert body["results"][0]["street_code"] == demo.b
        assert found(ok(client(demo, "commander-b"), "/api/search", q=text), "case") == [
            str(case_id)
        ]
        assert ok(client(demo, "commander-a"), "/api/search", q=text)["results"] == []
        assert ok(client(demo, "analyst"), "/api/search", q=text)["results"] == []


def test_lanes_and_landmarks(demo: Demo) -> None:
    code, name, street = rows(
        demo,
        "select code, name, street_code from lanes l where "
        "(select count(*) from lanes o where o.name = l.name) = 1 order by code limit 1",
    )[0]
    body = ok(client(demo, "district"), "/api/search", q=name)
    assert (body["results"][0]["kind"], body["results"][0]["code"]) == ("lane", code)
    mark = rows(
        demo,
        "select code, name from landmarks l where "
        "(select count(*) from landmarks o where o.name like '%' || l.name || '%') = 1 "
        "and street_code is not null order by code limit 1",
    )
    if mark:
        body = ok(client(demo, "district"), "/api/search", q=mark[0].name)
        assert mark[0].code in found(body, "landmark")
    other = demo.a if street != demo.a else demo.b
    commander = "commander-a" if other == demo.a else "commander-b"
    assert code not in found(ok(client(demo, commander), "/api/search", q=name), "lane")


def test_a_typo_finds_the_community_fuzzily(demo: Demo) -> None:
    code, name = community_of(demo, demo.a)
    typo = name[0] + "X" + name[2:] if len(name) > 3 else name + "X"
    body = ok(client(demo, "district"), "/api/search", q=typo)
    assert code in found(body, "community")


def test_limit_is_kept(demo: Demo) -> None:
    body = ok(client(demo, "district"), "/api/search", q=demo.a[:6], limit=3)
    assert 0 < len(body["results"]) <= 3


# --- areas ----------------------------------------------------------------------------------


def expected_area(demo: Demo, column: str, code: str, since: dt.date, until: dt.date) -> dict:
    """The figures from the rows: requests received in the local days, open now, overdue."""
    lo, hi = day_start(since), day_start(until + dt.timedelta(days=1))
    where = f"{column} = :c and received_at >= :lo and received_at < :hi"
    row = rows(
        demo,
        "select count(*) n, count(*) filter (where status is distinct from '已办结') open, "
        "count(*) filter (where status is distinct from '已办结' and due_at < :now) overdue, "
        "count(*) filter (where callback_valid) v, "
        "count(*) filter (where callback_valid and callback_contacted) contacted "
        f"from service_requests where {where}",
        c=code,
        lo=lo,
        hi=hi,
        now=NOW,
    )[0]
    top = rows(
        demo,
        f"select category, count(*) n from service_requests where {where} "
        "group by 1 order by 2 desc, 1 limit 5",
        c=code,
        lo=lo,
        hi=hi,
    )
    return {
        "requests": row.n,
        "open": row.open,
        "overdue": row.overdue,
        "callbacks": row.v,
        "response": round(row.contacted / row.v, 4) if row.v else None,
        "top": [(t.category, t.n) for t in top],
    }


def _check(body: dict[str, Any], want: dict[str, Any]) -> None:
    assert body["requests"] == want["requests"]
    assert (body["open"], body["overdue"]) == (want["open"], want["overdue"])
    assert [(t["category"], t["n"]) for t in body["top_categories"]] == want["top"]
    if want["callbacks"]:
        assert body["rates"]["callbacks"] == want["callbacks"]
        assert body["rates"]["response"] == want["response"]
    else:
        assert body["rates"] is None


def test_area_figures_equal_the_rows(demo: Demo) -> None:
    grid, label = grid_of(demo, demo.a)
    community, community_name = rows(
        demo, "select code, name from communities where code = :c", c=grid[:12]
    )[0]
    street_name = rows(demo, "select name from streets where code = :s", s=demo.a)[0][0]
    default = (END - dt.timedelta(days=29), END)
    for level, column, code, name in (
        ("grid", "grid_code", grid, label),
        ("community", "community_code", community, community_name),
        ("street", "street_code", demo.a, street_name),
    ):
        body = ok(client(demo, "district"), f"/api/areas/{level}/{code}")
        assert (body["level"], body["code"], body["label"]) == (level, code, name)
        assert body["street"] == {"code": demo.a, "name": street_name}
        want = expected_area(demo, column, code, *default)
        assert want["requests"] > 0
        _check(body, want)
        # another window, and the same figures for the street's commander and the analyst
        since, until = dt.date(2026, 9, 1), dt.date(2026, 10, 31)
        want = expected_area(demo, column, code, since, until)
        for who in ("district", "commander-a", "analyst", "assessor"):
            body = ok(
                client(demo, who),
                f"/api/areas/{level}/{code}",
                since=since.isoformat(),
                until=until.isoformat(),
            )
            _check(body, want)


def test_area_of_another_street_is_not_found_for_a_commander(demo: Demo) -> None:
    grid, _ = grid_of(demo, demo.b)
    for level, code in (("grid", grid), ("community", grid[:12]), ("street", demo.b)):
        status, body = get(client(demo, "commander-a"), f"/api/areas/{level}/{code}")
        assert status == 404, body
        assert "辖区" in body["message"]
        assert ok(client(demo, "commander-b"), f"/api/areas/{level}/{code}")["requests"] > 0


def test_roles_refused(demo: Demo) -> None:
    grid, _ = grid_of(demo, demo.a)
    for who in ("planner", "department", "clerk", "grid_officer"):
        status, body = get(client(demo, who), f"/api/areas/grid/{grid}")
        assert status == 403, (who, body)
    status, body = get(client(demo, "department"), "/api/search", q="社区")
    assert status == 403, body
    assert demo.app.test_client().get("/api/search?q=x").status_code == 401


# --- bad parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("/api/search", "缺少查询文字"),
        ("/api/search?q=", "缺少查询文字"),
        ("/api/search?q=%20%20", "缺少查询文字"),
        ("/api/search?q=x&limit=0", "超出范围"),
        ("/api/search?q=x&limit=abc", "应为整数"),
        ("/api/search?q=" + "长" * 101, "q"),
        ("/api/search?q=x&bogus=1", "bogus"),
        ("/api/geocode", "缺少查询文字"),
        ("/api/geocode?q=x&limit=99", "超出范围"),
        ("/api/reverse?lat=39.9", "缺少坐标"),
        ("/api/reverse?lng=abc&lat=39.9", "坐标应为数字"),
        ("/api/reverse?lng=200&lat=39.9", "坐标超出范围"),
        ("/api/reverse?lng=nan&lat=39.9", "坐标超出范围"),
        ("/api/areas/city/110102001", "层级无效"),
        ("/api/areas/grid/110102001", "代码格式错误"),
        ("/api/areas/street/11010200x", "代码格式错误"),
        ("/api/areas/street/110102001?since=2026-10-31&until=2026-10-01", "since"),
        ("/api/areas/street/110102001?since=yesterday", "since"),
    ],
)
def test_bad_parameters_are_400_json(demo: Demo, url: str, words: str) -> None:
    message = json_error(client(demo, "district"), url)
    assert words in message


# --- geocode and reverse --------------------------------------------------------------------


def test_reverse_names_the_grid_and_keeps_commanders_in_their_street(demo: Demo) -> None:
    grid, label = grid_of(demo, demo.b)
    x, y, community = rows(
        demo,
        "select ST_X(p), ST_Y(p), community_code from "
        "(select ST_PointOnSurface(geom) p, community_code from grids where code = :g) s",
        g=grid,
    )[0]
    for who in ("district", "commander-b", "analyst", "planner"):
        body = ok(client(demo, who), "/api/reverse", lng=x, lat=y)
        assert body["street"]["code"] == demo.b, who
        assert body["community"]["code"] == community
        assert (body["grid"]["code"], body["grid"]["label"]) == (grid, label)
    status, body = get(client(demo, "commander-a"), "/api/reverse", lng=x, lat=y)
    assert status == 404, body
    assert demo.b not in str(body) and grid not in str(body)
    status, body = get(client(demo, "district"), "/api/reverse", lng=0, lat=0)
    assert status == 404, body
    assert get(client(demo, "department"), "/api/reverse", lng=x, lat=y)[0] == 403


def test_geocode_a_community_and_the_zone_rule(demo: Demo) -> None:
    code, name = community_of(demo, demo.b)
    body = ok(client(demo, "district"), "/api/geocode", q=name)
    assert body["query"] == name
    first = body["results"][0]
    assert (first["level"], first["community_code"], first["street_code"]) == (
        "community",
        code,
        demo.b,
    )
    assert 0 < first["score"] <= 1
    assert (
        ok(client(demo, "commander-b"), "/api/geocode", q=name)["results"][0]["community_code"]
        == code
    )
    mine = ok(client(demo, "commander-a"), "/api/geocode", q=name)["results"]
    assert all(m["street_code"] in (demo.a, None) for m in mine), mine
    assert all(m["community_code"] != code for m in mine)
    assert all(demo.b not in m["candidates"] for m in mine)
    # the search box falls back to the geocoder for what names no place by itself
    body = ok(client(demo, "district"), "/api/search", q=f"{name}附近")
    addresses = [r for r in body["results"] if r["kind"] == "address"]
    assert [(a["code"], a["street_code"]) for a in addresses][:1] == [(code, demo.b)]
    assert (addresses[0]["lng"], addresses[0]["lat"]) == (first["lng"], first["lat"])
    other = ok(client(demo, "commander-a"), "/api/search", q=f"{name}附近")
    assert streets_of(other) <= {demo.a}


def test_an_address_with_a_house_number_is_geocoded_in_the_search(demo: Demo) -> None:
    """A plate of the demo's gazetteer (门牌): the search box's address result lies at the
    plate's point, in the grid that holds it (found here by ST_Contains)."""
    address, x, y, grid = rows(
        demo,
        "select a.address, ST_X(a.geom), ST_Y(a.geom), g.code from gazetteer_addresses a "
        "join grids g on ST_Contains(g.geom, a.geom) where a.street_code = :s "
        "and a.prefix is null and a.sub is null "
        "and (select count(*) from gazetteer_addresses o where o.address = a.address) = 1 "
        "order by a.id limit 1",
        s=demo.b,
    )[0]
    body = ok(client(demo, "district"), "/api/search", q=address)
    first = next(r for r in body["results"] if r["kind"] == "address")
    assert (first["code"], first["street_code"], first["level"]) == (grid, demo.b, "address_point")
    assert abs(first["lng"] - x) < 1e-6 and abs(first["lat"] - y) < 1e-6
    assert ok(client(demo, "commander-b"), "/api/search", q=address)["results"][0]["code"] == grid
    other = ok(client(demo, "commander-a"), "/api/search", q=address)
    assert streets_of(other) <= {demo.a}
    assert grid not in {r["code"] for r in other["results"]}
