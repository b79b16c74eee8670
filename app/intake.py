"""网格员上报: the grid officer's phone-width report page, its form's target, and "my reports".

- `GET /report`: the page (category from the routing configuration, description, a point
  picked on a small Leaflet map or taken from the device, up to 3 photos); static/js/report.js
  drives it. Only roles whose navigation has the page open it (the grid officer).
- `POST /report`: the page's form (multipart, with the CSRF token like every page's form).
  The request and its case in 受理 are made by the Open311 path (`open311.file_request`:
  placed in street, community and grid by the ETL's steps, in the caller's zone), the photos
  added by app.photos, all in the request's one transaction: a refused photo or a point
  outside the officer's street stores nothing. 201 and the case number, or a JSON error in
  Chinese.
- `GET /api/reports`: the cases the caller reported (newest first, in its zone).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from app import auth, db, open311, photos
from app.capabilities import INTAKE, does, page
from app.config import Settings
from app.errors import BadRequest, Forbidden
from app.openapi import JSON, contribute, operation
from etl.rules import load_routing
from layers.cases.tables import MAX_PHOTOS
from layers.queries import intake as query
from layers.queries.params import check_params, refusal

bp = Blueprint("intake", __name__)

FIELDS = ("csrf_token", "category", "description", "lat", "long")
REPORTS_SHOWN = 20


def _settings() -> Settings:
    settings: Settings = current_app.config["BLOCKDATA_SETTINGS"]
    return settings


def _principal() -> auth.Principal:
    principal = auth.current()
    if principal is None:  # the page's declaration: never anonymous
        raise Forbidden("请先登录 not logged in")
    return principal


@bp.get("/report")
@page("report")
def report() -> Response:
    """网格员上报: the page."""
    settings = _settings()
    principal = _principal()
    config = {
        "street": principal.street_code,
        "maxPhotos": MAX_PHOTOS,
        "maxBytes": settings.photo_max_bytes,
        # A WGS-84 basemap only: a point picked on a GCJ-02 one would be off by hundreds of
        # metres (the page then draws the street's and grids' outlines alone).
        "basemap": settings.basemap_url if settings.basemap_crs == "wgs84" else None,
        "basemapAttribution": settings.basemap_attribution,
    }
    html = render_template(
        "report.html",
        title="网格员上报",
        categories=list(load_routing().by_category),
        max_photos=MAX_PHOTOS,
        max_mb=round(settings.photo_max_bytes / 1024 / 1024, 1),
        config=config,
    )
    response = Response(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _form() -> dict[str, str]:
    """The form's fields, trimmed (one value each; no other field)."""
    fields: dict[str, str] = {}
    for name in request.form:
        if name not in FIELDS:  # a part without a name comes as None
            label = str(name)[:40]
            raise BadRequest(f"未知字段 unknown field: {label!r}", field=label)
        values = request.form.getlist(name)
        if len(values) > 1:
            raise refusal(name, values, "字段重复", "field given more than once")
        fields[name] = values[0].strip()
    return {k: v for k, v in fields.items() if v}


@bp.post("/report")
@page("report")
def report_submit() -> tuple[Response, int]:
    """File the report: the request, its case (受理) and its photos; 201 and the case."""
    principal = _principal()
    fields = _form()
    unknown_files = set(request.files) - {photos.FIELD}
    if unknown_files:
        name = sorted(str(n) for n in unknown_files)[0][:40]
        raise BadRequest(f"未知文件字段 unknown file field: {name!r}", field=name)
    category = fields.get("category")
    if category is None:
        raise BadRequest("请选择问题类别 (category is required)", field="category")
    if category not in load_routing().by_category:
        raise refusal("category", category[:100], "未知问题类别", "unknown category")
    description = open311.text_field(fields, "description", open311.MAX_DESCRIPTION)
    if description is None:
        raise BadRequest("请填写问题描述 (description is required)", field="description")
    coordinates = open311.coordinates_of(fields)
    if coordinates is None:
        raise BadRequest(
            "请在地图上选择位置或使用当前位置 (lat and long are required)", field="lat"
        )
    settings = _settings()
    uploads = [f for f in request.files.getlist(photos.FIELD) if f.filename or f.content_length]
    checked = photos.read_uploads(uploads, settings.photo_max_bytes)
    filed = open311.file_request(principal, category, description, coordinates, None)
    ids = photos.add(
        db.connection(),
        filed.case_id,
        checked,
        user=principal.name,
        now=settings.now(),
        directory=settings.photos,
    )
    auth.audit(
        "grid_report",
        rows=1,
        case_id=filed.case_id,
        service_request_id=filed.request_id,
        service_code=category,
        street=filed.value("street_code"),
        photo_ids=ids,
    )
    return jsonify(
        {
            "case_id": filed.case_id,
            "service_request_id": filed.request_id,
            "street": filed.value("street_code"),
            "community": filed.value("community_code"),
            "grid": filed.value("grid_code"),
            "notice": open311.notice(filed),
            "photos": len(ids),
        }
    ), 201


@bp.get("/api/reports")
@does(INTAKE)
def reports() -> Response:
    """The cases the caller reported, newest first (in its zone)."""
    check_params(request.args, ())
    found = query.reported(
        db.connection(), _principal().name, _settings().zone, limit=REPORTS_SHOWN
    )
    return jsonify({"reports": found})


# --- the OpenAPI part -------------------------------------------------------------------------

_TEXT = {"type": "string"}
_NULLABLE = {"type": "string", "nullable": True}
REPORT_SCHEMA = {
    "type": "object",
    "required": ["case_id", "state", "state_label", "received_at", "photos"],
    "properties": {
        "case_id": {"type": "integer"},
        "state": _TEXT,
        "state_label": _TEXT,
        "category": _NULLABLE,
        "received_at": {"type": "string", "format": "date-time"},
        "street": _NULLABLE,
        "community": _NULLABLE,
        "grid": _NULLABLE,
        "description": _NULLABLE,
        "photos": {"type": "integer", "minimum": 0, "maximum": MAX_PHOTOS},
    },
}
FILED_SCHEMA = {
    "type": "object",
    "required": ["case_id", "service_request_id", "street", "photos"],
    "properties": {
        "case_id": {"type": "integer"},
        "service_request_id": {"type": "integer"},
        "street": _TEXT,
        "community": _NULLABLE,
        "grid": _NULLABLE,
        "notice": _NULLABLE,
        "photos": {"type": "integer", "minimum": 0, "maximum": MAX_PHOTOS},
    },
}


@contribute
def _paths() -> dict[str, dict[str, Any]]:
    from app.openapi import errors, page_operation

    form = {
        "type": "object",
        "required": ["category", "description", "lat", "long", "csrf_token"],
        "properties": {
            "csrf_token": _TEXT,
            "category": {"type": "string", "enum": list(load_routing().by_category)},
            "description": {"type": "string", "maxLength": open311.MAX_DESCRIPTION},
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "long": {"type": "number", "minimum": -180, "maximum": 180},
            photos.FIELD: photos.PHOTO_FIELD,
        },
    }
    filed = {"description": "已受理 the case", "content": {JSON: {"schema": FILED_SCHEMA}}}
    listed = {
        "type": "object",
        "required": ["reports"],
        "properties": {"reports": {"type": "array", "items": REPORT_SCHEMA}},
    }
    submit = operation(
        "网格员上报：诉求、案件（受理）与照片，一次提交 file a report with its photos",
        "pages",
        (),
        {"201": filed, **errors(409, 413)},
        requestBody={"required": True, "content": {"multipart/form-data": {"schema": form}}},
    )
    submit["responses"]["415"] = photos.more_errors(415)["415"]
    return {
        "/report": {
            "get": page_operation("网格员上报页 the grid officer's report page"),
            "post": submit,
        },
        "/api/reports": {
            "get": operation(
                "我的上报 the cases the caller reported, newest first",
                "api",
                (),
                {"200": {"description": "我的上报", "content": {JSON: {"schema": listed}}}},
            )
        },
    }
