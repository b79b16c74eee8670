"""A period's evaluation, recomputed by hand: the items by their rules, the aspects, internal,
the survey with its margin, the three rates (and V = 0), the composite, rank, rank change and
class; the inputs gathered from the database; what-if weights. The figures in the comments
are worked out by hand from tests/evalcore_fixtures.py, never read from the code."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
import sqlalchemy as sa

from layers.evaluation.compute import compute, evaluate, evaluate_with_inputs, what_if
from layers.evaluation.inputs import Inputs
from layers.evaluation.scheme import SchemeError, parse_scheme
from tests.clock import HOURS, FrozenClock
from tests.district import Cell
from tests.evalcore_fixtures import LABEL, NOW, A, B, scheme_body, seed

C = "110102099"
SCHEME = parse_scheme(scheme_body(), version=1)
NOV = (dt.date(2026, 11, 1), dt.date(2026, 11, 30))


def _se(counts: dict[float, int]) -> float:
    """The standard error of the mean of answers {value: count} (sample variance, n − 1)."""
    n = sum(counts.values())
    mean = sum(v * c for v, c in counts.items()) / n
    return math.sqrt(sum(c * (v - mean) ** 2 for v, c in counts.items()) / (n - 1) / n)


# A: q1 (three) 满意 6 基本满意 3 不满意 1 → mean (600 + 270) / 10 = 87;
#    q2 (five) 5:4 4:4 3:2 → 100, 75, 50 → mean (400 + 300 + 100) / 10 = 80.
A_SURVEY = 0.5 * 87 + 0.5 * 80  # 83.5
A_MARGIN = 0.5 * 1.96 * _se({100: 6, 90: 3, 0: 1}) + 0.5 * 1.96 * _se({100: 4, 75: 4, 50: 2})
# A's hotline: V = 10, contacted 9, solved 7, 满意 6, 基本满意 2 (k 0.9)
A_HOTLINE = 100 * (0.1 * 9 / 10 + 0.5 * 7 / 10 + 0.4 * (6 + 0.9 * 2) / 10)  # 75.2
# A: tasks 40 × 3/4 = 30; law 12 + (10 − min(2 × 2, 6)) = 18; party 10; work 0 (missing);
#    bonus −0.5 × 3 overdue + 2 = 0.5 → internal 58.5.
A_INTERNAL = 30 + 18 + 10 + 0 + 0.5
A_COMPOSITE = 0.4 * A_INTERNAL + 0.4 * A_SURVEY + 0.2 * A_HOTLINE  # 71.84
# B: tasks 40 (none due); law 15 + 10; party 15; work 18; bonus clamp(clamp(−0.5 × 11, −5, 5)
#    − 2, −5, 5) = −5 → internal 93. Survey (0.5 × 38 + 0.5 × 12.5) = 25.25. V = 0.
B_SURVEY = 0.5 * (2 * 100 + 2 * 90) / 10 + 0.5 * (5 * 0 + 5 * 25) / 10


def _street(result: dict[str, Any], code: str) -> dict[str, Any]:
    return next(s for s in result["streets"] if s["code"] == code)


@pytest.fixture
def seeded(connection: sa.Connection, district: list[Cell]) -> sa.Connection:
    seed(connection)
    return connection


def test_november_by_hand(seeded: sa.Connection) -> None:
    result = evaluate(seeded, SCHEME, LABEL, now=NOW)
    assert result["period"] == {"label": "2026-11", "since": "2026-11-01", "until": "2026-11-30"}
    assert result["scheme"] == {"code": "small", "version": 1, "name": "测试考评"}
    assert [s["code"] for s in result["streets"]] == [A, B]
    a, b = _street(result, A), _street(result, B)
    assert a["items"]["t1"] == {"points": 30.0, "rule": "on_time", "basis": "3/4"}
    assert a["items"]["l2"] == {"points": 6.0, "rule": "per_event", "basis": "2 次"}
    assert a["items"]["b1"] == {"points": -1.5, "rule": "per_event", "basis": "3 次"}
    assert a["items"]["w1"] == {"points": 0.0, "rule": "manual", "basis": "未评分"}
    assert a["aspects"] == {"tasks": 30, "law": 18, "party": 10, "work": 0, "bonus": 0.5}
    assert a["missing"] == ["w1"]
    assert a["internal"] == pytest.approx(A_INTERNAL)
    assert a["survey"] == pytest.approx(A_SURVEY)
    assert a["survey_margin"] == pytest.approx(round(A_MARGIN, 2))
    assert a["survey_sample"] == 400
    assert a["hotline"] == pytest.approx(A_HOTLINE)
    assert a["rates"] == {
        "requests": 20,
        "callbacks": 10,
        "response_rate": 0.9,
        "resolution_rate": 0.7,
        "satisfaction_rate": 0.78,
        "composite": pytest.approx(A_HOTLINE),
    }
    assert a["composite"] == pytest.approx(round(A_COMPOSITE, 2))
    assert b["items"]["t1"]["points"] == 40 and b["items"]["t1"]["basis"] == "0/0"
    assert b["aspects"]["bonus"] == -5
    assert b["internal"] == 93
    assert b["survey"] == pytest.approx(B_SURVEY)
    assert b["hotline"] is None and b["rates"]["response_rate"] is None
    assert b["composite"] is None  # V = 0: "—", ranked last
    assert (a["rank"], b["rank"]) == (1, 2)
    # October had no survey: no composite then, no change of rank now.
    assert result["previous"] == {"label": "2026-10", "source": "live", "version": None}
    assert a["rank_change"] is None and b["rank_change"] is None
    assert (a["class"], b["class"]) == ("先进", None)


def test_without_a_clock_every_open_case_due_in_the_window_counts(seeded: sa.Connection) -> None:
    """A's case due on the 28th, open, is past due at the window's end but not on the 20th."""
    a = _street(evaluate(seeded, SCHEME, LABEL), A)
    assert a["items"]["b1"] == {"points": -2.0, "rule": "per_event", "basis": "4 次"}


def test_a_published_previous_period_gives_the_change(seeded: sa.Connection) -> None:
    pid = seeded.execute(
        sa.text(
            "insert into evaluation_publications (scheme_code, scheme_version, scheme_body,"
            " period, since, until, version, published_at) values ('small', 1, '{}', '2026-10',"
            " '2026-10-01', '2026-10-31', 1, now()) returning id"
        )
    ).scalar_one()
    for street, position in ((A, 2), (B, 1)):
        seeded.execute(
            sa.text(
                "insert into evaluation_rankings (publication_id, street_code, composite, rank)"
                " values (:p, :s, 70, :r)"
            ),
            {"p": pid, "s": street, "r": position},
        )
    result, inputs = evaluate_with_inputs(seeded, SCHEME, LABEL, now=NOW)
    assert result["previous"] == {"label": "2026-10", "source": "published", "version": 1}
    a, b = _street(result, A), _street(result, B)
    assert b["composite"] is None  # V = 0: placed by volume only, so no change of rank
    assert (a["rank_change"], b["rank_change"]) == (2 - 1, None)
    assert inputs.of_street(A)["previous_rank"] == 2
    assert inputs.of_street(A)["tasks"] == {"t1": [3, 4]}
    assert inputs.of_street(B)["events"] == {"b1": 11}


def _inputs(**streets: dict[str, Any]) -> Inputs:
    inputs = Inputs(streets={code: f"街道{code}" for code in streets})
    for code, parts in streets.items():
        for item, points in parts.get("scores", {}).items():
            inputs.scores[(item, code)] = points
        if "survey" in parts:
            inputs.survey[code] = parts["survey"]
        inputs.hotline[code] = parts["hotline"]
        if "previous_rank" in parts:
            inputs.previous_ranks[code] = parts["previous_rank"]
    return inputs


def _answers(q1: str, q2: str) -> dict[str, Any]:
    return {
        "q1": {"scale": "three", "sample_size": 10, "counts": {q1: 10}},
        "q2": {"scale": "five", "sample_size": 10, "counts": {q2: 10}},
    }


def _counts(received: int, callbacks: int, contacted: int, solved: int, satisfied: int) -> Any:
    return {
        "received": received,
        "resolved": 0,
        "callbacks": callbacks,
        "contacted": contacted,
        "solved": solved,
        "satisfied": satisfied,
        "basic_satisfied": 0,
    }


def test_streets_without_a_composite_rank_last_by_volume() -> None:
    """V = 0 (B) and a missing survey (C) both give "—", after A, ordered by volume."""
    inputs = _inputs(
        **{
            A: {"survey": _answers("满意", "5"), "hotline": _counts(3, 2, 2, 2, 2)},
            B: {"survey": _answers("满意", "5"), "hotline": _counts(5, 0, 0, 0, 0)},
            C: {"hotline": _counts(30, 10, 10, 10, 10), "previous_rank": 1},
        }
    )
    result = compute(SCHEME, LABEL, *NOV, inputs)
    assert [(s["code"], s["rank"], s["composite"]) for s in result["streets"]] == [
        (A, 1, pytest.approx(0.4 * 50 + 0.4 * 100 + 0.2 * 100)),  # internal: t1 40 + l2 10
        (C, 2, None),
        (B, 3, None),
    ]
    c = _street(result, C)
    assert c["survey"] is None and c["survey_sample"] is None and c["hotline"] == 100
    assert c["rank_change"] is None and c["class"] is None  # no composite: no change of rank


# D leads under 40/40/20; E, better liked by the residents, under 20/60/20.
# D: internal 40 + 25 + 15 + 10 = 90, survey 0.5 × 90 + 0.5 × 50 = 70, hotline 80
# E: internal 40 + 25 + 5 + 0 = 70, survey 0.5 × 100 + 0.5 × 75 = 87.5, hotline 80
# hotline: V 20, contacted 20, solved 16, 满意 15 → 100 × (0.1 + 0.5 × 0.8 + 0.4 × 0.75) = 80
D, E = "110102011", "110102012"
WHAT_IF = {
    D: {
        "scores": {"l1": 15, "p1": 15, "w1": 10},
        "survey": _answers("基本满意", "3"),
        "hotline": _counts(40, 20, 20, 16, 15),
        "previous_rank": 2,
    },
    E: {
        "scores": {"l1": 15, "p1": 5, "w1": 0},
        "survey": _answers("满意", "4"),
        "hotline": _counts(40, 20, 20, 16, 15),
        "previous_rank": 1,
    },
}


def test_raising_the_surveys_weight_changes_who_leads() -> None:
    current = compute(SCHEME, LABEL, *NOV, _inputs(**WHAT_IF))
    d_now, e_now = 0.4 * 90 + 0.4 * 70 + 0.2 * 80, 0.4 * 70 + 0.4 * 87.5 + 0.2 * 80  # 80, 79
    assert [(s["code"], s["composite"]) for s in current["streets"]] == [
        (D, pytest.approx(d_now)),
        (E, pytest.approx(e_now)),
    ]
    assert [s["class"] for s in current["streets"]] == ["先进", None]  # E fell: change −1
    changed = what_if(current, {"internal": 20, "survey": 60, "hotline": 20})
    d_if, e_if = 0.2 * 90 + 0.6 * 70 + 0.2 * 80, 0.2 * 70 + 0.6 * 87.5 + 0.2 * 80  # 76, 82.5
    assert [(s["code"], s["rank"], s["composite"]) for s in changed["streets"]] == [
        (E, 1, pytest.approx(e_if)),
        (D, 2, pytest.approx(d_if)),
    ]
    assert [s["rank_change"] for s in changed["streets"]] == [1 - 1, 2 - 2]
    assert changed["parts"] == {"internal": 20, "survey": 60, "hotline": 20}
    assert current["streets"][0]["code"] == D  # the current result is left as it was
    same = what_if(current, current["parts"])
    assert [(s["code"], s["composite"]) for s in same["streets"]] == [
        (s["code"], s["composite"]) for s in current["streets"]
    ]


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ({"internal": 50, "survey": 60, "hotline": 20}, "之和应为 100.*= 130"),
        ({"internal": 100, "external": 0}, "未知的键 external"),
        ({"internal": -10, "survey": 90, "hotline": 20}, "不能小于 0"),
    ],
)
def test_bad_what_if_weights_are_refused(parts: dict[str, Any], message: str) -> None:
    current = compute(SCHEME, LABEL, *NOV, _inputs(**WHAT_IF))
    with pytest.raises(SchemeError, match=message):
        what_if(current, parts)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(HOURS["noon-beijing"])  # 2026-11-18: tests/plugins/hand.py's months


def test_the_hotline_part_from_an_extract_through_the_etl(
    connection: sa.Connection, hand: Any
) -> None:
    """The hand-made extract (tests/plugins/hand.py) loaded by the production ETL, its
    aggregates built: October, street A — V = 5 (L6's callback is not valid), contacted 4,
    solved 3, 满意 2, 基本满意 2 → 100 × (0.1 × 0.8 + 0.5 × 0.6 + 0.4 × (2 + 1.8) / 5) = 68.4;
    street B: two requests, no callback (V = 0). November: A 1 of 2 on each rate → 50 (its
    three recent requests have no callback yet), B 100."""
    october = evaluate(connection, SCHEME, "2026-10")
    a, b = _street(october, A), _street(october, B)
    assert (a["rates"]["requests"], a["rates"]["callbacks"]) == (6, 5)
    assert a["hotline"] == pytest.approx(68.4)
    assert (b["rates"]["requests"], b["hotline"], b["composite"]) == (2, None, None)
    november = evaluate(connection, SCHEME, "2026-11")
    a, b = _street(november, A), _street(november, B)
    assert (a["rates"]["requests"], a["hotline"]) == (5, 50)
    assert (b["rates"]["requests"], b["hotline"]) == (1, 100)
