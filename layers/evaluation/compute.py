"""A period's evaluation of every street: gather the inputs (layers.evaluation.inputs), then
compute the Result with a pure function (`compute`), so a test can feed it inputs by hand.

Per street (DESIGN.md "Evaluation", docs/evaluation.md "Scheme"):

- an item's points by its rule — manual: the assessor's points clamped to [0, max] (bonus
  aspect: [−max, max]); none is 0 and the item is listed in `missing`. on_time: max × done
  by the deadline ÷ due in the window; no task due: max. per_event: in aspects 1–4,
  max − min(|each| × n, cap); in the bonus aspect, clamp(each × n, −cap, cap);
- aspects 1–4: the sum of their items; bonus: the sum clamped to [−max, max];
  internal = clamp(aspects 1–4 + bonus, 0, 100);
- survey (0–100): Σ_q w_q · x̄_q over the scheme's questions, where an answer scores its
  scale value (三级: 满意 / 基本满意 / 不满意 as the scheme says; five-point v: (v − 1)/4 × 100)
  and x̄_q is the mean over the n_q answers; its 95 % margin Σ_q w_q · 1.96 · s_q / √n_q,
  s_q the answers' sample standard deviation (n_q − 1; 0 when n_q = 1). A question without
  answers: no survey score (None);
- hotline: the three rates over the window's valid callbacks with the scheme's k and
  weights, × 100 (etl.aggregates.three_rates); V = 0: None;
- composite = Σ_parts weight × part / 100 over the parts (rounded to 2 decimals, as shown)
  of non-zero weight; any of them None: None ("—", ranked after every street with one);
- rank: competition ranking by composite then hotline volume (scorecards.rank);
  rank_change = previous period's rank − rank (None when the street had no composite then, or
  has none now: a place by volume alone is no rank to compare);
- class: the first of the scheme's rules the street meets (all of a rule's conditions);
  none without a composite.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from typing import Any

import sqlalchemy as sa

from etl.aggregates import three_rates
from layers.evaluation.inputs import Inputs, gather, published_ranks
from layers.evaluation.periods import period_window, previous_period
from layers.evaluation.scheme import BONUS, PARTS, Item, Scheme, check_parts
from layers.queries.scorecards import RATE_DECIMALS, SCORE_DECIMALS, rank

Z95 = 1.96
DETAIL = (
    "internal",
    "survey",
    "survey_margin",
    "survey_sample",
    "hotline",
    "aspects",
    "items",
    "rates",
    "missing",
)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _r(value: float | None, digits: int = SCORE_DECIMALS) -> float | None:
    return None if value is None else round(value + 0.0, digits)


def item_points(i: Item, street: str, inputs: Inputs) -> tuple[float, str | None, bool]:
    """(points, basis, missing) of one item for one street."""
    key = (i.code, street)
    if i.rule == "manual":
        points = inputs.scores.get(key)
        if points is None:
            return 0.0, "未评分", True
        low = -i.max if i.aspect == BONUS else 0.0
        return _clamp(points, low, i.max), None, False
    if i.rule == "on_time":
        done, due = inputs.tasks.get(key, (0, 0))
        return (i.max if due == 0 else i.max * done / due), f"{done}/{due}", False
    assert i.each is not None and i.cap is not None
    n = inputs.events.get(key, 0)
    if i.aspect == BONUS:
        points = _clamp(i.each * n, -i.cap, i.cap)
    else:
        points = i.max - min(abs(i.each) * n, i.cap)
    return points, f"{n} 次", False


def _values(scale: str, scale_values: dict[str, float]) -> dict[str, float]:
    if scale == "three":
        return dict(scale_values)
    return {str(v): (v - 1) / 4 * 100 for v in range(1, 6)}


def survey_score(
    scheme: Scheme, answers: dict[str, dict[str, Any]]
) -> tuple[float | None, float | None, int | None]:
    """(score, margin, sample size) of one street's answers; (None, None, size) when a
    question of the scheme has no answer."""
    sizes = [a["sample_size"] for a in answers.values()]
    sample = max(sizes) if sizes else None
    score = margin = 0.0
    for q in scheme.questions:
        row = answers.get(q.code)
        if row is None:
            return None, None, sample
        values = _values(row["scale"], scheme.scale_values)
        counts = {k: c for k, c in row["counts"].items() if k in values and c > 0}
        n = sum(counts.values())
        if n == 0:
            return None, None, sample
        mean = sum(values[k] * c for k, c in counts.items()) / n
        var = sum(c * (values[k] - mean) ** 2 for k, c in counts.items()) / (n - 1) if n > 1 else 0
        score += q.weight * mean
        margin += q.weight * Z95 * math.sqrt(var) / math.sqrt(n)
    return score, margin, sample


def composite_of(parts: dict[str, float], scores: dict[str, float | None]) -> float | None:
    """Σ weight × score / 100 over the parts of non-zero weight; None if one is None."""
    total = 0.0
    for name, weight in parts.items():
        if weight == 0:
            continue
        score = scores.get(name)
        if score is None:
            return None
        total += weight * score / 100
    return round(total, SCORE_DECIMALS)


def _class(rules: list[dict[str, Any]], street: dict[str, Any]) -> str | None:
    composite, position, change = street["composite"], street["rank"], street["rank_change"]
    if composite is None:
        return None
    tests = {
        "rank_at_most": lambda b: position <= b,
        "rank_at_least": lambda b: position >= b,
        "rank_change_at_least": lambda b: change is not None and change >= b,
        "composite_below": lambda b: composite < b,
        "composite_at_least": lambda b: composite >= b,
    }
    for rule in rules:
        if all(tests[k](b) for k, b in rule.items() if k != "name"):
            return str(rule["name"])
    return None


def _rank(streets: list[dict[str, Any]], rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rank (composite, then volume), rank change from `previous_rank`, class; sorted."""
    volume = {s["code"]: (s.get("rates") or {}).get("requests") or 0 for s in streets}
    ranks = rank({s["code"]: (s["composite"], volume[s["code"]]) for s in streets})
    for s in streets:
        s["rank"] = ranks[s["code"]]
        before = s.pop("previous_rank", None)
        # A place without a composite (by volume only) is no rank to compare.
        none = before is None or s["composite"] is None
        s["rank_change"] = None if none else before - s["rank"]
        s["class"] = _class(rules, s)
    return sorted(streets, key=lambda s: (s["rank"], s["code"]))


def _street(scheme: Scheme, code: str, name: str, inputs: Inputs) -> dict[str, Any]:
    items: dict[str, dict[str, Any]] = {}
    aspects: dict[str, float] = {}
    missing: list[str] = []
    for aspect in scheme.aspects:
        total = 0.0
        for i in aspect.items:
            points, basis, lacking = item_points(i, code, inputs)
            items[i.code] = {"points": _r(points), "rule": i.rule, "basis": basis}
            if lacking:
                missing.append(i.code)
            total += points
        if aspect.code == BONUS:
            total = _clamp(total, -aspect.max, aspect.max)
        aspects[aspect.code] = total
    internal = _clamp(sum(aspects.values()), 0, 100)
    survey, margin, sample = survey_score(scheme, inputs.survey.get(code, {}))
    counts = inputs.hotline.get(code) or {"received": 0, "callbacks": 0}
    rates = three_rates(
        {
            k: counts.get(k, 0)
            for k in ("callbacks", "contacted", "solved", "satisfied", "basic_satisfied")
        },
        scheme.rates,
    )
    hotline = rates["composite"]
    shown = {"internal": _r(internal), "survey": _r(survey), "hotline": _r(hotline)}
    return {
        "code": code,
        "name": name,
        "composite": composite_of(scheme.parts, shown),
        **shown,
        "survey_margin": _r(margin),
        "survey_sample": sample,
        "aspects": {k: _r(v) for k, v in aspects.items()},
        "items": items,
        "rates": {
            "requests": counts.get("received", 0),
            "callbacks": counts.get("callbacks", 0),
            **{
                k: _r(v, SCORE_DECIMALS if k == "composite" else RATE_DECIMALS)
                for k, v in rates.items()
            },
        },
        "missing": missing,
        "previous_rank": inputs.previous_ranks.get(code),
    }


def compute(
    scheme: Scheme, label: str, since: dt.date, until: dt.date, inputs: Inputs
) -> dict[str, Any]:
    """The Result of `label` for every street of `inputs` (pure: no database)."""
    rules = scheme.body["classes"]
    streets = [_street(scheme, code, name, inputs) for code, name in inputs.streets.items()]
    return {
        "scheme": {"code": scheme.code, "version": scheme.version, "name": scheme.name},
        "period": {"label": label, "since": since.isoformat(), "until": until.isoformat()},
        "parts": dict(scheme.parts),
        "classes": rules,
        "previous": inputs.previous,
        "published": None,
        "streets": _rank(streets, rules),
    }


def _previous(
    conn: sa.Connection, scheme: Scheme, label: str, now: dt.datetime | None
) -> tuple[dict[str, Any], dict[str, int]]:
    """The previous period's ranks of the streets it scored: its latest publication's, else
    computed live now."""
    before = previous_period(scheme, label)
    found = published_ranks(conn, scheme.code, before)
    if found is not None:
        version, ranks = found
        return {"label": before, "source": "published", "version": version}, ranks
    since, until = period_window(scheme, before)
    live = compute(scheme, before, since, until, gather(conn, scheme, before, since, until, now))
    ranks = {s["code"]: s["rank"] for s in live["streets"] if s["composite"] is not None}
    return {"label": before, "source": "live", "version": None}, ranks


def evaluate_with_inputs(
    conn: sa.Connection, scheme: Scheme, label: str, now: dt.datetime | None = None
) -> tuple[dict[str, Any], Inputs]:
    """The live Result of `label` and the inputs it was computed from."""
    since, until = period_window(scheme, label)
    inputs = gather(conn, scheme, label, since, until, now)
    inputs.previous, inputs.previous_ranks = _previous(conn, scheme, label, now)
    return compute(scheme, label, since, until, inputs), inputs


def evaluate(
    conn: sa.Connection, scheme: Scheme, label: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The live (unpublished) Result of `label` under `scheme`, read through the caller's
    row-level security (the district's zone reads every input). `now`: the caller's clock,
    for the cases still open past due (without it: open at the window's end)."""
    return evaluate_with_inputs(conn, scheme, label, now)[0]


def what_if(result: dict[str, Any], parts: dict[str, float]) -> dict[str, Any]:
    """`result` re-weighted with other part weights: each street's composite from its own
    part scores, re-ranked (rank change against the same previous ranks), re-classed.
    SchemeError for weights that are unknown or do not add up to 100; ValueError for a
    result without the streets' detail (a commander's published view)."""
    weights = check_parts(parts)
    out = copy.deepcopy(result)
    out["parts"] = weights
    out["what_if"] = True
    for s in out["streets"]:
        if not all(k in s for k in PARTS):
            raise ValueError(f"{s['code']}: 没有分项得分，无法重新加权 (no detail to re-weight)")
        s["composite"] = composite_of(weights, {k: s[k] for k in PARTS})
        change = s.get("rank_change")
        s["previous_rank"] = None if change is None else s["rank"] + change
    out["streets"] = _rank(out["streets"], out.get("classes") or [])
    return out
