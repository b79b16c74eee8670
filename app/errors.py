"""Error classes carry their HTTP status; one handler turns them into an answer.

APIs (/api, /ogc, /tiles, /open311, /healthz) and callers that ask for JSON get
`{error, message}`; a browser on a page gets the same error as a page in Chinese with a way
back (templates/error.html).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, has_request_context, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from layers import UnknownLayer
from layers.queries import ParamError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Base of the errors the server answers with; the message names the bad value."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class TooManyRequests(ApiError):
    status = 429
    code = "too_many_requests"


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"


# The first part of a path that makes a request an API call: errors are JSON there.
API_ROOTS = frozenset({"api", "ogc", "tiles", "open311", "healthz"})
TITLES = {
    400: "请求有误",
    401: "请先登录",
    403: "无权访问",
    404: "页面不存在",
    405: "不支持该请求方式",
    413: "请求内容过大",
    429: "操作过于频繁",
    500: "服务器内部错误",
    503: "服务暂不可用",
}


def wants_html() -> bool:
    """A page request from a browser: not an API path, and not asking for JSON."""
    if not has_request_context():
        return False
    if request.path.split("/")[1] in API_ROOTS:
        return False
    accept = request.accept_mimetypes
    return accept["application/json"] <= accept["text/html"]


# For werkzeug's own errors, whose descriptions are in English only.
EXPLAIN = {
    404: "没有这个页面：地址可能有误，或页面已不存在。",
    405: "该地址不接受这种请求方式。",
    413: "提交的内容超过了允许的大小。",
}


def _html(status: int, body: dict[str, Any], explain: str | None) -> Response | None:
    message = str(body.get("message", ""))
    try:
        page = render_template(
            "error.html",
            status=status,
            title=TITLES.get(status, "出错了"),
            heading=TITLES.get(status, "出错了"),
            message=f"{explain} {message}" if explain else message,
        )
    except Exception:  # the error page must not fail in turn: answer JSON then
        log.exception("error page failed")
        return None
    response = Response(page, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _answer(status: int, body: dict[str, Any], explain: str | None = None) -> Response:
    if wants_html():
        page = _html(status, body, explain)
        if page is not None:
            return page
    response = jsonify(body)
    response.status_code = status
    return response


def register(app: Flask) -> None:
    """Install the JSON error handlers: ApiError, ParamError (a bad query parameter, from
    layers.queries), UnknownLayer, HTTP errors, anything else."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return _answer(exc.status, exc.body())

    @app.errorhandler(ParamError)
    def _param_error(exc: ParamError) -> Response:
        return _answer(exc.status, exc.body())

    @app.errorhandler(UnknownLayer)
    def _unknown_layer(exc: UnknownLayer) -> Response:
        return _answer(404, {"error": "not_found", "message": str(exc), "layer": exc.name})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        return _answer(
            status,
            {"error": (exc.name or "error").lower().replace(" ", "_"), "message": exc.description},
            EXPLAIN.get(status),
        )

    @app.errorhandler(sa.exc.DBAPIError)
    def _database(exc: sa.exc.DBAPIError) -> Response:
        if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
            # The database restarted or went away: the pool is renewed; ask to retry.
            log.warning("database unavailable: %s", type(exc.orig).__name__)
            body = ServiceUnavailable(
                "数据库暂不可用，请稍后重试 database unavailable: retry"
            ).body()
            response = _answer(503, body)
            response.headers["Retry-After"] = "1"
            return response
        log.exception("database error")
        return _answer(500, {"error": "internal_error", "message": "服务器内部错误 internal error"})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return _answer(500, {"error": "internal_error", "message": "服务器内部错误 internal error"})
