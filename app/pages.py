"""The pages: district overview, a commander's view of one street, the planners' overlay,
the clerk's load reports.

folium builds each map (Leaflet, controls, plugins, all served from /static); the data comes
from the JSON APIs, which aggregate in PostGIS, so a page never carries raw points in bulk.
Which role opens which page is app.capabilities' table; every page shows who is logged in,
the pages they may open, and a logout button. No value reaches a page unescaped: Jinja
escapes what the server renders, and blockdata.js escapes (or sets as text) what it draws.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import folium
import folium.plugins
import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g, render_template, request, url_for

from app import auth, capabilities, db
from app.capabilities import page
from app.config import Settings
from app.errors import NotFound
from app.headers import csp_nonce
from app.offline import assert_offline
from layers import LAYERS, Layer
from layers.aggregates import CELL_DLAT, CELL_DLNG
from layers.queries import access, scorecards
from layers.queries import imports as imports_query
from layers.queries.access import DISTRICT
from layers.registry import (
    HEAT_COLOURS,
    LANDMARK_KINDS,
    PAGE_COLOURS,
    QUALITY_NAMES,
    SOURCE_NAMES,
)

bp = Blueprint("pages", __name__)

CENTER = (39.912, 116.366)  # Xicheng; the map fits the data once loaded
LIVE_SECONDS = 15  # how often the live layers ask for news (config LIVE_SECONDS overrides)
RUNS_SHOWN = 50
RUN_STATUS = {"succeeded": "成功", "failed": "失败", "running": "进行中"}
REJECTS_SHOWN = 500
_INLINE = re.compile(r"<(script|style)(?=[\s>])")


def _live_seconds() -> int:
    return int(current_app.config.get("LIVE_SECONDS", LIVE_SECONDS))


def _settings() -> Settings:
    settings: Settings = current_app.config["BLOCKDATA_SETTINGS"]
    return settings


def _map(height: str = "100%") -> folium.Map:
    """A folium map with no outside tiles unless a basemap is configured."""
    settings = _settings()
    fmap = folium.Map(
        location=CENTER,
        zoom_start=13,
        tiles=None,
        control_scale=True,
        prefer_canvas=True,
        height=height,
        width="100%",
        zoom_control=True,
    )
    if settings.basemap_url:
        folium.TileLayer(
            settings.basemap_url,
            attr=settings.basemap_attribution or "底图",
            name="底图",
            overlay=False,
            control=False,
        ).add_to(fmap)
    folium.plugins.Fullscreen(title="全屏", title_cancel="退出全屏").add_to(fmap)
    return fmap


def _nonced(html: str) -> str:
    """folium's inline <script> and <style> blocks, marked with the response's CSP nonce (its
    output holds no user data: names and figures come from the APIs, drawn by blockdata.js)."""
    return _INLINE.sub(lambda m: f'<{m[1]} nonce="{csp_nonce()}"', html)


def _parts(fmap: folium.Map) -> dict[str, str]:
    """The map's header (assets), body and script, to place in our own template."""
    root: Any = fmap.get_root()
    root.render()
    parts = {
        "map_header": root.header.render(),
        "map_html": root.html.render(),
        "map_script": "<script>" + root.script.render() + "</script>",
    }
    basemap = _settings().basemap_url
    allowed = [urlsplit(basemap).hostname or ""] if basemap else []
    for part in parts.values():
        assert_offline(part, allowed_hosts=allowed)
    return {name: _nonced(part) for name, part in parts.items()} | {"map_name": fmap.get_name()}


# A unit's code field → the level whose name the popups show instead of the code.
_NAMED = {
    "street_code": "street",
    "community_code": "community",
    "grid_code": "grid",
    "lane_code": "lane",  # named where the page draws the lanes (a commander's street)
}


def _kinds(layer: Layer) -> dict[str, str]:
    """How blockdata.js writes each published field in a popup: a time in the district's zone,
    a date, 是/否, a list, a source's or a placement's name, a unit's name instead of its code."""
    kinds: dict[str, str] = {}
    for f in layer.published:
        column_type = f.column.type
        if f.name in _NAMED:
            kinds[f.name] = _NAMED[f.name]
        elif f.name == "code" and layer.level in ("street", "community", "grid"):
            kinds[f.name] = layer.level
        elif f.name == "source":
            kinds[f.name] = "source"
        elif f.name == "geocode_quality":
            kinds[f.name] = "quality"
        elif isinstance(column_type, sa.DateTime):
            kinds[f.name] = "time"
        elif isinstance(column_type, sa.Date):
            kinds[f.name] = "date"
        elif isinstance(column_type, sa.Boolean):
            kinds[f.name] = "bool"
        elif isinstance(column_type, sa.ARRAY):
            kinds[f.name] = "list"
    return kinds


def _map_words(street: str | None, levels: tuple[str, ...]) -> dict[str, Any]:
    """What the maps say instead of codes: unit names (the page's scope), sources, placements,
    landmark kinds; the colours and the 100 m cell size of the heat; the basemap's places."""
    conn = db.connection()
    return {
        "names": scorecards.place_names(conn, street, levels),
        "sourceNames": SOURCE_NAMES,
        "qualityNames": QUALITY_NAMES,
        "landmarkKinds": LANDMARK_KINDS,
        "colours": PAGE_COLOURS,
        "heatColours": list(HEAT_COLOURS),
        "cell": [CELL_DLNG, CELL_DLAT],
        # No tile basemap configured: blockdata.js draws one from the district's own layers.
        "ownBasemap": not _settings().basemap_url,
        "landmarks": scorecards.landmark_places(conn, street),
    }


def _page(template: str, **context: Any) -> Response:
    settings = _settings()
    layers = {
        layer.name: {
            "title": layer.title,
            "labels": {f.name: f.label for f in layer.published},
            "order": [f.name for f in layer.published],  # the popup's rows (JSON sorts keys)
            "kinds": _kinds(layer),
            "style": {
                "color": layer.style.color,
                "fillColor": layer.style.fill_color or layer.style.color,
                "weight": layer.style.weight,
                "fillOpacity": layer.style.fill_opacity,
                "radius": layer.style.radius,
                "by": layer.style.by,
                "palette": layer.style.palette,
            },
        }
        for layer in LAYERS
    }
    config = {
        "page": template.removesuffix(".html"),
        "map": context["map_name"],
        "layers": layers,
        "basemapCrs": settings.basemap_crs,
        "liveSeconds": _live_seconds(),
        # The district's local date by the app's clock, as /api counts days: never the
        # server's or the browser's own clock and zone.
        "today": settings.today().isoformat(),
        "tz": settings.tz,
        "mayOpen": {p: capabilities.may_open(_role(), p) for p in capabilities.PAGES},
        "mayDo": {a: capabilities.may(_role(), a) for a in capabilities.ACTIONS},
        # the area card's figures are the requests': a role that reads none gets no card
        "mayReadRequests": access.may_read(_role(), "service_requests"),
        **context.pop("config", {}),
    }
    return _html(render_template(template, config=config, **context))


def _html(text: str) -> Response:
    response = Response(text, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _role() -> str:
    principal = auth.current()
    return principal.role if principal else ""


@dataclass(frozen=True)
class NavLink:
    page: str
    title: str
    url: str
    current: bool


@dataclass(frozen=True)
class Me:
    """Who is logged in, as every page's header shows it."""

    name: str
    role: str
    street: str | None
    nav: list[NavLink]
    home: str
    home_title: str


def _street_name(code: str) -> str:
    """The street's name, or its code when the database cannot say (an error page)."""
    try:
        with db.connection().begin_nested():
            name = scorecards.street_name(db.connection(), code)
    except Exception:  # an error page for a failed database still renders
        return code
    return str(name) if name else code


def whoami() -> Me | None:
    """The logged-in user for the page header (None on the login page and when anonymous)."""
    principal = auth.current()
    if principal is None:
        return None
    if "whoami" in g:
        me: Me = g.whoami
        return me
    street = _street_name(principal.street_code) if principal.street_code else None
    links = capabilities.nav(principal.role, street, principal.street_code)
    need = capabilities.access(request.endpoint) if request.endpoint else None
    page = need.page if need is not None else None
    nav = [
        NavLink(link.page, link.title, url_for(link.endpoint, **link.args), link.page == page)
        for link in links
    ]
    role = capabilities.ROLES.get(principal.role)
    g.whoami = Me(
        name=principal.name,
        role=role.title if role else principal.role,
        street=street,
        nav=nav,
        home=nav[0].url if nav else url_for("auth.login"),
        home_title=nav[0].title if nav else "登录页",
    )
    return g.whoami


@bp.app_context_processor
def _whoami() -> dict[str, Any]:
    return {"whoami": whoami}


@bp.get("/")
@page("overview")
def overview() -> Response:
    """区级指挥中心: the streets as a choropleth and their ranking on the three rates."""
    fmap = _map()
    words = _map_words(None, ("street",))
    return _page("overview.html", title="区级指挥中心", config=words, **_parts(fmap))


@bp.get("/command/<street_code>")
@page("command")
def command(street_code: str) -> Response:
    """战区司令: one street's live map and panel."""
    row = scorecards.street_extent(db.connection(), street_code)
    if row is None:
        raise NotFound(f"没有这个街道 no such street: {street_code!r}", street=street_code)
    fmap = _map()
    bounds = [[row["miny"], row["minx"]], [row["maxy"], row["maxx"]]]
    fmap.fit_bounds(bounds)
    # The heat layer is drawn by blockdata.js from /api/heat (100 m cells or units, aggregates).
    source = url_for("api.latest", street_code=street_code)
    latest = folium.plugins.Realtime(
        # A function source, so the points are shifted like every overlay on a GCJ-02 basemap;
        # the tooltip is text (a DOM node), never HTML made of the request's fields.
        folium.JsCode(
            "function (success, error) { fetch(" + json.dumps(source) + ", {headers: "
            "{Accept: 'application/json'}}).then((r) => r.ok ? r.json() : Promise.reject(r.status))"
            ".then((fc) => success(window.BD && BD.shiftGeoJSON ? BD.shiftGeoJSON(fc) : fc))"
            ".catch(error); }"
        ),
        get_feature_id=folium.JsCode("(f) => f.properties.id"),
        interval=_live_seconds() * 1000,
        remove_missing=True,
        point_to_layer=folium.JsCode(
            "(f, latlng) => L.circleMarker(latlng, {radius: 6, color: '#b71c1c',"
            f" weight: 2, fillColor: '{PAGE_COLOURS['latest_request']}', fillOpacity: 0.9}})"
            ".bindTooltip(() => { const t = document.createElement('span');"
            " t.textContent = f.properties.category + ' · ' + f.properties.status; return t; })"
        ),
        name="最新诉求 (实时)",
    )
    latest.add_to(fmap)
    return _page(
        "command.html",
        title=f"{row['name']} · 战区司令视图",
        street={"code": row["code"], "name": row["name"], "commander": row["commander"]},
        config={
            "street": row["code"],
            "bounds": bounds,
            "realtime": latest.get_name(),
            **_map_words(row["code"], ("street", "community", "grid")),
        },
        **_parts(fmap),
    )


@bp.get("/queue")
@page("queue")
def queue() -> Response:
    """案件队列: the cases of the caller's view (a department: its unit's, across streets; the
    street centre's clerk: the ones it dispatches), with the case drawer, the load board and
    the whistles in progress; no map (a department reads no layer). static/js/command_post.js
    draws it from /api/cases."""
    principal = auth.current()
    config = {
        "page": "queue",
        "liveSeconds": _live_seconds(),
        "tz": _settings().tz,
        "unit": principal.unit if principal else None,
        "mayDo": {a: capabilities.may(_role(), a) for a in capabilities.ACTIONS},
    }
    unit_queue = principal is not None and principal.role == "department"
    return _html(
        render_template("queue.html", title="案件队列", config=config, unit_queue=unit_queue)
    )


@bp.get("/planner")
@page("planner")
def planner() -> Response:
    """规划视图: renovation and relocation progress, as of any date."""
    fmap = _map()
    words = _map_words(None, ("street", "community"))
    return _page("planner.html", title="整治与疏解进度", config=words, **_parts(fmap))


def _load_reports() -> Any:
    """The request's connection, reading the load reports of the whole district: the clerk,
    bound to its street's centre since migration 0019, still loads the district's extracts
    (`blockdata etl run`, as the owner), so it reads every run and its rejects (visible to
    the district's zone only, migration 0004). Only those tables are read after this."""
    db.scope(DISTRICT)
    return db.connection()


@bp.get("/imports")
@page("imports")
def imports() -> Response:
    """数据导入: the latest ETL runs with their counts, for the clerk who loads the extracts."""
    return _html(
        render_template(
            "imports.html",
            title="数据导入",
            runs=imports_query.latest_runs(_load_reports(), RUNS_SHOWN),
            titles=imports_query.run_titles(),
            statuses=RUN_STATUS,
            shown=RUNS_SHOWN,
        )
    )


@bp.get("/imports/<int(max=2147483647):run_id>")  # etl_runs.id is an integer
@page("imports")
def imports_run(run_id: int) -> Response:
    """One ETL run: its counts and the rows it rejected, each with its reason."""
    conn = _load_reports()
    run = imports_query.run(conn, run_id)
    if run is None:
        raise NotFound(f"没有这次导入 no such ETL run: {run_id}", run=run_id)
    return _html(
        render_template(
            "imports_run.html",
            title=f"导入记录 #{run_id}",
            run=run,
            rejects=imports_query.rejects(conn, run_id, REJECTS_SHOWN),
            titles=imports_query.run_titles(),
            statuses=RUN_STATUS,
            shown=REJECTS_SHOWN,
        )
    )
