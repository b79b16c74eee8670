"""The demo's evaluation inputs (etl/demo/evaluation.py) on the tiny district with the demo
scheme: every manual item scored for each complete period of the last twelve, an audit row
per score, tasks some late, survey counts that add up, nothing after `now`, the same rows
for the same seed, a second load skipped; the evaluation computes from them."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from etl.demo.evaluation import load_inputs
from layers.evaluation.compute import evaluate
from layers.evaluation.scheme import DEMO_SCHEME, read_scheme_file, save_scheme
from tests.clock import BEIJING
from tests.district import Cell
from tests.helpers import add_unit

NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=BEIJING)
MANUAL = 8  # the demo scheme's manual items (etl/config/evaluation/xicheng.yaml)


def _rows(conn: sa.Connection) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            sa.text(
                "select 's', period, item_code, street_code, points::text from evaluation_scores"
                " union all select 't', street_code, title, deadline::text,"
                " coalesce(done_at::text, '') from evaluation_tasks"
                " union all select 'v', period, street_code, question, counts::text"
                " from survey_results order by 1, 2, 3, 4, 5"
            )
        )
    ]


def test_the_demo_inputs(connection: sa.Connection, district: list[Cell]) -> None:
    body = read_scheme_file(DEMO_SCHEME)
    for aspect in body["internal"]:
        for item in aspect["items"]:
            add_unit(connection, item["owner"])
    scheme, _ = save_scheme(connection, body, by="test")
    streets = connection.execute(sa.text("select count(*) from streets")).scalar_one()
    with connection.begin_nested() as first:
        loaded = load_inputs(connection, scheme, NOW, "Asia/Shanghai", seed=7)
        rows = _rows(connection)
        first.rollback()
    loaded = load_inputs(connection, scheme, NOW, "Asia/Shanghai", seed=7)
    assert _rows(connection) == rows  # the same seed, the same rows
    # 2025-12 … 2026-11: eleven complete months scored, November still running.
    assert loaded.periods[0] == "2025-12" and loaded.periods[-1] == "2026-11"
    assert loaded.scores == 11 * streets * MANUAL
    audit = connection.execute(sa.text("select count(*) from evaluation_score_audit")).scalar()
    assert audit == loaded.scores
    late, open_, total = connection.execute(
        sa.text(
            "select count(*) filter (where done_at > deadline),"
            " count(*) filter (where done_at is null), count(*) from evaluation_tasks"
        )
    ).one()
    assert total == loaded.tasks and late > 0 and late < total / 2
    assert open_ > 0
    latest = connection.execute(
        sa.text(
            "select max(t) from (select max(done_at) t from evaluation_tasks union all"
            " select max(created_at) from evaluation_tasks union all"
            " select max(scored_at) from evaluation_scores union all"
            " select max(occurred_at) from evaluation_events union all"
            " select max(imported_at) from survey_results) x"
        )
    ).scalar_one()
    assert latest <= NOW
    sums = connection.execute(
        sa.text(
            "select bool_and((select sum(value::int) from jsonb_each_text(counts)) = sample_size)"
            " from survey_results"
        )
    ).scalar_one()
    assert sums is True
    assert load_inputs(connection, scheme, NOW, "Asia/Shanghai", seed=7).skipped
    result = evaluate(connection, scheme, "2026-10")
    assert len(result["streets"]) == streets
    assert all(s["survey"] is not None for s in result["streets"])
    assert all(s["missing"] == [] for s in result["streets"])
