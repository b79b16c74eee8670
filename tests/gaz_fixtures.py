"""The demo district with its gazetteer, committed in a database of its own (the geocoder
tests, the gazetteer CLI's): the boundaries imported as `blockdata admin import` does, the
gazetteer built and the demo's 门牌 and POI files imported as `blockdata demo load` does.

Expected values in the tests come from the layers and files loaded here (the demo's shapes
change with its generator), never from the geocoder's own answers."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app import migrate
from app.db import make_engine
from etl.admin import import_admin
from etl.demo.gazetteer import load_gazetteer
from etl.demo.geography import Geography, generate_geography, write_geography
from etl.demo.load import ADMIN_FILES
from tests.helpers import drop_database, new_database

SEED = 42


@functools.lru_cache(maxsize=1)
def demo_geography() -> Geography:
    return generate_geography(SEED)


@dataclass(frozen=True)
class Demo:
    url: str
    directory: Path  # the boundary files and the gazetteer files
    geo: Geography


@contextmanager
def committed_demo(server_url: str, prefix: str) -> Iterator[Demo]:
    """A new database with the demo's layers and gazetteer committed; dropped afterwards."""
    name = f"{prefix}_{os.getpid()}"
    url = new_database(server_url, name)
    geo = demo_geography()
    try:
        migrate.upgrade(migrate.alembic_config(url))
        engine = make_engine(url)
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            write_geography(geo, directory)
            with engine.begin() as conn:
                for layer, level in ADMIN_FILES:
                    import_admin(conn, directory / f"{layer}.geojson", level)
                load_gazetteer(conn, directory)
            engine.dispose()
            yield Demo(url, directory, geo)
    finally:
        drop_database(server_url, name)


def rows(url: str, sql: str, **params: object) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()
