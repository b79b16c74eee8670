"""`blockdata evaluation`: load a scheme (versions), list and show it, compute a period's
ranking and publish it, as the district's operator runs them (each commits: a database of
their own with the tiny district)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from app.cli import main
from app.db import make_engine
from etl.units import build_units
from layers.evaluation.scheme import DEMO_SCHEME
from tests.etl.committed import committed_database
from tests.evalcore_fixtures import A, B, scheme_body, seed


@pytest.fixture(scope="module")
def own_url(server_url: str) -> Iterator[str]:
    with committed_database(server_url, "blockdata_evaluation_cli") as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            build_units(conn)
            seed(conn)
        engine.dispose()
        yield url


def _cli(url: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["evaluation", *args], env={"DATABASE_URL": url})


def _count(url: str, table: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())
    finally:
        engine.dispose()


def test_schemes_load_list_show(own_url: str, tmp_path: Path) -> None:
    first = _cli(own_url, "scheme", "load", str(DEMO_SCHEME))
    assert first.exit_code == 0, first.output
    assert "已保存考评方案 xicheng 第 1 版" in first.output
    again = _cli(own_url, "scheme", "load", str(DEMO_SCHEME))
    assert "未变，仍为第 1 版" in again.output
    doc = yaml.safe_load(DEMO_SCHEME.read_text(encoding="utf-8"))
    doc["parts"] = {"internal": 30, "survey": 50, "hotline": 20}
    changed = tmp_path / "xicheng.yaml"
    changed.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    assert "第 2 版" in _cli(own_url, "scheme", "load", str(changed)).output
    doc["parts"]["survey"] = 60
    changed.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    refused = _cli(own_url, "scheme", "load", str(changed))
    assert refused.exit_code == 1
    assert "三部分权重之和应为 100" in refused.output and "= 110" in refused.output
    listed = _cli(own_url, "scheme", "list")
    assert "xicheng" in listed.output and "第 2 版（共 2 版）" in listed.output
    shown = _cli(own_url, "scheme", "show", "xicheng", "--version", "1")
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output.split("\n", 1)[1])
    assert body["parts"] == {"internal": 40, "survey": 40, "hotline": 20}
    assert _cli(own_url, "scheme", "show", "nothing").exit_code == 1


def test_compute_and_publish(own_url: str, tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(scheme_body(), allow_unicode=True), encoding="utf-8")
    assert _cli(own_url, "scheme", "load", str(path)).exit_code == 0
    as_of = "2026-11-20T10:00:00+08:00"
    answer = _cli(own_url, "compute", "--period", "2026-11", "--scheme", "small", "--as-of", as_of)
    assert answer.exit_code == 0, answer.output
    lines = answer.output.splitlines()
    assert "2026-11：2026-11-01 至 2026-11-30 实时（未发布）" in lines[0]
    assert lines[2].split()[:4] == ["排名", "街道", "综合得分", "内部评价"]
    # A: 0.4 × 58.5 + 0.4 × 83.5 + 0.2 × 75.2 = 71.84 (tests/layers/test_evaluation_compute.py)
    assert lines[3].split()[:4] == ["1", "测试001街道", "71.84", "58.50"]
    assert lines[4].split()[:3] == ["2", "测试003街道", "—"]  # V = 0
    assert "未评分的考评项（按 0 分计）missing scores: w1" in answer.output
    as_json = _cli(own_url, "compute", "--period", "2026-11", "--scheme", "small", "--json")
    result = json.loads(as_json.output)
    assert [s["code"] for s in result["streets"]] == [A, B]
    bad = _cli(own_url, "compute", "--period", "2026-13", "--scheme", "small")
    assert bad.exit_code == 1 and "月份应为 01–12" in bad.output
    assert _count(own_url, "evaluation_publications") == 0
    published = _cli(own_url, "publish", "--period", "2026-11", "--scheme", "small")
    assert published.exit_code == 0, published.output
    assert "已发布 small 2026-11 第 1 版" in published.output
    assert "已发布第 1 版" in published.output
    again = _cli(own_url, "publish", "--period", "2026-11", "--scheme", "small")
    assert "第 2 版" in again.output
    assert _count(own_url, "evaluation_publications") == 2
    assert _count(own_url, "evaluation_rankings") == 4
