"""The only reader of environment variables.

Everything else receives a `Settings` (or values taken from it) as arguments.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The district's time zone: local days (今日, 近7天, months, the aggregates' days), naive
# times in sources and requests, and the offsets written in exports all follow it.
DEFAULT_TZ = "Asia/Shanghai"
TZ_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*")

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    """The real instant (aware, UTC); tests inject a frozen one instead."""
    return dt.datetime.now(dt.UTC)


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Runtime settings. `database_url` None means: use the managed cluster."""

    database_url: str | None = None
    var_dir: Path = PROJECT_ROOT / "var"
    pg_bindir: Path | None = None
    secret_key: str = "dev-only-secret"
    basemap_url: str | None = None
    basemap_crs: str = "wgs84"
    basemap_attribution: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    tz: str = DEFAULT_TZ
    clock: Clock = system_clock

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def zone(self) -> ZoneInfo:
        """The district's time zone (BLOCKDATA_TZ)."""
        return ZoneInfo(self.tz)

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


def from_env(environ: dict[str, str] | None = None) -> Settings:
    """Read settings from the environment; fail fast on malformed values."""
    env = dict(os.environ if environ is None else environ)
    url = env.get("DATABASE_URL") or None
    if url is not None and not url.startswith(("postgresql", "postgres://")):
        raise ConfigError(f"DATABASE_URL must be a PostgreSQL URL, got {url.split(':', 1)[0]!r}")
    bindir = env.get("BLOCKDATA_PG_BINDIR")
    return Settings(
        database_url=url,
        var_dir=Path(env.get("BLOCKDATA_VAR", PROJECT_ROOT / "var")).resolve(),
        pg_bindir=Path(bindir) if bindir else None,
        secret_key=env.get("BLOCKDATA_SECRET_KEY", "dev-only-secret"),
        basemap_url=env.get("BLOCKDATA_BASEMAP_URL") or None,
        basemap_crs=_crs(env.get("BLOCKDATA_BASEMAP_CRS", "wgs84")),
        basemap_attribution=env.get("BLOCKDATA_BASEMAP_ATTRIBUTION", ""),
        tz=check_tz(env.get("BLOCKDATA_TZ") or DEFAULT_TZ),
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
