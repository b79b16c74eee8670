"""Fixtures: one test database per session on a real PostGIS, each test rolled back.

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
from app.config import from_env, resolve_database_url
from app.db import make_engine

pytest_plugins = ["pytester", "tests.noskip"]


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
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    url = _with_database(server_url, name)
    migrate.upgrade(migrate.alembic_config(url))
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


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


def add_user(
    conn: sa.Connection, name: str, role: str = "district", street: str | None = None
) -> int:
    """A user in the test transaction (password: 'secret-password')."""
    from app.auth import hash_password
    from layers.accounts import users

    return int(
        conn.execute(
            sa.insert(users)
            .values(
                name=name,
                role=role,
                street_code=street,
                password_hash=hash_password("secret-password"),
            )
            .returning(users.c.id)
        ).scalar_one()
    )


def login(client: FlaskClient, user_id: int) -> FlaskClient:
    with client.session_transaction() as sess:
        sess["uid"] = user_id
    return client


@pytest.fixture
def anonymous(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def client(app: Flask, connection: sa.Connection) -> FlaskClient:
    """A test client logged in as a district user (sees everything)."""
    return login(app.test_client(), add_user(connection, "test-district"))
