"""Benchmark replaying a hotline extract into the case history (etl/replay.py), beside a
per-case loop through `layers.cases.store.transition`.

    python bench/bench_replay.py [--rows 1000000] [--sample 2000] [--out docs/benchmarks.md]

On a fresh database (the managed cluster or DATABASE_URL): the demo district's boundaries and
units (`units build`), then a hotline extract of --rows requests with every time column
(派单 签收 联系 办结 回访 归档, 承办单位 as a department's name), each as far as it got by the
extract's midnight (about 6 steps a request: most are filed by then).
Measured in the same run:

1. the load with the replay switched off (the rows only), rolled back;
2. the obvious alternative, in that rolled-back transaction: for the first --sample
   requests, `create_case` and one `store.transition` per step (as the ETL's role), timed
   and extrapolated linearly to all rows (said so in the table);
3. `blockdata etl run` of the file (load + replay, committed): the replay's own seconds
   (`timings["replay"]`) and the history rows it added;
4. the same file again: the history rows added (0) and the seconds;
5. a check: 2,000 random cases replayed by `layers.cases.machine.replay` equal their rows.

Results replace the `bench_replay` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import (  # noqa: E402
    CATEGORIES,
    SHARES,
    fresh_database,
    load_district,
    machine,
    server_version,
    write_section,
)

from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from etl import coords, replay  # noqa: E402
from etl.jobs import run_file  # noqa: E402
from etl.rules import load_routing  # noqa: E402
from etl.units import build_units  # noqa: E402
from layers.cases import Actor, case_of, create_case, history, transition, transitions  # noqa: E402
from layers.cases import replay as machine_replay  # noqa: E402

BENCH_DB = "blockdata_bench_replay"
END = dt.date(2026, 11, 25)


def write_extract(grids: object, n: int, path: Path, seed: int = 11) -> None:
    """N hotline requests over the year before END with every lifecycle column."""
    import shapely

    rng = np.random.default_rng(seed)
    outline = grids.geometry.union_all()  # type: ignore[attr-defined]
    minx, miny, maxx, maxy = outline.bounds
    k = int(n * 1.6)
    xy = rng.uniform([minx, miny], [maxx, maxy], size=(k, 2))
    xy = xy[shapely.contains_xy(outline, xy[:, 0], xy[:, 1])][:n]
    glng, glat = coords.wgs84_to_gcj02(xy[:, 0], xy[:, 1])
    start = np.datetime64(END - dt.timedelta(days=365), "s")
    received = np.sort(start + rng.integers(0, 365 * 86400, n).astype("timedelta64[s]"))
    minutes = lambda lo, hi: rng.integers(lo * 60, hi * 60, n).astype("timedelta64[s]")  # noqa: E731
    dispatched = received + minutes(5, 240)
    accepted = dispatched + minutes(5, 120)
    contacted = accepted + minutes(10, 600)
    resolved = contacted + minutes(60, 10 * 1440)
    called_back = resolved + minutes(60, 2 * 1440)
    closed = called_back + minutes(5, 120)
    taken = np.datetime64(END, "s")
    steps = [dispatched, accepted, contacted, resolved, called_back, closed]
    reached = sum((s < taken).astype(int) for s in steps)
    statuses = ["待派单", "已派单", "处理中", "处理中", "已办结", "已办结", "已办结"]
    status = np.array(statuses)[reached]
    category = np.array(CATEGORIES)[rng.choice(len(CATEGORIES), n, p=SHARES / SHARES.sum())]
    unit = np.array(load_routing().route(pa.array(category.tolist(), pa.string())).to_pylist())

    def fmt(a: np.ndarray, k: int) -> pd.Series:
        return pd.Series(np.where(reached > k, a, np.datetime64("NaT"))).dt.strftime(
            "%Y-%m-%d %H:%M:%S"
        )

    called = reached > 4
    frame = pd.DataFrame(
        {
            "工单编号": [f"GD{i:012d}" for i in range(n)],
            "受理时间": pd.Series(received).dt.strftime("%Y-%m-%d %H:%M:%S"),
            "来源渠道": "12345热线",
            "诉求类别": category,
            "诉求内容": pd.Series(category) + "问题，请尽快处理。",
            "地址": "北京市西城区某某胡同1号",
            "经度": np.round(glng, 6),
            "纬度": np.round(glat, 6),
            "坐标系": "GCJ-02",
            "状态": status,
            "承办单位": np.where(reached > 0, unit, ""),
            "派单时间": fmt(dispatched, 0),
            "签收时间": fmt(accepted, 1),
            "联系时间": fmt(contacted, 2),
            "办结时间": fmt(resolved, 3),
            "回访时间": fmt(called_back, 4),
            "归档时间": fmt(closed, 5),
            "是否有效回访": np.where(called, "是", ""),
            "是否联系": np.where(called, "是", ""),
            "是否解决": np.where(called, np.where(rng.random(n) < 0.8, "是", "否"), ""),
            "满意度": np.where(
                called, rng.choice(["满意", "基本满意", "不满意"], n, p=[0.75, 0.15, 0.10]), ""
            ),
        }
    )
    frame.to_csv(path, index=False)


STEP_COLUMNS = (
    ("dispatch", "dispatched_at"),
    ("accept", "accepted_at"),
    ("contact", "contacted_at"),
    ("resolve", "resolved_at"),
    ("callback", "called_back_at"),
    ("close", "closed_at"),
)


def per_case_loop(conn: sa.Connection, sample: int) -> tuple[float, int, int]:
    """The obvious way, on the first `sample` requests: create each case, then one
    `transition` per step. Seconds, cases, steps."""
    rows = conn.execute(
        sa.text(
            "select r.*, u.code as unit_code from service_requests r "
            "left join units u on u.name = r.main_unit and u.street_code = r.street_code "
            "order by r.id limit :n"
        ),
        {"n": sample},
    ).mappings()
    rows = list(rows)
    etl = Actor("etl", "etl")
    steps = 0
    mark = time.perf_counter()
    for r in rows:
        case = create_case(
            conn,
            kind="service_request",
            source_id=r["id"],
            street_code=r["street_code"],
            category=r["category"],
            received_at=r["received_at"],
        )
        for version, (action, column) in enumerate(STEP_COLUMNS):
            at = r[column]
            if at is None:
                break
            fields: dict[str, object] = {}
            if action == "dispatch":
                fields = {"main_unit": r["unit_code"], "assisting_units": []}
            elif action == "callback":
                fields = {
                    "valid": r["callback_valid"],
                    "contacted": r["callback_contacted"],
                    "solved": r["callback_solved"],
                    "rating": r["satisfaction"],
                }
            transition(conn, int(case["id"]), action, version, etl, fields, at)
            steps += 1
    return time.perf_counter() - mark, len(rows), steps


def _steps_of(timings: dict[str, float]) -> str:
    return ", ".join(
        f"{k.strip().removeprefix('replay ')} {v:.1f} s"
        for k, v in timings.items()
        if k.startswith("  replay ")
    )


def _history_rows(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("select count(*) from case_history")).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    server = resolve_database_url(from_env())
    url = fresh_database(server, BENCH_DB)
    engine = make_engine(url)
    results: list[tuple[str, str, str, str]] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        grids = load_district(engine, Path(tmp))
        with engine.begin() as conn:
            build_units(conn)
        path = Path(tmp) / "hotline.csv"
        mark = time.perf_counter()
        write_extract(grids, args.rows, path)
        print(f"wrote {args.rows:,} rows in {time.perf_counter() - mark:.1f} s", flush=True)

        # 1 + 2: the rows alone, then the per-case loop, rolled back
        with engine.connect() as conn:
            tx = conn.begin()
            none = replay.Replayed()
            with mock.patch.object(replay, "replay", lambda *a, **k: none):
                mark = time.perf_counter()
                rows_only = run_file(conn, path, layer="service_requests")
                rows_seconds = time.perf_counter() - mark
            print(f"rows only: {rows_seconds:.1f} s", flush=True)
            seconds, cases, steps = per_case_loop(conn, args.sample)
            tx.rollback()
        loop_total = seconds / cases * rows_only.inserted
        print(f"loop: {cases} cases, {steps} steps in {seconds:.1f} s", flush=True)

        # 3: the real load, with the replay
        with engine.connect() as conn:
            mark = time.perf_counter()
            first = run_file(conn, path, layer="service_requests")
            conn.commit()
            first_seconds = time.perf_counter() - mark
            total_steps = _history_rows(conn)
        print(f"load + replay: {first_seconds:.1f} s", flush=True)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("vacuum analyze cases")
            conn.exec_driver_sql("vacuum analyze case_history")

        # 4: the same file again
        with engine.connect() as conn:
            mark = time.perf_counter()
            again = run_file(conn, path, layer="service_requests")
            conn.commit()
            again_seconds = time.perf_counter() - mark
            assert _history_rows(conn) == total_steps

        # 5: the machine agrees on a sample
        with engine.connect() as conn:
            ids = conn.execute(
                sa.text("select id from cases order by random() limit 2000")
            ).scalars()
            checked = agree = 0
            for case_id in ids:
                row = (
                    conn.execute(sa.text("select * from cases where id = :i"), {"i": case_id})
                    .mappings()
                    .one()
                )
                checked += 1
                agree += machine_replay(transitions(history(conn, case_id))) == case_of(row)
            version = server_version(engine)
    load_after = os.getloadavg()[0]
    n = first.inserted
    replay_s = first.timings.get("replay", 0.0)
    again_replay = again.timings.get("replay", 0.0)
    results = [
        (
            "load the rows only (replay off; rolled back)",
            f"{rows_seconds:.2f}",
            "",
            f"read {rows_only.read:,}, inserted {rows_only.inserted:,}",
        ),
        (
            "**replay into the history (etl/replay.py), first load**",
            f"{replay_s:.2f}",
            f"{n / replay_s:,.0f}" if replay_s else "",
            f"{first.cases_created:,} cases created, {first.steps_added:,} history rows added "
            f"({_steps_of(first.timings)}); the whole run {first_seconds:.1f} s",
        ),
        (
            "obvious way: per case `create_case` + `store.transition` per step",
            f"{loop_total:.1f}",
            f"{cases / seconds:,.0f}",
            f"extrapolated to {n:,} from {cases:,} cases ({steps:,} steps) timed at "
            f"{seconds:.2f} s",
        ),
        (
            "**the same file again: replay**",
            f"{again_replay:.2f}",
            "",
            f"{again.steps_added} history rows added, {again.cases_created} cases created; "
            f"the whole run {again_seconds:.1f} s",
        ),
    ]
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in results)
    scaled = "" if args.rows == 1_000_000 else f" (at {args.rows:,} rows, not 1M)"
    command = f"`python bench/bench_replay.py --rows {args.rows} --sample {args.sample}`"
    today = dt.date.today().isoformat()
    section = f"""<!-- bench_replay:start -->
## Replaying the hotline extract into the case history (全响应)

{command} (run by `make bench`) on {machine()};
PostgreSQL {version}; {today}; load average {load_before:.1f} → {load_after:.1f}.
{n:,} requests, each with 派单 签收 联系 办结 回访 归档 as far as it got by the extract's midnight
and 承办单位 a department's name; target < 60 s for 1M and 0 rows added by the same file{scaled}.

| step | seconds | cases/s | note |
|---|---:|---:|---|
{table}

Replayed by the machine (`layers.cases.machine.replay`): {agree:,} of {checked:,} random cases
equal their row.
<!-- bench_replay:end -->"""
    write_section(args.out, "bench_replay", section)
    print(section)
    engine.dispose()


if __name__ == "__main__":
    main()
