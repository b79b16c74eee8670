"""`blockdata scores template|import`, `tasks import`, `survey import` on a committed
database (the CLI opens its own connections): the template round-trips, a bad file writes
nothing, and a commander (or another unit's assessor) cannot score from the command line."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from openpyxl import load_workbook

from app.cli import main
from app.db import make_engine
from tests.evalinputs_fixtures import OTHER, OWNER, PERIOD, add_scheme
from tests.helpers import add_user

A, B = "110102001", "110102003"  # the committed database's two streets (tests/plugins/ogc.py)


@pytest.fixture(scope="module")
def url(committed_url: str) -> Iterator[str]:
    engine = make_engine(committed_url)
    with engine.begin() as conn:
        add_scheme(conn)
        add_user(conn, "cli-owner", "assessor", unit=OWNER)
        add_user(conn, "cli-other", "assessor", unit=OTHER)
        add_user(conn, "cli-district", "district")
    yield committed_url
    with engine.begin() as conn:
        conn.execute(sa.text("delete from evaluation_scores"))
        conn.execute(sa.text("delete from evaluation_tasks"))
        conn.execute(sa.text("delete from survey_results"))
    engine.dispose()


def _run(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"DATABASE_URL": url})
    return result.exit_code, result.output


def _scores(url: str) -> list[tuple[str, str, float]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select item_code, street_code, points::float from evaluation_scores order by 1, 2"
            )
        )
        out = [(r[0], r[1], r[2]) for r in rows]
    engine.dispose()
    return out


def test_the_cli_template_round_trips_and_refuses_others(url: str, tmp_path: Path) -> None:
    out = tmp_path / "t.xlsx"
    code, text = _run(
        url, "scores", "template", "--unit", OWNER, "--period", PERIOD, "--out", str(out)
    )
    assert code == 0, text
    book = load_workbook(io.BytesIO(out.read_bytes()))
    for row in book["评分"].iter_rows(min_row=2):
        if row[2].value == "law_a":
            row[5].value, row[6].value = 7.5, "命令行导入"
    book.save(out)
    for user in ("cli-c", "cli-other", "cli-district"):  # cli-c: a commander
        code, text = _run(url, "scores", "import", str(out), "--as", user, "--period", PERIOD)
        assert code == 1 and "无权" in text, (user, text)
        assert _scores(url) == []
    code, text = _run(url, "scores", "import", str(out), "--as", "cli-owner", "--period", PERIOD)
    assert code == 0, text
    assert _scores(url) == [("law_a", A, 7.5), ("law_a", B, 7.5)]


def test_a_bad_survey_file_writes_nothing(url: str, tmp_path: Path) -> None:
    bad = tmp_path / "s.csv"
    bad.write_text(
        "街道编码,题目编码,样本量,满意,基本满意,不满意\n"
        f"{A},overall,10,5,5,0\n"
        f"{B},overall,10,5,4,0\n",
        encoding="utf-8",
    )
    code, text = _run(url, "survey", "import", str(bad), "--as", "cli-owner", "--period", PERIOD)
    assert code == 1 and "无权" in text
    code, text = _run(url, "survey", "import", str(bad), "--as", "cli-district", "--period", PERIOD)
    assert code == 1 and "第 3 行" in text and "不等于样本量" in text
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from survey_results")).scalar() == 0
    engine.dispose()


def test_tasks_import_from_the_cli(url: str, tmp_path: Path) -> None:
    file = tmp_path / "t.csv"
    file.write_text(
        f"类型,标题,街道编码,截止时间\n市里下达,垃圾分类,{A},2026-11-30\n", encoding="utf-8"
    )
    code, text = _run(url, "tasks", "import", str(file), "--as", "cli-c")
    assert code == 1 and "无权" in text
    code, text = _run(url, "tasks", "import", str(file), "--as", "cli-owner")
    assert code == 0 and "1 项" in text, text
