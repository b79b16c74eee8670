"""Fixtures of the app tests that read a loaded database: the tiny district with 60 requests
(`loaded`), a committed demo database served live (`demo_url`), a committed two-street
database for the CLI (`committed_url`); and the helpers that build them."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app import create_app, migrate, ogc
from app.db import make_engine
from etl.demo import load as demo
from etl.jobs import run_file
from tests.district import request_row, write_csv
from tests.helpers import add_user, drop_database, new_database

# Street codes of `committed_url`'s two streets.
COMMITTED_A, COMMITTED_B = "110102001", "110102003"


@contextmanager
def demo_database(server_url: str, name: str, workdir: Path, **sizes: Any) -> Iterator[str]:
    """A fresh committed database `name` with the demo district loaded by the real ETL."""
    url = new_database(server_url, name)
    try:
        migrate.upgrade(migrate.alembic_config(url))
        demo.generate(workdir, **sizes)
        engine = make_engine(url)
        with engine.connect() as conn:
            demo.load(conn, workdir)
            conn.commit()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("vacuum analyze")
        engine.dispose()
        yield url
    finally:
        drop_database(server_url, name)


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve `app` with waitress on 127.0.0.1 in a daemon thread; yields the base URL."""
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
    finally:
        server.close()
        engine = app.extensions.get("blockdata.engine")
        if engine is not None:
            engine.dispose()


def live_app(url: str, **config: Any) -> Flask:
    from app import tiles

    app = create_app({"DATABASE_URL": url, **config})
    for module in (ogc, tiles):
        if module.bp.name not in app.blueprints:
            app.register_blueprint(module.bp)
    return app


@pytest.fixture(scope="module")
def demo_url(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"blockdata_test_ogc_{os.getpid()}"
    workdir = tmp_path_factory.mktemp("demo")
    with demo_database(
        server_url, name, workdir, requests=3000, cases=100, targets=20, projects=30
    ) as url:
        yield url


def add_account(url: str, name: str, role: str = "district", street: str | None = None) -> Any:
    """A committed user with an API token: (user id, token)."""
    from app.auth import new_token
    from layers.accounts import api_tokens

    engine = make_engine(url)
    token, digest = new_token()
    with engine.begin() as conn:
        uid = add_user(conn, name, role, street)
        conn.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
    engine.dispose()
    return uid, token


BASE = dt.datetime(2026, 11, 1, 8, 0)
CATEGORIES = ["环境卫生", "噪声扰民", "停车管理"]


def ogc_rows(n: int = 60) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        received = BASE + dt.timedelta(hours=i)
        extra: dict[str, str] = {}
        if i % 2:
            extra = {
                "状态": "处理中",
                "响应时间": (received + dt.timedelta(hours=2)).isoformat(" "),
            }
        rows.append(
            request_row(
                f"T{i:03d}",
                受理时间=received.isoformat(" "),
                派单时间=(received + dt.timedelta(minutes=30)).isoformat(" "),
                诉求类别=CATEGORIES[i % 3],
                经度=f"{116.3015 + (i % 10) * 0.0038:.4f}",
                纬度=f"{39.9015 + (i // 10) * 0.003:.4f}",
                **extra,
            )
        )
    return rows


@pytest.fixture
def loaded(connection: sa.Connection, district: Any, tmp_path: Path) -> int:
    path = write_csv(tmp_path / "r.csv", ogc_rows())
    report = run_file(connection, path, layer="service_requests")
    assert report.inserted == 60, report.reasons
    return report.inserted


@pytest.fixture(scope="module")
def committed_url(server_url: str) -> Iterator[str]:
    """A committed database of its own (the CLI opens its own connections): two streets."""
    name = f"blockdata_test_export_{os.getpid()}"
    url = new_database(server_url, name)
    migrate.upgrade(migrate.alembic_config(url))
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into streets (code, name, geom) values "
                "(:a, '甲', ST_Multi(ST_MakeEnvelope(116.30, 39.90, 116.32, 39.92, 4326))),"
                "(:b, '乙', ST_Multi(ST_MakeEnvelope(116.32, 39.90, 116.34, 39.92, 4326)))"
            ),
            {"a": COMMITTED_A, "b": COMMITTED_B},
        )
        add_user(conn, "cli-c", "commander", COMMITTED_A)
    engine.dispose()
    yield url
    drop_database(server_url, name)
