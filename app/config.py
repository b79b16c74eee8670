"""The only reader of environment variables.

Everything else receives a `Settings` (or values taken from it) as arguments.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from layers import queries

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WEB_ROLE = "blockdata_web"  # the map server's login role (migration 0009)
SECRET_KEY_FILE = "secret_key"
WEB_ROLE_FILE = "web_role.json"
# The district's time zone (default; BLOCKDATA_TZ overrides it): local days (今日, 近7天,
# months, the aggregates' days), naive times in sources and requests, and the offsets
# written in exports all follow it. Defined once, in the query layer (layers never import app).
DEFAULT_TZ = queries.DEFAULT_TZ
TZ_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*")

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    """The real instant (aware, UTC); tests inject a frozen one instead."""
    return dt.datetime.now(dt.UTC)


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Runtime settings. `database_url` None means: use the managed cluster; `secret_key`
    None: the installation's own random key in var/ (`resolve_secret_key`);
    `web_database_url` None: the owner's URL with the `blockdata_web` role
    (`resolve_web_database_url`)."""

    database_url: str | None = None
    web_database_url: str | None = None
    var_dir: Path = PROJECT_ROOT / "var"
    pg_bindir: Path | None = None
    secret_key: str | None = None
    session_idle: dt.timedelta = dt.timedelta(hours=12)
    session_lifetime: dt.timedelta = dt.timedelta(days=7)
    secure_cookies: bool = False  # True: Secure cookies even when a request came over HTTP
    audit_retention_days: int = 180
    basemap_url: str | None = None
    basemap_crs: str = "wgs84"
    basemap_attribution: str = ""
    placement_mb: float | None = None  # memory budget of the placement index; None: etl's
    photo_dir: Path | None = None  # case photos (BLOCKDATA_PHOTO_DIR); None: var_dir/photos
    photo_max_bytes: int = 5 * 1024 * 1024  # one photo at most (BLOCKDATA_PHOTO_MAX_MB)
    extra: dict[str, str] = field(default_factory=dict)
    tz: str = DEFAULT_TZ
    clock: Clock = system_clock

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def zone(self) -> ZoneInfo:
        """The district's time zone (BLOCKDATA_TZ)."""
        return ZoneInfo(self.tz)

    @property
    def photos(self) -> Path:
        """Where case photos are kept (files named by their SHA-256)."""
        return self.photo_dir or self.var_dir / "photos"

    def now(self) -> dt.datetime:
        """The clock's instant in the district's time zone: the one "now" of pages and APIs."""
        return self.clock().astimezone(self.zone)

    def today(self) -> dt.date:
        """The district's local date now."""
        return self.now().date()


def _crs(value: str) -> str:
    norm = value.strip().lower().replace("-", "")
    if norm not in {"wgs84", "gcj02"}:
        raise ConfigError(
            f"BLOCKDATA_BASEMAP_CRS 只能是 wgs84 或 gcj02 (must be wgs84 or gcj02): {value!r}"
        )
    return norm


def _positive(env: dict[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name} 应为正整数 (must be a positive integer): {value!r}")
    return int(value)


def _flag(env: dict[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} 应为 1 或 0 (must be 1 or 0): {value!r}")


def _postgres_url(name: str, url: str | None) -> str | None:
    if url is not None and not url.startswith(("postgresql", "postgres://")):
        raise ConfigError(f"{name} must be a PostgreSQL URL, got {url.split(':', 1)[0]!r}")
    return url


def check_tz(value: str) -> str:
    """An IANA time zone name that Python's zoneinfo knows (PostgreSQL reads the same
    database on Debian); anything else fails fast, naming the value."""
    name = value.strip()
    try:
        if not TZ_NAME.fullmatch(name):
            raise ValueError(name)
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigError(
            f"BLOCKDATA_TZ 不是有效的 IANA 时区名 (not an IANA time zone such as Asia/Shanghai): "
            f"{value!r}"
        ) from None
    return name


def _megabytes(name: str, value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(f"{name} 应为正数 (MB) must be a positive number of MB: {value!r}")
    return number


def from_env(environ: dict[str, str] | None = None) -> Settings:
    """Read settings from the environment; fail fast on malformed values."""
    env = dict(os.environ if environ is None else environ)
    url = _postgres_url("DATABASE_URL", env.get("DATABASE_URL") or None)
    web_url = _postgres_url(
        "BLOCKDATA_WEB_DATABASE_URL", env.get("BLOCKDATA_WEB_DATABASE_URL") or None
    )
    bindir = env.get("BLOCKDATA_PG_BINDIR")
    return Settings(
        database_url=url,
        web_database_url=web_url,
        var_dir=Path(env.get("BLOCKDATA_VAR", PROJECT_ROOT / "var")).resolve(),
        pg_bindir=Path(bindir) if bindir else None,
        secret_key=env.get("BLOCKDATA_SECRET_KEY") or None,
        session_idle=dt.timedelta(minutes=_positive(env, "BLOCKDATA_SESSION_IDLE_MINUTES", 720)),
        session_lifetime=dt.timedelta(
            hours=_positive(env, "BLOCKDATA_SESSION_LIFETIME_HOURS", 168)
        ),
        secure_cookies=_flag(env, "BLOCKDATA_SECURE_COOKIES"),
        audit_retention_days=_positive(env, "BLOCKDATA_AUDIT_RETENTION_DAYS", 180),
        basemap_url=env.get("BLOCKDATA_BASEMAP_URL") or None,
        basemap_crs=_crs(env.get("BLOCKDATA_BASEMAP_CRS", "wgs84")),
        basemap_attribution=env.get("BLOCKDATA_BASEMAP_ATTRIBUTION", ""),
        tz=check_tz(env.get("BLOCKDATA_TZ") or DEFAULT_TZ),
        placement_mb=_megabytes("BLOCKDATA_PLACEMENT_MB", env.get("BLOCKDATA_PLACEMENT_MB")),
        photo_dir=Path(env["BLOCKDATA_PHOTO_DIR"]).resolve()
        if env.get("BLOCKDATA_PHOTO_DIR")
        else None,
        photo_max_bytes=int(
            (_megabytes("BLOCKDATA_PHOTO_MAX_MB", env.get("BLOCKDATA_PHOTO_MAX_MB")) or 5)
            * 1024
            * 1024
        ),
    )


def sqlalchemy_url(url: str) -> str:
    """Turn a libpq URL into one SQLAlchemy drives with psycopg 3."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ConfigError(f"not a PostgreSQL URL: {url.split(':', 1)[0]!r}")


def resolve_database_url(settings: Settings) -> str:
    """The libpq URL to use: DATABASE_URL as it is, else the managed cluster's."""
    if settings.database_url:
        return settings.database_url
    from app.pgcluster import Cluster

    return Cluster.from_settings(settings).url()


def kept_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in `path` (mode 0600), made by `make()` on first use.

    Made atomically: written to a private temporary file beside it and linked into place,
    which fails if another process got there first — then that one's secret is used. A
    reader never sees a half-written file.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise ConfigError(f"无法写入 cannot write {path.parent}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w") as fh:  # mkstemp: mode 0600
            fh.write(make() + "\n")
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return path.read_text().strip()


def resolve_secret_key(settings: Settings) -> str:
    """The key that signs session cookies: BLOCKDATA_SECRET_KEY, else a random key made
    once for this installation and kept in var/secret_key (mode 0600)."""
    if settings.secret_key:
        return settings.secret_key
    return kept_secret(settings.var_dir / SECRET_KEY_FILE, lambda: secrets.token_urlsafe(48))


def web_role_password(settings: Settings, create: bool = False) -> str | None:
    """The password of the `blockdata_web` role kept in var/web_role.json (mode 0600),
    generated when `create`; None when there is none yet."""
    path = settings.var_dir / WEB_ROLE_FILE
    if not create and not path.exists():
        return None
    text = kept_secret(
        path, lambda: json.dumps({"user": WEB_ROLE, "password": secrets.token_urlsafe(24)})
    )
    password: str = json.loads(text)["password"]
    return password


def with_user(url: str, user: str, password: str) -> str:
    """`url` (libpq) with another user and password."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(username=user, password=password).render_as_string(hide_password=False)


def resolve_web_database_url(settings: Settings) -> str:
    """The libpq URL the map server connects with: BLOCKDATA_WEB_DATABASE_URL, else the
    owner's URL (DATABASE_URL or the managed cluster's) as `blockdata_web` with the password
    `blockdata db upgrade` keeps in var/. Without either: a ConfigError saying what to do."""
    if settings.web_database_url:
        return settings.web_database_url
    password = web_role_password(settings)
    if password is None:
        raise ConfigError(
            f"没有 Web 数据库角色 no login for the web role {WEB_ROLE!r}: run `blockdata db "
            "upgrade` as the database owner (it creates the role, its password goes to "
            f"{settings.var_dir / WEB_ROLE_FILE}); with an external database whose owner may "
            "not create roles, set BLOCKDATA_WEB_DATABASE_URL to a login role that is a member "
            "of blockdata_reader"
        )
    return with_user(resolve_database_url(settings), WEB_ROLE, password)
