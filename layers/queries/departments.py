"""Departments rated by the streets (考评: the streets' say on the units that answer them).

Per unit (承办单位) over a window of local days of the district's time zone, from Step 7's
cases and whistles:

- whistles (吹哨报到), by meeting time in the window: summoned, arrived, late (arrived after
  the meeting time), the median and mean arrival delay in minutes (an early arrival counts 0;
  a unit that never arrived has no delay and counts as not on time), and the streets'
  ratings (满意 / 基本满意 / 不满意) with the rating rate (满意 + k·基本满意) ÷ rated, k = 0.9;
- cases, by dispatch time in the window: `dispatched` — the cases whose (last) dispatch in the
  window named the unit as main unit, and the cases it returned (退单) in the window — and of
  them `returned` (return rate = returned ÷ dispatched); `assisted`, the cases it was named
  to assist; on-time resolution over the cases it holds that have a due time: resolved by
  their due time ÷ those whose fate is known (resolved, or — given `now` — open past due);
  a case still open before its due time is not judged yet.

The score is a weighted sum of four components, each 0–100: `rating` (rating rate × 100),
`arrival` (summoned units that arrived on time, × 100), `on_time` (on-time share × 100) and
`returns` ((1 − return rate) × 100). A component without data (no rating, no whistle, no
judged case, no case) is None, and the score is the weighted mean of the components present
(Σ wᵢ·cᵢ ÷ Σ wᵢ over them); none present → None. Units are ranked by score (2 decimals)
descending, then by volume (cases + whistles) descending, competition style (1, 2, 2, 4),
those without a score last (`scorecards.rank`).

Row-level security applies as is: the caller's scoped connection decides which cases and
whistles count — the district's whole, or a commander's street (how the units served it).
Three statements whatever the number of units.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from etl.aggregates import days_bounds
from layers.cases.machine import RATINGS
from layers.queries.params import ParamError
from layers.queries.scorecards import rank

RATING_K = 0.9  # 基本满意 counts 0.9 of 满意, as the hotline's satisfaction rate (RatesConfig)
# The score's components and their default weights (overridable by `weights`).
WEIGHTS: dict[str, float] = {"rating": 40.0, "arrival": 20.0, "on_time": 30.0, "returns": 10.0}
COMPONENTS = {
    "rating": "街道评价",
    "arrival": "按时报到",
    "on_time": "按时办结",
    "returns": "少退单",
}
RATE_DECIMALS = 4
SCORE_DECIMALS = 2
MINUTE_DECIMALS = 1


def window_instants(
    since: dt.date, until: dt.date, zone_tz: str
) -> tuple[dt.datetime, dt.datetime]:
    """The local days [since, until] of `zone_tz` as the instants [start, end)."""
    if since > until:
        raise ParamError(f"起始日期晚于结束日期 since is after until: {since} > {until}", "since")
    return days_bounds(since, until, zone_tz)


def check_weights(weights: Mapping[str, Any] | None) -> dict[str, float]:
    """The score's weights: the defaults, each overridden by `weights` (a number ≥ 0); 400
    for an unknown component, a bad number, or weights that add up to 0."""
    chosen = dict(WEIGHTS)
    for name, value in (weights or {}).items():
        if name not in WEIGHTS:
            raise ParamError(
                f"未知评分项 unknown score component {name!r}; 可用 one of {', '.join(WEIGHTS)}",
                "weights",
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ParamError(
                f"权重须为非负数 weight of {name} must be a number ≥ 0: {value!r}", "weights"
            )
        chosen[name] = float(value)
    if sum(chosen.values()) <= 0:
        raise ParamError("权重之和须大于 0 the weights must add up to more than 0", "weights")
    return chosen


# One scan of the window's cases, one row per (case, unit named: main first), and the
# returns of the window; a returned case the unit holds again is counted once.
CASES = sa.text(
    """
    with held as (
        select t.unit,
               count(*) filter (where t.i = 1) as held,
               count(*) filter (
                   where t.i = 1 and c.due_at is not null and c.resolved_at <= c.due_at
               ) as on_time,
               count(*) filter (
                   where t.i = 1 and c.due_at is not null
                     and (c.resolved_at is not null or c.due_at < :now)
               ) as judged,
               count(*) filter (where t.i > 1) as assisted
          from cases c
         cross join lateral unnest(array[c.main_unit]::varchar[] || c.assisting_units)
               with ordinality as t(unit, i)
         where c.dispatched_at >= :lo and c.dispatched_at < :hi and t.unit is not null
         group by t.unit
    ), returned as (
        select h.unit_code as unit, count(distinct h.case_id) as returned,
               count(distinct h.case_id) filter (
                   where exists (
                       select 1 from cases c
                        where c.id = h.case_id and c.main_unit = h.unit_code
                          and c.dispatched_at >= :lo and c.dispatched_at < :hi)
               ) as held_again
          from case_history h
         where h.action = 'return' and h.at >= :lo and h.at < :hi and h.unit_code is not null
         group by h.unit_code
    )
    select coalesce(h.unit, r.unit) as unit,
           coalesce(h.held, 0) + coalesce(r.returned, 0) - coalesce(r.held_again, 0)
               as dispatched,
           coalesce(r.returned, 0) as returned,
           coalesce(h.on_time, 0) as on_time, coalesce(h.judged, 0) as judged,
           coalesce(h.assisted, 0) as assisted
      from held h full join returned r on r.unit = h.unit
    """
).bindparams(sa.bindparam("now", type_=sa.DateTime(timezone=True)))

WHISTLES = sa.text(
    """
    select u.unit_code as unit,
           count(*) as summoned,
           count(u.arrived_at) as arrived,
           count(*) filter (where u.arrived_at > w.meet_at) as late,
           percentile_cont(0.5) within group (order by d.minutes) as median_delay_minutes,
           avg(d.minutes) as mean_delay_minutes,
           count(*) filter (where u.rating = :r0) as r0,
           count(*) filter (where u.rating = :r1) as r1,
           count(*) filter (where u.rating = :r2) as r2
      from (select id, meet_at from whistles where meet_at >= :lo and meet_at < :hi
             offset 0) w  -- the window's whistles first, then their units by key
      join whistle_units u on u.whistle_id = w.id
     cross join lateral (
           -- greatest() skips nulls: a unit that never arrived has no delay, not 0
           select case when u.arrived_at is not null
                       then greatest(extract(epoch from u.arrived_at - w.meet_at) / 60.0, 0)
                  end as minutes
     ) d
     group by u.unit_code
    """
)


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _score(components: dict[str, float | None], weights: dict[str, float]) -> float | None:
    present = {k: v for k, v in components.items() if v is not None and weights[k] > 0}
    total = sum(weights[k] for k in present)
    if total == 0:
        return None
    return sum(weights[k] * v for k, v in present.items()) / total


def _title(unit: Any) -> str | None:
    """A unit as a table names it: a street's unit with its street's name first."""
    if unit is None:
        return None
    return f"{unit.street_name} {unit.name}" if unit.street_name else str(unit.name)


def department_ratings(
    conn: sa.Connection,
    since: dt.date,
    until: dt.date,
    zone_tz: str,
    weights: Mapping[str, Any] | None = None,
    *,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Every unit with a case dispatched (or returned) or a whistle met in the local days
    [since, until] of `zone_tz`, with its figures, components, score and rank; by rank, then
    code. `now` (the caller's clock): open cases past due by then count as not on time;
    without it only resolved cases are judged."""
    lo, hi = window_instants(since, until, zone_tz)
    chosen = check_weights(weights)
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    window = {"lo": lo, "hi": hi}
    by_unit: dict[str, dict[str, Any]] = {}
    for row in conn.execute(CASES, {**window, "now": now}).mappings():
        by_unit[row["unit"]] = {k: int(row[k]) for k in row if k != "unit"}
    ratings = {f"r{i}": r for i, r in enumerate(RATINGS)}
    whistled = {r["unit"]: r for r in conn.execute(WHISTLES, {**window, **ratings}).mappings()}
    codes = sorted(set(by_unit) | set(whistled))
    names = {
        r.code: r
        for r in conn.execute(
            sa.text(
                "select u.code, u.name, u.kind, u.street_code, d.name as street_name"
                " from units u left join street_directory d on d.code = u.street_code"
                " where u.code = any(:codes)"
            ),
            {"codes": codes},
        )
    }
    out: list[dict[str, Any]] = []
    for code in codes:
        c = by_unit.get(code, dict.fromkeys(("dispatched", "returned", "on_time", "judged"), 0))
        c.setdefault("assisted", 0)
        w = whistled.get(code)
        summoned = int(w["summoned"]) if w else 0
        arrived = int(w["arrived"]) if w else 0
        late = int(w["late"]) if w else 0
        counts = {r: int(w[f"r{i}"]) if w else 0 for i, r in enumerate(RATINGS)}
        rated = sum(counts.values())
        rating_rate = _share(counts["满意"], rated)
        if rating_rate is not None:
            rating_rate = (counts["满意"] + RATING_K * counts["基本满意"]) / rated
        on_time_share = _share(c["on_time"], c["judged"])
        return_rate = _share(c["returned"], c["dispatched"])
        arrival_share = _share(arrived - late, summoned)
        components = {
            "rating": None if rating_rate is None else 100 * rating_rate,
            "arrival": None if arrival_share is None else 100 * arrival_share,
            "on_time": None if on_time_share is None else 100 * on_time_share,
            "returns": None if return_rate is None else 100 * (1 - return_rate),
        }
        unit = names.get(code)
        out.append(
            {
                "code": code,
                "name": unit.name if unit else None,
                "kind": unit.kind if unit else None,
                "street_code": unit.street_code if unit else None,
                # Every street has its own 城市管理部: the street's name says whose.
                "title": _title(unit),
                "whistles": {
                    "summoned": summoned,
                    "arrived": arrived,
                    "late": late,
                    "median_delay_minutes": _round(
                        w["median_delay_minutes"] if w else None, MINUTE_DECIMALS
                    ),
                    "mean_delay_minutes": _round(
                        w["mean_delay_minutes"] if w else None, MINUTE_DECIMALS
                    ),
                },
                "ratings": counts,
                "rated": rated,
                "rating_rate": _round(rating_rate, RATE_DECIMALS),
                "cases": {
                    "dispatched": c["dispatched"],
                    "assisted": c["assisted"],
                    "returned": c["returned"],
                    "judged": c["judged"],
                    "on_time": c["on_time"],
                },
                "on_time_rate": _round(on_time_share, RATE_DECIMALS),
                "return_rate": _round(return_rate, RATE_DECIMALS),
                "components": {k: _round(v, SCORE_DECIMALS) for k, v in components.items()},
                "score": _round(_score(components, chosen), SCORE_DECIMALS),
            }
        )
    ranks = rank(
        {u["code"]: (u["score"], u["cases"]["dispatched"] + u["whistles"]["summoned"]) for u in out}
    )
    for u in out:
        u["rank"] = ranks[u["code"]]
    out.sort(key=lambda u: (u["rank"], u["code"]))
    return out
