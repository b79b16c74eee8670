"""Benchmark due times (办理时限) and due states for 1M cases, beside a per-case Python loop.

    python bench/bench_due.py [--cases 1000000] [--sample 20000] [--rounds 3]
                              [--out docs/benchmarks.md]

Cases: categories drawn so that 60 % have working-day limits (the default and the 15-day
categories of etl/config/time_limits.yaml) and 40 % hour limits; dispatch times uniform over
January–November 2026 (every due day in a year chinese_calendar
covers: the loop cannot count past it), to the second. Measured in the same run:
- `load_time_limits().due_at` on all cases (vectorised: one working-day table, searchsorted),
  best of --rounds, the first round with a cold working-day cache;
- the obvious alternative: a Python loop calling `chinese_calendar.find_workday` per
  working-day case (and adding hours per hour case), on the first --sample cases,
  extrapolated linearly to all of them (said so in the table); its answers are checked
  against the vectorised ones;
- `due_states` on all cases at one injected "now" (60 % open).
Results replace the `bench_due` section of docs/benchmarks.md. No database needed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import machine, write_section  # noqa: E402

from etl.rules import _workdays, due_states, load_time_limits  # noqa: E402

ZONE = "Asia/Shanghai"
BEIJING = ZoneInfo(ZONE)
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=BEIJING)


def cases(n: int, seed: int = 12) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Categories (60 % on working days), dispatch times over 2026, resolution times."""
    limits = load_time_limits()
    hours = [c for c, lim in limits.by_category.items() if lim.unit == "hours"]
    workdays = [c for c, lim in limits.by_category.items() if lim.unit == "workdays"]
    workdays.append("噪声扰民")  # not listed: the default, 7 working days
    rng = np.random.default_rng(seed)
    in_work = rng.random(n) < 0.6
    cats = np.where(
        in_work,
        np.array(workdays, dtype=object)[rng.integers(0, len(workdays), n)],
        np.array(hours, dtype=object)[rng.integers(0, len(hours), n)],
    )
    first = np.datetime64("2026-01-01T00:00:00", "s") - np.timedelta64(8, "h")
    start = first + rng.integers(0, 334 * 86400, n).astype("timedelta64[s]")
    done = start + rng.integers(0, 40 * 86400, n).astype("timedelta64[s]")
    done[rng.random(n) < 0.6] = np.datetime64("NaT")
    ts = pa.timestamp("us", tz="UTC")
    return (
        pa.array(cats.tolist(), pa.string()),
        pa.array(start.astype("datetime64[us]"), pa.timestamp("us")).cast(ts),
        pa.array(done.astype("datetime64[us]"), pa.timestamp("us"), from_pandas=True).cast(ts),
    )


def loop_due(categories: list[str], starts: list[dt.datetime]) -> list[dt.datetime]:
    """The obvious way: one case at a time, chinese_calendar per working-day case."""
    import chinese_calendar

    limits = load_time_limits()
    out = []
    for category, start in zip(categories, starts, strict=True):
        lim = limits.by_category.get(category, limits.default)
        if lim.unit == "hours":
            out.append(start + dt.timedelta(hours=lim.limit))
            continue
        local = start.astimezone(BEIJING).date()
        # find_workday(0, d) is the first working day from d on: start from the next day.
        day = chinese_calendar.find_workday(int(lim.limit) - 1, local + dt.timedelta(days=1))
        out.append(dt.datetime.combine(day, dt.time(23, 59, 59), BEIJING).astimezone(dt.UTC))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    categories, starts, done = cases(args.cases)
    limits = load_time_limits()

    runs = []
    _workdays.cache_clear()
    for _ in range(args.rounds):
        t = time.perf_counter()
        due = limits.due_at(categories, starts, ZONE)
        runs.append(time.perf_counter() - t)
    vectorised = min(runs)

    k = min(args.sample, args.cases)
    cats_k = categories.slice(0, k).to_pylist()
    starts_k = starts.slice(0, k).to_pylist()
    t = time.perf_counter()
    looped = loop_due(cats_k, starts_k)
    sample_s = time.perf_counter() - t
    loop_s = sample_s * args.cases / k
    agree = sum(a == b for a, b in zip(looped, due.slice(0, k).to_pylist(), strict=True))

    dispatched = starts
    state_runs = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        states = due_states(dispatched, due, done, NOW, limits.due_soon_share)
        state_runs.append(time.perf_counter() - t)
    counts = {
        str(v["values"] or "none"): int(v["counts"])
        for v in states.dictionary_decode().value_counts().to_pylist()
    }
    share_work = float(
        np.mean([limits.by_category.get(c, limits.default).unit == "workdays" for c in cats_k])
    )
    load_after = os.getloadavg()[0]

    rows = [
        (
            "**`load_time_limits().due_at`, vectorised**",
            f"{vectorised:.2f}",
            f"{args.cases / vectorised:,.0f}",
            f"best of {args.rounds} ({', '.join(f'{r:.2f}' for r in runs)} s;"
            " the first with a cold working-day table)",
        ),
        (
            "obvious way: Python loop, `chinese_calendar.find_workday` per case",
            f"{loop_s:.1f}",
            f"{args.cases / loop_s:,.0f}",
            f"extrapolated from {k:,} cases timed at {sample_s:.2f} s; "
            f"same answer for {agree:,} of {k:,}",
        ),
        (
            "`due_states` (临期 / 超期 / 超期办结)",
            f"{min(state_runs):.3f}",
            f"{args.cases / min(state_runs):,.0f}",
            f"best of {args.rounds}; at {NOW.isoformat()}: "
            + ", ".join(f"{k2} {v:,}" for k2, v in sorted(counts.items())),
        ),
    ]
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    section = "\n".join(
        [
            "<!-- bench_due:start -->",
            "## Due times and due states (办理时限, 临期 / 超期)",
            "",
            f"`python bench/bench_due.py --cases {args.cases} --sample {k} --rounds {args.rounds}`"
            f" (run by `make bench`) on {machine()}; {dt.date.today().isoformat()};"
            f" load average {load:.1f} → {load_after:.1f}. {args.cases:,} cases, dispatch times"
            f" over January–November 2026, {share_work:.0%} of the sample on working-day limits"
            " (7 or 15), the rest"
            " 2 or 24 hours; target < 5 s for the due times.",
            "",
            "| step | seconds for all cases | cases/s | note |",
            "|---|---:|---:|---|",
            table,
            "<!-- bench_due:end -->",
        ]
    )
    print(section)
    if agree != k:
        raise SystemExit(f"the loop and the vectorised due times differ on {k - agree} cases")
    write_section(args.out, "bench_due", section)


if __name__ == "__main__":
    main()
