"""Access is declared on the view: every endpoint of the URL map says what it needs, and a
server with a view that says nothing does not start.

What each declaration allows, role by role, is tests/app/test_capabilities.py's policy test;
here: that the declarations exist, that a missing one stops `create_app` and names the
endpoint, and that the decisions once taken from endpoint-name sets (the snapshot of an
export) come from the declarations.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Blueprint, Flask, request

from app import capabilities, create_app, db, health
from app.capabilities import (
    Access,
    UndeclaredEndpoints,
    declared,
    does,
    logged_in,
    page,
    public,
    reads,
    require_declared,
)
from tests.helpers import add_unit, add_user, login, token

# Every endpoint of the server, counted by hand from the blueprints' routes (static: Flask's).
ENDPOINTS = {
    "static",
    "health.healthz",
    "auth.login",
    "auth.logout",
    "openapi.openapi_json",
    *(f"pages.{n}" for n in ("overview", "command", "planner", "imports", "imports_run", "queue")),
    *(f"intake.{n}" for n in ("report", "report_submit", "reports")),
    *(f"photos.{n}" for n in ("case_photos_view", "photo")),
    *(
        f"api.{n}"
        for n in (
            "heat",
            "streets",
            "command_summary",
            "latest",
            "planner",
            "layers",
            "layer_geojson",
            "features",
            "units",
        )
    ),
    *(
        f"ogc.{n}"
        for n in ("landing", "conformance", "api", "collections_list", "collection", "items")
    ),
    "ogc.item",
    *(
        f"cases.{n}"
        for n in (
            "list_cases",
            "case_load",
            "cases_overdue",
            "case",
            "case_transition",
            "list_whistles",
            "blow_whistle",
            "arrival",
            "completion",
            "rating",
        )
    ),
    *(
        f"evaluation.{n}"
        for n in (
            "list_schemes",
            "one_scheme",
            "period",
            "publish_period",
            "period_versions",
            "period_what_if",
        )
    ),
    *(f"evaluation_quality.{n}" for n in ("departments", "guards", "guard")),
    "tiles.tile",
    "tiles.tilejson",
    "evaluation_page.evaluation",
    "evaluation_page.drill",
    *(f"search.{n}" for n in ("search", "geocode", "reverse", "area")),
    *(
        f"evaluation_inputs.{n}"
        for n in (
            "get_scores",
            "put_scores",
            "score_audit",
            "score_template",
            "score_import",
            "list_tasks",
            "create_tasks",
            "task_done",
            "add_event",
            "survey_import",
            "get_survey",
            "score_page",
        )
    ),
    *(
        f"open311.{n}"
        for n in (
            "services_list",
            "service_definition",
            "requests_list",
            "request_one",
            "create_request",
        )
    ),
}
PUBLIC = {"static", "health.healthz", "auth.login"}


def test_every_endpoint_of_the_url_map_declares_its_access(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints == ENDPOINTS, "an endpoint came or went: add it to this test"
    for endpoint in sorted(endpoints):
        need = declared(app.view_functions[endpoint])
        assert isinstance(need, Access), f"{endpoint}: no access declaration"
        assert need.public == (endpoint in PUBLIC), endpoint


def test_a_view_named_by_its_url_declares_which_argument_names_the_layer(app: Flask) -> None:
    """The URL argument that names a layer is declared, not guessed from its name: every
    route with a <layer> or <collection_id> declares it, and only those."""
    for rule in app.url_map.iter_rules():
        need = declared(app.view_functions[rule.endpoint])
        assert need is not None
        assert need.url_layer == ("layer" if "layer" in rule.arguments else None), rule
        collection = "collection_id" if "collection_id" in rule.arguments else None
        assert need.url_collection == collection, rule


def _with_extra_route(monkeypatch: pytest.MonkeyPatch, view: object) -> None:
    """Have create_app register the health blueprint with one more route, /debug."""
    bp = Blueprint("health", health.__name__)
    bp.add_url_rule("/healthz", view_func=health.healthz)
    bp.add_url_rule("/debug", view_func=view)  # type: ignore[arg-type]
    monkeypatch.setattr(health, "bp", bp)


def test_create_app_refuses_a_view_without_a_declaration(
    monkeypatch: pytest.MonkeyPatch, connection: sa.Connection
) -> None:
    def debug() -> str:
        return "the whole database"

    _with_extra_route(monkeypatch, debug)
    with pytest.raises(UndeclaredEndpoints) as raised:
        create_app({"TESTING": True, "DB_CONNECTION": connection})
    assert raised.value.endpoints == ["health.debug"]
    assert "health.debug" in str(raised.value)


def test_create_app_accepts_the_same_view_once_declared(
    monkeypatch: pytest.MonkeyPatch, connection: sa.Connection, district: object
) -> None:
    @reads("service_requests")
    def debug() -> str:
        return "the requests"

    _with_extra_route(monkeypatch, debug)
    app = create_app({"TESTING": True, "DB_CONNECTION": connection})
    assert "health.debug" in app.view_functions
    clerk = login(app.test_client(), add_user(connection, "decl-clerk", "clerk", "110102001"))
    assert clerk.get("/debug").status_code == 403  # the clerk reads no requests
    analyst = login(app.test_client(), add_user(connection, "decl-analyst", "analyst"))
    assert analyst.get("/debug").get_data(as_text=True) == "the requests"


def test_the_check_names_every_undeclared_endpoint() -> None:
    flask_app = Flask(__name__)
    flask_app.add_url_rule("/a", "a", public(lambda: "a"))
    flask_app.add_url_rule("/b", "b", lambda: "b")
    flask_app.add_url_rule("/c", "c", lambda: "c")
    with pytest.raises(UndeclaredEndpoints) as raised:
        require_declared(flask_app)
    assert raised.value.endpoints == ["b", "c", "static"]  # Flask's static view too
    capabilities.declare_static(flask_app)
    flask_app.view_functions.pop("b")
    flask_app.view_functions.pop("c")
    assert capabilities.undeclared(flask_app) == ["b", "c"]  # a rule without a view


def test_a_view_added_after_start_up_without_a_declaration_is_refused(
    app: Flask, connection: sa.Connection, district: object
) -> None:
    """The start-up check cannot see a route added later: the hook still refuses it (401
    anonymous, 403 whatever the role), and the view never runs."""
    ran = []
    app.add_url_rule("/late", "late", lambda: ran.append(1) or "ran")
    assert app.test_client().get("/late").status_code == 401
    for role in ("district", "analyst", "clerk", "department"):
        unit = add_unit(connection) if role in ("department", "assessor") else None
        street = "110102001" if role == "clerk" else None
        client = login(
            app.test_client(), add_user(connection, f"late-{role}", role, street, unit=unit)
        )
        response = client.get("/late")
        assert response.status_code == 403, role
        assert "未声明" in response.get_data(as_text=True), role
    assert ran == []


@pytest.mark.parametrize(
    ("path", "snapshot"),
    [
        ("/api/layers/service_requests/features", True),
        ("/api/layers/service_requests/geojson", False),
        ("/ogc/collections/service_requests/items", False),
        ("/tiles/service_requests/14/13486/6203.pbf", False),
        ("/login", False),
        ("/nowhere", False),
    ],
)
def test_one_snapshot_is_the_exports_declaration(app: Flask, path: str, snapshot: bool) -> None:
    """The connection reads one snapshot (REPEATABLE READ) where the view declares it."""
    with app.test_request_context(path):
        assert db._snapshot(request.endpoint) is snapshot


def test_declarations_stack_and_check_their_names() -> None:
    @reads("streets", url_layer="layer", snapshot=True)
    @reads("service_requests")
    @does(capabilities.EXPORT)
    def view() -> None: ...

    assert declared(view) == Access(
        layers=frozenset({"streets", "service_requests"}),
        url_layer="layer",
        action="export",
        snapshot=True,
    )
    with pytest.raises(ValueError, match="nonesuch"):
        reads("nonesuch")
    with pytest.raises(ValueError, match="nonesuch"):
        page("nonesuch")
    with pytest.raises(ValueError, match="nonesuch"):
        does("nonesuch")
    with pytest.raises(TypeError, match="@public"):
        public(logged_in(lambda: None))
    with pytest.raises(TypeError, match="@public"):
        reads("streets")(public(lambda: None))
    with pytest.raises(TypeError, match="two declarations of page"):
        page("planner")(page("imports")(lambda: None))


# Sample values for the URL arguments of the routes, to reach every endpoint anonymously.
ARGUMENTS = {
    "street_code": "110102001",
    "run_id": 1,
    "layer": "service_requests",
    "collection_id": "service_requests",
    "feature_id": "1",
    "z": "14",
    "x": "13486",
    "y": "6203",
    "fmt": "json",
    "service_code": "供暖",
    "request_id": "1",
    "filename": "app.css",
    "case_id": 1,
    "whistle_id": 1,
    "unit_code": "district-fire",
    "photo_id": 1,
    "task_id": 1,
    "code": "xicheng",
    "label": "2026-11",
    "guard": "repeat",
    "level": "street",
}
# The views a person opens in the browser, listed by hand: the pages, and the logout form.
BROWSER = {
    *(e for e in ENDPOINTS if e.startswith("pages.")),
    "intake.report",
    "evaluation_page.evaluation",
    "intake.report_submit",
    "auth.logout",
    "evaluation_inputs.score_page",
}
# The views that take a token as `api_key` (GeoReport clients): Open311's.
API_KEY_VIEWS = {e for e in ENDPOINTS if e.startswith("open311.")}


def _calls(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, URL) of every route but the public ones."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        url = rule.build({a: ARGUMENTS[a] for a in rule.arguments}, append_unknown=False)
        assert url is not None, rule
        methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
        method = "GET" if "GET" in methods else "POST" if "POST" in methods else min(methods)
        out.append((rule.endpoint, method, url[1]))
    return out


def test_an_anonymous_caller_of_a_browser_view_is_sent_to_the_login_page(app: Flask) -> None:
    """Declared `@page` / `@browser`: a redirect to the login page; every other view of the
    URL map answers 401 with a JSON error (an API client cannot follow a login form)."""
    client = app.test_client()
    seen = set()
    for endpoint, method, url in _calls(app):
        seen.add(endpoint)
        response = client.open(url, method=method)
        if endpoint in BROWSER:
            assert response.status_code == 302, (endpoint, url)
            assert response.headers["Location"].startswith("/login"), endpoint
            assert declared(app.view_functions[endpoint]).browser  # type: ignore[union-attr]
        else:
            assert response.status_code == 401, (endpoint, url, response.status_code)
            assert response.is_json, endpoint
            assert not declared(app.view_functions[endpoint]).browser  # type: ignore[union-attr]
    assert seen == ENDPOINTS - PUBLIC


def test_only_the_views_declaring_it_take_a_token_as_api_key(
    app: Flask, connection: sa.Connection
) -> None:
    """A valid token as `api_key`: Open311's views know the caller; every other view of the
    URL map ignores it (401), as it would an unknown parameter's value."""
    key = token(connection, "district")
    client = app.test_client()
    for endpoint, method, url in _calls(app):
        sep = "&" if "?" in url else "?"
        response = client.open(f"{url}{sep}api_key={key}", method=method)
        if endpoint in API_KEY_VIEWS:
            assert response.status_code != 401, (endpoint, response.get_data(as_text=True))
        else:
            assert response.status_code in (302, 401), (endpoint, response.status_code)


def test_form_posts_to_browser_views_need_the_csrf_token_and_api_posts_do_not(
    connection: sa.Connection,
) -> None:
    """CSRF protection follows the declarations: the login and logout forms refuse a post
    without the token; Open311's intake (a bearer-token API) does not ask for one."""
    app = create_app({"TESTING": True, "DB_CONNECTION": connection, "WTF_CSRF_ENABLED": True})
    client = app.test_client()
    for path in ("/login", "/logout"):
        response = client.post(path, data={"username": "x", "password": "y"})
        assert response.status_code == 400, path
        assert "CSRF" in response.get_data(as_text=True), path
    key = token(connection, "district")
    response = client.post(
        "/open311/v2/requests.json",
        data={"service_code": "nonesuch", "lat": "39.91", "long": "116.37"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert "CSRF" not in response.get_data(as_text=True)
    assert response.status_code == 400  # refused for its unknown category, not for CSRF
    assert "nonesuch" in response.get_data(as_text=True)
    exempt = {
        e
        for e, view in app.view_functions.items()
        if not declared(view).csrf  # type: ignore[union-attr]
    }
    assert exempt == ENDPOINTS - PUBLIC - BROWSER
