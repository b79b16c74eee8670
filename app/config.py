"""The only reader of environment variables.

Everything else receives a `Settings` (or values taken from it) as arguments.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
    placement_mb: float | None = None  # memory budget of the placement index; None: etl's
    extra: dict[str, str] = field(default_factory=dict)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _crs(value: str) -> str:
    norm = value.strip().lower().replace("-", "")
    if norm not in {"wgs84", "gcj02"}:
        raise ConfigError(
            f"BLOCKDATA_BASEMAP_CRS 只能是 wgs84 或 gcj02 (must be wgs84 or gcj02): {value!r}"
        )
    return norm


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
        placement_mb=_megabytes("BLOCKDATA_PLACEMENT_MB", env.get("BLOCKDATA_PLACEMENT_MB")),
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
