"""Benchmark: a period's full evaluation (考评) and a year of twelve, beside the obvious
alternative for the hotline's part.

    python bench/bench_evaluation.py [--requests 1000000] [--rounds 3] [--out docs/benchmarks.md]

Builds a database `blockdata_bench_evaluation`: the demo district's boundaries and units,
N service requests received over 2026-01-01 … 2026-12-06 with their callbacks (valid,
contacted, solved, 满意 / 基本满意 / 不满意), a case for each (due three days after
dispatch, some resolved late, some still open), the request aggregates built as a load
builds them, and a year of evaluation inputs under the demo scheme (etl/config/evaluation/
xicheng.yaml): every manual item scored for every street and month, tasks, events and a
survey per street and month. Then, in one run:

1. `evaluate` of 2026-11 (the inputs, the previous period's ranks computed live, the
   result): median of --rounds;
2. a year: `evaluate` of the twelve months of 2026, one after the other;
3. the obvious alternative: the same with the hotline's counts summed from
   `service_requests` over the window instead of the daily street aggregates (the results
   are checked equal);
4. `publish` of 2026-11 (rolled back).

Targets (issue 13): a period < 5 s, a year of twelve < 30 s.
Results replace the `bench_evaluation` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import load_district, machine, write_section  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import migrate  # noqa: E402
from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from etl.aggregates import RESOLVED, refresh_request_aggregates  # noqa: E402
from etl.units import build_units  # noqa: E402
from layers.aggregates import STREET_MEASURES  # noqa: E402
from layers.evaluation import inputs as evaluation_inputs  # noqa: E402
from layers.evaluation.compute import evaluate  # noqa: E402
from layers.evaluation.periods import periods_of_year  # noqa: E402
from layers.evaluation.publish import publish  # noqa: E402
from layers.evaluation.scheme import DEMO_SCHEME, Scheme, read_scheme_file, save_scheme  # noqa: E402

DB = "blockdata_bench_evaluation"
ZONE = "Asia/Shanghai"
NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))

# N requests over the grids, received over 2026-01-01 … 2026-12-06 (Beijing); 80 % with a
# valid callback: contacted 90 %, solved 70 %, 满意 60 % / 基本满意 25 % / 不满意 15 %,
# varying by street so that the ranking is not a tie.
FILL = """
with g as materialized (
    select code, street_code, ST_PointOnSurface(geom) as p,
           row_number() over (order by code) as rn
    from grids where street_code is not null
)
insert into service_requests (source, source_id, received_at, channel, category, street_code,
                              grid_code, geom, status, callback_valid, callback_contacted,
                              callback_solved, satisfaction)
select 'bench-eval', 'E' || i,
       timestamptz '2026-01-01 00:00+08' + (i::bigint * 29289599 / :n) * interval '1 second',
       '12345热线', (array['噪声扰民', '环境卫生', '燃气', '供暖', '违法建设'])[1 + i % 5],
       g.street_code, g.code, g.p,
       case when i % 10 < 8 then '已办结' else '处理中' end,
       i % 5 <> 0,
       (i * 7 + g.rn) % 10 < 9,
       (i * 3 + g.rn) % 10 < 7,
       case when (i * 13 + g.rn) % 20 < 12 then '满意'
            when (i * 13 + g.rn) % 20 < 17 then '基本满意' else '不满意' end
from generate_series(1, :n) as i
join g on g.rn = 1 + (i::bigint * 7919) % (select count(*) from grids where street_code is not null)
"""
CASES = """
insert into cases (kind, service_request_id, street_code, category, state, main_unit,
                   received_at, dispatched_at, due_at, resolved_at)
select 'service_request', id, street_code, category,
       case when id % 10 < 8 then 'resolved' else 'accepted' end, null,
       received_at, received_at + interval '1 hour', received_at + interval '73 hours',
       case when id % 10 < 8 then received_at + (id % 100) * interval '1 hour' end
from service_requests where source = 'bench-eval'
"""


def _inputs(conn: sa.Connection, scheme: Scheme) -> dict[str, int]:
    """A year of inputs for every street: manual scores, tasks, events, survey answers."""
    streets = list(conn.exec_driver_sql("select code from streets order by code").scalars())
    labels = [f"2026-{m:02d}" for m in range(1, 13)]
    scores, tasks, events, survey = [], [], [], []
    for n, street in enumerate(streets):
        for m, label in enumerate(labels, 1):
            for k, i in enumerate(x for x in scheme.items if x.rule == "manual"):
                points = i.max * (0.6 + 0.4 * ((n + m + k) % 5) / 4)
                scores.append(
                    {"p": label, "i": i.code, "s": street, "o": i.owner, "v": round(points, 1)}
                )
            for i in (x for x in scheme.items if x.rule == "on_time"):
                for t in range(8):
                    deadline = dt.datetime(2026, m, 3 + 3 * t, 18, tzinfo=NOW.tzinfo)
                    late = (n + t + m) % 6 == 0
                    done = deadline + dt.timedelta(hours=30 if late else -20)
                    tasks.append(
                        {"o": i.owner, "s": street, "i": i.code, "d": deadline, "done": done}
                    )
            for e in range((n + m) % 3):
                events.append({"s": street, "t": dt.datetime(2026, m, 5 + e, 9, tzinfo=NOW.tzinfo)})
            for q in scheme.questions:
                counts = (
                    {"满意": 250 + 10 * n, "基本满意": 100, "不满意": 50 - 2 * n}
                    if q.scale == "three"
                    else {"5": 150 + 5 * n, "4": 120, "3": 60, "2": 40 - n, "1": 30}
                )
                survey.append({"p": label, "s": street, "q": q.code, "scale": q.scale, "c": counts})
    conn.execute(
        sa.text(
            "insert into evaluation_scores (scheme_code, period, item_code, street_code,"
            " owner_unit, points, evidence, scored_by, scored_at) values ('xicheng', :p, :i,"
            " :s, :o, :v, '台账', 'bench', now())"
        ),
        scores,
    )
    conn.execute(
        sa.text(
            "insert into evaluation_tasks (kind, title, owner_unit, street_code, item_code,"
            " deadline, done_at) values ('city', '任务', :o, :s, :i, :d, :done)"
        ),
        tasks,
    )
    owner = next(i.owner for i in scheme.items if i.code == "safety_events")
    conn.execute(
        sa.text(
            "insert into evaluation_events (scheme_code, item_code, street_code, owner_unit,"
            " occurred_at) values ('xicheng', 'safety_events', :s, :o, :t)"
        ),
        [{**e, "o": owner} for e in events],
    )
    conn.execute(
        sa.text(
            "insert into survey_results (period, street_code, question, scale, sample_size,"
            " counts, imported_at) values (:p, :s, :q, :scale, 450, cast(:c as jsonb), now())"
        ),
        [{**s, "c": json.dumps(s["c"], ensure_ascii=False)} for s in survey],
    )
    return {
        "scores": len(scores),
        "tasks": len(tasks),
        "events": len(events),
        "survey": len(survey),
    }


_STARTED = time.perf_counter()


def _step(name: str, fn: Callable[[], Any]) -> Any:
    value = fn()
    print(f"built {name} at {time.perf_counter() - _STARTED:.0f} s", flush=True)
    return value


def build(server: str, n: int, work: Path) -> tuple[str, dict[str, Any]]:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"drop database if exists {DB} with (force)")
        conn.execute(f"create database {DB}")
    url = make_url(server).set(database=DB).render_as_string(hide_password=False)
    migrate.upgrade(migrate.alembic_config(url))
    engine = make_engine(url)
    load_district(engine, work)
    with engine.begin() as conn:
        build_units(conn)
        _step("district", lambda: None)
        _step("requests", lambda: conn.execute(sa.text(FILL), {"n": n}))
        _step("cases", lambda: conn.execute(sa.text(CASES)))
        _step("aggregates", lambda: refresh_request_aggregates(conn, full=True, zone=ZONE))
        scheme, _ = save_scheme(conn, read_scheme_file(DEMO_SCHEME), by="bench")
        counts = _step("inputs", lambda: _inputs(conn, scheme))
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("service_requests", "cases", "request_street_daily", "evaluation_tasks"):
            conn.exec_driver_sql(f"analyze {table}")
        counts["requests"] = conn.exec_driver_sql("select count(*) from service_requests").scalar()
        counts["cases"] = conn.exec_driver_sql("select count(*) from cases").scalar()
        counts["street days"] = conn.exec_driver_sql(
            "select count(*) from request_street_daily"
        ).scalar()
    engine.dispose()
    return url, counts


def direct_hotline(
    conn: sa.Connection, since: dt.date, until: dt.date
) -> dict[str, dict[str, int]]:
    """The obvious alternative: the window's requests counted from service_requests."""
    lo = dt.datetime.combine(since, dt.time(), NOW.tzinfo)
    hi = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), NOW.tzinfo)
    rows = conn.execute(
        sa.text(
            "select street_code, count(*) as received,"
            " count(*) filter (where status = :resolved) as resolved,"
            " count(*) filter (where callback_valid) as callbacks,"
            " count(*) filter (where callback_valid and callback_contacted) as contacted,"
            " count(*) filter (where callback_valid and callback_solved) as solved,"
            " count(*) filter (where callback_valid and satisfaction = '满意') as satisfied,"
            " count(*) filter (where callback_valid and satisfaction = '基本满意')"
            " as basic_satisfied"
            " from service_requests where received_at >= :lo and received_at < :hi"
            " and street_code is not null group by street_code"
        ),
        {"lo": lo, "hi": hi, "resolved": RESOLVED},
    ).mappings()
    return {r["street_code"]: {m: int(r[m]) for m in STREET_MEASURES} for r in rows}


def _scoped(conn: sa.Connection) -> None:
    """Read as the district reads (the reader role, zone '*')."""
    from layers.queries import access

    access.scope(conn, access.DISTRICT, unit="")


def _time(engine: sa.Engine, fn: Callable[[sa.Connection], Any]) -> tuple[float, Any]:
    with engine.connect() as conn:
        _scoped(conn)
        started = time.perf_counter()
        value = fn(conn)
        seconds = time.perf_counter() - started
        conn.rollback()
    return seconds, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    server = resolve_database_url(from_env())
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        url, counts = build(server, args.requests, Path(tmp))
        built = time.perf_counter() - started
    engine = make_engine(url)
    with engine.connect() as conn:
        from layers.evaluation.scheme import load_scheme

        scheme = load_scheme(conn, "xicheng")
    labels = periods_of_year(scheme, 2026)
    load_before = os.getloadavg()[0]

    def period(conn: sa.Connection) -> Any:
        return evaluate(conn, scheme, "2026-11", now=NOW)

    def year(conn: sa.Connection) -> Any:
        return [evaluate(conn, scheme, label, now=NOW) for label in labels]

    rows: list[tuple[str, list[float]]] = []
    results: dict[str, Any] = {}
    direct = mock.patch.object(evaluation_inputs, "street_counts", direct_hotline)
    for name, fn, patch in (
        ("a period (2026-11), hotline from the daily street aggregates", period, None),
        ("a period (2026-11), hotline from service_requests (the alternative)", period, direct),
        ("a year (12 months of 2026), from the daily street aggregates", year, None),
        ("a year (12 months of 2026), from service_requests (the alternative)", year, direct),
    ):
        times = []
        for _ in range(args.rounds):
            if patch is None:
                seconds, value = _time(engine, fn)
            else:
                with patch:
                    seconds, value = _time(engine, fn)
            times.append(seconds)
        rows.append((name, times))
        results[name] = value
        print(f"{name}: {', '.join(f'{t:.2f}' for t in times)} s", flush=True)
    assert results[rows[0][0]] == results[rows[1][0]], "the two ways differ"
    assert results[rows[2][0]] == results[rows[3][0]], "the two ways differ (a year)"

    def published(conn: sa.Connection) -> int:
        return publish(conn, scheme, "2026-11", by="bench", now=NOW)

    publish_seconds, _ = _time(engine, published)
    print(f"publish 2026-11 (rolled back): {publish_seconds:.2f} s", flush=True)
    load_after = os.getloadavg()[0]
    engine.dispose()
    top = results[rows[0][0]]["streets"][:3]
    leaders = ", ".join(f"{s['name']} {s['composite']}" for s in top)
    table = "\n".join(
        f"| {name} | {statistics.median(t):.2f} | {', '.join(f'{x:.2f}' for x in t)} |"
        for name, t in rows
    )
    section = f"""<!-- bench_evaluation:start -->
## The evaluation (考评): a period and a year

`python bench/bench_evaluation.py --requests {args.requests} --rounds {args.rounds}` on
{machine()}; {dt.date.today().isoformat()}; load average {load_before:.1f} → {load_after:.1f}.
Database built in {built:.0f} s: {counts["requests"]:,} requests with callbacks over
2026-01-01 … 2026-12-06, {counts["cases"]:,} cases, {counts["street days"]:,} daily street
rows; the demo scheme with {counts["scores"]:,} manual scores, {counts["tasks"]:,} tasks,
{counts["events"]:,} events, {counts["survey"]:,} survey rows (15 streets × 12 months).
Each figure: the district's reader role (row-level security on), the inputs gathered, the
previous month's ranks computed live (no publication), the Result built. Targets (issue 13):
a period < 5 s, a year of twelve < 30 s.

| what | median s | rounds (s) |
|---|---:|---|
{table}
| publish 2026-11 (rankings + results rows, rolled back) | {publish_seconds:.2f} | 1 |

Both ways give the same Result (checked). November's top three: {leaders}.
<!-- bench_evaluation:end -->"""
    write_section(args.out, "bench_evaluation", section)
    print(section)


if __name__ == "__main__":
    main()
