"""The evaluation's inputs over JSON (/api/evaluation) and the assessor's page
(/evaluation/score): manual scores and their audit, the XLSX template and its import, tasks,
events, the survey.

Who: the district, the analyst and the assessors read; an assessor writes its unit's
scores, tasks and events (the database checks the owner unit again: migration 0022); the
district alone imports a survey. Every other role is refused (403) on every route here.
Thin views: parse → layers.evaluation (in the request's transaction, as the reader scoped
to the caller) → JSON; a refusal is a 4xx JSON error in Chinese.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, cast

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from app import auth, capabilities, db
from app.capabilities import logged_in, page
from app.config import Settings
from app.errors import BadRequest, Forbidden, NotFound
from app.openapi import JSON, Param, contribute, names, operation, page_operation, path_param
from layers.cases import Actor
from layers.evaluation import scoring, survey, tasks, xlsx
from layers.evaluation.periods import PeriodError, period_of, period_window
from layers.evaluation.scheme import Scheme, UnknownScheme, load_scheme
from layers.evaluation.scoring import Score
from layers.queries import params
from layers.queries.params import refusal

bp = Blueprint("evaluation_inputs", __name__)

API = "/api/evaluation"
READERS = frozenset({"district", "analyst", "assessor"})
ASSESSOR = frozenset({"assessor"})
DISTRICT = frozenset({"district"})
STREET = re.compile(r"[0-9]{9}")
CODE = re.compile(r"[A-Za-z0-9_\-]{1,64}")
MAX_UPLOAD = 5 * 1024 * 1024
MAX_ID = 2**63 - 1
FILE_FIELD = "file"
XLSX = xlsx.XLSX_TYPE

PERIOD_PARAM = Param(
    "period", "考评周期 period: 2026-11, 2026Q4 or 2026", {"type": "string"}, "2026-11"
)
SCHEME_PARAM = Param("scheme", "考评方案代码（默认最新）scheme code", {"type": "string"}, "xicheng")
ITEM_PARAM = Param("item", "考核项编码 item code", {"type": "string"}, "party_build")
STREET_PARAM = Param("street", "街道代码 street code", {"type": "string"}, "110102001")
QUERY: dict[str, tuple[Param, ...]] = {
    "evaluation_inputs.get_scores": (PERIOD_PARAM, SCHEME_PARAM, ITEM_PARAM, STREET_PARAM),
    "evaluation_inputs.put_scores": (),
    "evaluation_inputs.score_audit": (PERIOD_PARAM, SCHEME_PARAM, ITEM_PARAM, STREET_PARAM),
    "evaluation_inputs.score_template": (PERIOD_PARAM, SCHEME_PARAM),
    "evaluation_inputs.score_import": (PERIOD_PARAM, SCHEME_PARAM),
    "evaluation_inputs.list_tasks": (
        PERIOD_PARAM,
        SCHEME_PARAM,
        Param("since", "截止日期下限（含）deadline from (local date)", {"type": "string"}),
        Param("until", "截止日期上限（含）deadline to (local date)", {"type": "string"}),
        STREET_PARAM,
        Param("owner", "下达单位 owner unit", {"type": "string"}),
        Param(
            "state",
            "状态 state: " + ", ".join(f"{k} {v}" for k, v in tasks.STATES.items()),
            {"type": "string", "enum": list(tasks.STATES)},
            "overdue",
        ),
    ),
    "evaluation_inputs.create_tasks": (SCHEME_PARAM,),
    "evaluation_inputs.task_done": (),
    "evaluation_inputs.add_event": (SCHEME_PARAM,),
    "evaluation_inputs.survey_import": (PERIOD_PARAM, SCHEME_PARAM),
    "evaluation_inputs.get_survey": (PERIOD_PARAM, SCHEME_PARAM),
}


@bp.before_request
def _only_declared_params() -> None:
    declared = QUERY.get(request.endpoint or "")
    if declared is not None:  # the page ignores its parameters, as every page does
        params.check_params(request.args, names(declared))


def _settings() -> Settings:
    """The app's settings: its clock (`now()`) and the district's time zone (`tz`)."""
    return cast(Settings, current_app.config["BLOCKDATA_SETTINGS"])


def _actor(allowed: frozenset[str], what: str) -> Actor:
    """The caller, when its role is one of `allowed`; 403 otherwise."""
    principal = auth.current()
    if principal is None:
        raise Forbidden("无权访问 not logged in")
    if principal.role not in allowed:
        raise Forbidden(f"无权{what}（{principal.role}） role {principal.role!r} may not")
    return Actor(principal.name, principal.role, principal.unit)


def _scheme() -> Scheme:
    code = request.args.get("scheme") or None
    if code is not None and not CODE.fullmatch(code):
        raise refusal("scheme", code, "考评方案代码无效", "bad scheme code")
    try:
        return load_scheme(db.connection(), code)
    except UnknownScheme as exc:
        raise NotFound(f"尚无考评方案 no evaluation scheme loaded: {exc}") from None


def _period(value: object = None) -> str:
    period = value if value is not None else request.args.get("period")
    if not period:
        raise BadRequest("缺少考评周期 period is required (2026-11)", param="period")
    return scoring.check_period(str(period))


def _scheme_period(value: object = None) -> tuple[Scheme, str]:
    """The scheme (?scheme=, default the latest) and a period label it knows."""
    scheme, period = _scheme(), _period(value)
    try:
        period_window(scheme, period)
    except PeriodError as exc:
        raise BadRequest(str(exc), param="period") from None
    return scheme, period


def _street_arg() -> str | None:
    street = request.args.get("street") or None
    if street is not None and not STREET.fullmatch(street):
        raise refusal("street", street, "街道代码应为 9 位数字", "street code must be 9 digits")
    return street


def _code_arg(name: str) -> str | None:
    value = request.args.get(name) or None
    if value is not None and not CODE.fullmatch(value):
        raise refusal(name, value, "编码无效", "bad code")
    return value


def _upload() -> tuple[bytes, str]:
    upload = request.files.get(FILE_FIELD)
    if upload is None or not upload.filename:
        raise BadRequest(
            f"请以 multipart 字段 {FILE_FIELD} 上传 XLSX 或 CSV 文件 (field {FILE_FIELD!r})",
            field=FILE_FIELD,
        )
    name = upload.filename
    if not name.lower().endswith((".xlsx", ".csv")):
        raise BadRequest(f"文件应为 .xlsx 或 .csv：{name!r} not an XLSX or CSV file")
    data = upload.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise BadRequest(f"文件过大（至多 {MAX_UPLOAD // 1024 // 1024} MB） file too large")
    return data, name


def _body() -> dict[str, Any]:
    body = auth.json_body()
    if not isinstance(body, dict):
        raise BadRequest("请求体应为 JSON 对象 the body must be a JSON object")
    return body


def _time(value: object, name: str) -> dt.datetime:
    if not isinstance(value, str):
        raise refusal(name, value, "时间无效", "an ISO 8601 time")
    return params.start_of(params.parse_instant(value, name, zone=_settings().tz), _settings().tz)


def _text(value: object, name: str, maximum: int = 2000) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > maximum or "\x00" in value:
        raise refusal(name, value, f"应为文本（至多 {maximum} 字）", "text")
    return value


# --- scores -------------------------------------------------------------------------------


@bp.get(f"{API}/scores")
@logged_in
def get_scores() -> Response:
    """The scores of a period: an assessor its unit's items, the district and the analyst
    every manual item; every street."""
    actor = _actor(READERS, "查看考评录入")
    scheme, period = _scheme_period()
    unit = actor.unit if actor.role == "assessor" else None
    grid = scoring.scores(db.connection(), scheme, period, unit, _code_arg("item"), _street_arg())
    return jsonify({**grid, "may_score": actor.role == "assessor"})


@bp.put(f"{API}/scores")
@logged_in
def put_scores() -> Response:
    """Set one score ({period, item, street, points, evidence}) or several ({period, scores:
    [...]}): all or none; evidence required when the points change."""
    actor = _actor(ASSESSOR, "评分（只有考核部门的考评员可以）")
    body = _body()
    scheme, period = _scheme_period(body.get("period"))
    source = body.get("source", "api")
    if source not in ("api", "form"):
        raise refusal("source", source, "来源应为 api 或 form", "source is api or form")
    many = body.get("scores")
    rows = many if isinstance(many, list) else [body]
    if not rows or len(rows) > 5000 or not all(isinstance(r, dict) for r in rows):
        raise BadRequest("scores 应为评分对象的列表 scores must be a list of objects")
    scores = [
        Score(
            str(r.get("item") or ""),
            str(r.get("street") or ""),
            r.get("points"),
            _text(r.get("evidence"), "evidence"),
        )
        for r in rows
    ]
    now = _settings().now()
    return jsonify(scoring.set_scores(db.connection(), scheme, period, scores, actor, now, source))


@bp.get(f"{API}/scores/audit")
@logged_in
def score_audit() -> Response:
    """Every change of the period's scores (old → new, who, when, source), newest first."""
    _actor(READERS, "查看评分记录")
    scheme, period = _scheme_period()
    trail = scoring.audit(db.connection(), scheme.code, period, _code_arg("item"), _street_arg())
    return jsonify({"audit": trail})


@bp.get(f"{API}/scores/template.xlsx")
@logged_in
def score_template() -> Response:
    """The assessor's template: its unit's manual items × every street, scores filled in."""
    actor = _actor(ASSESSOR, "下载评分模板（只有考核部门的考评员可以）")
    scheme, period = _scheme_period()
    data = xlsx.template(db.connection(), scheme, period, actor.unit or "")
    response = Response(data, mimetype=XLSX)
    filename = f"score-{scheme.code}-{period}-{actor.unit}.xlsx"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.post(f"{API}/scores/import")
@logged_in
def score_import() -> Response:
    """A filled template (multipart field `file`): every row written, or none (400 with
    every rejected row: row, column, reason)."""
    actor = _actor(ASSESSOR, "导入评分（只有考核部门的考评员可以）")
    data, name = _upload()
    scheme, period = _scheme_period()
    answer = xlsx.import_scores(
        db.connection(), scheme, period, data, name, actor, _settings().now()
    )
    return jsonify(answer)


# --- tasks --------------------------------------------------------------------------------


def _date_arg(name: str) -> dt.date | None:
    value = request.args.get(name) or None
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise refusal(name, value, "日期应为 YYYY-MM-DD", "a date YYYY-MM-DD") from None


@bp.get(f"{API}/tasks")
@logged_in
def list_tasks() -> Response:
    """Tasks by deadline (a period's window, or since/until), street, owner and state (at
    the app's clock)."""
    _actor(READERS, "查看任务")
    since, until = _date_arg("since"), _date_arg("until")
    if request.args.get("period"):
        since, until = period_window(*_scheme_period())
    owner = _code_arg("owner")
    state = request.args.get("state") or None
    listed = tasks.list_tasks(
        db.connection(),
        _settings().now(),
        since,
        until,
        _settings().tz,
        _street_arg(),
        owner,
        state,
    )
    return jsonify({"tasks": listed, "states": tasks.STATES})


@bp.post(f"{API}/tasks")
@logged_in
def create_tasks() -> tuple[Response, int]:
    """Tasks for one street or many ({kind, title, streets: [...], deadline, item, note}),
    or a file (multipart `file`: 类型, 标题, 街道编码, 考核项编码, 截止时间, 备注): all or none."""
    actor = _actor(ASSESSOR, "下达任务（只有考核部门的考评员可以）")
    conn = db.connection()
    try:
        scheme: Scheme | None = load_scheme(conn, request.args.get("scheme") or None)
    except UnknownScheme:
        scheme = None
    now, tz = _settings().now(), _settings().tz
    if request.files:
        data, name = _upload()
        ids = tasks.import_tasks(conn, data, name, actor, now, tz, scheme)
    else:
        body = _body()
        streets = body.get("streets", [body.get("street")])
        if not isinstance(streets, list) or not streets or len(streets) > 100:
            raise BadRequest("streets 应为街道代码列表 streets must be a list of street codes")
        ids = tasks.create_tasks(
            conn,
            [
                tasks.NewTask(
                    body.get("kind"),
                    _text(body.get("title"), "title", tasks.MAX_TITLE),
                    str(s or ""),
                    _text(body.get("deadline"), "deadline", 40),
                    _text(body.get("item"), "item", 64),
                    _text(body.get("note"), "note", tasks.MAX_NOTE),
                )
                for s in streets
            ],
            actor,
            now,
            tz,
            scheme,
        )
    return jsonify({"ids": ids}), 201


@bp.patch(f"{API}/tasks/<int(max={MAX_ID}):task_id>")
@logged_in
def task_done(task_id: int) -> Response:
    """Mark a task done ({done_at}, default now); the owner unit's assessor only."""
    actor = _actor(ASSESSOR, "修改任务（只有考核部门的考评员可以）")
    body = auth.json_body() or {}
    if not isinstance(body, dict):
        raise BadRequest("请求体应为 JSON 对象 the body must be a JSON object")
    done_at = None if body.get("done_at") is None else _time(body["done_at"], "done_at")
    return jsonify(tasks.mark_done(db.connection(), task_id, actor, _settings().now(), done_at))


# --- events and the survey ----------------------------------------------------------------


@bp.post(f"{API}/events")
@logged_in
def add_event() -> tuple[Response, int]:
    """One event of a "points per event" item ({item, street, occurred_at, note})."""
    actor = _actor(ASSESSOR, "记录扣分事件（只有考核部门的考评员可以）")
    body = _body()
    scheme = _scheme()
    event = scoring.record_event(
        db.connection(),
        scheme,
        str(body.get("item") or ""),
        str(body.get("street") or ""),
        _time(body.get("occurred_at"), "occurred_at"),
        _text(body.get("note"), "note"),
        actor,
        _settings().now(),
    )
    return jsonify({"id": event}), 201


@bp.post(f"{API}/survey/import")
@logged_in
def survey_import() -> Response:
    """A third-party survey's results (multipart `file`, XLSX or CSV): the district only;
    every row or none."""
    actor = _actor(DISTRICT, "导入满意度调查（只有区级指挥中心可以）")
    data, name = _upload()
    scheme, period = _scheme_period()
    now = _settings().now()
    return jsonify(
        survey.import_survey(db.connection(), scheme, period, data, name, actor.name, now, name)
    )


@bp.get(f"{API}/survey")
@logged_in
def get_survey() -> Response:
    """Each street's satisfaction for the period, with its 95 % margin of error."""
    _actor(READERS, "查看满意度调查")
    scheme, period = _scheme_period()
    return jsonify(
        {"period": period, "streets": survey.satisfaction(db.connection(), period, scheme)}
    )


# --- the page ----------------------------------------------------------------------------


def _current_period(today: dt.date) -> str | None:
    """The label of the latest scheme's period that holds `today`; None without a scheme."""
    try:
        return period_of(load_scheme(db.connection()), today)
    except UnknownScheme:
        return None


@bp.get("/evaluation/score")
@page("evaluation_score")
def score_page() -> Response:
    """考评录入: an assessor's items × streets (edit, save, template, import) and its tasks;
    the district and the analyst read it, the district imports the survey.
    static/js/evaluation_score.js draws it from the APIs above."""
    principal = auth.current()
    role = principal.role if principal else ""
    settings = _settings()
    period = _current_period(settings.today())
    config = {
        "page": "evaluation_score",
        "role": role,
        "unit": principal.unit if principal else None,
        "mayScore": role == "assessor",
        "maySurvey": role == "district",
        "period": period or f"{settings.today():%Y-%m}",
        "hasScheme": period is not None,
        "tz": settings.tz,
        "states": tasks.STATES,
        "kinds": tasks.KIND_NAMES,
        "mayOpen": {p: capabilities.may_open(role, p) for p in capabilities.PAGES},
    }
    response = Response(
        render_template("evaluation_score.html", title="考评录入", config=config),
        mimetype="text/html",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the document -------------------------------------------------------------------------


@contribute
def _paths() -> dict[str, dict[str, Any]]:
    obj = {"type": "object"}

    def answer(description: str, status: str = "200") -> dict[str, Any]:
        return {status: {"description": description, "content": {JSON: {"schema": obj}}}}

    upload: dict[str, Any] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
                }
            }
        },
    }
    json_content: dict[str, Any] = {JSON: {"schema": obj}}
    upload_content: dict[str, Any] = upload["content"]
    json_body = {"required": True, "content": json_content}
    q = {k.split(".")[1]: list(v) for k, v in QUERY.items()}
    tag = "api"
    task_id = path_param(
        "task_id", "任务编号 task id", {"type": "integer", "minimum": 0, "maximum": MAX_ID}
    )

    def read(summary: str, endpoint: str) -> dict[str, Any]:
        return {"get": operation(summary, tag, q[endpoint], answer(summary.split()[0]))}

    def write(
        method: str, summary: str, endpoint: str, body: dict[str, Any], status: str = "200"
    ) -> dict[str, Any]:
        params: list[Any] = [task_id] if endpoint == "task_done" else q[endpoint]
        return {
            method: operation(
                summary, tag, params, answer(summary.split()[0], status), requestBody=body
            )
        }

    both = {"required": True, "content": {**json_content, **upload_content}}
    optional = {"required": False, "content": json_content}
    return {
        f"{API}/scores": {
            **read("考评评分 a period's manual scores", "get_scores"),
            **write("put", "评分（考核部门）set scores: all or none", "put_scores", json_body),
        },
        f"{API}/scores/audit": read("评分记录 the score audit", "score_audit"),
        f"{API}/scores/template.xlsx": {
            "get": operation(
                "评分模板 the assessor's XLSX template",
                tag,
                q["score_template"],
                {"200": {"description": "XLSX", "content": {XLSX: {}}}},
            )
        },
        f"{API}/scores/import": write(
            "post", "导入评分模板 import a filled template: all or none", "score_import", upload
        ),
        f"{API}/tasks": {
            **read("任务 tasks handed to the streets", "list_tasks"),
            **write("post", "下达任务 create tasks (JSON or a file)", "create_tasks", both, "201"),
        },
        f"{API}/tasks/{{task_id}}": write("patch", "任务完成 mark done", "task_done", optional),
        f"{API}/events": write(
            "post", "记录扣分事件 record a per-event item's event", "add_event", json_body, "201"
        ),
        f"{API}/survey/import": write(
            "post", "导入满意度调查（区级）import a survey", "survey_import", upload
        ),
        f"{API}/survey": read("满意度及误差 satisfaction with its margin", "get_survey"),
        "/evaluation/score": {"get": page_operation("考评录入 the assessor's scoring page")},
    }
