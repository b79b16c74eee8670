"""`/api/evaluation`: the district's evaluation of its streets (考评) over JSON.

Thin views over layers.evaluation. Who may (docs/evaluation.md "Roles"): the district, analysts and
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


def _count(name: str, description: str) -> Param:
    return Param(name, description, {"type": "integer", "minimum": 1, "maximum": MAX_VERSION}, "1")


SCHEME_TEXT = "考评方案代码（默认：最新保存的方案）scheme code (default: the latest stored)"
SCHEME_PARAM = Param("scheme", SCHEME_TEXT, {"type": "string", "maxLength": CODE_MAX}, "xicheng")
VERSION_PARAM = _count(
    "version", "已发布的第几版（默认：实时结果；战区司令为已发布的最新版）a published version"
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
    "evaluation.one_scheme": (_count("version", "方案的第几版（默认：最新）scheme version"),),
    "evaluation.period": (SCHEME_PARAM, VERSION_PARAM),
    "evaluation.publish_period": (SCHEME_PARAM,),
    "evaluation.period_versions": (SCHEME_PARAM,),
    "evaluation.period_what_if": (SCHEME_PARAM, VERSION_PARAM, *WEIGHT_PARAMS),
}


@bp.before_request
def _declared_params_only() -> None:
    """400 for any query parameter the endpoint does not declare."""
    params.check_params(request.args, names(QUERY.get(request.endpoint or "", ())))


def _now() -> dt.datetime:
    """The app's clock in the district's zone (Settings.now)."""
    settings: Settings = current_app.config["BLOCKDATA_SETTINGS"]
    return settings.now()


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


def _obj(**properties: Any) -> dict[str, Any]:
    """A JSON object schema; every property required."""
    return {"type": "object", "required": list(properties), "properties": properties}


def _of(kind: str, nullable: bool = False, **more: Any) -> dict[str, Any]:
    return {"type": kind, **({"nullable": True} if nullable else {}), **more}


_ANY = _of("object")
_LINE = _obj(
    code=_of("string"),
    name=_of("string", True),
    rank=_of("integer"),
    rank_change=_of("integer", True),
    composite=_of("number", True),
    **{"class": _of("string", True)},
)
_DETAIL = {
    **{k: _of("number", True) for k in ("internal", "survey", "survey_margin", "hotline")},
    "survey_sample": _of("integer", True),
    **dict.fromkeys(("aspects", "items", "rates"), _ANY),
    "missing": _of("array", items=_of("string")),
}
_STREET = {**_LINE, "properties": {**_LINE["properties"], **_DETAIL}}
_DATE = _of("string", format="date")
_PERIOD = _obj(label=_of("string"), since=_DATE, until=_DATE)
_RESULT = _obj(
    scheme=_ANY,
    period=_PERIOD,
    parts=_ANY,
    published=_of("object", True),
    streets=_of("array", items=_STREET),
)
_SCHEMES = _obj(schemes=_of("array", items=_ANY))
_SCHEME = _obj(code=_of("string"), version=_of("integer"), name=_of("string"), body=_ANY)
_VERSIONS = _obj(scheme=_of("string"), period=_of("string"), versions=_of("array", items=_ANY))
_WHAT_IF = _obj(
    period=_PERIOD,
    parts=_ANY,
    current_parts=_ANY,
    current=_of("array", items=_LINE),
    what_if=_of("array", items=_LINE),
)


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
