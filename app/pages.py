"""The pages: district overview, a commander's view of one street, the planners' overlay.

folium builds each map (Leaflet, controls, plugins, all served from /static); the data comes
from the JSON APIs, which aggregate in PostGIS, so a page never carries raw points in bulk.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import folium
import folium.plugins
import sqlalchemy as sa
from flask import Blueprint, Response, current_app, render_template, url_for

from app import db
from app.config import Settings
from app.errors import NotFound
from app.offline import assert_offline
from layers import LAYERS, get_layer

bp = Blueprint("pages", __name__)

CENTER = (39.912, 116.366)  # Xicheng; the map fits the data once loaded
LIVE_SECONDS = 15


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


def _parts(fmap: folium.Map) -> dict[str, str]:
    """The map's header (assets), body and script, to place in our own template."""
    root: Any = fmap.get_root()
    root.render()
    parts = {
        "map_header": root.header.render(),
        "map_html": root.html.render(),
        "map_script": root.script.render(),
        "map_name": fmap.get_name(),
    }
    basemap = _settings().basemap_url
    allowed = [urlsplit(basemap).hostname or ""] if basemap else []
    for part in parts.values():
        assert_offline(part, allowed_hosts=allowed)
    return parts


def _page(template: str, **context: Any) -> Response:
    settings = _settings()
    layers = {
        layer.name: {
            "title": layer.title,
            "labels": {f.name: f.label for f in layer.published},
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
        "layers": layers,
        "basemapCrs": settings.basemap_crs,
        "liveSeconds": LIVE_SECONDS,
        # The district's local date by the app's clock, as /api counts days: never the
        # server's or the browser's own clock and zone.
        "today": settings.today().isoformat(),
        "tz": settings.tz,
        **context.pop("config", {}),
    }
    html = render_template(template, config_json=json.dumps(config, ensure_ascii=False), **context)
    response = Response(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def overview() -> Response:
    """区级指挥中心: the streets as a choropleth and their ranking on the three rates."""
    fmap = _map()
    return _page("overview.html", title="区级指挥中心", **_parts(fmap))


@bp.get("/command/<street_code>")
def command(street_code: str) -> Response:
    """战区司令: one street's live map and panel."""
    streets = get_layer("streets").table
    row = (
        db.connection()
        .execute(
            sa.select(
                streets.c.code,
                streets.c.name,
                streets.c.commander,
                sa.func.ST_XMin(streets.c.geom).label("minx"),
                sa.func.ST_YMin(streets.c.geom).label("miny"),
                sa.func.ST_XMax(streets.c.geom).label("maxx"),
                sa.func.ST_YMax(streets.c.geom).label("maxy"),
            ).where(streets.c.code == street_code)
        )
        .first()
    )
    if row is None:
        raise NotFound(f"没有这个街道 no such street: {street_code!r}", street=street_code)
    fmap = _map()
    bounds = [[row.miny, row.minx], [row.maxy, row.maxx]]
    fmap.fit_bounds(bounds)
    # The heat layer starts empty: the page fills it from /api/heat (aggregates, not points).
    heat = folium.plugins.HeatMap([], name="诉求热力", radius=22, blur=18, min_opacity=0.25)
    heat.add_to(fmap)
    source = url_for("api.latest", street_code=street_code)
    latest = folium.plugins.Realtime(
        # A function source, so the points are shifted like every overlay on a GCJ-02 basemap.
        folium.JsCode(
            "function (success, error) { fetch(" + json.dumps(source) + ", {headers: "
            "{Accept: 'application/json'}}).then((r) => r.ok ? r.json() : Promise.reject(r.status))"
            ".then((fc) => success(window.BD && BD.shiftGeoJSON ? BD.shiftGeoJSON(fc) : fc))"
            ".catch(error); }"
        ),
        get_feature_id=folium.JsCode("(f) => f.properties.id"),
        interval=LIVE_SECONDS * 1000,
        remove_missing=True,
        point_to_layer=folium.JsCode(
            "(f, latlng) => L.circleMarker(latlng, {radius: 6, color: '#b71c1c',"
            " weight: 2, fillColor: '#ff5252', fillOpacity: 0.9})"
            ".bindTooltip(f.properties.category + ' · ' + f.properties.status)"
        ),
        name="最新诉求 (实时)",
    )
    latest.add_to(fmap)
    return _page(
        "command.html",
        title=f"{row.name} · 战区司令视图",
        street={"code": row.code, "name": row.name, "commander": row.commander},
        config={
            "street": row.code,
            "bounds": bounds,
            "realtime": latest.get_name(),
            "heat": heat.get_name(),
        },
        **_parts(fmap),
    )


@bp.get("/planner")
def planner() -> Response:
    """规划视图: renovation and relocation progress, as of any date."""
    fmap = _map()
    return _page("planner.html", title="整治与疏解进度", **_parts(fmap))
