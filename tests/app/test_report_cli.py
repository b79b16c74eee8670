"""`blockdata report monthly` end to end on a database of its own (the command commits
nothing but opens its own connection): the tiny district with the small scheme and
November's inputs of tests/evalcore_fixtures.py, whose figures are worked out by hand there
(street A: composite 71.84 at their clock NOW, 20 November 10:00, which the command is given;
street B: no valid callback, so no composite, ranked last)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from app.cli import main
from app.db import make_engine
from layers.evaluation.publish import publish
from layers.evaluation.scheme import load_scheme, save_scheme
from tests.etl.committed import committed_database
from tests.evalcore_fixtures import LABEL, NOW, A, B, scheme_body, seed

A_NAME, B_NAME = "测试001街道", "测试003街道"
# 0.4 × 58.5 + 0.4 × 83.5 + 0.2 × 75.2 (tests/layers/test_evaluation_compute.py)
A_COMPOSITE = "71.84"


@pytest.fixture(scope="module")
def own_url(server_url: str) -> Iterator[str]:
    with committed_database(server_url, "blockdata_report_cli") as url:
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                seed(conn)
                save_scheme(conn, scheme_body(), by="test")
        finally:
            engine.dispose()
        yield url


def _cli(url: str, *args: str) -> Any:
    return CliRunner().invoke(
        main,
        ["report", "monthly", "--now", "2026-11-20T10:00", *args],  # NOW, in Beijing
        env={"DATABASE_URL": url},
    )


def _text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True)
    return out.stdout


def test_the_pdf_of_a_live_period(own_url: str, tmp_path: Path) -> None:
    out = tmp_path / "通报.pdf"
    result = _cli(own_url, "--period", LABEL, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "已生成通报" in result.output
    assert out.read_bytes().startswith(b"%PDF-")
    subprocess.run(["pdftoppm", "-r", "20", "-png", str(out), str(tmp_path / "p")], check=True)
    assert list(tmp_path.glob("p-*.png"))
    text = _text(out)
    assert "未发布（实时计算）" in text
    ranking = [line for line in text.splitlines() if re.match(r"\s*[12]\s", line)]
    assert A_NAME in ranking[0] and A_COMPOSITE in ranking[0]
    assert B_NAME in ranking[1] and "—" in ranking[1]
    assert "生成时间：2026-11-20T10:00+08:00" in text


def test_the_xlsx_of_a_published_version(own_url: str, tmp_path: Path) -> None:
    engine = make_engine(own_url)
    try:
        with engine.begin() as conn:
            publish(conn, load_scheme(conn, "small"), LABEL, "district", NOW)
    finally:
        engine.dispose()
    out = tmp_path / "r.xlsx"
    result = _cli(
        own_url, "--period", LABEL, "--scheme", "small", "--version", "1", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    rows = list(load_workbook(out)["排名"].iter_rows(values_only=True))
    assert [(r[0], r[2], r[3], r[5]) for r in rows[1:]] == [
        (1, A, A_NAME, float(A_COMPOSITE)),
        (2, B, B_NAME, None),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", LABEL, "--version", "9"], "没有第 9 版发布"),
        (["--period", LABEL, "--scheme", "nosuch"], "没有考评方案 nosuch"),
        (["--period", "2026Q4"], "2026Q4"),
    ],
)
def test_what_is_not_there_is_refused_and_nothing_written(
    own_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "r.html"
    result = _cli(own_url, *args, "--out", str(out))
    assert result.exit_code != 0
    assert message in result.output
    assert list(tmp_path.iterdir()) == []
