from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from app.cli import main
from layers import LAYERS


def test_layers_lists_the_nine_layers() -> None:
    result = CliRunner().invoke(main, ["layers"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == [layer.name for layer in LAYERS]
    assert "诉求" in result.output and "街巷" in result.output


def test_layers_json_carries_chinese_labels() -> None:
    result = CliRunner().invoke(main, ["layers", "--json"])
    rows = {row["name"]: row for row in json.loads(result.output)}
    fields = {f["name"]: f["label"] for f in rows["service_requests"]["fields"]}
    assert fields["received_at"] == "受理时间"
    assert rows["service_requests"]["time_field"] == "received_at"


def test_db_url_prints_database_url_as_is() -> None:
    url = "postgresql://someone:secret@db.example:5432/city"
    result = CliRunner().invoke(main, ["db", "url"], env={"DATABASE_URL": url})
    assert result.exit_code == 0
    assert result.output.strip() == url


def test_bad_database_url_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["db", "url"], env={"DATABASE_URL": "mysql://x/y"})
    assert result.exit_code != 0
    assert "mysql" in result.output


def test_db_start_with_database_url_leaves_it_alone() -> None:
    result = CliRunner().invoke(
        main, ["db", "start"], env={"DATABASE_URL": "postgresql://a@127.0.0.1:1/b"}
    )
    assert result.exit_code == 0
    assert "not used" in result.output


def test_serve_refuses_an_external_database_without_a_web_login(tmp_path: Path) -> None:
    """Never serve as the owner: an external DATABASE_URL needs the web role's login that
    `db upgrade` makes, or BLOCKDATA_WEB_DATABASE_URL."""
    env = {"DATABASE_URL": "postgresql://owner@127.0.0.1:1/city", "BLOCKDATA_VAR": str(tmp_path)}
    result = CliRunner().invoke(main, ["serve", "--port", "1"], env=env)
    assert result.exit_code == 1
    assert "BLOCKDATA_WEB_DATABASE_URL" in result.output
    assert "blockdata db upgrade" in result.output
