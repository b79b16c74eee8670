"""A command run against a database that is not migrated, or not running, says what to do."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from app.cli import main
from tests.helpers import drop_database, new_database


@pytest.fixture
def empty_database(server_url: str) -> Iterator[str]:
    name = f"blockdata_empty_{os.getpid()}"
    url = new_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unmigrated_database_asks_for_db_upgrade(empty_database: str) -> None:
    result = CliRunner().invoke(main, ["users", "list"], env={"DATABASE_URL": empty_database})
    assert result.exit_code == 1
    assert "blockdata db upgrade" in result.output
    assert "Traceback" not in result.output


def test_unreachable_database_asks_for_db_start(server_url: str) -> None:
    url = make_url(server_url).set(host="127.0.0.1", port=_free_port())
    env = {"DATABASE_URL": url.render_as_string(hide_password=False)}
    result = CliRunner().invoke(main, ["users", "list"], env=env)
    assert result.exit_code == 1
    assert "blockdata db start" in result.output
    assert "Traceback" not in result.output
