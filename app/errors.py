"""Error classes carry their HTTP status; one handler turns them into JSON."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from layers import UnknownLayer

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


def _json(status: int, body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def register(app: Flask) -> None:
    """Install the JSON error handlers: ApiError, UnknownLayer, HTTP errors, anything else."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return _json(exc.status, exc.body())

    @app.errorhandler(UnknownLayer)
    def _unknown_layer(exc: UnknownLayer) -> Response:
        return _json(404, {"error": "not_found", "message": str(exc), "layer": exc.name})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return _json(
            exc.code or 500,
            {"error": (exc.name or "error").lower().replace(" ", "_"), "message": exc.description},
        )

    @app.errorhandler(sa.exc.DBAPIError)
    def _database(exc: sa.exc.DBAPIError) -> Response:
        if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
            # The database restarted or went away: the pool is renewed; ask to retry.
            log.warning("database unavailable: %s", type(exc.orig).__name__)
            body = ServiceUnavailable(
                "数据库暂不可用，请稍后重试 database unavailable: retry"
            ).body()
            response = _json(503, body)
            response.headers["Retry-After"] = "1"
            return response
        log.exception("database error")
        return _json(500, {"error": "internal_error", "message": "服务器内部错误 internal error"})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return _json(500, {"error": "internal_error", "message": "服务器内部错误 internal error"})
