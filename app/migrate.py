"""Alembic driven from Python: the CLI and the tests use the same entry points."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from app.config import PROJECT_ROOT, sqlalchemy_url

POSTGIS_SCHEMAS = {"tiger", "tiger_data", "topology"}
POSTGIS_TABLES = {"spatial_ref_sys"}


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Autogenerate filter: leave PostGIS's own tables alone."""
    from geoalchemy2 import alembic_helpers

    if type_ == "table" and (name in POSTGIS_TABLES or obj.schema in POSTGIS_SCHEMAS):
        return False
    return bool(alembic_helpers.include_object(obj, name, type_, reflected, compare_to))


def alembic_config(url: str | None = None, connection: sa.Connection | None = None) -> Config:
    """An Alembic config for `url`, or bound to an open `connection`."""
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(cfg: Config, revision: str = "head") -> None:
    command.upgrade(cfg, revision)


def downgrade(cfg: Config, revision: str) -> None:
    command.downgrade(cfg, revision)


def current(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
