"""The OpenAPI 3.0 document of the OGC API – Features (`/ogc/api`), built from the same lists
the blueprint (app.ogc) checks: ITEMS_PARAMS, the time parameters and the layer's filters."""

from __future__ import annotations

from typing import Any

from flask import url_for

from app.openapi import Param, filter_params
from layers.queries.features import Collection, collections
from layers.queries.params import DEFAULT_LIMIT, MAX_LIMIT
from layers.queries.slices import CRS84, TIME_PARAMS, filter_names

GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"

ITEMS_PARAMS = ("f", "limit", "bbox", "bbox-crs", "crs", "cursor")


def items_parameters(c: Collection) -> list[str]:
    """Every query parameter the items endpoint of `c` accepts (the OpenAPI lists these)."""
    times = TIME_PARAMS if c.layer.time_field is not None else ()
    return [*ITEMS_PARAMS, *times, *filter_names(c.layer)]


_COMMON_PARAMS: dict[str, Param] = {
    "f": Param(
        "f", "输出格式 output format", {"type": "string", "enum": ["json", "html", "geojson"]}
    ),
    "limit": Param(
        "limit",
        f"每页要素数 features per page (default {DEFAULT_LIMIT}, max {MAX_LIMIT})",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    "bbox": Param(
        "bbox",
        "范围 minx,miny,maxx,maxy (CRS84)",
        {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
        "116.30,39.90,116.40,40.00",
        {"style": "form", "explode": False},
    ),
    "bbox-crs": Param("bbox-crs", "bbox 坐标系 (CRS84 only)", {"type": "string", "enum": [CRS84]}),
    "crs": Param("crs", "输出坐标系 (CRS84 only)", {"type": "string", "enum": [CRS84]}),
    "cursor": Param(
        "cursor", "分页游标，来自 next 链接 (opaque cursor from a next link)", {"type": "string"}
    ),
    "datetime": Param(
        "datetime",
        "时间：时刻或区间，开放端用 .. (RFC 3339 instant or interval, `..` for open ends)",
        {"type": "string"},
        "2026-01-01T00:00:00+08:00/..",
    ),
    "since": Param(
        "since",
        "时间下限（含）lower time bound, inclusive",
        {"type": "string"},
        "2026-01-01",
    ),
    "until": Param(
        "until",
        "时间上限（含）upper time bound, inclusive",
        {"type": "string"},
        "2026-12-31",
    ),
}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.0 document of this service, built from the same lists the code checks."""
    root = url_for("ogc.landing", _external=True).rstrip("/")
    f_only = [_COMMON_PARAMS["f"].doc()]
    ok_json = {"200": {"description": "OK", "content": {JSON: {}, HTML: {}}}}
    errors = {
        "400": {"description": "参数错误 bad request", "content": {JSON: {}}},
        "404": {"description": "不存在 not found", "content": {JSON: {}}},
    }
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "首页 landing page", "parameters": f_only, "responses": ok_json}},
        "/conformance": {
            "get": {"summary": "一致性声明 conformance", "parameters": f_only, "responses": ok_json}
        },
        "/api": {
            "get": {
                "summary": "本文档 this document",
                "parameters": f_only,
                "responses": {"200": {"description": "OK", "content": {OPENAPI: {}, HTML: {}}}},
            }
        },
        "/collections": {
            "get": {"summary": "集合列表 collections", "parameters": f_only, "responses": ok_json}
        },
    }
    for c in collections():
        params = [
            _COMMON_PARAMS[name].doc() for name in items_parameters(c) if name in _COMMON_PARAMS
        ]
        # The filters as /api documents them, without its examples.
        params += [
            {k: v for k, v in p.doc().items() if k != "example"} for p in filter_params(c.layer)
        ]
        feature = {"200": {"description": "GeoJSON", "content": {GEOJSON: {}, HTML: {}}}, **errors}
        base = f"/collections/{c.id}"
        paths[base] = {
            "get": {"summary": c.title, "parameters": f_only, "responses": {**ok_json, **errors}}
        }
        paths[f"{base}/items"] = {
            "get": {
                "summary": f"{c.title} 要素 items ({c.geometry_type})",
                "parameters": params,
                "responses": feature,
            }
        }
        paths[f"{base}/items/{{featureId}}"] = {
            "get": {
                "summary": f"{c.title} 单个要素 one feature",
                "parameters": [
                    {
                        "name": "featureId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer" if c.integer_key else "string"},
                    },
                    *f_only,
                ],
                "responses": feature,
            }
        }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Blockdata OGC API – Features",
            "version": "1.0.0",
            "description": "西城区块数据要素服务 (OGC API – Features Part 1: Core)",
        },
        "servers": [{"url": root}],
        "paths": paths,
    }
