"""Fixtures: a test database per session (per xdist worker) on a real PostGIS; tests roll back.

The server is the one `make test` starts (the managed cluster) or DATABASE_URL. A test
database is created beside the main one, migrated to head once, and dropped at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from app import create_app, migrate
from app.config import WEB_ROLE, from_env, resolve_database_url, with_user
from app.db import make_engine
from tests.helpers import add_user, login, new_database

pytest_plugins = [
    "pytester",
    "tests.noskip",
    "tests.plugins.district",
    "tests.plugins.ogc",
    "tests.plugins.browser",
    "tests.plugins.hand",
]


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server_url() -> str:
    """The libpq URL of the server under test (its main database)."""
    return resolve_database_url(from_env())


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh database for this session, migrated to head."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"blockdata_test_{worker}_{os.getpid()}"
    url = new_database(server_url, name)
    migrate.upgrade(migrate.alembic_config(url))
    migrate.ensure_web_role(url, from_env())  # as `blockdata db upgrade` does
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="session", autouse=True)
def _web_role_ready(database_url: str) -> None:
    """The web role has its login before any test of this process runs: a module's own
    committed database (tests/plugins/ogc.py, …) serves its app as `blockdata_web`, and an
    xdist worker may start with such a module before any test asks for `database_url`."""


@pytest.fixture(scope="session")
def web_url(database_url: str) -> str:
    """The test database as the map server's login role (`blockdata_web`)."""
    from app.config import web_role_password

    password = web_role_password(from_env())
    assert password is not None, "ensure_web_role made no password"
    return with_user(database_url, WEB_ROLE, password)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            yield conn
        finally:
            tx.rollback()


@pytest.fixture
def app(connection: sa.Connection) -> Flask:
    return create_app({"TESTING": True, "DB_CONNECTION": connection, "WTF_CSRF_ENABLED": False})


@pytest.fixture
def anonymous(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def client(app: Flask, connection: sa.Connection) -> FlaskClient:
    """A test client logged in as a district user (sees everything)."""
    return login(app.test_client(), add_user(connection, "test-district"))
