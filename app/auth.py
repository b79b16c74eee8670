"""Who is asking, and what they may see.

Pages log in with a session cookie (a CSRF-protected form, hashed passwords, a rate-limited
login); APIs, OGC and tiles take the session or a bearer token. Anonymous requests get 401
(pages: a redirect to the login form), never data. A commander's zone is enforced where the
data is read: the request's connection switches to the `blockdata_reader` role with the
zone in the `blockdata.zone` setting, and PostgreSQL's row-level security does the rest
(migration 0004), so every endpoint gets it the same way.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFProtect
from werkzeug.security import check_password_hash, generate_password_hash

from app import capabilities, db
from app.errors import Forbidden, TooManyRequests, Unauthorized
from layers.accounts import ROLES, audit_log, users

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()
LOGIN_ATTEMPTS = 10  # per client address and minute

PAGE_BLUEPRINTS = {"pages", "auth"}
# GeoReport clients send their token as an `api_key` parameter: the same as a bearer token.
API_KEY = "api_key"
API_KEY_BLUEPRINTS = {"open311"}


@dataclass(frozen=True)
class Principal:
    id: int
    name: str
    role: str
    street_code: str | None
    via: str  # "session" or "token"

    @property
    def zone(self) -> str:
        """The street this user is confined to, or '*' for the whole district."""
        return self.street_code if self.role == "commander" and self.street_code else "*"

    def may_read(self, layer: str) -> bool:
        return capabilities.may_read(self.role, layer)


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def new_token() -> tuple[str, str]:
    """A fresh API token and the SHA-256 kept of it."""
    token = "bd_" + secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def current() -> Principal | None:
    principal: Principal | None = g.get("principal")
    return principal


def require_layer(layer: str) -> None:
    """403 unless the caller's role may read `layer` (zones are the database's job)."""
    principal = current()
    if principal is not None and not principal.may_read(layer):
        raise Forbidden(
            f"无权访问该图层 role {principal.role!r} may not read layer {layer!r}", layer=layer
        )


def _path() -> str:
    """The request's path and query, without an `api_key`: a token is never logged."""
    if API_KEY not in request.args:
        return request.full_path.rstrip("?")
    kept = [(k, v) for k, v in request.args.items(multi=True) if k != API_KEY]
    return request.path + ("?" + urlencode(kept) if kept else "")


def audit(action: str, rows: int | None = None, **filters: Any) -> None:
    """Record an export or a token use: who, when, what filter, how many rows."""
    principal = current()
    # inline(): no RETURNING, which a commander could not read back through row-level security.
    db.connection().execute(
        sa.insert(audit_log)
        .inline()
        .values(
            user_name=principal.name if principal else None,
            role=principal.role if principal else None,
            action=action,
            path=_path(),
            filters={k: v for k, v in filters.items() if v is not None},
            rows=rows,
            remote=request.remote_addr,
        )
    )


# Built once: every request of a session runs it, and SQLAlchemy keeps its compiled form.
_USER_BY_ID = sa.select(users.c.id, users.c.name, users.c.role, users.c.street_code).where(
    users.c.id == sa.bindparam("uid", type_=sa.Integer), users.c.disabled.is_(False)
)


def _user(conn: sa.Connection, uid: int) -> Any:
    return conn.execute(_USER_BY_ID, {"uid": uid}).first()


# A token request's user, its `last_used_at` stamp and its audit row, in one statement (one
# round trip instead of three), as the server's own role before `db.scope` switches to the
# reader. The stamp is to the minute and never waits: the row lock would be held until the
# request commits, so one client's concurrent requests with one token (GDAL, QGIS) would
# queue behind each other; a request that finds the row locked leaves the stamp to that one.
# A wrong or revoked token finds no row: nothing is stamped or logged, and the caller gets 401.
_TOKEN_USE = sa.text(
    """
    with found as (
        select u.id, u.name, u.role, u.street_code, k.id as token_id
        from api_tokens k join users u on u.id = k.user_id
        where k.token_sha256 = :digest and k.revoked_at is null and u.disabled is false
    ), stamped as (
        update api_tokens set last_used_at = now()
        where id = (
            select k.id from api_tokens k join found f on k.id = f.token_id
            where k.last_used_at is null or k.last_used_at < now() - interval '1 minute'
            for update of k skip locked
        )
    ), logged as (
        insert into audit_log (user_name, role, action, path, remote)
        select name, role, 'token_use', :path, :remote from found
    )
    select id, name, role, street_code from found
    """
)


def _from_token(conn: sa.Connection, token: str) -> Principal:
    digest = hashlib.sha256(token.encode()).hexdigest()
    path, remote = (_path(), request.remote_addr) if has_request_context() else (None, None)
    row = conn.execute(_TOKEN_USE, {"digest": digest, "path": path, "remote": remote}).first()
    if row is None:
        raise Unauthorized("令牌无效 invalid or revoked token")
    return Principal(row[0], row[1], row[2], row[3], "token")


def _api_key() -> str | None:
    """The token an Open311 client sends as `api_key` (query string, form or JSON body)."""
    if request.blueprint not in API_KEY_BLUEPRINTS:
        return None
    key = request.args.get(API_KEY)
    if key is None and request.method == "POST":
        key = request.form.get(API_KEY)
        body = request.get_json(silent=True) if key is None and request.is_json else None
        if isinstance(body, dict) and isinstance(body.get(API_KEY), str):
            key = body[API_KEY]
    return key


def _identify() -> Principal | None:
    conn = db.connection()
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("认证头格式错误 Authorization must be 'Bearer <token>'")
        return _from_token(conn, token.strip())
    key = _api_key()
    if key is not None:
        if not key.strip():
            raise Unauthorized("api_key 为空 empty api_key")
        return _from_token(conn, key.strip())
    uid = session.get("uid")
    if uid is None:
        return None
    row = _user(conn, uid)
    if row is None:
        session.clear()
        return None
    return Principal(row.id, row.name, row.role, row.street_code, "session")


def _load() -> Any:
    if request.endpoint is None:  # no such URL: its error page still says who is logged in
        if session.get("uid") is not None and "Authorization" not in request.headers:
            g.principal = _identify()
            if g.principal is not None:
                db.scope(g.principal.zone)
        return None
    if capabilities.is_public(request.endpoint):
        return None
    principal = _identify()
    if principal is None:
        if request.blueprint in PAGE_BLUEPRINTS:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        raise Unauthorized("请先登录 authentication required")
    g.principal = principal
    db.scope(principal.zone)  # a token use is already logged (`_TOKEN_USE`)
    capabilities.check(principal.role, request.endpoint, request.view_args or {})
    return None


def _throttle() -> None:
    """At most LOGIN_ATTEMPTS login posts a minute from one address, else 429."""
    attempts: dict[str, deque[float]] = current_app.extensions.setdefault("login_attempts", {})
    now = time.monotonic()
    recent = attempts.setdefault(request.remote_addr or "?", deque())
    while recent and now - recent[0] > 60:
        recent.popleft()
    if len(recent) >= LOGIN_ATTEMPTS:
        raise TooManyRequests("登录尝试过多, 请一分钟后再试 too many login attempts: wait a minute")
    recent.append(now)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    """登录: a form; on success the session remembers the user."""
    error = None
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        password = request.form.get("password") or ""
        row = (
            db.connection()
            .execute(
                sa.select(
                    users.c.id, users.c.role, users.c.street_code, users.c.password_hash
                ).where(users.c.name == name, users.c.disabled.is_(False))
            )
            .first()
        )
        if row is not None and check_password_hash(row.password_hash, password):
            session.clear()
            session["uid"] = row.id
            session.permanent = True
            target = capabilities.after_login(row.role, row.street_code, request.args.get("next"))
            return redirect(target)  # type: ignore[return-value]
        error = "用户名或密码错误"
    return render_template("login.html", error=error)


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("auth.login"))  # type: ignore[return-value]


def _throttle_logins() -> None:
    if request.endpoint == "auth.login" and request.method == "POST":
        _throttle()


def init_app(app: Flask) -> None:
    app.before_request(_throttle_logins)  # before CSRF: every attempt counts, token or not
    csrf.init_app(app)
    app.register_blueprint(bp)
    app.before_request(_load)
    app.context_processor(lambda: {"principal": current(), "roles": ROLES})
    for name in ("api", "ogc", "tiles", "open311"):
        blueprint = app.blueprints.get(name)
        if blueprint is not None:
            csrf.exempt(blueprint)  # bearer-token APIs; their writes are not form posts
