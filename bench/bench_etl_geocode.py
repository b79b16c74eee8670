"""Benchmark: N address-only service requests (no coordinates) through the ETL, geocoded.

    python bench/bench_etl_geocode.py [--rows 1000000] [--sample 2000] [--out docs/benchmarks.md]

Runs in a throwaway database `blockdata_bench` on the configured server (the managed
cluster or DATABASE_URL): migrates it, imports the demo district's boundaries, lanes, halls
and landmarks with `etl.admin`, builds the gazetteer from them (`blockdata gazetteer
build`), writes a CSV of N requests whose only location is an address as call-takers write
them (house numbers on the demo's lanes with and without 北京市西城区, full-width digits,
Chinese numerals, 号院/号楼, 附近/对面; landmarks by name; 2 % of places the gazetteer does not
know), then times, in the same run:
  1. `blockdata etl run` (our pipeline) end to end into an empty table: one
     `Geocoder.load`, `best_many` on the distinct addresses, the results spread back over
     the rows by Arrow (the headline: under 2 minutes for 1,000,000 rows);
  2. the obvious alternative on a sample of rows: geocoding each row through SQL (the
     intake's geocoder, `etl.geocode.geocode`: a lane query and a landmark query per
     address), and the in-memory geocoder asked row by row (`Geocoder.geocode`, no batch,
     no reuse of repeated addresses); their rows/s give what N rows would take.
Results replace the `bench_etl_geocode` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import (  # noqa: E402
    BENCH_DB,
    CATEGORIES,
    SHARES,
    fresh_database,
    machine,
    server_version,
    write_section,
)

from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from etl.admin import import_admin  # noqa: E402
from etl.demo.geography import generate_geography, write_geography  # noqa: E402
from etl.demo.load import ADMIN_FILES  # noqa: E402
from etl.geocode import geocode as sql_geocode  # noqa: E402
from etl.geocoder import Geocoder  # noqa: E402
from etl.jobs import run_file  # noqa: E402
from etl.place import _CACHE, placer_for  # noqa: E402

NUMERALS = "零一二三四五六七八九"


def chinese(n: int) -> str:
    """26 → 二十六 (numbers below 100, as call-takers write them)."""
    if n < 10:
        return NUMERALS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else NUMERALS[tens]) + "十" + (NUMERALS[ones] if ones else "")


def load_district(engine: sa.Engine, work: Path, cache: Path) -> tuple[pd.DataFrame, list[str]]:
    """The demo's layers imported, the gazetteer built from them; its lanes and landmarks."""
    from etl.gazetteer import build

    geo = generate_geography(42)
    files = write_geography(geo, work / "district")
    with engine.begin() as conn:
        for name, level in ADMIN_FILES:
            import_admin(conn, files[name], level)
        build(conn)
    with engine.connect() as conn:
        placer_for(conn, cache)
    _CACHE.clear()  # the load reads it from disk, as a new `blockdata etl run` would
    return pd.DataFrame(geo.lanes.drop(columns="geometry")), list(geo.landmarks["name"])


def addresses(lanes: pd.DataFrame, landmarks: list[str], n: int, seed: int = 11) -> np.ndarray:
    """N addresses as call-takers write them (see the module doc)."""
    rng = np.random.default_rng(seed)
    sides = []
    for row in lanes.itertuples():
        for lo, hi in ((row.left_from, row.left_to), (row.right_from, row.right_to)):
            if pd.notna(lo) and pd.notna(hi) and lo <= hi:
                sides.append((row.name, int(lo), int(hi)))
    pick = rng.integers(0, len(sides), n)
    out = np.empty(n, dtype=object)
    style = rng.random(n)
    for i in range(n):
        name, lo, hi = sides[pick[i]]
        number = lo + 2 * int(rng.integers(0, (hi - lo) // 2 + 1))
        s = style[i]
        if s < 0.30:
            text = f"北京市西城区{name}{number}号"
        elif s < 0.55:
            text = f"{name}{number}号"
        elif s < 0.65:
            text = f"{name}{str(number).translate(_FULL)}号"
        elif s < 0.72 and number < 100:
            text = f"西城区{name}{chinese(number)}号"
        elif s < 0.82:
            text = f"{name}{number}号院{int(rng.integers(1, 9))}号楼"
        elif s < 0.90:
            text = f"{name}{number}号{rng.choice(['附近', '对面', '东侧'])}"
        elif s < 0.98:
            text = f"西城区{landmarks[int(rng.integers(0, len(landmarks)))]}"
        else:
            text = f"北京市西城区不存在胡同{number}号"
        out[i] = text
    return out


_FULL = str.maketrans("0123456789", "０１２３４５６７８９")


def write_requests(texts: np.ndarray, path: Path, seed: int = 7) -> None:
    n = len(texts)
    rng = np.random.default_rng(seed)
    start = np.datetime64("2025-11-25T00:00:00")
    received = np.sort(start + rng.integers(0, 365 * 86400, n).astype("timedelta64[s]"))
    category = np.array(CATEGORIES)[rng.choice(len(CATEGORIES), n, p=SHARES / SHARES.sum())]
    frame = pd.DataFrame(
        {
            "工单编号": [f"GD{i:012d}" for i in range(n)],
            "受理时间": pd.Series(received).dt.strftime("%Y-%m-%d %H:%M:%S"),
            "来源渠道": "12345热线",
            "诉求类别": category,
            "诉求内容": pd.Series(category) + "问题，请尽快处理。",
            "地址": texts,
            "经度": "",
            "纬度": "",
            "状态": "待派单",
        }
    )
    frame.to_csv(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=2000, help="rows of the per-row variants")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    n = args.rows
    server = resolve_database_url(from_env())
    url = fresh_database(server)
    engine = make_engine(url)
    rows: list[tuple[str, float, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = work / "cache"
        t = time.perf_counter()
        lanes, landmarks = load_district(engine, work, cache)
        setup = time.perf_counter() - t
        texts = addresses(lanes, landmarks, n)
        distinct = len(set(texts))
        csv = work / "requests.csv"
        write_requests(texts, csv)
        size = csv.stat().st_size / 2**20

        # Untimed warm-up: the first load of a process imports modules and reads the lattice.
        head = work / "warm.csv"
        write_requests(texts[:2000], head)
        with engine.connect() as conn:
            run_file(conn, head, layer="service_requests", cache_dir=cache)
            conn.rollback()

        before = os.getloadavg()[0]
        t = time.perf_counter()
        with engine.connect() as conn:
            report = run_file(conn, csv, layer="service_requests", cache_dir=cache)
            conn.commit()
        ours = time.perf_counter() - t
        parts = ", ".join(f"{k.strip()} {v:.1f} s" for k, v in report.timings.items())
        levels = ", ".join(f"{k} {v:,}" for k, v in sorted(report.geocoded.items()))
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(report.reasons.items()))
        rows.append(
            (
                "**blockdata etl run — address-only rows, geocoded, into an empty table**",
                ours,
                f"{n / ours:,.0f}",
                f"load average {before:.1f}→{os.getloadavg()[0]:.1f}; read {report.read:,}, "
                f"inserted {report.inserted:,}, rejected {report.rejected:,} ({reasons}); "
                f"placed by level: {levels} ({parts})",
            )
        )

        sample = texts[np.random.default_rng(3).choice(n, args.sample, replace=False)]
        with engine.connect() as conn:
            t = time.perf_counter()
            found = sum(sql_geocode(conn, str(text)) is not None for text in sample)
            per_row_sql = time.perf_counter() - t
        rate = args.sample / per_row_sql
        rows.append(
            (
                f"obvious way: geocode each row through SQL (etl.geocode.geocode), "
                f"{args.sample:,} sampled rows",
                per_row_sql,
                f"{rate:,.0f}",
                f"{found:,} placed; {n:,} rows at this rate: {n / rate:,.0f} s, geocoding alone",
            )
        )
        with engine.connect() as conn:
            t = time.perf_counter()
            geocoder = Geocoder.load(conn)
            loading = time.perf_counter() - t
        t = time.perf_counter()
        for text in sample:
            geocoder.geocode(str(text), limit=1)
        per_row_memory = time.perf_counter() - t
        rate = args.sample / per_row_memory
        rows.append(
            (
                f"the in-memory geocoder asked row by row (Geocoder.geocode), "
                f"{args.sample:,} sampled rows",
                per_row_memory,
                f"{rate:,.0f}",
                f"after Geocoder.load {loading:.2f} s; {n:,} rows at this rate: "
                f"{n / rate:,.0f} s, geocoding alone",
            )
        )
    lines = [
        "<!-- bench_etl_geocode:start -->",
        "## ETL: address-only requests geocoded in the run",
        "",
        f"`python bench/bench_etl_geocode.py --rows {n} --sample {args.sample}` "
        f"(run by `make bench`) on {machine()};",
        f"PostgreSQL {server_version(engine)}; {time.strftime('%Y-%m-%d')}.",
        f"CSV: {n:,} rows, {size:.0f} MiB, no coordinates; {distinct:,} distinct addresses; "
        f"the demo district (gazetteer built from its layers in {setup:.1f} s with the "
        "boundaries' import).",
        "",
        "| step | seconds | rows/s | note |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {label} | {s:.2f} | {rate} | {note} |" for label, s, rate, note in rows]
    lines.append("<!-- bench_etl_geocode:end -->")
    section = "\n".join(lines)
    write_section(args.out, "bench_etl_geocode", section)
    print(section)
    engine.dispose()
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"drop database if exists {BENCH_DB} with (force)")


if __name__ == "__main__":
    main()
