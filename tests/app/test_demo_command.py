"""`blockdata demo`: the demo is generated and loaded on the app's clock (`Settings.clock`).

`demo load` commits, so it runs against a database of its own, dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from app import migrate
from app.cli import main
from app.config import Settings, from_env
from app.db import make_engine
from etl.demo import extracts as ex
from tests.clock import BEIJING, FrozenClock
from tests.helpers import drop_database, new_database

NOW = dt.datetime(2026, 12, 7, 10, 0, tzinfo=BEIJING)  # the app's clock: a Monday morning
SIZE = ["--seed", "11", "--requests", "4000", "--cases", "150", "--targets", "30"]
SIZE += ["--projects", "30"]


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's settings with the clock standing at NOW."""

    def settings() -> Settings:
        return from_env().with_(clock=FrozenClock(NOW))

    monkeypatch.setattr("app.commands.demo.from_env", settings)


@pytest.fixture
def own_database(server_url: str) -> Iterator[str]:
    name = f"blockdata_demo_cli_{os.getpid()}"
    url = new_database(server_url, name)
    try:
        migrate.upgrade(migrate.alembic_config(url))
        yield url
    finally:
        drop_database(server_url, name)


def test_demo_load_takes_the_later_extract_at_the_apps_now(
    frozen: None, own_database: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": own_database, "BLOCKDATA_VAR": str(tmp_path), "BLOCKDATA_TZ": ""}
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "load", *SIZE, "--dir", str(out)], env=env)
    assert result.exit_code == 0, result.output
    # The accounts it prints: a department user per kind of unit, with its unit, and the
    # whistles the demo blew.
    lines = result.output.splitlines()
    for name, unit, unit_name in (
        ("unit-110102001-city", "110102001-city", "城市管理部"),
        ("unit-110102001-enforcement", "110102001-enforcement", "城管执法队"),
        ("unit-district-fire", "district-fire", "区消防救援支队"),
    ):
        line = next(x for x in lines if x.split()[:1] == [name])
        assert line.split()[1:3] == ["department", unit] and unit_name in line, line
    assert any("one for each of the 15 streets" in x for x in lines), result.output
    assert any(x.startswith("吹哨报到 whistles:") for x in lines), result.output
    assert "考评方案 xicheng 第 1 版已保存 evaluation scheme" in lines, result.output
    assert any(x.startswith("考评录入 2026-01…2026-12:") for x in lines), result.output
    # The last two complete months are published (the clock: 7 December 2026).
    assert "考评 2026-10 已发布 evaluation published" in lines, result.output
    assert "考评 2026-11 已发布 evaluation published" in lines, result.output

    manifest = json.loads((out / ex.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["end"] == "2026-12-07"
    assert manifest["update_time"] == "2026-12-07 10:00:00"
    engine = make_engine(own_database)
    try:
        with engine.connect() as conn:
            future = conn.execute(
                sa.text("select count(*) from etl_rejects where reason = 'future_time'")
            ).scalar_one()
            assert future == 0
            latest = conn.execute(
                sa.text(
                    "select greatest(max(received_at), max(dispatched_at), max(responded_at), "
                    "max(resolved_at)) from service_requests"
                )
            ).scalar_one()
            assert latest <= NOW
            assert latest >= NOW - dt.timedelta(hours=10)  # today's requests are there
            update = conn.execute(
                sa.text("select inserted + updated from etl_runs where file_name = :f"),
                {"f": ex.UPDATE},
            ).scalar_one()
            assert update > 0
            schemes = conn.execute(sa.text("select code, version from evaluation_schemes"))
            assert schemes.all() == [("xicheng", 1)]  # its owners are the demo's departments
            # Its inputs (etl/demo/evaluation.py): twelve months of each street, none later.
            periods, streets, latest = conn.execute(
                sa.text(
                    "select count(distinct period), count(distinct street_code),"
                    " greatest((select max(done_at) from evaluation_tasks),"
                    " (select max(scored_at) from evaluation_scores)) from evaluation_scores"
                )
            ).one()
            assert (periods, streets) == (11, 15) and latest <= NOW  # the running month: none
            published = conn.execute(
                sa.text(
                    "select period, version, (select count(*) from evaluation_rankings r"
                    " where r.publication_id = p.id) from evaluation_publications p order by 1"
                )
            ).all()
            assert published == [("2026-10", 1, 15), ("2026-11", 1, 15)]
    finally:
        engine.dispose()


def test_demo_generate_for_today_stops_at_the_apps_now(frozen: None, tmp_path: Path) -> None:
    args = ["demo", "generate", "--out", str(tmp_path / "a"), *SIZE]
    today = CliRunner().invoke(main, [*args, "--end", "2026-12-07"], env={"BLOCKDATA_TZ": ""})
    assert today.exit_code == 0, today.output
    manifest = json.loads((tmp_path / "a" / ex.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["update_time"] == "2026-12-07 10:00:00"

    args = ["demo", "generate", "--out", str(tmp_path / "b"), *SIZE, "--end", "2026-12-06"]
    past = CliRunner().invoke(main, args, env={"BLOCKDATA_TZ": ""})
    assert past.exit_code == 0, past.output
    manifest = json.loads((tmp_path / "b" / ex.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["update_time"] == "2026-12-07 00:00:00"  # a past day: the whole of it

    args = ["demo", "generate", "--out", str(tmp_path / "c"), *SIZE, "--end", "2026-12-06"]
    chosen = CliRunner().invoke(main, [*args, "--now", "2026-12-06 15:30"])
    assert chosen.exit_code == 0, chosen.output
    manifest = json.loads((tmp_path / "c" / ex.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["update_time"] == "2026-12-06 15:30:00"

    early = CliRunner().invoke(main, [*args, "--now", "2026-12-05 23:00"])
    assert early.exit_code == 2
    assert "--now" in early.output
