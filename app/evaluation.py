"""`/api/evaluation`: the district's evaluation of its streets (考评) over JSON.

Thin views over layers.evaluation. Who may (EVAL_SPEC "Roles"): the district, analysts and
assessors read schemes and periods live (unpublished) or published; a commander reads the
published periods only — every street's public line and its own street in full (row-level
security hides the other streets' detail) — and gets 404 for a period not published yet;
only the district publishes. Other roles: 403. Every view reads in the caller's zone
(app.db scopes the request's connection); "now" is the app's clock in the district's zone.
A bad period, scheme, version or weight is a 400 JSON error in Chinese.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from app import auth, db
from app.capabilities import logged_in
from app.config import Settings
from app.errors import BadRequest, Forbidden, NotFound
from app.openapi import JSON, Param, contribute, errors, names, operation, path_param
from layers.evaluation.compute import evaluate, what_if
from layers.evaluation.periods import PeriodError, period_window
from layers.evaluation.publish import publications, publish, published
from layers.evaluation.scheme import PARTS, Scheme, SchemeError, UnknownScheme, load_scheme
from layers.evaluation.scheme import schemes as stored_schemes
from layers.queries import params

bp = Blueprint("evaluation", __name__, url_prefix="/api/evaluation")

LIVE = frozenset({"district", "analyst", "assessor"})  # read live and published periods
READERS = LIVE | {"commander"}  # a commander: published periods only
PUBLISHER = "district"
MAX_VERSION = 100_000
CODE_MAX = 64

SCHEME_PARAM = Param(
    "scheme",
    "考评方案代码（默认：最新保存的方案）scheme code (default: the latest stored)",
    {"type": "string", "maxLength": CODE_MAX},
    "xicheng",
)
VERSION_PARAM = Param(
    "version",
    "已发布的第几版（默认：实时结果；考评对象为已发布的最新版）a published version",
    {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
    "1",
)
WEIGHT_PARAMS = tuple(
    Param(
        part,
        f"{name}权重（默认：方案的权重；三者之和应为 100）the {part} part's weight",
        {"type": "number", "minimum": 0, "maximum": 100},
        value,
    )
    for part, name, value in (
        ("internal", "内部评价", "20"),
        ("survey", "满意度调查", "60"),
        ("hotline", "热线三率", "20"),
    )
)
QUERY: dict[str, tuple[Param, ...]] = {
    "evaluation.list_schemes": (),
    "evaluation.one_scheme": (
        Param(
            "version",
            "方案的第几版（默认：最新）scheme version",
            {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
            "1",
        ),
    ),
    "evaluation.period": (SCHEME_PARAM, VERSION_PARAM),
    "evaluation.publish_period": (SCHEME_PARAM,),
    "evaluation.period_versions": (SCHEME_PARAM,),
    "evaluation.period_what_if": (SCHEME_PARAM, VERSION_PARAM, *WEIGHT_PARAMS),
}


@bp.before_request
def _declared_params_only() -> None:
    """400 for any query parameter the endpoint does not declare."""
    endpoint = request.endpoint or ""
    if endpoint in QUERY:
        params.check_params(request.args, names(QUERY[endpoint]))


def _settings() -> Settings:
    settings: Settings = current_app.config["BLOCKDATA_SETTINGS"]
    return settings


def _now() -> dt.datetime:
    return _settings().now()


def _role(allowed: frozenset[str] | set[str], what: str) -> str:
    """The caller's role, if it is one of `allowed`; 403 otherwise."""
    principal = auth.current()
    role = principal.role if principal is not None else ""
    if role not in allowed:
        raise Forbidden(f"无权{what} (not allowed: {what})")
    return role


def _version(name: str = "version") -> int | None:
    value = request.args.get(name) or None
    return (
        None
        if value is None
        else params.parse_count(value, default=1, maximum=MAX_VERSION, name=name)
    )


def _scheme(code: str | None = None, version: int | None = None) -> Scheme:
    code = code if code is not None else params.optional_text(request.args, "scheme", CODE_MAX)
    try:
        return load_scheme(db.connection(), code, version)
    except UnknownScheme as exc:
        raise NotFound(str(exc), scheme=code) from None


def _label(scheme: Scheme, label: str) -> str:
    try:
        period_window(scheme, label)
    except PeriodError as exc:
        raise BadRequest(str(exc), field="label") from None
    return label


def _published_or_404(scheme: Scheme, label: str, version: int | None) -> dict[str, Any]:
    found = published(db.connection(), scheme.code, label, version)
    if found is None:
        which = "" if version is None else f"第 {version} 版"
        raise NotFound(
            f"考评 {scheme.code} {label} {which}尚未发布 (not published: {label})",
            period=label,
        )
    return found


def _result(role: str, scheme: Scheme, label: str, version: int | None) -> dict[str, Any]:
    """Live for the district, analysts and assessors (or a publication, given its version);
    a commander: the latest publication (or the version asked)."""
    if role in LIVE and version is None:
        return evaluate(db.connection(), scheme, label, now=_now())
    return _published_or_404(scheme, label, version)


@bp.get("/schemes")
@logged_in
def list_schemes() -> Response:
    """The stored schemes: code, name, latest version."""
    _role(READERS, "查看考评")
    return jsonify({"schemes": stored_schemes(db.connection())})


@bp.get("/schemes/<code>")
@logged_in
def one_scheme(code: str) -> Response:
    """A scheme (its latest version, or ?version=) with its validated body."""
    _role(READERS, "查看考评")
    scheme = _scheme(code[:CODE_MAX], _version())
    return jsonify(
        {"code": scheme.code, "version": scheme.version, "name": scheme.name, "body": scheme.body}
    )


@bp.get("/periods/<label>")
@logged_in
def period(label: str) -> Response:
    """A period's Result: live (district, analyst, assessor), or as published."""
    role = _role(READERS, "查看考评")
    scheme = _scheme()
    return jsonify(_result(role, scheme, _label(scheme, label), _version()))


@bp.post("/periods/<label>/publish")
@logged_in
def publish_period(label: str) -> tuple[Response, int]:
    """Publish the period: its live result frozen as its next version (district only)."""
    principal = auth.current()
    _role({PUBLISHER}, "发布考评")
    scheme = _scheme()
    label = _label(scheme, label)
    by = principal.name if principal is not None else ""
    pid = publish(db.connection(), scheme, label, by=by, now=_now())
    auth.audit("evaluation_publish", scheme=scheme.code, period=label, publication=pid)
    return jsonify(_published_or_404(scheme, label, None)), 201


@bp.get("/periods/<label>/versions")
@logged_in
def period_versions(label: str) -> Response:
    """The period's publications, newest first."""
    _role(READERS, "查看考评")
    scheme = _scheme()
    label = _label(scheme, label)
    return jsonify(
        {
            "scheme": scheme.code,
            "period": label,
            "versions": publications(db.connection(), scheme.code, label),
        }
    )


def _weights(scheme: Scheme) -> dict[str, float]:
    parts = dict(scheme.parts)
    for part in PARTS:
        value = request.args.get(part)
        if value is None or value == "":
            continue
        try:
            weight = float(value)
        except ValueError:
            raise params.refusal(part, value, "权重应为数值", "not a number") from None
        if not math.isfinite(weight):
            raise params.refusal(part, value, "权重应为数值", "not a number")
        parts[part] = weight
    return parts


def _line(street: dict[str, Any]) -> dict[str, Any]:
    return {k: street.get(k) for k in ("code", "name", "rank", "rank_change", "class", "composite")}


@bp.get("/periods/<label>/what-if")
@logged_in
def period_what_if(label: str) -> Response:
    """The ranking under other part weights, side by side with the current one."""
    role = _role(LIVE, "试算考评权重")
    scheme = _scheme()
    current = _result(role, scheme, _label(scheme, label), _version())
    try:
        changed = what_if(current, _weights(scheme))
    except SchemeError as exc:
        raise BadRequest(str(exc)) from None
    return jsonify(
        {
            "period": current["period"],
            "current_parts": current["parts"],
            "parts": changed["parts"],
            "current": [_line(s) for s in current["streets"]],
            "what_if": [_line(s) for s in changed["streets"]],
        }
    )


# --- the OpenAPI part -------------------------------------------------------------------------

_NUMBER_OR_NULL = {"type": "number", "nullable": True}
_INT_OR_NULL = {"type": "integer", "nullable": True}
_TEXT_OR_NULL = {"type": "string", "nullable": True}
_LINE_PROPERTIES: dict[str, Any] = {
    "code": {"type": "string"},
    "name": _TEXT_OR_NULL,
    "rank": {"type": "integer"},
    "rank_change": _INT_OR_NULL,
    "class": _TEXT_OR_NULL,
    "composite": _NUMBER_OR_NULL,
}
_LINE = {"type": "object", "required": list(_LINE_PROPERTIES), "properties": _LINE_PROPERTIES}
_STREET = {
    **_LINE,
    "properties": {
        **_LINE_PROPERTIES,
        "internal": _NUMBER_OR_NULL,
        "survey": _NUMBER_OR_NULL,
        "survey_margin": _NUMBER_OR_NULL,
        "survey_sample": _INT_OR_NULL,
        "hotline": _NUMBER_OR_NULL,
        "aspects": {"type": "object"},
        "items": {"type": "object"},
        "rates": {"type": "object"},
        "missing": {"type": "array", "items": {"type": "string"}},
    },
}
_PERIOD = {
    "type": "object",
    "required": ["label", "since", "until"],
    "properties": {
        "label": {"type": "string"},
        "since": {"type": "string", "format": "date"},
        "until": {"type": "string", "format": "date"},
    },
}
_RESULT = {
    "type": "object",
    "required": ["scheme", "period", "parts", "published", "streets"],
    "properties": {
        "scheme": {"type": "object"},
        "period": _PERIOD,
        "parts": {"type": "object"},
        "published": {"type": "object", "nullable": True},
        "streets": {"type": "array", "items": _STREET},
    },
}
_SCHEMES = {
    "type": "object",
    "required": ["schemes"],
    "properties": {"schemes": {"type": "array", "items": {"type": "object"}}},
}
_SCHEME = {
    "type": "object",
    "required": ["code", "version", "name", "body"],
    "properties": {
        "code": {"type": "string"},
        "version": {"type": "integer"},
        "name": {"type": "string"},
        "body": {"type": "object"},
    },
}
_VERSIONS = {
    "type": "object",
    "required": ["scheme", "period", "versions"],
    "properties": {
        "scheme": {"type": "string"},
        "period": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "object"}},
    },
}
_WHAT_IF = {
    "type": "object",
    "required": ["period", "parts", "current_parts", "current", "what_if"],
    "properties": {
        "period": _PERIOD,
        "parts": {"type": "object"},
        "current_parts": {"type": "object"},
        "current": {"type": "array", "items": _LINE},
        "what_if": {"type": "array", "items": _LINE},
    },
}


def _ok(schema: dict[str, Any], code: str = "200", description: str = "OK") -> dict[str, Any]:
    return {code: {"description": description, "content": {JSON: {"schema": schema}}}}


@contribute
def _paths() -> dict[str, dict[str, Any]]:
    label = path_param(
        "label", "考评周期 period label: 2026-11 (月), 2026Q4 (季), 2026 (年)", {"type": "string"}
    )
    code = path_param("code", "考评方案代码 scheme code", {"type": "string"})
    base = "/api/evaluation"
    return {
        f"{base}/schemes": {
            "get": operation("考评方案列表 the stored evaluation schemes", "api", (), _ok(_SCHEMES))
        },
        f"{base}/schemes/{{code}}": {
            "get": operation(
                "考评方案（最新版或指定版本）an evaluation scheme and its body",
                "api",
                [code, *QUERY["evaluation.one_scheme"]],
                _ok(_SCHEME),
            )
        },
        f"{base}/periods/{{label}}": {
            "get": operation(
                "考评结果：各街道的分项、综合得分、排名、变化与类别（区级、分析员、考核部门为实时结果；"
                "战区司令为已发布结果）a period's evaluation of every street",
                "api",
                [label, *QUERY["evaluation.period"]],
                _ok(_RESULT),
            )
        },
        f"{base}/periods/{{label}}/publish": {
            "post": operation(
                "发布考评（区级）：冻结为新的版本 publish the period as its next version",
                "api",
                [label, *QUERY["evaluation.publish_period"]],
                _ok(_RESULT, "201", "已发布的考评 the published result"),
            )
        },
        f"{base}/periods/{{label}}/versions": {
            "get": operation(
                "该周期的已发布版本 the period's publications",
                "api",
                [label, *QUERY["evaluation.period_versions"]],
                _ok(_VERSIONS),
            )
        },
        f"{base}/periods/{{label}}/what-if": {
            "get": operation(
                "权重试算：另一组权重下的排名与当前排名对照 the ranking under other weights",
                "api",
                [label, *QUERY["evaluation.period_what_if"]],
                {**_ok(_WHAT_IF), **errors(400)},
            )
        },
    }
