"""A small evaluation for the tests of layers/evaluation and /api/evaluation: a scheme with
one item of each kind, and the inputs of November 2026 for the tiny district's two streets,
written into the database as the inputs' owners would. The expected figures are worked out
by hand in the tests that use them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from tests.clock import BEIJING
from tests.helpers import add_unit

A, B = "110102001", "110102003"
OWNER = "district-eval-owner"
LABEL = "2026-11"
NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=BEIJING)


def at(day: int, month: int = 11, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, 0, tzinfo=BEIJING)


def scheme_body(owner: str = OWNER) -> dict[str, Any]:
    def manual(code: str, top: float) -> dict[str, Any]:
        return {"code": code, "name": code, "owner": owner, "max": top, "rule": "manual"}

    return {
        "code": "small",
        "name": "测试考评",
        "period": {"kind": "month"},
        "parts": {"internal": 40, "survey": 40, "hotline": 20},
        "hotline": {
            "k": 0.9,
            "weights": {"response_rate": 0.1, "resolution_rate": 0.5, "satisfaction_rate": 0.4},
        },
        "internal": [
            {
                "code": "tasks",
                "max": 40,
                "items": [
                    {"code": "t1", "name": "任务", "owner": owner, "max": 40, "rule": "on_time"}
                ],
            },
            {
                "code": "law",
                "max": 25,
                "items": [
                    manual("l1", 15),
                    {
                        "code": "l2",
                        "name": "事故",
                        "owner": owner,
                        "max": 10,
                        "rule": "per_event",
                        "each": -2,
                        "cap": 6,
                    },
                ],
            },
            {"code": "party", "max": 15, "items": [manual("p1", 15)]},
            {"code": "work", "max": 20, "items": [manual("w1", 20)]},
            {
                "code": "bonus",
                "max": 5,
                "items": [
                    {
                        "code": "b1",
                        "name": "超期",
                        "owner": owner,
                        "max": 5,
                        "rule": "per_event",
                        "each": -0.5,
                        "cap": 5,
                        "source": "overdue_cases",
                    },
                    manual("b2", 3),
                ],
            },
        ],
        "survey": {
            "scale_values": {"满意": 100, "基本满意": 90, "不满意": 0},
            "questions": [
                {"code": "q1", "text": "总体", "weight": 0.5, "scale": "three"},
                {"code": "q2", "text": "环境", "weight": 0.5, "scale": "five"},
            ],
        },
        "classes": [
            {"name": "先进", "rank_at_most": 1},
            {"name": "进步", "rank_change_at_least": 1},
            {"name": "整改", "composite_below": 60},
        ],
    }


SCORES = {(A, "l1"): 12, (A, "p1"): 10, (A, "b2"): 2, (B, "l1"): 15, (B, "p1"): 15}
SCORES |= {(B, "w1"): 18, (B, "b2"): -2}
SURVEY = {
    (A, "q1"): ("three", {"满意": 6, "基本满意": 3, "不满意": 1}),
    (A, "q2"): ("five", {"5": 4, "4": 4, "3": 2}),
    (B, "q1"): ("three", {"满意": 2, "基本满意": 2, "不满意": 6}),
    (B, "q2"): ("five", {"1": 5, "2": 5}),
}
# (day, street, received, resolved, callbacks, contacted, solved, satisfied, basic_satisfied)
HOTLINE = [
    (dt.date(2026, 11, 3), A, 12, 8, 6, 5, 4, 4, 1),
    (dt.date(2026, 11, 30), A, 8, 6, 4, 4, 3, 2, 1),
    (dt.date(2026, 10, 31), A, 50, 50, 50, 50, 50, 50, 0),  # October: not in the window
    (dt.date(2026, 11, 12), B, 5, 1, 0, 0, 0, 0, 0),  # no valid callback: V = 0
]


def score(conn: sa.Connection, street: str, item: str, points: float, label: str = LABEL) -> None:
    conn.execute(
        sa.text(
            "insert into evaluation_scores (scheme_code, period, item_code, street_code,"
            " owner_unit, points, evidence, scored_by, scored_at) values ('small', :p, :i, :s,"
            " :o, :v, '记录', 'assessor', :t) on conflict (scheme_code, period, item_code,"
            " street_code) do update set points = excluded.points"
        ),
        {"p": label, "i": item, "s": street, "o": OWNER, "v": points, "t": NOW},
    )


def _task(conn: sa.Connection, street: str, item: str, due: dt.datetime, done: Any) -> None:
    conn.execute(
        sa.text(
            "insert into evaluation_tasks (kind, title, owner_unit, street_code, item_code,"
            " deadline, done_at) values ('city', '背街小巷整治', :o, :s, :i, :d, :done)"
        ),
        {"o": OWNER, "s": street, "i": item, "d": due, "done": done},
    )


def _event(conn: sa.Connection, street: str, item: str, when: dt.datetime, code: str) -> None:
    conn.execute(
        sa.text(
            "insert into evaluation_events (scheme_code, item_code, street_code, owner_unit,"
            " occurred_at) values (:c, :i, :s, :o, :t)"
        ),
        {"c": code, "i": item, "s": street, "o": OWNER, "t": when},
    )


def _case(
    conn: sa.Connection, street: str, due: dt.datetime, resolved: dt.datetime | None, n: int
) -> None:
    source = conn.execute(
        sa.text(
            "insert into enforcement_cases (source, source_id, opened_at, street_code, geom)"
            " values ('eval-test', :s, :t, :street, ST_SetSRID(ST_MakePoint(116.31, 39.91),"
            " 4326)) returning id"
        ),
        {"s": f"{street}-{n}", "t": due - dt.timedelta(days=3), "street": street},
    ).scalar_one()
    conn.execute(
        sa.text(
            "insert into cases (kind, enforcement_case_id, street_code, state, received_at,"
            " dispatched_at, due_at, resolved_at) values ('enforcement_case', :e, :s, :state,"
            " :r, :r, :d, :done)"
        ),
        {
            "e": source,
            "s": street,
            "state": "accepted" if resolved is None else "resolved",
            "r": due - dt.timedelta(days=3),
            "d": due,
            "done": resolved,
        },
    )


def hotline_row(conn: sa.Connection, row: tuple[Any, ...]) -> None:
    conn.execute(
        sa.text(
            "insert into request_street_daily (day, street_code, received, resolved, callbacks,"
            " contacted, solved, satisfied, basic_satisfied) values"
            " (:d, :s, :r, :res, :v, :c, :so, :sa, :b)"
        ),
        dict(zip(("d", "s", "r", "res", "v", "c", "so", "sa", "b"), row, strict=True)),
    )


def survey(conn: sa.Connection, street: str, question: str, scale: str, counts: Any) -> None:
    conn.execute(
        sa.text(
            "insert into survey_results (period, street_code, question, scale, sample_size,"
            " counts, source, imported_at) values (:p, :s, :q, :scale, :n, :c, '第三方', :t)"
        ),
        {
            "p": LABEL,
            "s": street,
            "q": question,
            "scale": scale,
            "n": 400,
            "c": json.dumps(counts, ensure_ascii=False),
            "t": NOW,
        },
    )


def seed(conn: sa.Connection) -> None:
    """November's inputs of streets A and B (the tiny district must be loaded)."""
    add_unit(conn, OWNER)
    for (street, item), points in SCORES.items():
        score(conn, street, item, points)
    score(conn, A, "w1", 20, label="2026-10")  # another period's: not November's
    # A's tasks due in November: 3 done by the deadline, 1 late; one due in December.
    for day, done in ((5, at(4)), (10, at(10, hour=11)), (15, at(1)), (20, at(21))):
        _task(conn, A, "t1", at(day), done)
    _task(conn, A, "t1", at(2, month=12), None)
    # A's accidents (l2): two in November; one in October; one of another scheme.
    for when, code in ((at(2), "small"), (at(29), "small"), (at(31, 10), "small")):
        _event(conn, A, "l2", when, code)
    _event(conn, A, "l2", at(3), "other")
    # A's cases: 2 resolved late, 1 open past due; on time, December, and due after NOW.
    n = 0
    for due, resolved in (
        (at(5), at(6)),
        (at(7), at(8)),
        (at(10), None),
        (at(10), at(9)),
        (at(3, month=12), None),
        (at(28), None),
    ):
        n += 1
        _case(conn, A, due, resolved, n)
    for _ in range(11):  # B: 11 open past due
        n += 1
        _case(conn, B, at(2), None, n)
    for (street, question), (scale, counts) in SURVEY.items():
        survey(conn, street, question, scale, counts)
    for row in HOTLINE:
        hotline_row(conn, row)
