"""Compressed responses (Flask-Compress): pages, JSON, GeoJSON, JavaScript, CSS and SVG.

Brotli when the browser accepts it, else gzip; nothing under COMPRESS_MIN_SIZE bytes (a tiny
body gains less than the header costs). Static files are compressed too, once per file,
version and algorithm (`StaticCache`): Flask sends them as file streams, which Flask-Compress
would compress on every request, so `_static_in_memory` hands it the file's bytes instead.
Other streamed bodies (exports, spooled and sent at the client's pace; vector tiles) are left
as they are. Flask-Compress adds `Vary: Accept-Encoding`, suffixes a strong ETag with the
algorithm and answers a conditional request for the compressed body (304); Cache-Control and
the security headers (app/headers.py, the last hook) are untouched.
"""

from __future__ import annotations

import os
import threading
from typing import Final

from flask import Flask, Request, Response, current_app, request
from flask_compress import Compress
from werkzeug.security import safe_join

MIN_SIZE: Final = 1024  # bytes; smaller bodies go uncompressed
MIMETYPES: Final = (
    "text/html",
    "text/css",
    "text/plain",
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/geo+json",
    "application/schema+json",
    "application/problem+json",
    "application/vnd.oai.openapi+json",
    "image/svg+xml",
)
ALGORITHMS: Final = ("br", "gzip")


class StaticCache:
    """Compressed static files in memory, keyed by algorithm, path and modification time (a
    changed file is a new key). Only static files: `static_key` is empty for anything else,
    and an empty key is neither looked up nor stored."""

    def __init__(self) -> None:
        self._store: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        return self._store.get(key) if _cached(key) else None

    def set(self, key: str, value: bytes) -> None:
        if _cached(key):
            with self._lock:
                self._store[key] = value


def _cached(key: str) -> bool:
    return bool(key.partition(";")[2])


def static_key(req: Request) -> str:
    """The cache key of a static file's compressed body: its path and modification time;
    '' (not cached) for every other response."""
    if req.endpoint != "static" or current_app.static_folder is None:
        return ""
    path = safe_join(current_app.static_folder, (req.view_args or {}).get("filename", ""))
    try:
        stamp = os.stat(path).st_mtime_ns if path else None
    except OSError:
        return ""
    return f"{req.path}@{stamp}" if stamp is not None else ""


def _static_in_memory(response: Response) -> Response:
    """A static file's 200 answer with its bytes in memory, so Flask-Compress compresses it
    (once: StaticCache) rather than stream-compressing the file on every request."""
    if (
        request.endpoint == "static"
        and response.status_code == 200
        and response.mimetype in MIMETYPES
        and not response.is_sequence  # a file (a server's wsgi.file_wrapper, say)
    ):
        stream = response.response
        response.direct_passthrough = False
        data = response.get_data()
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # the file Flask opened: replaced by its bytes, never sent
        response.set_data(data)
    return response


def init_app(app: Flask) -> None:
    """Compress `app`'s responses (COMPRESS_REGISTER=False in its config: not at all)."""
    app.config.setdefault("COMPRESS_MIMETYPES", list(MIMETYPES))
    app.config.setdefault("COMPRESS_ALGORITHM", list(ALGORITHMS))
    app.config.setdefault("COMPRESS_MIN_SIZE", MIN_SIZE)
    app.config.setdefault("COMPRESS_STREAMS", False)  # exports and tiles stream as they are
    app.config.setdefault("COMPRESS_CACHE_BACKEND", StaticCache)
    app.config.setdefault("COMPRESS_CACHE_KEY", static_key)
    Compress(app)
    if app.config.get("COMPRESS_REGISTER", True):
        # Registered after Flask-Compress's hook, so it runs before it (Flask runs
        # after_request hooks in reverse order).
        app.after_request(_static_in_memory)
