"""Who may do what: one table of role → layers, pages and actions.

The request hook (app.auth), the pages' navigation and landing page, the APIs, OGC, tiles,
Open311 and `blockdata export --as` all ask this module, so a role is allowed or refused the
same thing everywhere. Zones are not here: a commander's street is enforced by PostgreSQL's
row-level security (app.auth, migration 0004) on top of what this table allows.

Every endpoint of the server is declared in ENDPOINTS with what it needs; an endpoint that is
not declared is refused (tests/app/test_capabilities.py walks the URL map).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, url_for
from werkzeug.exceptions import HTTPException

from app.errors import Forbidden
from layers import LAYERS

ALL_LAYERS = frozenset(layer.name for layer in LAYERS)
ADMIN_LAYERS = frozenset(layer.name for layer in LAYERS if layer.kind == "admin")

EXPORT = "export"  # download a slice with its provenance: /api/…/features, `blockdata export`
INTAKE = "intake"  # file a service request: POST /open311/v2/requests.json
ACTIONS = {EXPORT: "导出数据", INTAKE: "提交诉求"}


@dataclass(frozen=True)
class Page:
    name: str  # the endpoint is pages.<name> (and pages.<name>_*)
    title: str
    layers: frozenset[str]  # the layers it draws: a role that opens it reads them all


PAGES: dict[str, Page] = {
    "overview": Page("overview", "区级指挥中心", frozenset({"streets", "service_requests"})),
    "command": Page("command", "战区指挥", ALL_LAYERS),
    "planner": Page(
        "planner",
        "整治与疏解",
        frozenset({"streets", "relocation_targets", "renovation_projects"}),
    ),
    "imports": Page("imports", "数据导入", frozenset()),
}


@dataclass(frozen=True)
class Role:
    name: str
    title: str  # as the pages show it
    layers: frozenset[str]
    pages: tuple[str, ...]  # navigation order; login lands on the first one it can link
    actions: frozenset[str]


# The table. A commander reads every layer, of their street only (row-level security); the
# planner reads the boundaries and the two progress layers; the clerk, who loads extracts,
# reads the boundaries (to check an import in QGIS) and the load reports, and files requests.
ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role(
            "district",
            "区级指挥中心",
            ALL_LAYERS,
            ("overview", "command", "planner", "imports"),
            frozenset({EXPORT, INTAKE}),
        ),
        Role("commander", "战区司令", ALL_LAYERS, ("command",), frozenset({EXPORT, INTAKE})),
        Role(
            "analyst",
            "数据分析员",
            ALL_LAYERS,
            ("overview", "command", "planner"),
            frozenset({EXPORT}),
        ),
        Role(
            "planner",
            "规划人员",
            ADMIN_LAYERS | {"relocation_targets", "renovation_projects"},
            ("planner",),
            frozenset({EXPORT}),
        ),
        Role("clerk", "数据管理员", ADMIN_LAYERS, ("imports",), frozenset({INTAKE})),
    )
}


@dataclass(frozen=True)
class Need:
    """What an endpoint needs of the caller's role (all of it)."""

    page: str | None = None
    layers: frozenset[str] = frozenset()
    layer_arg: str | None = None  # the view argument that names a layer or OGC collection
    action: str | None = None


def _needs(*layers: str) -> Need:
    return Need(layers=frozenset(layers))


REQUESTS = "service_requests"
# None: public (no login). Need(): any logged-in user.
ENDPOINTS: dict[str, Need | None] = {
    "static": None,
    "health.healthz": None,
    "auth.login": None,
    "auth.logout": Need(),
    "openapi.openapi_json": Need(),
    "pages.overview": Need(page="overview"),
    "pages.command": Need(page="command"),
    "pages.planner": Need(page="planner"),
    "pages.imports": Need(page="imports"),
    "pages.imports_run": Need(page="imports"),
    "api.heat": Need(layer_arg="layer"),
    "api.streets": _needs("streets", REQUESTS),
    "api.command_summary": _needs("streets", REQUESTS),
    "api.latest": _needs(REQUESTS),
    "api.planner": _needs("relocation_targets", "renovation_projects"),
    "api.layers": Need(),
    "api.layer_geojson": Need(layer_arg="layer"),
    "api.features": Need(layer_arg="layer", action=EXPORT),
    "ogc.landing": Need(),
    "ogc.conformance": Need(),
    "ogc.api": Need(),
    "ogc.collections_list": Need(),
    "ogc.collection": Need(layer_arg="collection_id"),
    "ogc.items": Need(layer_arg="collection_id"),
    "ogc.item": Need(layer_arg="collection_id"),
    "tiles.tile": Need(layer_arg="layer"),
    "tiles.tilejson": Need(layer_arg="layer"),
    # GeoReport's services are the request categories (configuration, not data): a client
    # that files requests reads them first.
    "open311.services_list": Need(),
    "open311.service_definition": Need(),
    "open311.requests_list": _needs(REQUESTS),
    "open311.request_one": _needs(REQUESTS),
    "open311.create_request": Need(action=INTAKE),
}


def role(name: str) -> Role:
    try:
        return ROLES[name]
    except KeyError:
        raise Forbidden(f"未知角色 unknown role: {name!r}") from None


def may_read(role_name: str, layer: str) -> bool:
    r = ROLES.get(role_name)
    return r is not None and layer in r.layers


def may(role_name: str, action: str) -> bool:
    r = ROLES.get(role_name)
    return r is not None and action in r.actions


def may_open(role_name: str, page: str) -> bool:
    r = ROLES.get(role_name)
    return r is not None and page in r.pages


def is_public(endpoint: str) -> bool:
    return endpoint in ENDPOINTS and ENDPOINTS[endpoint] is None


def _layer_named(endpoint: str, value: object) -> str | None:
    """The layer a view argument names (an OGC collection id maps to its layer); None when it
    names none, for the endpoint to answer 404."""
    if not isinstance(value, str):
        return None
    if endpoint.startswith("ogc."):
        from app.ogc import collections

        return next((c.layer.name for c in collections() if c.id == value), None)
    return value if value in ALL_LAYERS else None


def refusal(role_name: str, endpoint: str, view_args: Mapping[str, object]) -> str | None:
    """Why `role_name` may not use `endpoint` with these view arguments; None when it may."""
    if endpoint not in ENDPOINTS:
        return f"未登记的接口 endpoint not in the capability table: {endpoint!r}"
    need = ENDPOINTS[endpoint]
    if need is None:
        return None
    r = ROLES.get(role_name)
    if r is None:
        return f"未知角色 unknown role: {role_name!r}"
    if need.page is not None and need.page not in r.pages:
        return f"无权打开该页面 role {role_name!r} may not open the page {need.page!r}"
    layers = set(need.layers)
    if need.layer_arg is not None:
        named = _layer_named(endpoint, view_args.get(need.layer_arg))
        if named is not None:
            layers.add(named)
    missing = sorted(layers - r.layers)
    if missing:
        return f"无权访问该图层 role {role_name!r} may not read layer {missing[0]!r}"
    if need.action is not None and need.action not in r.actions:
        return f"无权执行该操作 role {role_name!r} may not {need.action}"
    return None


def check(role_name: str, endpoint: str, view_args: Mapping[str, object]) -> None:
    """Raise Forbidden (403) unless the role may use the endpoint."""
    reason = refusal(role_name, endpoint, view_args)
    if reason is not None:
        raise Forbidden(reason)


@dataclass(frozen=True)
class Link:
    page: str
    title: str
    endpoint: str
    args: dict[str, Any]


def nav(role_name: str, street_name: str | None, street_code: str | None) -> list[Link]:
    """The pages this role may open that can be linked without a choice (the command view
    needs a street: a commander's own; others reach it from the overview)."""
    out: list[Link] = []
    for page in ROLES[role_name].pages if role_name in ROLES else ():
        if page == "command":
            if street_code:
                out.append(
                    Link(
                        page,
                        street_name or street_code,
                        "pages.command",
                        {"street_code": street_code},
                    )
                )
            continue
        out.append(Link(page, PAGES[page].title, f"pages.{page}", {}))
    return out


def safe_path(target: str | None) -> str | None:
    """`target` when it is a path on this server (no scheme, no host), else None."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return None
    return target


def landing(role_name: str, street_code: str | None) -> str:
    """Where this role lands after login: the first page of its navigation."""
    links = nav(role_name, None, street_code)
    if not links:
        raise Forbidden(f"该角色没有可打开的页面 role {role_name!r} has no page")
    return url_for(links[0].endpoint, **links[0].args)


def after_login(role_name: str, street_code: str | None, target: str | None) -> str:
    """The page asked for (`next`) when it is on this server and the role may open it, else
    the role's landing page."""
    path = safe_path(target)
    if path is not None:
        adapter = current_app.url_map.bind("localhost")
        try:
            endpoint, args = adapter.match(urlsplit(path).path, method="GET")
        except HTTPException:  # no such page, or a redirect (a missing slash)
            endpoint, args = None, {}
        if endpoint and not is_public(endpoint) and refusal(role_name, endpoint, args) is None:
            return path
    return landing(role_name, street_code)
