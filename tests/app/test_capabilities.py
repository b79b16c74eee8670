"""Roles → capabilities, as every role meets them: every route of the server, every role.

The expected verdicts are written here from the policy itself (the issue's roles: the district
and the analyst read everything, a commander everything of their street, the planner the
boundaries and the two progress layers, the clerk the boundaries, a department (承办单位, bound
to one unit) no layer and no page; pages per role; exports and intake per role), not read from
app.capabilities. The tiny district with 60 requests
(test_ogc's `loaded`) in the rolled-back test transaction.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.auth import new_token
from app.cli import main
from app.config import Settings
from app.db import make_engine
from layers import LAYERS
from layers.accounts import api_tokens
from layers.queries.features import collections
from tests.helpers import add_unit, add_user, login

A, B = "110102001", "110102003"
ROLES = (
    "district",
    "commander",
    "analyst",
    "planner",
    "clerk",
    "department",
    "grid_officer",
    "assessor",
)
UNIT_ROLES = ("department", "assessor")  # bound to one unit (migrations 0018, 0022)
STREET_ROLES = ("commander", "clerk", "grid_officer")  # bound to one street (migration 0019)
ADMIN = {"streets", "communities", "grids", "lanes", "service_halls"}
PROGRESS = {"relocation_targets", "renovation_projects"}
EVERYTHING = ADMIN | PROGRESS | {"service_requests", "enforcement_cases"}
READS = {
    "district": EVERYTHING,
    "commander": EVERYTHING,
    "analyst": EVERYTHING,
    "planner": ADMIN | PROGRESS,
    "clerk": ADMIN,
    "department": set(),
    "grid_officer": ADMIN,
    "assessor": EVERYTHING,
}
PAGES = {
    "district": {"overview", "command", "planner", "imports", "evaluation", "evaluation_score"},
    "commander": {"command", "evaluation"},
    "analyst": {"overview", "command", "planner", "evaluation", "evaluation_score"},
    "planner": {"planner"},
    "clerk": {"imports", "queue"},
    "department": {"queue"},
    "grid_officer": {"report"},
    "assessor": {"evaluation_score", "evaluation", "overview"},
}
EXPORTERS = {"district", "commander", "analyst", "planner"}
INTAKE = {"district", "commander", "clerk", "grid_officer"}
CASE = "/api/cases/<int(max=9223372036854775807):case_id>"
WHISTLE_UNIT = "/api/whistles/<int(max=9223372036854775807):whistle_id>/units/<unit_code>"
CASE_WORKERS = {"district", "commander", "clerk", "department"}  # cases and whistles
EVAL = "/api/evaluation"
INPUT_READERS = {"district", "analyst", "assessor"}  # the evaluation's inputs, read


def works_cases(role: str, args: dict[str, Any]) -> bool:
    return role in CASE_WORKERS


def sees_photos(role: str, args: dict[str, Any]) -> bool:
    return role in CASE_WORKERS | INTAKE


Verdict = Callable[[str, dict[str, Any]], bool]


def page(name: str) -> Verdict:
    return lambda role, args: name in PAGES[role]


def reads(*layers: str) -> Verdict:
    return lambda role, args: set(layers) <= READS[role]


def reads_arg(name: str) -> Verdict:
    return lambda role, args: args[name] in READS[role]


def anyone(role: str, args: dict[str, Any]) -> bool:
    return True


def _collection_layer(role: str, args: dict[str, Any]) -> bool:
    # An OGC collection is a layer, or one geometry dimension of it (…_lines / …_areas).
    layer = re.sub(r"_(lines|areas)$", "", args["collection_id"])
    return layer in READS[role]


# Every route of the server (method, rule) and who may use it.
POLICY: dict[tuple[str, str], Verdict] = {
    ("GET", "/"): page("overview"),
    ("GET", "/command/<street_code>"): page("command"),
    ("GET", "/planner"): page("planner"),
    ("GET", "/imports"): page("imports"),
    ("GET", "/queue"): page("queue"),
    ("GET", "/imports/<int(max=2147483647):run_id>"): page("imports"),
    ("POST", "/logout"): anyone,
    ("GET", "/api/openapi.json"): anyone,
    ("GET", "/api/heat/<layer>"): reads_arg("layer"),
    ("GET", "/api/streets"): reads("streets", "service_requests"),
    ("GET", "/api/command/<street_code>/summary"): reads("streets", "service_requests"),
    ("GET", "/api/command/<street_code>/latest"): reads("service_requests"),
    ("GET", "/api/planner"): reads("relocation_targets", "renovation_projects"),
    ("GET", "/api/layers"): anyone,
    ("GET", "/api/units"): anyone,
    ("GET", "/api/layers/<layer>/geojson"): reads_arg("layer"),
    ("GET", "/api/layers/<layer>/features"): (
        lambda role, args: args["layer"] in READS[role] and role in EXPORTERS
    ),
    ("GET", "/ogc/"): anyone,
    ("GET", "/ogc/conformance"): anyone,
    ("GET", "/ogc/api"): anyone,
    ("GET", "/ogc/collections"): anyone,
    ("GET", "/ogc/collections/<collection_id>"): _collection_layer,
    ("GET", "/ogc/collections/<collection_id>/items"): _collection_layer,
    ("GET", "/ogc/collections/<collection_id>/items/<feature_id>"): _collection_layer,
    ("GET", "/tiles/<layer>/<z>/<x>/<y>.pbf"): reads_arg("layer"),
    ("GET", "/tiles/<layer>.json"): reads_arg("layer"),
    ("GET", "/open311/v2/services.<fmt>"): anyone,
    ("GET", "/open311/v2/services/<service_code>.<fmt>"): anyone,
    ("GET", "/open311/v2/requests.<fmt>"): reads("service_requests"),
    ("GET", "/open311/v2/requests/<request_id>.<fmt>"): reads("service_requests"),
    ("POST", "/open311/v2/requests.<fmt>"): lambda role, args: role in INTAKE,
    ("GET", "/api/cases"): works_cases,
    ("GET", "/api/cases/load"): works_cases,
    ("GET", "/api/cases/overdue"): works_cases,
    ("GET", "/api/cases/<int(max=9223372036854775807):case_id>"): works_cases,
    ("POST", "/api/cases/<int(max=9223372036854775807):case_id>/transitions"): works_cases,
    ("GET", "/api/whistles"): works_cases,
    ("GET", "/api/evaluation/departments"): reads("service_requests"),
    ("GET", "/api/evaluation/guards"): reads("service_requests"),
    ("GET", "/api/evaluation/guards/<guard>"): reads("service_requests"),
    ("GET", "/report"): page("report"),
    ("POST", "/report"): page("report"),
    ("GET", "/api/reports"): lambda role, args: role in INTAKE,
    ("GET", f"{CASE}/photos"): sees_photos,
    ("POST", f"{CASE}/photos"): sees_photos,
    ("GET", f"{CASE}/photos/<int(max=9223372036854775807):photo_id>"): sees_photos,
    ("POST", "/api/whistles"): works_cases,
    ("GET", "/evaluation/score"): page("evaluation_score"),
    **{
        ("GET", f"{EVAL}/{path}"): (lambda role, args: role in INPUT_READERS)
        for path in ("scores", "scores/audit", "tasks", "survey")
    },
    **{
        route: (lambda role, args: role == "assessor")
        for route in (
            ("PUT", f"{EVAL}/scores"),
            ("GET", f"{EVAL}/scores/template.xlsx"),
            ("POST", f"{EVAL}/scores/import"),
            ("POST", f"{EVAL}/tasks"),
            ("PATCH", f"{EVAL}/tasks/<int(max=9223372036854775807):task_id>"),
            ("POST", f"{EVAL}/events"),
        )
    },
    ("POST", f"{EVAL}/survey/import"): lambda role, args: role == "district",
    ("GET", "/evaluation"): page("evaluation"),
    ("GET", "/api/evaluation/drill"): reads("service_requests"),
    **{
        ("GET", f"/api/{path}"): reads("streets", "communities", "grids")
        for path in ("search", "geocode", "reverse")
    },
    ("GET", "/api/areas/<level>/<code>"): reads(
        "streets", "communities", "grids", "service_requests"
    ),
    **{
        (
            "POST",
            f"/api/whistles/<int(max=9223372036854775807):whistle_id>/units/<unit_code>/{m}",
        ): (works_cases)
        for m in ("arrival", "completion", "rating")
    },
}
EVALUATION = "/api/evaluation"
EVAL_LIVE = {"district", "analyst", "assessor"}  # 考评: live and published
EVAL_READERS = EVAL_LIVE | {"commander"}  # a commander: published periods only
POLICY.update(
    {
        ("GET", f"{EVALUATION}/schemes"): lambda role, args: role in EVAL_READERS,
        ("GET", f"{EVALUATION}/schemes/<code>"): lambda role, args: role in EVAL_READERS,
        ("GET", f"{EVALUATION}/periods/<label>"): lambda role, args: role in EVAL_READERS,
        ("POST", f"{EVALUATION}/periods/<label>/publish"): lambda role, args: role == "district",
        ("GET", f"{EVALUATION}/periods/<label>/versions"): lambda role, args: role in EVAL_READERS,
        ("GET", f"{EVALUATION}/periods/<label>/what-if"): lambda role, args: role in EVAL_LIVE,
    }
)
PUBLIC = {("GET", "/healthz"), ("GET", "/login"), ("POST", "/login")}
# Where a readable layer still has no such resource (the endpoint's own 404).
NOT_SERVED: dict[str, Callable[[dict[str, Any]], bool]] = {
    "/api/heat/<layer>": lambda args: args["layer"] != "service_requests",
    "/api/layers/<layer>/geojson": lambda args: args["layer"] == "service_requests",
    # No case 0 nor whistle 0 (an empty POST body is refused first: 400, see ANSWERS).
    "/api/cases/<int(max=9223372036854775807):case_id>": lambda args: True,
    f"{CASE}/photos": lambda args: True,
    f"{CASE}/photos/<int(max=9223372036854775807):photo_id>": lambda args: True,
    **{f"{WHISTLE_UNIT}/{m}": (lambda args: True) for m in ("arrival", "completion")},
    # No evaluation scheme is loaded here (tests/app/test_evaluation_api.py has them).
    **{
        f"{EVALUATION}/{rule}": (lambda args: True)
        for rule in (
            "schemes/<code>",
            "periods/<label>",
            "periods/<label>/publish",
            "periods/<label>/versions",
            "periods/<label>/what-if",
        )
    },
    # No evaluation scheme is loaded here (their own tests load one); no task 0.
    **{
        f"{EVAL}/{path}": (lambda args: True)
        for path in ("scores", "scores/audit", "scores/template.xlsx", "survey")
    },
    f"{EVAL}/tasks/<int(max=9223372036854775807):task_id>": lambda args: True,
}
# Allowed POSTs sent without a body: the view's own 400 (the body is checked first).
# The search routes need a query (without one: 400); a point off the map is not served.
AREAS = "/api/areas/<level>/<code>"
QUERIES = {
    "/api/search": "?q=%E7%A4%BE%E5%8C%BA",
    "/api/geocode": "?q=%E7%A4%BE%E5%8C%BA",
    "/api/reverse": "?lng=0&lat=0",
}
NOT_SERVED["/api/reverse"] = lambda args: True
BODY_REFUSED = {
    "/api/cases/<int(max=9223372036854775807):case_id>/transitions",
    "/api/whistles",
    f"{WHISTLE_UNIT}/rating",
    "/report",
    f"{EVAL}/scores",
    f"{EVAL}/scores/import",
    f"{EVAL}/tasks",
    f"{EVAL}/events",
    f"{EVAL}/survey/import",
}
GOOD_POST = {"service_code": "环境卫生", "lat": "39.905", "long": "116.305", "description": "垃圾"}


def test_a_role_reads_every_layer_of_the_pages_it_opens() -> None:
    """A page drawn from layers its viewer may not read would be a page of 403s."""
    from app import capabilities

    assert set(capabilities.ROLES) == set(ROLES)
    for role in capabilities.ROLES.values():
        for name in role.pages:
            assert capabilities.PAGES[name].layers <= role.layers, (role.name, name)


def _routes(app: Flask) -> list[tuple[str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):  # type: ignore[operator]
            out.append((method, rule.rule))
    return out


def test_every_route_has_a_decided_policy(app: Flask) -> None:
    routes = set(_routes(app))
    assert routes - PUBLIC - set(POLICY) == set(), "routes without a decision in this test"
    assert set(POLICY) - routes == set(), "decisions for routes that do not exist"


def _argument_values(conn: sa.Connection) -> dict[str, list[str]]:
    """Values for every view argument, each naming something that exists where it can."""
    first = conn.execute(sa.text("select min(id) from service_requests")).scalar_one()
    run = conn.execute(sa.text("select max(id) from etl_runs")).scalar_one()
    return {
        "layer": [layer.name for layer in LAYERS],
        "collection_id": [c.id for c in collections()],
        "street_code": [A],
        "run_id": [str(run)],
        "request_id": [str(first)],
        "service_code": ["环境卫生"],
        "fmt": ["json"],
        "z": ["14"],
        "x": ["13486"],
        "y": ["6203"],
        "case_id": ["0"],
        "whistle_id": ["0"],
        "photo_id": ["0"],
        "task_id": ["0"],
        "unit_code": ["district-fire"],
        "label": ["2026-11"],
        "code": ["xicheng"],
        "guard": ["repeat"],
    }


def _feature_id(conn: sa.Connection, collection_id: str) -> str:
    """The key of one feature of the collection, or a key that does not exist."""
    collection = next(c for c in collections() if c.id == collection_id)
    key = collection.table.primary_key.columns[0]
    value = conn.execute(sa.select(sa.func.min(key))).scalar()
    return "0" if value is None else str(value)


def _cases(app: Flask, conn: sa.Connection) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, rule, url, args) for every route and every value of its arguments."""
    values = _argument_values(conn)
    cases = []
    for method, rule in _routes(app):
        if (method, rule) in PUBLIC:
            continue
        names = re.findall(r"<(?:[^:>]+:)?(\w+)>", rule)
        combos: list[dict[str, Any]] = [{}]
        for name in names:
            if name == "feature_id":
                combos = [{**c, name: _feature_id(conn, c["collection_id"])} for c in combos]
            elif rule == AREAS:  # a street's area (the level's code)
                combos = [{**c, name: {"level": "street", "code": A}[name]} for c in combos]
            else:
                combos = [{**c, name: v} for c in combos for v in values[name]]
        for args in combos:
            url = re.sub(r"<(?:[^:>]+:)?(\w+)>", lambda m, a=args: str(a[m[1]]), rule)
            url += QUERIES.get(rule, "")
            cases.append((method, rule, url, args))
    return cases


def _call(client: FlaskClient, method: str, url: str, headers: dict[str, str]) -> Any:
    if method == "POST" and url.startswith("/open311"):
        return client.post(url, data=GOOD_POST, headers=headers)
    return client.open(url, method=method, headers=headers)


@pytest.mark.usefixtures("loaded")
@pytest.mark.parametrize("role", ROLES)
def test_every_role_gets_the_policys_verdict_on_every_route(
    app: Flask, connection: sa.Connection, role: str
) -> None:
    """Allowed: the route answers (200, or its own 404 where nothing is served); refused: 403
    with the reason. Sessions for every route; a bearer token for the APIs (Open311's POST
    takes only a token), so both ways in get the same verdict."""
    unit = add_unit(connection) if role in UNIT_ROLES else None
    uid = add_user(connection, f"cap-{role}", role, A if role in STREET_ROLES else None, unit)
    value, digest = new_token()
    connection.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
    session = login(app.test_client(), uid)
    bearer = {"Authorization": f"Bearer {value}"}
    checked = 0
    for method, rule, url, args in _cases(app, connection):
        allowed = POLICY[(method, rule)](role, args)
        ways = [] if method == "POST" and rule.startswith("/open311") else [(session, {})]
        if not rule.startswith(("/command", "/planner", "/imports", "/logout")) and rule != "/":
            ways.append((app.test_client(), bearer))
        for client, headers in ways:
            response = _call(client, method, url, headers)
            status = response.status_code
            what = f"{role} {method} {url} ({'token' if headers else 'session'}) → {status}"
            if not allowed:
                assert status == 403, what
                body = response.get_data(as_text=True)
                assert "无权" in body, what
            elif method in ("POST", "PUT") and rule in BODY_REFUSED:
                assert status == 400, what
            elif rule.startswith(WHISTLE_UNIT) and unit is not None and args["unit_code"] != unit:
                # A unit's user reports for its own unit only: refused before any lookup.
                assert status == 403, what
                assert "本单位" in response.get_data(as_text=True), what
            elif rule in NOT_SERVED and NOT_SERVED[rule](args):
                assert status == 404, what
            elif args.get("feature_id") == "0":
                assert status == 404, what  # the collection has no feature yet
            else:
                assert status in (200, 204, 302), what  # 302: logout, to the login form
            response.close()
            checked += 1
    assert checked > 150


@pytest.mark.usefixtures("loaded")
def test_the_clerk_is_refused_planner_data(app: Flask, connection: sa.Connection) -> None:
    """The issue's case: the clerk may not read relocation and renovation, /api/planner included."""
    clerk = login(app.test_client(), add_user(connection, "clerk-1", "clerk", A))
    for url in [
        "/api/planner",
        "/api/layers/relocation_targets/geojson",
        "/api/layers/renovation_projects/features",
        "/planner",
    ]:
        assert clerk.get(url).status_code == 403, url
    assert clerk.get("/imports").status_code == 200


@pytest.mark.usefixtures("loaded")
def test_a_commander_opens_their_own_street_only(app: Flask, connection: sa.Connection) -> None:
    commander = login(app.test_client(), add_user(connection, "c-a", "commander", A))
    assert commander.get(f"/command/{A}").status_code == 200
    other = commander.get(f"/command/{B}")  # in the table, outside the zone: not found
    assert other.status_code == 404 and other.mimetype == "text/html"


def test_cli_export_as_a_user_gets_the_same_verdict(
    committed_url: str,
    tmp_path: Path,
) -> None:
    """`blockdata export LAYER --as USER`: refused exactly where the API refuses."""
    engine = make_engine(committed_url)
    with engine.begin() as conn:
        for role in ROLES:
            if role != "commander":
                unit = add_unit(conn) if role in UNIT_ROLES else None
                street = A if role in STREET_ROLES else None
                add_user(conn, f"cli-{role}", role, street, unit=unit)
    engine.dispose()
    env = {"DATABASE_URL": committed_url}
    for role in ROLES:
        user = "cli-c" if role == "commander" else f"cli-{role}"  # cli-c: commander of A
        for layer in sorted(EVERYTHING):
            out = tmp_path / f"{role}-{layer}.csv"
            result = CliRunner().invoke(
                main, ["export", layer, "--as", user, "-q", "-o", str(out)], env=env
            )
            allowed = layer in READS[role] and role in EXPORTERS
            if allowed:
                assert result.exit_code == 0, (role, layer, result.output)
                assert out.exists()
            else:
                assert result.exit_code == 1, (role, layer, result.output)
                assert "无权" in result.output and not out.exists(), (role, layer)
    rows = list(
        csv.DictReader(io.StringIO((tmp_path / "commander-streets.csv").read_text("utf-8-sig")))
    )
    assert [r["code"] for r in rows] == [A]


# --- login, navigation, who am I ----------------------------------------------------------


def _nav(html: str) -> list[str]:
    nav = html.split('id="bd-nav"', 1)[1].split("</nav>", 1)[0]
    return re.findall(r'href="([^"]+)"', nav)


@pytest.mark.usefixtures("loaded")
# (a department, bound to a unit: test_a_department_lands_on_its_queue)
@pytest.mark.parametrize("role", [r for r in ROLES if PAGES[r] and r != "department"])
def test_login_lands_on_an_allowed_page_and_the_navigation_opens(
    app: Flask, connection: sa.Connection, role: str
) -> None:
    street = A if role in STREET_ROLES else None
    unit = add_unit(connection) if role in UNIT_ROLES else None
    add_user(connection, f"nav-{role}", role, street, unit)
    client = app.test_client()
    landed = client.post("/login", data={"name": f"nav-{role}", "password": "secret-password"})
    assert landed.status_code == 302
    home = landed.headers["Location"]
    expected_home = {
        "district": "/",
        "analyst": "/",
        "commander": f"/command/{A}",
        "planner": "/planner",
        "clerk": "/imports",
        "grid_officer": "/report",
        "assessor": "/evaluation/score",
    }[role]
    assert home == expected_home
    page = client.get(home)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # Who am I: the name, the role in Chinese, the street (a commander's).
    me = html.split('id="bd-me"', 1)[1].split("</span>\n", 1)[0]
    assert f"nav-{role}" in me
    assert {
        "district": "区级指挥中心",
        "commander": "战区司令",
        "analyst": "分析",
        "planner": "规划",
        "clerk": "数据",
        "grid_officer": "网格员",
        "assessor": "考核部门",
    }[role] in me
    if role in STREET_ROLES:
        assert "测试001街道" in me
    assert 'action="/logout"' in html
    links = _nav(html)
    assert links and home in links
    for url in links:
        assert client.get(url).status_code == 200, (role, url)
    # Only the pages the role may open are linked (the command view needs a street).
    pages = {"overview": "/", "planner": "/planner", "imports": "/imports", "queue": "/queue"}
    pages["evaluation"] = "/evaluation"
    pages["report"] = "/report"
    pages["evaluation_score"] = "/evaluation/score"
    wanted = {
        pages.get(p, f"/command/{A}") for p in PAGES[role] if p != "command" or role == "commander"
    }
    assert set(links) == wanted
    # A `next` the role may not open is not followed: the role's own page instead.
    client.post("/logout")
    again = client.post(
        "/login?next=/imports" if role != "clerk" else "/login?next=/",
        data={"name": f"nav-{role}", "password": "secret-password"},
    )
    assert again.headers["Location"] == ("/imports" if role == "district" else expected_home)
    client.post("/logout")
    assert client.get(home).status_code == 302  # logged out: to the login form


@pytest.mark.usefixtures("loaded")
def test_a_department_lands_on_its_queue(app: Flask, connection: sa.Connection) -> None:
    """A department (承办单位) opens one page, its unit's case queue: login lands there; a
    `next` page it may not open is not followed; every other page refuses it with 403."""
    add_user(connection, "nav-department", "department", unit=add_unit(connection))
    client = app.test_client()
    form = {"name": "nav-department", "password": "secret-password"}
    for url in ("/login", "/login?next=/imports"):
        landed = client.post(url, data=form)
        assert landed.status_code == 302
        assert landed.headers["Location"] == "/queue"
        assert client.get("/queue").status_code == 200
        for page_url in ("/", "/planner", "/imports", f"/command/{A}"):
            assert client.get(page_url).status_code == 403, page_url
        client.post("/logout")
    assert client.get("/queue").status_code == 302  # logged out: to the login form


# --- errors: HTML for pages, JSON for APIs -------------------------------------------------


@pytest.mark.usefixtures("loaded")
def test_refused_and_missing_pages_are_chinese_html_with_a_way_back(
    app: Flask, anonymous: FlaskClient, connection: sa.Connection
) -> None:
    clerk = login(app.test_client(), add_user(connection, "err-clerk", "clerk", A))
    for url, status in [
        ("/", 403),
        ("/planner", 403),
        ("/nowhere", 404),
        ("/imports/999999", 404),
        ("/imports/5417324155879391232", 404),  # beyond an integer column: not a 500
    ]:
        response = clerk.get(url, headers={"Accept": "text/html,*/*;q=0.8"})
        assert response.status_code == status, url
        assert response.mimetype == "text/html", url
        html = response.get_data(as_text=True)
        assert {403: "无权访问", 404: "页面不存在"}[status] in html
        assert 'id="bd-back" href="/imports"' in html  # back to the clerk's own page
        assert "err-clerk" in html and "数据管理员" in html  # who am I, on error pages too
    commander = login(app.test_client(), add_user(connection, "err-c", "commander", A))
    html = commander.get(f"/command/{B}").get_data(as_text=True)
    assert f'id="bd-back" href="/command/{A}"' in html
    # The message names the bad value, escaped.
    html = commander.get("/command/<img src=x onerror=alert(1)>").get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html
    lost = anonymous.get("/nowhere")
    assert lost.status_code == 404 and lost.mimetype == "text/html"
    assert 'id="bd-back" href="/login"' in lost.get_data(as_text=True)
    # APIs, and callers that ask for JSON, get JSON.
    for url in ["/api/planner", "/api/nowhere", "/ogc/nowhere", "/tiles/nowhere.json"]:
        response = clerk.get(url)
        assert response.mimetype == "application/json", url
        assert response.get_json()["error"] in ("forbidden", "not_found"), url
    asked = clerk.get("/planner", headers={"Accept": "application/json"})
    assert asked.status_code == 403 and asked.get_json()["error"] == "forbidden"


# --- headers -----------------------------------------------------------------------------


def _csp(header: str) -> dict[str, list[str]]:
    out = {}
    for part in header.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


@pytest.mark.usefixtures("loaded")
def test_every_response_carries_the_security_headers(
    app: Flask, anonymous: FlaskClient, client: FlaskClient
) -> None:
    responses = {
        "page": client.get("/"),
        "command": client.get(f"/command/{A}"),
        "imports": client.get("/imports"),
        "api": client.get("/api/streets"),
        "api error": client.get("/api/heat/nonesuch"),
        "page error": client.get("/nowhere"),
        "static": client.get("/static/js/blockdata.js"),
        "login": anonymous.get("/login"),
        "redirect": anonymous.get("/planner"),
        "anonymous api": anonymous.get("/api/streets"),
        "health": anonymous.get("/healthz"),
    }
    for name, response in responses.items():
        h = response.headers
        assert h.get("X-Content-Type-Options") == "nosniff", name
        assert h.get("X-Frame-Options") == "DENY", name
        assert h.get("Referrer-Policy") in ("same-origin", "no-referrer"), name
        csp = _csp(h["Content-Security-Policy"])
        assert csp["default-src"] == ["'self'"], name
        assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"], name
        assert csp["frame-ancestors"] == ["'none'"] and csp["form-action"] == ["'self'"], name
        for directive in ("connect-src", "img-src", "font-src"):
            assert csp[directive] == ["'self'"], (name, directive)
        for directive in ("script-src", "style-src"):
            assert csp[directive][0] == "'self'", name
            assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:"} & set(csp[directive])
        response.close()


@pytest.mark.usefixtures("loaded")
@pytest.mark.parametrize("path", ["/", f"/command/{A}", "/planner", "/imports", "/ogc/?f=html"])
def test_every_inline_script_and_style_carries_the_responses_nonce(
    client: FlaskClient, path: str
) -> None:
    first, second = client.get(path), client.get(path)
    nonces = []
    for response in (first, second):
        html = response.get_data(as_text=True)
        csp = _csp(response.headers["Content-Security-Policy"])
        allowed = [v[len("'nonce-") : -1] for v in csp["script-src"] if v.startswith("'nonce-")]
        for tag in re.findall(r"<(?:script|style)\b[^>]*>", html):
            if "src=" in tag or 'type="application/json"' in tag:
                continue
            assert allowed and f'nonce="{allowed[0]}"' in tag, tag
        assert allowed == [v[len("'nonce-") : -1] for v in csp["style-src"] if "nonce" in v]
        assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
        nonces.append(allowed[0] if allowed else None)
    assert nonces[0] != nonces[1] or nonces[0] is None  # a new nonce per response


def test_a_configured_basemap_host_is_allowed_for_images_and_fetches(
    connection: sa.Connection,
) -> None:
    settings = Settings(basemap_url="https://{s}.tiles.intranet.example:8443/{z}/{x}/{y}.png")
    app = create_app({"TESTING": True, "DB_CONNECTION": connection}, settings=settings)
    csp = _csp(app.test_client().get("/login").headers["Content-Security-Policy"])
    for directive in ("img-src", "connect-src"):
        assert csp[directive] == ["'self'", "https://*.tiles.intranet.example:8443"]
    assert csp["script-src"] == ["'self'"] and csp["font-src"] == ["'self'"]
