"""Vector tiles `/tiles/<layer>/{z}/{x}/{y}.pbf` and TileJSON `/tiles/<layer>.json`.

The web side only: parse the request, build the tile with `layers.queries.tiles` (what a tile
holds, raw or aggregated, and its data version: see there), answer with its ETag and cache
headers. `X-Tile-Kind` says which kind a tile is (raw, aggregated, or empty).

ETag = the tile's key: digest of the tile address + filter + the tile's data version for
the caller's role and zone (a commander's ETag says nothing of other streets). The version
is read in the statement that switches the request to the reader role and zone
(`db.scope_extra` with `version_columns`): a cached tile costs the user lookup, that one
statement and the commit; `If-None-Match` → 304 without building it. Built tiles are kept
by `app.tile_cache` (memory, and the disk shared by the server's processes); `X-Tile-Cache`
says where a tile came from (memory, disk or built).
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g, jsonify, request
from flask.blueprints import BlueprintSetupState

from app import db, tile_cache
from app.capabilities import reads
from layers import Layer, UnknownLayer, get_layer
from layers.queries import tiles as qtiles
from layers.queries.params import ParamError
from layers.queries.types import tilejson_type

bp = Blueprint("tiles", __name__, url_prefix="/tiles")

MVT = "application/vnd.mapbox-vector-tile"
CACHE_CONTROL = "private, max-age=60"
VARY = "Authorization, Cookie"


@bp.record_once
def _init(state: BlueprintSetupState) -> None:
    tile_cache.init_app(state.app)
    db.scope_extra(state.app, f"{bp.name}.tile", _scope_version)


def _scope_version() -> tuple[str, dict[str, Any]] | None:
    """The version columns for `db.scope` in a tile request (see db.scope_extra)."""
    args = request.view_args or {}
    try:
        layer = get_layer(str(args.get("layer")))
        tile = qtiles.parse_tile(str(args.get("z")), str(args.get("x")), str(args.get("y")))
    except (UnknownLayer, ParamError):
        return None  # the view answers 404 / 400
    return qtiles.version_columns(layer, tile, current_app.config["BLOCKDATA_SETTINGS"].tz)


def max_raw_points() -> int:
    """The most points a raw tile holds (`TILE_MAX_RAW_POINTS`)."""
    return int(current_app.config.get("TILE_MAX_RAW_POINTS", qtiles.MAX_RAW_POINTS))


def scoped() -> qtiles.Scoped | None:
    """What this request's (or the seeder's) `db.scope` read of a tile's version, if it did."""
    extra, zone = g.get("db_scope_extra"), g.get("db_zone")
    if extra is None or zone is None:
        return None
    return qtiles.Scoped(zone, *extra)


# The view argument is called `layer`: the auth hook checks that the caller's role may read it.


@bp.get("/<layer>/<z>/<x>/<y>.pbf")
@reads(url_layer="layer")
def tile(layer: str, z: str, x: str, y: str) -> Response:
    return _tile(get_layer(layer), z, x, y)


@bp.get("/<layer>.json")
@reads(url_layer="layer")
def tilejson(layer: str) -> Response:
    return _tilejson(get_layer(layer))


def _tile(layer: Layer, z: str, x: str, y: str) -> Response:
    tile = qtiles.parse_tile(z, x, y)
    prepared = qtiles.prepare_tile(
        db.connection(),
        layer,
        tile,
        request.args,
        tz=current_app.config["BLOCKDATA_SETTINGS"].tz,
        max_raw=max_raw_points(),
        scoped=scoped(),
    )
    digest = prepared.key
    headers = {"ETag": f'W/"{digest}"', "Cache-Control": CACHE_CONTROL, "Vary": VARY}
    if request.if_none_match.contains_weak(digest) or request.if_none_match.star_tag:
        return Response(status=304, headers=headers)
    data, kind, source = tile_cache.tile_cache().lookup(digest, prepared.build)
    headers["X-Tile-Kind"] = kind
    headers["X-Tile-Cache"] = source
    return Response(data, mimetype=MVT, headers=headers)


def _tilejson(layer: Layer) -> Response:
    zone = current_app.config["BLOCKDATA_SETTINGS"].zone
    _, canonical = qtiles.tile_filters(layer, request.args, zone)
    conn = db.connection()
    box = conn.execute(
        sa.select(sa.cast(sa.func.ST_EstimatedExtent("public", layer.name, "geom"), sa.Text))
    ).scalar()
    match = re.fullmatch(r"BOX\(([-0-9.e+]+) ([-0-9.e+]+),([-0-9.e+]+) ([-0-9.e+]+)\)", box or "")
    bounds = [round(float(v), 6) for v in match.groups()] if match else [-180, -85.05, 180, 85.05]
    query = f"?{canonical}" if canonical else ""
    root = request.url_root.rstrip("/") + "/tiles"
    labels = layer.labels
    fields = {
        f.name: f"{labels[f.name]} ({tilejson_type(f.column)})"
        for f in qtiles.tile_fields(layer)
        if f.name != qtiles.feature_id(layer)
    }
    if layer.geometry_type == "POINT":
        max_raw, cells = max_raw_points(), qtiles.CELLS
        fields["count"] = (
            f"聚合数量 (Number): 要素超过 {max_raw} 个的瓦片按 {cells}×{cells} 网格聚合，"
            f"只有 count 属性 (aggregated tiles, over {max_raw} points, only)"
        )
    body = {
        "tilejson": "3.0.0",
        "name": layer.name,
        "description": layer.title,
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [f"{root}/{layer.name}/{{z}}/{{x}}/{{y}}.pbf{query}"],
        "minzoom": layer.min_zoom,
        "maxzoom": layer.max_zoom,
        "bounds": bounds,
        "center": [
            round((bounds[0] + bounds[2]) / 2, 6),
            round((bounds[1] + bounds[3]) / 2, 6),
            min(layer.min_zoom + 3, layer.max_zoom),
        ],
        "vector_layers": [
            {
                "id": layer.name,
                "description": layer.title,
                "minzoom": layer.min_zoom,
                "maxzoom": layer.max_zoom,
                "fields": fields,
            }
        ],
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.headers["Vary"] = VARY
    return response
