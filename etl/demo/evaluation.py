"""The demo district's evaluation inputs: for each street and each of the last twelve
periods of the demo scheme, the assessors' manual scores (with their audit rows), the tasks
handed down (most done on time, some late, a few still open or overdue), the events of the
per-event items kept as rows, and a third-party survey. Seeded: the same seed and `now`
give the same rows; nothing lies after `now`.

Loaded as the owner by `blockdata demo load`, after the scheme; a database that already
holds the scheme's scores is left as it is (the score audit is append-only: a reload never
doubles it).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from layers.evaluation.periods import period_of, period_window, previous_period
from layers.evaluation.scheme import Scheme
from layers.evaluation.tables import (
    evaluation_events,
    evaluation_score_audit,
    evaluation_scores,
    evaluation_tasks,
    survey_results,
)

PERIODS = 12
BY = "demo"
TASK_TITLES = {
    "city": ("背街小巷环境整治", "垃圾分类桶站规范", "老旧小区消防通道清理", "违法建设拆除"),
    "department": ("社区养老驿站检查", "群租房排查", "燃气安全入户", "共享单车停放治理"),
}
EVENT_NOTES = ("安全生产事故", "消防隐患未整改", "施工围挡倒塌")


@dataclass
class Loaded:
    periods: list[str] = field(default_factory=list)
    scores: int = 0
    tasks: int = 0
    events: int = 0
    survey: int = 0
    skipped: bool = False

    def lines(self) -> list[str]:
        if self.skipped:
            return ["考评录入已存在，未重复载入 evaluation inputs already loaded"]
        span = f"{self.periods[0]}…{self.periods[-1]}" if self.periods else "—"
        return [
            f"考评录入 {span}: 评分 {self.scores} 任务 {self.tasks} 事件 {self.events}"
            f" 调查 {self.survey} (evaluation inputs)"
        ]


def _at(day: dt.date, hour: int, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), zone)


def _labels(scheme: Scheme, today: dt.date) -> list[str]:
    labels = [period_of(scheme, today)]
    while len(labels) < PERIODS:
        labels.append(previous_period(scheme, labels[-1]))
    return labels[::-1]


def _survey_counts(rng: random.Random, scale: str, n: int, mood: float) -> dict[str, int]:
    """Counts of n answers, better with `mood` (0–1)."""
    keys = ("满意", "基本满意", "不满意") if scale == "three" else ("5", "4", "3", "2", "1")
    weights = (
        [0.55 + 0.3 * mood, 0.3, 0.15 - 0.1 * mood]
        if scale == "three"
        else [0.35 + 0.3 * mood, 0.3, 0.2 - 0.1 * mood, 0.1 - 0.05 * mood, 0.05 - 0.03 * mood]
    )
    counts = dict.fromkeys(keys, 0)
    for key in rng.choices(keys, weights, k=n):
        counts[key] += 1
    return counts


def load_inputs(
    conn: sa.Connection, scheme: Scheme, now: dt.datetime, zone: str, seed: int = 0
) -> Loaded:
    """Write the demo's inputs for the last PERIODS periods up to `now`'s (see the module)."""
    exists = conn.execute(
        sa.select(sa.func.count())
        .select_from(evaluation_scores)
        .where(evaluation_scores.c.scheme_code == scheme.code)
    ).scalar_one()
    if exists:
        return Loaded(skipped=True)
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    rng = random.Random(f"evaluation-{seed}")
    streets = list(conn.execute(sa.text("select code from streets order by code")).scalars())
    # A street's standing drifts a little from period to period around its own level.
    level = {s: rng.uniform(0.55, 0.95) for s in streets}
    loaded = Loaded(periods=_labels(scheme, today))
    scores: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    survey: list[dict[str, Any]] = []
    for label in loaded.periods:
        since, until = period_window(scheme, label)
        complete = until < today
        scored_at = min(_at(until, 17, tz), now)
        for street in streets:
            mood = min(1.0, max(0.0, level[street] + rng.uniform(-0.1, 0.1)))
            for item in scheme.items:
                if item.rule == "manual" and complete:
                    if item.aspect == "bonus":
                        points = rng.choice((0, 0, 0, 0, 1, 2, item.max, -1))
                    else:
                        points = round(item.max * (0.5 + 0.5 * mood) - rng.uniform(0, 1), 1)
                    points = max(-item.max if item.aspect == "bonus" else 0, min(points, item.max))
                    row = {
                        "scheme_code": scheme.code,
                        "period": label,
                        "item_code": item.code,
                        "street_code": street,
                        "owner_unit": item.owner,
                    }
                    evidence = f"{item.name}：{label} 月度检查记录"
                    scores.append(
                        {
                            **row,
                            "points": points,
                            "evidence": evidence,
                            "scored_by": BY,
                            "scored_at": scored_at,
                        }
                    )
                    audit.append(
                        {
                            **row,
                            "old_points": None,
                            "new_points": points,
                            "new_evidence": evidence,
                            "changed_by": BY,
                            "changed_at": scored_at,
                            "source": "cli",
                        }
                    )
                elif item.rule == "on_time":
                    kind = "city" if item.code.startswith("city") else "department"
                    for _ in range(rng.randint(2, 4)):
                        day = since + dt.timedelta(days=rng.randint(0, (until - since).days))
                        deadline = _at(day, 18, tz)
                        created = deadline - dt.timedelta(days=rng.randint(5, 20))
                        if created > now:
                            continue
                        draw = rng.random()
                        late = draw > 0.75 + 0.2 * mood
                        done: dt.datetime | None = (
                            deadline + dt.timedelta(hours=rng.randint(4, 96))
                            if late
                            else (deadline - dt.timedelta(hours=rng.randint(1, 72)))
                        )
                        if draw > 0.97 or (done is not None and done > now):
                            done = None  # still open (or overdue)
                        tasks.append(
                            {
                                "kind": kind,
                                "title": rng.choice(TASK_TITLES[kind]),
                                "owner_unit": item.owner,
                                "street_code": street,
                                "item_code": item.code,
                                "deadline": deadline,
                                "done_at": done,
                                "created_by": BY,
                                "created_at": created,
                            }
                        )
                elif item.rule == "per_event" and item.source is None:
                    for _ in range(rng.choices((0, 1, 2), (0.7, 0.22, 0.08))[0]):
                        day = since + dt.timedelta(days=rng.randint(0, (until - since).days))
                        occurred = _at(day, rng.randint(8, 20), tz)
                        if occurred > now:
                            continue
                        events.append(
                            {
                                "scheme_code": scheme.code,
                                "item_code": item.code,
                                "street_code": street,
                                "owner_unit": item.owner,
                                "occurred_at": occurred,
                                "note": rng.choice(EVENT_NOTES),
                                "recorded_by": BY,
                                "recorded_at": min(occurred + dt.timedelta(hours=2), now),
                            }
                        )
            if complete:
                for q in scheme.questions:
                    n = rng.randint(120, 300)
                    survey.append(
                        {
                            "period": label,
                            "street_code": street,
                            "question": q.code,
                            "scale": q.scale,
                            "sample_size": n,
                            "counts": _survey_counts(rng, q.scale, n, mood),
                            "source": "演示第三方调查",
                            "imported_by": BY,
                            "imported_at": scored_at,
                        }
                    )
    for table, rows in (
        (evaluation_scores, scores),
        (evaluation_score_audit, audit),
        (evaluation_tasks, tasks),
        (evaluation_events, events),
        (survey_results, survey),
    ):
        if rows:
            conn.execute(sa.insert(table), rows)
    loaded.scores, loaded.tasks, loaded.events, loaded.survey = (
        len(scores),
        len(tasks),
        len(events),
        len(survey),
    )
    return loaded
