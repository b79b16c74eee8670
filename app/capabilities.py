"""Who may do what, on the web: the view declarations and the request hook's check.

The table of role → layers, pages and actions is `layers.queries.access` (framework-free, so
that the CLI and the seeder read the same one); it is re-exported here. The request hook
(app.auth), the pages' navigation and landing page, the APIs, OGC, tiles, Open311 and
`blockdata export --as` all ask it, so a role is allowed or refused the same thing
everywhere. Zones are not here: a commander's street is enforced by PostgreSQL's row-level
security (app.auth, migration 0004) on top of what the table allows.

Every view declares what it needs with a decorator of this module, under its route:
`@public` (no login), `@logged_in` (any role), `@page(name)`, `@browser`, `@api_key`,
`@reads(*layers, url_layer=…, url_collection=…)`, `@does(action)`; the request hook enforces
the declaration. `create_app` refuses to build a server with a view that declares nothing
(`require_declared`), and tests/app/test_access_declared.py walks the URL map.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, current_app, url_for
from werkzeug.exceptions import HTTPException

from app.errors import Forbidden
from layers.queries.access import ACTIONS as ACTIONS
from layers.queries.access import ADMIN_LAYERS as ADMIN_LAYERS
from layers.queries.access import ALL_LAYERS as ALL_LAYERS
from layers.queries.access import EXPORT as EXPORT
from layers.queries.access import INTAKE as INTAKE
from layers.queries.access import PAGES as PAGES
from layers.queries.access import ROLES as ROLES
from layers.queries.access import Page as Page
from layers.queries.access import Role as Role
from layers.queries.access import may as may
from layers.queries.access import may_open as may_open
from layers.queries.access import may_read as may_read

ACCESS_ATTR = "__blockdata_access__"


@dataclass(frozen=True)
class Access:
    """What a view needs of the caller's role (all of it), declared on the view itself."""

    public: bool = False  # no login at all (`@public`)
    page: str | None = None
    layers: frozenset[str] = frozenset()
    url_layer: str | None = None  # the view argument that names a layer
    url_collection: str | None = None  # the view argument that names an OGC collection
    action: str | None = None
    snapshot: bool = False  # reads one snapshot (REPEATABLE READ): a count and its rows agree
    browser: bool = False  # opened by a person: anonymous callers go to the login page, not 401
    api_key: bool = False  # the token may come as an `api_key` parameter (GeoReport clients)

    @property
    def csrf(self) -> bool:
        """Whether a form post to the view must carry the CSRF token: the browser's views
        and the public ones (the login form); the APIs authenticate each call (bearer token)."""
        return self.public or self.browser


class UndeclaredEndpoints(RuntimeError):
    """Views registered without an access declaration: the server refuses to start."""

    def __init__(self, endpoints: list[str]) -> None:
        self.endpoints = endpoints
        super().__init__(
            "接口未声明访问权限 endpoints without an access declaration"
            " (@public, @logged_in, @page, @reads or @does from app.capabilities): "
            + ", ".join(endpoints)
        )


View = TypeVar("View", bound=Callable[..., Any])


def _declare(view: View, **need: Any) -> View:
    """Add `need` to what `view` already declares (decorators stack: `@reads` + `@does`)."""
    old: Access | None = getattr(view, ACCESS_ATTR, None)
    if old is None:
        new = Access(**need)
    else:
        if old.public or need.get("public"):
            raise TypeError(f"{view.__qualname__}: @public cannot be combined with a need")
        fields: dict[str, Any] = {"layers": old.layers | need.pop("layers", frozenset())}
        for name, value in need.items():
            before = getattr(old, name)
            if before not in (None, False) and before != value:
                raise TypeError(f"{view.__qualname__}: two declarations of {name}")
            fields[name] = value
        new = replace(old, **fields)
    setattr(view, ACCESS_ATTR, new)
    return view


def public(view: View) -> View:
    """No login: the login form, the health check, static files."""
    return _declare(view, public=True)


def logged_in(view: View) -> View:
    """Any logged-in user, whatever the role: what no layer's rows are in (the layer list,
    OGC's landing page, Open311's categories, logout)."""
    return _declare(view)


def page(name: str) -> Callable[[View], View]:
    """A page of PAGES: the roles that may open it (and so read its layers)."""
    if name not in PAGES:
        raise ValueError(f"unknown page {name!r}: not in capabilities.PAGES")
    return lambda view: _declare(view, page=name, browser=True)


def browser(view: View) -> View:
    """A view a person reaches in the browser (a form's target): an anonymous caller is sent
    to the login page, and a post must carry the CSRF token. Pages (`@page`) are already."""
    return _declare(view, browser=True)


def api_key(view: View) -> View:
    """The caller's token may come as an `api_key` parameter (query, form or JSON body), as
    GeoReport (Open311) clients send it, not only as a bearer token."""
    return _declare(view, api_key=True)


def reads(
    *layers: str,
    url_layer: str | None = None,
    url_collection: str | None = None,
    snapshot: bool = False,
) -> Callable[[View], View]:
    """The layers the view reads: named here, and/or named by a view argument (`url_layer`:
    a layer's name; `url_collection`: an OGC collection id, which maps to its layer). A
    URL that names no layer is left to the view (its own 404). `snapshot`: the request
    reads one snapshot (an export's row count and its rows agree)."""
    unknown = sorted(set(layers) - ALL_LAYERS)
    if unknown:
        raise ValueError(f"unknown layers {unknown}")
    named = {"url_layer": url_layer, "url_collection": url_collection, "snapshot": snapshot}
    given = {k: v for k, v in named.items() if v not in (None, False)}
    return lambda view: _declare(view, layers=frozenset(layers), **given)


def does(action: str) -> Callable[[View], View]:
    """An action of ACTIONS (export, intake): the roles that may."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: not in capabilities.ACTIONS")
    return lambda view: _declare(view, action=action)


def declared(view: Callable[..., Any]) -> Access | None:
    """The access `view` declares (a bound method: its function's), None when it declares none."""
    access: Access | None = getattr(getattr(view, "__func__", view), ACCESS_ATTR, None)
    return access


def need_of(view: Callable[..., Any]) -> Access:
    """What `view` declares (`blockdata export --as` asks for what the export endpoint needs)."""
    access = declared(view)
    if access is None:
        raise UndeclaredEndpoints([view.__qualname__])
    return access


def access(endpoint: str, app: Flask | None = None) -> Access | None:
    """What the view of `endpoint` declares; None when it declares nothing (or is no view)."""
    view = (app or current_app).view_functions.get(endpoint)
    return None if view is None else declared(view)


def undeclared(app: Flask) -> list[str]:
    """The endpoints of the URL map whose view declares no access."""
    return sorted(
        {rule.endpoint for rule in app.url_map.iter_rules() if access(rule.endpoint, app) is None}
    )


def require_declared(app: Flask) -> None:
    """Raise UndeclaredEndpoints unless every endpoint of the URL map declares its access."""
    missing = undeclared(app)
    if missing:
        raise UndeclaredEndpoints(missing)


def declare_static(app: Flask) -> None:
    """Flask's own static view (a bound method: no attribute can be set on it) behind a
    public one."""
    send = app.view_functions.get("static")
    if send is None or declared(send) is not None:
        return

    @public
    def static(filename: str) -> Any:
        return send(filename=filename)

    app.view_functions["static"] = static


def role(name: str) -> Role:
    try:
        return ROLES[name]
    except KeyError:
        raise Forbidden(f"未知角色 unknown role: {name!r}") from None


def _layer_named(need: Access, view_args: Mapping[str, object]) -> str | None:
    """The layer the view's URL names (an OGC collection id maps to its layer); None when it
    names none, for the view to answer 404."""
    if need.url_layer is not None:
        value = view_args.get(need.url_layer)
        return value if isinstance(value, str) and value in ALL_LAYERS else None
    if need.url_collection is not None:
        from layers.queries.features import collections

        value = view_args.get(need.url_collection)
        return next((c.layer.name for c in collections() if c.id == value), None)
    return None


def refusal(role_name: str, need: Access | None, view_args: Mapping[str, object]) -> str | None:
    """Why `role_name` may not use a view that needs `need`, with these view arguments; None
    when it may. A view that declares nothing (None) is refused to everyone."""
    if need is None:
        return "未声明访问权限的接口 endpoint without an access declaration"
    if need.public:
        return None
    r = ROLES.get(role_name)
    if r is None:
        return f"未知角色 unknown role: {role_name!r}"
    if need.page is not None and need.page not in r.pages:
        return f"无权打开该页面 role {role_name!r} may not open the page {need.page!r}"
    layers = set(need.layers)
    named = _layer_named(need, view_args)
    if named is not None:
        layers.add(named)
    missing = sorted(layers - r.layers)
    if missing:
        return f"无权访问该图层 role {role_name!r} may not read layer {missing[0]!r}"
    if need.action is not None and need.action not in r.actions:
        return f"无权执行该操作 role {role_name!r} may not {need.action}"
    return None


def check(role_name: str, need: Access | None, view_args: Mapping[str, object]) -> None:
    """Raise Forbidden (403) unless the role may use a view that needs `need`."""
    reason = refusal(role_name, need, view_args)
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
        out.append(Link(page, PAGES[page].title, PAGES[page].endpoint or f"pages.{page}", {}))
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
    """Where this role lands after login: the first page of its navigation; a role with no
    page (none today; a role that works through the API only) lands on the API document."""
    links = nav(role_name, None, street_code)
    if not links and role_name in ROLES:
        return url_for("openapi.openapi_json")
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
        need = access(endpoint) if endpoint else None
        if need is not None and not need.public and refusal(role_name, need, args) is None:
            return path
    return landing(role_name, street_code)
