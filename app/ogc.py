"""OGC API – Features at `/ogc`: landing page, conformance, OpenAPI, collections, items.

The blueprint parses the request, asks layers.queries.features for the collections, the
pages of features and the extents, and answers JSON, GeoJSON or HTML (templates/ogc/). Every
layer of the registry is a collection with one geometry type; a layer with lines and
polygons is two (layers.queries.features.collections).

Items are paged with keys, not OFFSET: the `next` link carries an opaque cursor holding the
last primary key of the page, and `numberMatched` is omitted (counting every row is what
makes OFFSET servers slow). PostGIS writes each feature; this module only joins the strings.
Every query runs on `db.connection()`.

The parameters are parsed by layers.queries.params; the conditions built from them
(`bbox`, `datetime`/`since`/`until`, property filters: layers.queries.slices) are shared
with tiles and exports. The OpenAPI document is built by app.ogc_openapi.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import quote_plus, urlencode

from flask import Blueprint, Response, current_app, render_template, request, url_for

from app import auth, db
from app.capabilities import logged_in, reads
from app.ogc_openapi import ITEMS_PARAMS, OPENAPI, openapi
from layers.queries import features, params
from layers.queries.features import Collection, collections
from layers.queries.params import (
    MAX_VALUE_LENGTH,
    ParamError,
    check_params,
    encode_cursor,
    parse_limit,
    single,
)
from layers.queries.slices import (
    CRS84,
    TIME_PARAMS,
    bbox_condition,
    filter_names,
    property_conditions,
    time_conditions,
)

bp = Blueprint("ogc", __name__, url_prefix="/ogc")

CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
)
GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"


def readable() -> list[Collection]:
    """The collections the caller's role may read (zones are the database's business)."""
    principal = auth.current()
    return [c for c in collections() if principal is None or principal.may_read(c.layer.name)]


def get_collection(collection_id: str) -> Collection:
    """The collection `collection_id`: 404 when there is none, 403 when the role may not read it."""
    c = features.find(collection_id)
    auth.require_layer(c.layer.name)
    return c


def local_zone() -> dt.tzinfo:
    """The district's time zone (the BLOCKDATA_TZ setting) of the current app."""
    zone: dt.tzinfo = current_app.config["BLOCKDATA_SETTINGS"].zone
    return zone


# --- content negotiation and links ---------------------------------------------------------


def wants_html() -> bool:
    """`f=html|json` wins; otherwise the Accept header (JSON unless HTML is preferred)."""
    f = single(request.args, "f")
    if f is not None:
        if f not in ("json", "html", "geojson"):
            raise ParamError(f"f 只能是 json 或 html (f must be json or html): {f!r}", "f")
        return f == "html"
    best = request.accept_mimetypes.best_match([JSON, GEOJSON, HTML], default=JSON)
    return best == HTML


def _url(endpoint: str, **values: Any) -> str:
    return url_for(endpoint, _external=True, **values)


def _link(href: str, rel: str, type_: str, title: str) -> dict[str, str]:
    return {"href": href, "rel": rel, "type": type_, "title": title}


def _self_links(
    endpoint: str, html: bool, json_type: str = JSON, **values: Any
) -> list[dict[str, str]]:
    as_json = _link(_url(endpoint, f="json", **values), "self", json_type, "JSON")
    as_html = _link(_url(endpoint, f="html", **values), "self", HTML, "HTML")
    if html:
        as_json["rel"] = "alternate"
    else:
        as_html["rel"] = "alternate"
    return [as_json, as_html] if not html else [as_html, as_json]


def _json(body: Any, mimetype: str = JSON) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, default=str), mimetype=mimetype)


def _html(page: str, **context: Any) -> Response:
    return Response(render_template(f"ogc/{page}.html", **context), mimetype=HTML)


def _timestamp() -> str:
    """The response's timeStamp, by the app's clock, in UTC (RFC 3339 "Z")."""
    now = current_app.config["BLOCKDATA_SETTINGS"].now().astimezone(dt.UTC)
    return str(now.isoformat(timespec="seconds")).replace("+00:00", "Z")


def _collection_doc(c: Collection, html: bool) -> dict[str, Any]:
    cid = c.id
    return {
        "id": cid,
        "title": c.title,
        "description": f"{c.title} — {c.layer.name}，几何 geometry {c.geometry_type}",
        "itemType": "feature",
        "crs": [CRS84],
        "geometryType": c.geometry_type,
        "extent": features.extent(db.connection(), c, local_zone()),
        "links": [
            *_self_links("ogc.collection", html, collection_id=cid),
            _link(_url("ogc.items", collection_id=cid), "items", GEOJSON, f"{c.title} 要素 items"),
            _link(_url("ogc.items", collection_id=cid, f="html"), "items", HTML, "HTML"),
        ],
    }


# --- endpoints ------------------------------------------------------------------------------


@bp.get("/", strict_slashes=False)
@logged_in
def landing() -> Response:
    check_params(request.args, ["f"])
    html = wants_html()
    body = {
        "title": "Blockdata 西城区块数据 OGC API – Features",
        "description": "街道、社区、网格、街巷、诉求、执法案件、疏解目标与整治提升项目的要素服务",
        "links": [
            *_self_links("ogc.landing", html),
            _link(_url("ogc.api"), "service-desc", OPENAPI, "OpenAPI 3.0 接口定义"),
            _link(_url("ogc.api", f="html"), "service-doc", HTML, "接口文档 API documentation"),
            _link(_url("ogc.conformance"), "conformance", JSON, "一致性声明 conformance"),
            _link(_url("ogc.collections_list"), "data", JSON, "数据集合 collections"),
        ],
    }
    if html:
        return _html("landing", title=body["title"], body=body)
    return _json(body)


@bp.get("/conformance")
@logged_in
def conformance() -> Response:
    check_params(request.args, ["f"])
    body = {"conformsTo": list(CONFORMANCE)}
    if wants_html():
        return _html("conformance", title="一致性声明 Conformance", body=body)
    return _json(body)


@bp.get("/api")
@logged_in
def api() -> Response:
    check_params(request.args, ["f"])
    doc = openapi()
    if wants_html():
        return _html("api", title="接口文档 API", doc=doc)
    return _json(doc, OPENAPI)


@bp.get("/collections")
@logged_in
def collections_list() -> Response:
    check_params(request.args, ["f"])
    html = wants_html()
    body = {
        "collections": [_collection_doc(c, html) for c in readable()],
        "links": _self_links("ogc.collections_list", html),
    }
    if html:
        return _html("collections", title="数据集合 Collections", body=body)
    return _json(body)


@bp.get("/collections/<collection_id>")
@reads(url_collection="collection_id")
def collection(collection_id: str) -> Response:
    c = get_collection(collection_id)
    check_params(request.args, ["f"])
    html = wants_html()
    body = _collection_doc(c, html)
    if html:
        return _html("collection", title=c.title, body=body, fields=features.field_doc(c.layer))
    body["properties"] = features.field_doc(c.layer)
    return _json(body)


@bp.get("/collections/<collection_id>/items")
@reads(url_collection="collection_id")
def items(collection_id: str) -> Response:
    c = get_collection(collection_id)
    args = request.args
    # Time parameters pass here on any layer, so that one without a time field is told so.
    check_params(args, [*ITEMS_PARAMS, *TIME_PARAMS, *filter_names(c.layer)])
    html = wants_html()
    limit = parse_limit(single(args, "limit"))
    for name in ("bbox-crs", "crs"):
        crs = single(args, name)
        if crs is not None and crs != CRS84:
            raise ParamError(f"{name} 只支持 CRS84 (only {CRS84} is supported): {crs!r}", name)
    conds = [*time_conditions(c.layer, args, local_zone()), *property_conditions(c.layer, args)]
    bbox = single(args, "bbox")
    if bbox is not None:
        conds.append(bbox_condition(c.table.c.geom, bbox))
    cursor = single(args, "cursor")
    after = None if cursor is None else params.decode_cursor(cursor, integer=c.integer_key)
    page, next_key = features.page(db.connection(), c, conds, limit, after)
    # The links differ only in `f` and `cursor`: the path is built once and the request's
    # other parameters encoded once (url_for for each link cost a tenth of the request).
    collection_url = _url("ogc.collection", collection_id=c.id)
    query = urlencode([(k, v) for k, v in args.items(multi=True) if k not in ("cursor", "f")])
    base = f"{collection_url}/items?{query}{'&' if query else ''}"
    here = f"{base}cursor={quote_plus(cursor)}&" if cursor is not None else base
    as_json = _link(f"{here}f=json", "alternate" if html else "self", GEOJSON, "JSON")
    as_html = _link(f"{here}f=html", "self" if html else "alternate", HTML, "HTML")
    links = [as_html, as_json] if html else [as_json, as_html]
    if next_key is not None:
        nxt = f"{base}cursor={encode_cursor(next_key)}&"
        links.append(_link(f"{nxt}f=json", "next", GEOJSON, "下一页 next page"))
        links.append(_link(f"{nxt}f=html", "next", HTML, "下一页 next page"))
    links.append(_link(collection_url, "collection", JSON, c.title))
    if html:
        return _html(
            "items",
            title=f"{c.title} 要素",
            collection=c,
            fields=[f.name for f in c.layer.published],
            labels=c.layer.labels,
            features=[json.loads(text) for text in page],
            links=links,
        )
    text = "".join(
        (
            '{"type":"FeatureCollection","features":[',
            ",".join(page),
            '],"numberReturned":',
            str(len(page)),
            ',"timeStamp":"',
            _timestamp(),
            '","links":',
            json.dumps(links, ensure_ascii=False),
            "}",
        )
    )
    return Response(text, mimetype=GEOJSON)


@bp.get("/collections/<collection_id>/items/<feature_id>")
@reads(url_collection="collection_id")
def item(collection_id: str, feature_id: str) -> Response:
    c = get_collection(collection_id)
    check_params(request.args, ["f"])
    html = wants_html()
    missing = features.NotFound(
        f"集合 {c.id} 中没有要素 (no such feature in {c.id}): {feature_id!r}",
        collection=c.id,
        id=feature_id,
    )
    key: Any = feature_id
    if c.integer_key:
        if not re.fullmatch(r"[0-9]{1,19}", feature_id) or int(feature_id) >= 2**63:
            raise missing
        key = int(feature_id)
    elif any(ord(ch) < 32 for ch in feature_id) or len(feature_id) > MAX_VALUE_LENGTH:
        raise missing
    text = features.one(db.connection(), c, key)
    if text is None:
        raise missing
    links = [
        *_self_links("ogc.item", html, GEOJSON, collection_id=c.id, feature_id=feature_id),
        _link(_url("ogc.collection", collection_id=c.id), "collection", JSON, c.title),
    ]
    if html:
        return _html(
            "item",
            title=f"{c.title} {feature_id}",
            collection=c,
            feature=json.loads(text),
            labels=c.layer.labels,
            links=links,
        )
    return Response(
        text[:-1] + ',"links":' + json.dumps(links, ensure_ascii=False) + "}", mimetype=GEOJSON
    )
