"""Who is asking, and what they may see.

Pages log in with a session cookie (a CSRF-protected form, hashed passwords, a login
throttle kept in the database); APIs, OGC and tiles take the session or a bearer token.
Anonymous requests get 401 (pages: a redirect to the login form), never data. A commander's
zone is enforced where the data is read: the request's connection switches to the
`blockdata_reader` role with the zone in the `blockdata.zone` setting, and PostgreSQL's
row-level security does the rest (migration 0004), so every endpoint gets it the same way.
A department user (承办单位) is scoped by its unit too (`blockdata.unit`, migration 0018): its
zone matches no street, its unit's cases and whistles are all it sees.

The server logs in as `blockdata_web` and never reads `users`, `sessions` or `api_tokens`:
passwords, sessions and tokens are checked by the SECURITY DEFINER functions of migration
0009. A password is checked in two steps, so that its hash never leaves the database:
`auth_login_challenge` (the throttle; the method and salt of the stored hash, a decoy salt
for an unknown name) and, after the server hashed the password with them (the same work for
a known name and an unknown one), `auth_login_verify` (compares, opens a session).

The session cookie (signed, HttpOnly, SameSite=Lax, Secure over HTTPS or when
BLOCKDATA_SECURE_COOKIES says so) carries a random session id; the database keeps its
SHA-256 and ends it at logout, at a password change, when the user is disabled, after
`session_idle` without a request and `session_lifetime` after the login (app/config.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
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
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from werkzeug.security import _hash_internal, generate_password_hash

from app import capabilities, db
from app.config import Settings
from app.errors import BadRequest, Forbidden, TooManyRequests, Unauthorized
from layers.accounts import ROLES
from layers.queries import access

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()
SESSION_KEY = "sid"  # the session id in the signed cookie
MAX_NAME = 200  # a longer user name is cut before it is looked up or counted
# The method of `hash_password`: an unknown name's decoy is hashed the same way.
DECOY_METHOD = "scrypt"

# GeoReport clients send their token as an `api_key` parameter (views declared
# `@capabilities.api_key`): the same as a bearer token.
API_KEY = "api_key"


@dataclass(frozen=True)
class Principal:
    id: int
    name: str
    role: str
    street_code: str | None
    via: str  # "session" or "token"
    unit: str | None = None  # a department user's unit (承办单位)

    @property
    def zone(self) -> str:
        """The street this user is confined to, '*' for the whole district, or
        `access.NO_STREET` for a department user."""
        return access.zone_of(self.role, self.street_code)

    def scope(self) -> None:
        """Scope the request's connection to this user's zone and unit."""
        db.scope(self.zone, unit=access.unit_of(self.role, self.unit))

    def may_read(self, layer: str) -> bool:
        return capabilities.may_read(self.role, layer)


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=DECOY_METHOD)


def password_digest(method: str, salt: str, password: str) -> str:
    """The digest part of werkzeug's `method$salt$digest` hash of `password`: what
    `check_password_hash` computes before comparing (werkzeug's own function; tests check
    it against `check_password_hash`)."""
    return _hash_internal(method, salt, password)[0]


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh API token and the SHA-256 kept of it."""
    token = "bd_" + secrets.token_urlsafe(32)
    return token, sha256(token)


def new_session_id() -> tuple[str, str]:
    """A fresh session id (for the cookie) and the SHA-256 kept of it."""
    sid = secrets.token_urlsafe(32)
    return sid, sha256(sid)


def now() -> dt.datetime:
    """The clock of sessions: `AUTH_CLOCK` (tests inject one), else the system's."""
    clock = current_app.config.get("AUTH_CLOCK")
    value: dt.datetime = clock() if clock is not None else dt.datetime.now(dt.UTC)
    return value


def _settings() -> Settings:
    settings: Settings = current_app.config["BLOCKDATA_SETTINGS"]
    return settings


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
    access.audit(
        db.connection(),
        user_name=principal.name if principal else None,
        role=principal.role if principal else None,
        action=action,
        path=_path(),
        filters=filters,
        rows=rows,
        remote=request.remote_addr,
    )


# The functions of migration 0009; the web role may read none of their tables.
_TOKEN_USE = sa.text(
    "select id, name, role, street_code, unit_code from auth_token_use(:digest, :path, :remote)"
)
_SESSION = sa.text(
    "select id, name, role, street_code, unit_code from auth_session(:sid, :now, :idle, :lifetime)"
)
_SESSION_END = sa.text("select auth_session_end(:sid, :now)")
_CHALLENGE = sa.text(
    "select throttled, method, salt, attempt_id from auth_login_challenge(:name, :remote)"
)
_VERIFY = sa.text(
    "select id, role, street_code, unit_code"
    " from auth_login_verify(:attempt, :name, :digest, :sid, :now, :remote)"
)


def _from_token(conn: sa.Connection, token: str) -> Principal:
    """A live token's user; its use is stamped and logged (`auth_token_use`)."""
    path, remote = (_path(), request.remote_addr) if has_request_context() else (None, None)
    row = conn.execute(
        _TOKEN_USE, {"digest": sha256(token), "path": path, "remote": remote}
    ).first()
    if row is None:
        raise Unauthorized("令牌无效或已过期 invalid, revoked or expired token")
    return Principal(row[0], row[1], row[2], row[3], "token", row[4])


def _from_session(conn: sa.Connection, sid: str) -> Principal | None:
    settings = _settings()
    row = conn.execute(
        _SESSION,
        {
            "sid": sha256(sid),
            "now": now(),
            "idle": settings.session_idle,
            "lifetime": settings.session_lifetime,
        },
    ).first()
    if row is None:
        return None
    return Principal(row[0], row[1], row[2], row[3], "session", row[4])


def json_body() -> Any:
    """The request's JSON body; None when it is not JSON or malformed; 400 when it is nested
    too deeply for the parser (RecursionError)."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        raise BadRequest("JSON 嵌套过深 the JSON body is nested too deeply") from None


def _api_key(need: capabilities.Access | None) -> str | None:
    """The token an Open311 client sends as `api_key` (query string, form or JSON body), to
    a view that accepts one."""
    if need is None or not need.api_key:
        return None
    key = request.args.get(API_KEY)
    if key is None and request.method == "POST":
        key = request.form.get(API_KEY)
        body = json_body() if key is None and request.is_json else None
        if isinstance(body, dict) and isinstance(body.get(API_KEY), str):
            key = body[API_KEY]
    return key


def _identify(need: capabilities.Access | None = None) -> Principal | None:
    conn = db.connection()
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("认证头格式错误 Authorization must be 'Bearer <token>'")
        return _from_token(conn, token.strip())
    key = _api_key(need)
    if key is not None:
        if not key.strip():
            raise Unauthorized("api_key 为空 empty api_key")
        return _from_token(conn, key.strip())
    sid = session.get(SESSION_KEY)
    if not isinstance(sid, str):
        return None
    principal = _from_session(conn, sid)
    if principal is None:
        session.clear()
    return principal


UNBOUND = (
    "账号尚未绑定街道，请管理员运行 blockdata users bind NAME --street CODE "
    "(this account has no street yet: an administrator must bind it)"
)


def _refuse_unbound(principal: Principal) -> None:
    """403 for a street's user without a street (a clerk made before migration 0019)."""
    if access.unbound(principal.role, principal.street_code):
        raise Forbidden(UNBOUND)


def _load() -> Any:
    if request.endpoint is None:  # no such URL: its error page still says who is logged in
        if session.get(SESSION_KEY) is not None and "Authorization" not in request.headers:
            g.principal = _identify()
            if g.principal is not None:
                g.principal.scope()
        return None
    need = capabilities.access(request.endpoint)  # None: refused below (create_app checks)
    if need is not None and need.public:
        return None
    principal = _identify(need)
    if principal is None:
        if need is not None and need.browser:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        raise Unauthorized("请先登录 authentication required")
    g.principal = principal
    principal.scope()  # a token use is already logged (`auth_token_use`)
    _refuse_unbound(principal)
    capabilities.check(principal.role, need, request.view_args or {})
    return None


@bp.route("/login", methods=["GET", "POST"])
@capabilities.public
def login() -> Response | str:
    """登录: a form; on success a new session (a new id: none is taken over)."""
    error = None
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()[:MAX_NAME]
        password = request.form.get("password") or ""
        remote = request.remote_addr or "?"
        conn = db.connection()
        challenge = conn.execute(_CHALLENGE, {"name": name, "remote": remote}).one()
        if challenge.throttled:
            raise TooManyRequests(
                "登录失败次数过多，请稍后再试 too many failed logins: wait a few minutes"
            )
        try:  # an unknown name: the decoy salt, hashed the same way
            digest = password_digest(challenge.method or DECOY_METHOD, challenge.salt, password)
        except ValueError:  # a stored hash of a method werkzeug no longer knows
            current_app.logger.warning("login: unsupported password hash for %r", name)
            digest = ""
        sid, sid_digest = new_session_id()
        row = conn.execute(
            _VERIFY,
            {
                "attempt": challenge.attempt_id,
                "name": name,
                "digest": digest,
                "sid": sid_digest,
                "now": now(),
                "remote": remote,
            },
        ).first()
        if row is not None and access.unbound(row.role, row.street_code):
            conn.execute(_SESSION_END, {"sid": sid_digest, "now": now()})
            return render_template("login.html", error=UNBOUND)
        if row is not None:
            session.clear()
            session[SESSION_KEY] = sid
            session.permanent = True
            target = capabilities.after_login(row.role, row.street_code, request.args.get("next"))
            return redirect(target)  # type: ignore[return-value]
        error = "用户名或密码错误"
    return render_template("login.html", error=error)


@bp.post("/logout")
@capabilities.browser
def logout() -> Response:
    sid = session.get(SESSION_KEY)
    if isinstance(sid, str):
        db.unscope()  # the request was scoped to the reader, who may not end sessions
        db.connection().execute(_SESSION_END, {"sid": sha256(sid), "now": now()})
    session.clear()
    return redirect(url_for("auth.login"))  # type: ignore[return-value]


class _Sessions(SecureCookieSessionInterface):
    """Flask's signed cookie, Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        forced = bool(app.config["SESSION_COOKIE_SECURE"])
        return forced or (has_request_context() and request.is_secure)


def _reject_nul() -> None:
    """400 for a NUL character in the path, the query or a form value, before anything
    reaches the database (PostgreSQL text cannot hold one); the message names the value."""
    found: tuple[str, str, str] | None = None
    if "\x00" in request.path:
        found = ("path", "", request.path)
    else:
        pairs = [("query", k, v) for k, v in request.args.items(multi=True)]
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            # A multipart part without a name comes as the key None.
            pairs += [("form", k or "", v) for k, v in request.form.items(multi=True)]
        found = next((p for p in pairs if "\x00" in p[1] or "\x00" in p[2]), None)
    if found is not None:
        where, name, value = found
        named = f" parameter {name[:40]!r}" if name else ""
        raise BadRequest(
            f"含空字符 (NUL) the {where}{named} contains a NUL character: {value[:80]!r}",
            where=where,
            parameter=name[:40] or None,
        )


def init_app(app: Flask) -> None:
    settings: Settings = app.config["BLOCKDATA_SETTINGS"]
    app.session_interface = _Sessions()
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=settings.session_lifetime,
    )
    app.before_request(_reject_nul)  # first: before CSRF, the login and the audit
    csrf.init_app(app)
    app.register_blueprint(bp)
    app.before_request(_load)
    app.context_processor(lambda: {"principal": current(), "roles": ROLES})
    for view in app.view_functions.values():
        need = capabilities.declared(view)
        if need is not None and not need.csrf:
            csrf.exempt(view)  # bearer-token APIs; their writes are not form posts
