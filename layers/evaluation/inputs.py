"""What a period's evaluation reads, gathered set-based: one statement per kind of input.

- the streets (`street_directory`: every street, every caller);
- the manual scores of the scheme and period (`evaluation_scores`);
- per on_time item and street, the tasks due in the window and those done by their deadline
  (`evaluation_tasks` whose `item_code` is the item's);
- per per_event item and street, its events in the window (`evaluation_events`), or for an
  item with `source: overdue_cases` the street's cases due in the window and resolved late
  or still open past due (layers/cases);
- the survey's answers of the period per street and question (`survey_results`);
- the hotline's counts over the window, summed from the daily street aggregates
  (`request_street_daily`: a few hundred rows, not the requests);
- the ranks of the previous period: its latest publication's, else computed live.

The window's dates are local days of the zone the aggregates are keyed on
(`request_aggregates_zone`, the district's): a task, event or case is in the window when its
time falls on one of them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from etl.aggregates import aggregates_zone, days_bounds
from layers.aggregates import STREET_MEASURES
from layers.cases.tables import cases
from layers.evaluation.scheme import Scheme
from layers.evaluation.tables import (
    evaluation_events,
    evaluation_publications,
    evaluation_rankings,
    evaluation_scores,
    evaluation_tasks,
    survey_results,
)
from layers.queries.scorecards import street_counts

Key = tuple[str, str]  # (item code, street code)

# Every street's code and name, in every zone (migration 0012): a view, not in the metadata.
street_directory = sa.table("street_directory", sa.column("code", sa.String), sa.column("name"))


@dataclass
class Inputs:
    """Everything one period's result is computed from (compute.compute is pure over it)."""

    streets: dict[str, str]  # code → name, in code order
    scores: dict[Key, float] = field(default_factory=dict)
    tasks: dict[Key, tuple[int, int]] = field(default_factory=dict)  # (on time, due)
    events: dict[Key, int] = field(default_factory=dict)
    survey: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    hotline: dict[str, dict[str, int]] = field(default_factory=dict)
    previous_ranks: dict[str, int] = field(default_factory=dict)
    previous: dict[str, Any] | None = None  # {"label", "source": published|live, "version"}

    def of_street(self, code: str) -> dict[str, Any]:
        """The inputs one street's result used, as JSON (stored with a publication)."""

        def mine(values: dict[Key, Any]) -> dict[str, Any]:
            return {i: v for (i, s), v in sorted(values.items()) if s == code}

        return {
            "scores": mine(self.scores),
            "tasks": {i: list(v) for i, v in mine(self.tasks).items()},
            "events": mine(self.events),
            "survey": self.survey.get(code, {}),
            "hotline": self.hotline.get(code, dict.fromkeys(STREET_MEASURES, 0)),
            "previous_rank": self.previous_ranks.get(code),
        }


def _streets(conn: sa.Connection) -> dict[str, str]:
    d = street_directory
    rows = conn.execute(sa.select(d.c.code, d.c.name).order_by(d.c.code))
    return {code: name for code, name in rows}


def _scores(conn: sa.Connection, scheme: Scheme, label: str) -> dict[Key, float]:
    manual = [i.code for i in scheme.items if i.rule == "manual"]
    t = evaluation_scores
    rows = conn.execute(
        sa.select(t.c.item_code, t.c.street_code, t.c.points).where(
            t.c.scheme_code == scheme.code, t.c.period == label, t.c.item_code.in_(manual)
        )
    )
    return {(i, s): float(p) for i, s, p in rows}


def _tasks(
    conn: sa.Connection, scheme: Scheme, lo: dt.datetime, hi: dt.datetime
) -> dict[Key, tuple[int, int]]:
    on_time = [i.code for i in scheme.items if i.rule == "on_time"]
    t = evaluation_tasks
    done = sa.func.count().filter(t.c.done_at <= t.c.deadline)
    rows = conn.execute(
        sa.select(t.c.item_code, t.c.street_code, done, sa.func.count())
        .where(t.c.item_code.in_(on_time), t.c.deadline >= lo, t.c.deadline < hi)
        .group_by(t.c.item_code, t.c.street_code)
    )
    return {(i, s): (int(d), int(n)) for i, s, d, n in rows}


def _events(
    conn: sa.Connection, scheme: Scheme, lo: dt.datetime, hi: dt.datetime
) -> dict[Key, int]:
    codes = [i.code for i in scheme.items if i.rule == "per_event" and i.source is None]
    t = evaluation_events
    rows = conn.execute(
        sa.select(t.c.item_code, t.c.street_code, sa.func.count())
        .where(
            t.c.scheme_code == scheme.code,
            t.c.item_code.in_(codes),
            t.c.occurred_at >= lo,
            t.c.occurred_at < hi,
        )
        .group_by(t.c.item_code, t.c.street_code)
    )
    return {(i, s): int(n) for i, s, n in rows}


def overdue_cases(
    conn: sa.Connection, lo: dt.datetime, hi: dt.datetime, now: dt.datetime | None
) -> dict[str, int]:
    """Per street, its cases due in [lo, hi) resolved late (超期办结) or still open past due
    (超期) — open and past due at `now`, or by the window's end when no `now` is given."""
    c = cases
    cutoff = hi if now is None else min(hi, now)
    late = (c.c.resolved_at > c.c.due_at) | (c.c.resolved_at.is_(None) & (c.c.due_at < cutoff))
    rows = conn.execute(
        sa.select(c.c.street_code, sa.func.count())
        .where(c.c.street_code.is_not(None), c.c.due_at >= lo, c.c.due_at < hi, late)
        .group_by(c.c.street_code)
    )
    return {s: int(n) for s, n in rows}


def _survey(conn: sa.Connection, label: str) -> dict[str, dict[str, dict[str, Any]]]:
    t = survey_results
    rows = conn.execute(
        sa.select(t.c.street_code, t.c.question, t.c.scale, t.c.sample_size, t.c.counts).where(
            t.c.period == label
        )
    )
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for street, question, scale, size, counts in rows:
        out.setdefault(street, {})[question] = {
            "scale": scale,
            "sample_size": int(size),
            "counts": {str(k): int(v) for k, v in counts.items()},
        }
    return out


def gather(
    conn: sa.Connection,
    scheme: Scheme,
    label: str,
    since: dt.date,
    until: dt.date,
    now: dt.datetime | None = None,
) -> Inputs:
    """The inputs of `label` (window since … until) for every street; no previous ranks."""
    lo, hi = days_bounds(since, until, aggregates_zone(conn))
    inputs = Inputs(
        streets=_streets(conn),
        scores=_scores(conn, scheme, label),
        tasks=_tasks(conn, scheme, lo, hi),
        events=_events(conn, scheme, lo, hi),
        survey=_survey(conn, label),
        hotline=street_counts(conn, since, until),
    )
    sourced = [i.code for i in scheme.items if i.source == "overdue_cases"]
    if sourced:
        for street, n in overdue_cases(conn, lo, hi, now).items():
            for code in sourced:
                inputs.events[(code, street)] = n
    return inputs


def published_ranks(
    conn: sa.Connection, scheme_code: str, label: str
) -> tuple[int, dict[str, int]] | None:
    """The latest publication of `label` (its version) and the ranks of the streets it gave
    a composite; None when the period was never published."""
    p, r = evaluation_publications, evaluation_rankings
    latest = conn.execute(
        sa.select(p.c.id, p.c.version)
        .where(p.c.scheme_code == scheme_code, p.c.period == label)
        .order_by(p.c.version.desc())
        .limit(1)
    ).first()
    if latest is None:
        return None
    rows = conn.execute(
        sa.select(r.c.street_code, r.c.rank).where(
            r.c.publication_id == latest.id, r.c.composite.is_not(None)
        )
    )
    return int(latest.version), {s: int(n) for s, n in rows}
