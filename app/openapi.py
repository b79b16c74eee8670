"""`GET /api/openapi.json`: one OpenAPI 3.0 document for everything the server answers.

Each endpoint's query parameters are declared once, as `Param`s, beside the code that reads
them (app.api's QUERY, app.ogc_openapi's ITEMS_PARAMS and filters, the tiles' filters, the
Open311 module's lists); the `/api` blueprint rejects any parameter it has not declared, and
this document is built from the same declarations. tests/app/test_openapi.py checks that the
document and the URL map agree, that every documented parameter is accepted and undeclared
ones are refused, and runs schemathesis over the whole document.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, json, request

from app.capabilities import logged_in
from layers.cases.machine import RATINGS, STATES
from layers.cases.tables import KINDS
from layers.queries import params, slices
from layers.queries.types import json_schema
from layers.whistles import TARGETS

JSON = "application/json"
GEOJSON = "application/geo+json"
HTML = "text/html"
CSV = "text/csv"
MVT = "application/vnd.mapbox-vector-tile"


@dataclass(frozen=True)
class Param:
    """One query parameter: what it means (Chinese first), its JSON schema, a valid example."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    example: str | None = None
    style: dict[str, Any] = field(default_factory=dict)

    def doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "in": "query",
            "required": False,
            "description": self.description,
            "schema": self.schema,
            **self.style,
        }
        if self.example is not None:
            out["example"] = self.example
        return out


def names(params: Iterable[Param]) -> list[str]:
    return [p.name for p in params]


def path_param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string"},
    }


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "错误代码 error code"},
        "message": {"type": "string", "description": "中文与英文说明，指明错误的取值"},
    },
}


# --- what a successful answer holds: checked by schemathesis (tests/app/test_openapi.py) ---

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": "number", "nullable": True}
_COUNT = {"type": "integer", "minimum": 0}
# Row data of a street outside the caller's zone (open, overdue): null.
_ZONE_COUNT = {
    "type": "integer",
    "minimum": 0,
    "nullable": True,
    "description": "辖区外为空 null outside the caller's zone",
}
_TEXT = {"type": "string"}
_TEXT_OR_NULL = {"type": "string", "nullable": True}
_DATE = {"type": "string", "format": "date"}
_MONTH = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}
_STREET_CODE = {"type": "string", "pattern": "^[0-9]{9}$"}
_RATES = {
    "response_rate": _NUM_OR_NULL,
    "resolution_rate": _NUM_OR_NULL,
    "satisfaction_rate": _NUM_OR_NULL,
    "composite": _NUM_OR_NULL,
}


def _object(required: Sequence[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


_LINK = _object(["href", "rel"], href=_TEXT, rel=_TEXT, type=_TEXT, title=_TEXT)
_SCORECARD = _object(
    ["code", "name", "requests", "open", "overdue", "callbacks", *_RATES],
    code=_STREET_CODE,
    name=_TEXT,
    rank={"type": "integer", "minimum": 1, "nullable": True},
    area_km2=_NUM_OR_NULL,
    requests=_COUNT,
    open=_ZONE_COUNT,
    overdue=_ZONE_COUNT,
    callbacks=_COUNT,
    **_RATES,
)
RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "Geometry": _object(["type"], type=_TEXT, coordinates={"type": "array"}),
    "Feature": _object(
        ["type", "geometry", "properties"],
        type={"type": "string", "enum": ["Feature"]},
        geometry={**_ref("Geometry"), "nullable": True},
        properties={"type": "object", "nullable": True},
    ),
    "FeatureCollection": _object(
        ["type", "features"],
        type={"type": "string", "enum": ["FeatureCollection"]},
        features=_list(_ref("Feature")),
    ),
    "Heat": _object(
        ["layer", "level", "since", "until", "total", "min", "max", "breaks", "unplaced", "items"],
        layer=_TEXT,
        level={"type": "string", "enum": ["street", "community", "grid", "cell"]},
        since=_DATE,
        until=_DATE,
        category=_TEXT_OR_NULL,
        street={**_STREET_CODE, "nullable": True},
        total=_COUNT,
        min=_COUNT,
        max=_COUNT,
        # the legend's colour scale: quintiles of the units' counts (percentile_disc)
        breaks={**_list(_COUNT), "maxItems": 5},
        unplaced=_COUNT,
        items=_list(_object(["code", "n", "lng", "lat"], code=_TEXT, n=_COUNT, lng=_NUM, lat=_NUM)),
    ),
    "Streets": _object(
        ["month", "weights", "k", "district", "streets"],
        month=_MONTH,
        k=_NUM,
        weights=_object(
            ["response_rate", "resolution_rate", "satisfaction_rate"],
            response_rate=_NUM,
            resolution_rate=_NUM,
            satisfaction_rate=_NUM,
        ),
        district=_object(
            ["requests", "open", "overdue"],
            requests=_COUNT,
            open=_ZONE_COUNT,
            overdue=_ZONE_COUNT,
        ),
        streets=_list(_SCORECARD),
    ),
    "CommandSummary": _object(
        ["street", "month", "new_today", "open", "overdue", "rates", "top_categories", "hot_grids"],
        street=_object(["code", "name"], code=_STREET_CODE, name=_TEXT),
        month=_MONTH,
        new_today=_COUNT,
        open=_COUNT,
        overdue=_COUNT,
        rank={"type": "integer", "minimum": 1, "nullable": True},
        rates=_object(["month", "last_month", "change"]),
        top_categories=_list(_object(["category", "n"], category=_TEXT, n=_COUNT)),
        hot_grids=_list(
            _object(
                ["code", "label", "n", "bbox"],
                code=_TEXT,
                label=_TEXT,  # 百万庄社区 第4网格
                n=_COUNT,
                bbox={**_list(_NUM), "minItems": 4, "maxItems": 4},
            )
        ),
        categories=_list(_TEXT),
        service_hall={"type": "object", "nullable": True},
    ),
    "Planner": _object(
        ["as_of", "projects", "targets"],
        as_of=_DATE,
        kind=_TEXT_OR_NULL,
        street={**_STREET_CODE, "nullable": True},
        projects=_ref("FeatureCollection"),
        targets=_ref("FeatureCollection"),
    ),
    "Units": _object(
        ["units"],
        units=_list(
            _object(
                ["code", "name", "kind", "kind_label", "street_code", "street_name", "active"],
                code=_TEXT,
                name=_TEXT,
                kind={
                    "type": "string",
                    "enum": ["centre", "department", "station", "district_department"],
                },
                kind_label=_TEXT,
                street_code={**_STREET_CODE, "nullable": True},
                street_name=_TEXT_OR_NULL,
                active={"type": "boolean"},
            )
        ),
    ),
    "Layers": _object(
        ["layers"],
        layers=_list(
            _object(
                ["name", "title", "kind", "geometry_type", "fields", "parameters", "links"],
                name=_TEXT,
                title=_TEXT,
                kind={"type": "string", "enum": ["admin", "event"]},
                fields=_list(
                    _object(
                        ["name", "label", "type", "filterable"],
                        name=_TEXT,
                        label=_TEXT,
                        type=_TEXT,
                        filterable={"type": "boolean"},
                    )
                ),
                parameters=_list(_TEXT),
                links=_object(["geojson", "csv"], geojson=_TEXT, csv=_TEXT),
            )
        ),
    ),
    "TileJSON": _object(
        ["tilejson", "tiles", "vector_layers"],
        tilejson=_TEXT,
        tiles={**_list(_TEXT), "minItems": 1},
        vector_layers=_list(_object(["id", "fields"], id=_TEXT, fields={"type": "object"})),
    ),
    "OpenAPI": _object(["openapi", "info", "paths"], openapi=_TEXT, paths={"type": "object"}),
    "Health": _object(["status"], status=_TEXT, database=_TEXT),
    "OgcLanding": _object(["links"], title=_TEXT, links=_list(_LINK)),
    "OgcConformance": _object(["conformsTo"], conformsTo={**_list(_TEXT), "minItems": 1}),
    "OgcCollections": _object(
        ["collections"], collections=_list(_object(["id", "links"], id=_TEXT, links=_list(_LINK)))
    ),
    "OgcCollection": _object(["id", "links"], id=_TEXT, title=_TEXT, links=_list(_LINK)),
    "Services": _list(
        _object(
            ["service_code", "service_name", "metadata", "type"],
            service_code=_TEXT,
            service_name=_TEXT,
            metadata={"type": "boolean"},
            type=_TEXT,
        )
    ),
    "ServiceDefinition": _object(
        ["service_code", "attributes"], service_code=_TEXT, attributes={"type": "array"}
    ),
    "ServiceRequests": _list(
        _object(
            ["service_request_id", "status", "service_code", "requested_datetime"],
            service_request_id={"type": "integer"},
            status={"type": "string", "enum": ["open", "closed"]},
            service_code=_TEXT,
            requested_datetime=_TEXT,
            lat=_NUM_OR_NULL,
            long=_NUM_OR_NULL,
        )
    ),
    "ServiceRequestFiled": {
        **_list(
            _object(
                ["service_request_id", "case_id"],
                service_request_id={"type": "integer"},
                case_id={"type": "integer", "description": "案件编号（受理）the case, in 受理"},
            )
        ),
        "minItems": 1,
        "maxItems": 1,
    },
}
_TIME_OR_NULL = {"type": "string", "format": "date-time", "nullable": True}
_CASE_STATES = list(STATES)
_CASE = _object(
    [
        "id",
        "kind",
        "source_id",
        "street",
        "category",
        "state",
        "state_label",
        "version",
        "main_unit",
        "assisting_units",
        "due_at",
        "due_state",
        "times",
        "supervised",
        "reopen_count",
    ],
    id={"type": "integer"},
    kind={"type": "string", "enum": list(KINDS)},
    source_id={"type": "integer"},
    street={**_STREET_CODE, "nullable": True},
    category=_TEXT_OR_NULL,
    state={"type": "string", "enum": _CASE_STATES},
    state_label=_TEXT,
    version={"type": "integer", "minimum": 0},
    main_unit=_TEXT_OR_NULL,
    assisting_units=_list(_TEXT),
    due_at=_TIME_OR_NULL,
    due_state={
        "type": "string",
        "enum": ["due_soon", "overdue", "resolved_late"],
        "nullable": True,
    },
    times={"type": "object", "additionalProperties": _TIME_OR_NULL},
    supervised={"type": "boolean"},
    reopen_count={"type": "integer", "minimum": 0},
    grid=_TEXT_OR_NULL,
    source=_TEXT_OR_NULL,
    lng=_NUM_OR_NULL,
    lat=_NUM_OR_NULL,
    main_unit_name=_TEXT_OR_NULL,
)
_HISTORY = _object(
    ["action", "action_label", "from_state", "to_state", "user", "role", "unit", "at", "fields"],
    action=_TEXT,
    action_label=_TEXT,
    from_state={"type": "string", "enum": _CASE_STATES},
    to_state={"type": "string", "enum": _CASE_STATES},
    user=_TEXT_OR_NULL,
    role=_TEXT,
    unit=_TEXT_OR_NULL,
    at={"type": "string", "format": "date-time"},
    note=_TEXT_OR_NULL,
    fields={"type": "object"},
)
_WHISTLE = _object(
    ["id", "street", "target_kind", "reason", "meeting_point", "meet_at", "units"],
    id={"type": "integer"},
    street=_STREET_CODE,
    target_kind={"type": "string", "enum": list(TARGETS)},
    case_id={"type": "integer", "nullable": True},
    target_ref=_TEXT_OR_NULL,
    reason=_TEXT,
    meeting_point=_TEXT,
    meet_at={"type": "string", "format": "date-time"},
    blown_by=_TEXT_OR_NULL,
    blown_role=_TEXT,
    blown_at={"type": "string", "format": "date-time"},
    units=_list(
        _object(
            ["unit_code", "arrived_at", "arrival_delay_minutes", "completed_at", "rating"],
            unit_code=_TEXT,
            unit_name=_TEXT,
            arrived_at=_TIME_OR_NULL,
            arrival_delay_minutes={"type": "number", "minimum": 0, "nullable": True},
            completed_at=_TIME_OR_NULL,
            completion_note=_TEXT_OR_NULL,
            rating={"type": "string", "enum": list(RATINGS), "nullable": True},
            rating_comment=_TEXT_OR_NULL,
            rated_at=_TIME_OR_NULL,
        )
    ),
)
_COUNTS = {"type": "object", "additionalProperties": _COUNT}


def _load_row(required: Sequence[str], **key: Any) -> dict[str, Any]:
    """A row of open / 临期 / 超期 counts, keyed by a unit or a street."""
    counts = {"open": _COUNT, "due_soon": _COUNT, "overdue": _COUNT}
    return _object([*required, *counts], **key, **counts)


_UNIT_LOAD = _load_row(
    ["unit", "unit_name"], unit=_TEXT, unit_name=_TEXT, kind=_TEXT, kind_label=_TEXT
)
RESPONSE_SCHEMAS.update(
    {
        "Case": {
            **_CASE,
            "properties": {
                **_CASE["properties"],
                "history": _list(_HISTORY),
                # what the caller may take now (its role, its unit, the case's state)
                "actions": _list(_object(["action", "label"], action=_TEXT, label=_TEXT)),
                # whether the caller may blow a whistle on it (吹哨报到)
                "may_whistle": {"type": "boolean"},
            },
        },
        "Cases": _object(
            ["cases", "next", "counts"],
            cases=_list(_CASE),
            next=_TEXT_OR_NULL,
            counts=_object(["by_state", "by_unit"], by_state=_COUNTS, by_unit=_COUNTS),
        ),
        "Whistle": _WHISTLE,
        "Whistles": _object(
            ["whistles", "may_rate"], whistles=_list(_WHISTLE), may_rate={"type": "boolean"}
        ),
        "CaseLoad": _object(["units"], units=_list(_UNIT_LOAD)),
        "CasesOverdue": _object(
            ["by_street", "by_unit"],
            by_street=_list(_load_row(["street"], street=_STREET_CODE, name=_TEXT_OR_NULL)),
            by_unit=_list(_UNIT_LOAD),
        ),
    }
)
# (path, method, media type) of a 200 → the schema its body follows; `{layer}` and
# `{collection}` stand for any layer or OGC collection.
BODIES: dict[tuple[str, str, str], str] = {
    ("/api/heat/{layer}", "get", JSON): "Heat",
    ("/api/streets", "get", JSON): "Streets",
    ("/api/command/{street_code}/summary", "get", JSON): "CommandSummary",
    ("/api/command/{street_code}/latest", "get", GEOJSON): "FeatureCollection",
    ("/api/planner", "get", JSON): "Planner",
    ("/api/layers", "get", JSON): "Layers",
    ("/api/units", "get", JSON): "Units",
    ("/api/layers/{layer}/geojson", "get", GEOJSON): "FeatureCollection",
    ("/api/cases", "get", JSON): "Cases",
    ("/api/cases/{case_id}", "get", JSON): "Case",
    ("/api/cases/load", "get", JSON): "CaseLoad",
    ("/api/cases/overdue", "get", JSON): "CasesOverdue",
    ("/api/whistles", "get", JSON): "Whistles",
    ("/api/layers/*/features", "get", GEOJSON): "FeatureCollection",
    ("/api/openapi.json", "get", JSON): "OpenAPI",
    ("/healthz", "get", JSON): "Health",
    ("/tiles/*.json", "get", JSON): "TileJSON",
    ("/ogc/", "get", JSON): "OgcLanding",
    ("/ogc/conformance", "get", JSON): "OgcConformance",
    ("/ogc/collections", "get", JSON): "OgcCollections",
    ("/ogc/collections/*", "get", JSON): "OgcCollection",
    ("/ogc/collections/*/items", "get", GEOJSON): "FeatureCollection",
    ("/ogc/collections/*/items/{featureId}", "get", GEOJSON): "Feature",
    ("/open311/v2/services.json", "get", JSON): "Services",
    ("/open311/v2/services/{service_code}.json", "get", JSON): "ServiceDefinition",
    ("/open311/v2/requests.json", "get", JSON): "ServiceRequests",
    ("/open311/v2/requests.json", "post", JSON): "ServiceRequestFiled",
    ("/open311/v2/requests/{service_request_id}.json", "get", JSON): "ServiceRequests",
}


def _body_schema(path: str, method: str, media: str) -> str | None:
    for (pattern, m, t), name in BODIES.items():
        if m == method and t == media and fnmatch.fnmatchcase(path, pattern):
            if "*" in pattern and pattern.count("/") != path.count("/"):
                continue  # `*` stands for one path segment
            return name
    return None


def _with_body_schemas(paths: dict[str, Any]) -> dict[str, Any]:
    """Give each documented 200 answer the schema of its body (BODIES)."""
    for path, ops in paths.items():
        for method, op in ops.items():
            if "200" not in op.get("responses", {}):
                continue
            answer = copy.deepcopy(op["responses"]["200"])  # contributors share these dicts
            for media in answer.get("content", {}):
                name = _body_schema(path, method, media)
                if name is not None:
                    answer["content"][media] = {**answer["content"][media], "schema": _ref(name)}
            op["responses"] = {**op["responses"], "200": answer}
    return paths


ERROR_REF = {"$ref": "#/components/schemas/Error"}


def errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "参数错误 bad request",
        401: "未登录 authentication required",
        403: "无权访问 forbidden",
        404: "不存在 not found",
        409: "状态或版本冲突 conflict: the state or the version moved on",
        413: "请求体过大 body too large",
        429: "请求过多 too many requests",
        503: "数据库不可用 database unavailable",
    }
    ref = {"$ref": "#/components/schemas/Error"}
    return {str(c): {"description": text[c], "content": {JSON: {"schema": ref}}} for c in codes}


def ok(*types: str, description: str = "OK") -> dict[str, Any]:
    return {"200": {"description": description, "content": {t: {} for t in types}}}


def operation(
    summary: str,
    tag: str,
    params: Sequence[Param | dict[str, Any]] = (),
    responses: dict[str, Any] | None = None,
    public: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "parameters": [p.doc() if isinstance(p, Param) else p for p in params],
        "responses": {**(responses or ok(JSON)), **errors(400, 401, 403, 404)},
        **extra,
    }
    if public:
        op["security"] = []
        for code in ("401", "403"):
            op["responses"].pop(code)
    return op


# Parts of the document that live with their blueprints register here (no import cycles).
Contributor = Callable[[], dict[str, dict[str, Any]]]
_CONTRIBUTORS: list[Contributor] = []


def contribute(fn: Contributor) -> Contributor:
    """Register a function that returns {path: {method: operation}} for the document."""
    _CONTRIBUTORS.append(fn)
    return fn


def document() -> dict[str, Any]:
    """The whole OpenAPI document (paths from every contributor, registration order)."""
    import app.api
    import app.cases
    import app.intake
    import app.ogc
    import app.photos
    import app.tiles

    if "open311" in current_app.blueprints:
        import app.open311  # noqa: F401

    paths: dict[str, Any] = {}
    for fn in _CONTRIBUTORS:
        for path, ops in fn().items():
            paths.setdefault(path, {}).update(ops)
    _with_body_schemas(paths)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Blockdata 区块数据中心 API",
            "version": "1.0.0",
            "description": (
                "西城区块数据中心的全部接口：热力、指挥看板、图层导出（GeoJSON/CSV）、"
                "OGC API – Features、矢量瓦片、Open311 GeoReport v2。"
                "All endpoints answer errors as JSON `{error, message}`; a commander sees "
                "only their street everywhere."
            ),
        },
        "servers": [{"url": request.url_root.rstrip("/")}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "API 令牌：`blockdata users token NAME`",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": current_app.config.get("SESSION_COOKIE_NAME", "session"),
                    "description": "登录页 /login 的会话 the login form's session cookie",
                },
            },
            "schemas": {"Error": ERROR_SCHEMA, **RESPONSE_SCHEMAS},
        },
        "tags": [
            {"name": "api", "description": "地图页面与分析接口 map and analysis APIs"},
            {"name": "ogc", "description": "OGC API – Features (Part 1: Core)"},
            {"name": "tiles", "description": "矢量瓦片 Mapbox Vector Tiles"},
            {"name": "open311", "description": "Open311 GeoReport v2"},
            {"name": "pages", "description": "页面 HTML pages"},
        ],
        "paths": paths,
    }


bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
@logged_in
def openapi_json() -> Response:
    params.check_params(request.args, ())
    body = json.dumps(document(), ensure_ascii=False)
    return Response(body, mimetype=JSON)


@contribute
def _own_paths() -> dict[str, dict[str, Any]]:
    return {
        "/api/openapi.json": {
            "get": operation("本文档 this document (OpenAPI 3.0)", "api", responses=ok(JSON))
        },
        "/healthz": {
            "get": operation(
                "健康检查 health: the database answers",
                "api",
                responses={**ok(JSON), **errors(503)},
                public=True,
            )
        },
    }


@contribute
def _ogc_paths() -> dict[str, dict[str, Any]]:
    """OGC API – Features, as /ogc/api describes it, under /ogc."""
    from app.ogc_openapi import openapi

    paths: dict[str, dict[str, Any]] = {}
    for path, ops in openapi()["paths"].items():
        for method, op in ops.items():
            op = {**op, "tags": ["ogc"]}
            op["responses"] = {**op["responses"], **errors(400, 401, 403, 404)}
            paths.setdefault("/ogc" + path, {})[method] = op
    return paths


def time_params(layer: Any) -> list[Param]:
    """datetime / since / until, for a layer with a time field."""
    if layer.time_field is None:
        return []
    return [
        Param(
            "datetime",
            "时间：时刻或 起点/终点，开放端用 .. (RFC 3339 instant or interval)",
            {"type": "string"},
            "2026-01-01/..",
        ),
        Param("since", "时间下限（含）lower time bound", {"type": "string"}, "2026-01-01"),
        Param("until", "时间上限（含）upper time bound", {"type": "string"}, "2026-12-31"),
    ]


def filter_params(layer: Any) -> list[Param]:
    """`field=value[,value…]` on the layer's filterable fields (and street/community/grid)."""
    out = []
    labels = layer.labels
    for name in slices.filter_names(layer):
        column = slices.FILTER_ALIASES.get(name, name)
        schema = json_schema(layer.table.c[column])
        boolean = schema["type"] == "boolean"
        out.append(
            Param(
                name,
                f"{labels[column]} ({column})，逗号分隔表示任一 (comma-separated: any of)",
                schema if boolean else {"type": "string"},
                "true" if boolean else None,
            )
        )
    return out


def tile_params(layer: Any) -> list[Param]:
    """The filters a tile of `layer` takes (app.tiles checks the same names)."""
    return [*time_params(layer), *filter_params(layer)]


@contribute
def _tile_paths() -> dict[str, dict[str, Any]]:
    from layers import LAYERS

    paths: dict[str, dict[str, Any]] = {}
    for layer in LAYERS:
        params = tile_params(layer)
        zxy = [
            path_param("z", "缩放级别 zoom", {"type": "integer", "minimum": 0, "maximum": 22}),
            path_param("x", "列 column", {"type": "integer", "minimum": 0}),
            path_param("y", "行 row", {"type": "integer", "minimum": 0}),
        ]
        paths[f"/tiles/{layer.name}/{{z}}/{{x}}/{{y}}.pbf"] = {
            "get": operation(
                f"{layer.title}矢量瓦片 vector tile of {layer.name} (dense: aggregated)",
                "tiles",
                [*zxy, *params],
                {**ok(MVT), "304": {"description": "未变化 not modified (ETag)"}},
            )
        }
        paths[f"/tiles/{layer.name}.json"] = {
            "get": operation(f"{layer.title} TileJSON 3.0", "tiles", params, ok(JSON))
        }
    return paths


def page_operation(summary: str, params: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A page: HTML, its errors too (in Chinese, with a way back) unless the caller asks for
    JSON; anonymous: to the login."""
    text = {
        "302": "未登录，转到登录页 not logged in: to the login form",
        "403": "该角色无权打开此页 the role may not open this page",
        "404": "不存在 not found",
    }
    op = operation(summary, "pages", params, ok(HTML))
    op["responses"] = {
        "200": op["responses"]["200"],
        **{
            code: {"description": t, "content": {HTML: {}, JSON: {"schema": ERROR_REF}}}
            for code, t in text.items()
        },
    }
    op["responses"]["302"].pop("content")
    return op


@contribute
def _page_paths() -> dict[str, dict[str, Any]]:
    street = path_param(
        "street_code", "街道代码（9 位）street code", {"type": "string", "pattern": "^[0-9]{9}$"}
    )
    form = {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["name", "password"],
                    "properties": {
                        "name": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                        "csrf_token": {"type": "string"},
                    },
                }
            }
        },
    }
    run = path_param(
        "run_id", "导入编号 ETL run id", {"type": "integer", "minimum": 0, "maximum": 2147483647}
    )
    login_ok = {**ok(HTML), "302": {"description": "已登录，转到首页 logged in: redirect"}}
    return {
        "/": {"get": page_operation("全区概览页 district overview page")},
        "/command/{street_code}": {
            "get": page_operation("战区指挥页 a commander's page", [street])
        },
        "/planner": {"get": page_operation("规划页 planner's page")},
        "/imports": {"get": page_operation("数据导入页：最近的导入 the latest ETL runs")},
        "/queue": {
            "get": page_operation(
                "案件队列页：承办单位或街道中心的案件、详情与负荷"
                " a unit's or the centre's case queue"
            )
        },
        "/imports/{run_id}": {
            "get": page_operation("一次导入及其拒收的行 one ETL run and its rejects", [run])
        },
        "/login": {
            "get": operation("登录页 login form", "pages", (), ok(HTML), public=True),
            "post": operation(
                "登录 log in (10 attempts a minute per address)",
                "pages",
                (),
                {**login_ok, **errors(429)},
                public=True,
                requestBody=form,
            ),
        },
        "/logout": {
            "post": operation(
                "退出 log out",
                "pages",
                (),
                {"302": {"description": "转到登录页 to the login form"}},
            )
        },
    }
