"""Benchmark the address geocoder (etl/geocoder.py): quality on the demo's truth, and speed
beside the obvious alternative, a query per address (the intake geocoder's SQL before
issue 14, copied here so that the comparison stays put).

    python bench/bench_geocode.py [--requests 40000] [--sql-sample 1000] [--reuse] [--keep]

Builds a database `blockdata_bench_geocode`: the demo district's boundaries, lanes,
landmarks and halls, and its gazetteer as `blockdata demo load` imports it (built from the
layers, plus the demo's 门牌 and POI files). The truth is the demo generator's: `requests`
rows of `etl.demo.extracts.requests_frame`, each with its address text and its true point,
grid and street. Quality is given for the address-only rows (the rows the ETL geocodes) and,
for a larger sample of the same address model, for every row's address: by match level, the
share in the correct grid and street; failed and ambiguous rows carry no codes (reported,
not guessed). Speed: distinct addresses a second through `best_many` (a fresh geocoder, no
repeats), and through one SQL query per address.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import shapely
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import fresh_database, machine, write_section  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from etl.address import normalize  # noqa: E402
from etl.admin import import_admin  # noqa: E402
from etl.demo.extracts import requests_frame  # noqa: E402
from etl.demo.gazetteer import load_gazetteer  # noqa: E402
from etl.demo.geography import DATA_DIR, Geography, generate_geography, write_geography  # noqa: E402
from etl.demo.load import ADMIN_FILES  # noqa: E402
from etl.geocoder import LEVELS, Geocoder  # noqa: E402

DB = "blockdata_bench_geocode"
SECTION = "geocode"
M_PER_DEG = 111_320.0
BANDS = (0.0, 15.0, 30.0, 60.0, 120.0, math.inf)

# The per-address SQL of the intake geocoder before issue 14 (etl/geocode.py at 710cdb8).
_LANE = sa.text(
    """
    with sides as (
        select code, name, geom, left_from as lo, left_to as hi from lanes
         where right(:before, char_length(name)) = name
        union all
        select code, name, geom, right_from, right_to from lanes
         where right(:before, char_length(name)) = name
    ), best as (
        select name,
               ST_LineInterpolatePoint(
                   geom, (((:n - lo) / 2) + 0.5)::float8 / ((hi - lo) / 2 + 1)) as point
          from sides
         where :n between lo and hi and (:n - lo) % 2 = 0
         order by char_length(name) desc, code
         limit 1
    )
    select name, ST_X(point) as lng, ST_Y(point) as lat from best
    """
)
_LANDMARK = sa.text(
    """
    select name, ST_X(geom) as lng, ST_Y(geom) as lat from landmarks
     where char_length(name) >= 2 and strpos(:text, name) > 0
     order by char_length(name) desc, code
     limit 1
    """
)


def sql_geocode(conn: sa.Connection, address: str) -> tuple[float, float] | None:
    import re

    text = normalize(address)
    for match in reversed(list(re.finditer(r"([0-9]{1,5})号", text))):
        row = conn.execute(_LANE, {"before": text[: match.start()], "n": int(match[1])}).first()
        if row is not None:
            return float(row.lng), float(row.lat)
    row = conn.execute(_LANDMARK, {"text": text}).first()
    return None if row is None else (float(row.lng), float(row.lat))


def build(server: str, geo: Geography) -> str:
    url = fresh_database(server, DB)
    engine = make_engine(url)
    with tempfile.TemporaryDirectory() as tmp, engine.begin() as conn:
        files = write_geography(geo, Path(tmp))
        for layer, level in ADMIN_FILES:
            import_admin(conn, files[layer], level)
        started = time.perf_counter()
        load_gazetteer(conn, Path(tmp))
        print(f"  gazetteer built and imported: {time.perf_counter() - started:.1f} s")
    engine.dispose()
    return url


def lane_distance(geo: Geography, matched: list[str | None], lng: Any, lat: Any) -> np.ndarray:
    """Metres from each true point to the lane its address names (NaN: no lane named)."""
    pieces: dict[str, list[Any]] = {}
    for name, geom in zip(geo.lanes["name"], geo.lanes.geometry, strict=True):
        pieces.setdefault(str(name), []).append(geom)
    kx = math.cos(math.radians(39.91))
    out = np.full(len(matched), np.nan)
    for i, (road, x, y) in enumerate(zip(matched, lng, lat, strict=True)):
        if road in pieces:
            p = shapely.Point(x * kx, y)
            out[i] = (
                min(shapely.transform(g, lambda c: c * [kx, 1.0]).distance(p) for g in pieces[road])
                * M_PER_DEG
            )
    return out


def quality(frame: pd.DataFrame) -> list[str]:
    """The quality table of `frame` (columns level, grid, street, tg, ts, number)."""
    lines = [
        "| level | rows | share | correct grid | correct street |",
        "|---|---:|---:|---:|---:|",
    ]
    n = len(frame)
    for level in LEVELS:
        sub = frame[frame["level"] == level]
        if sub.empty:
            continue
        grid = "—" if sub["grid"].isna().all() else f"{(sub['grid'] == sub['tg']).mean():.1%}"
        street = "—" if sub["street"].isna().all() else f"{(sub['street'] == sub['ts']).mean():.1%}"
        lines.append(f"| {level} | {len(sub)} | {len(sub) / n:.1%} | {grid} | {street} |")
    numbered = frame[frame["number"]]
    placed = numbered[numbered["street"].notna()]
    lines += [
        "",
        f"With a house number: {len(numbered)} rows; correct grid "
        f"{(numbered['grid'] == numbered['tg']).mean():.2%}, correct street "
        f"{(numbered['street'] == numbered['ts']).mean():.2%} "
        f"(of the {len(placed)} placed: street {(placed['street'] == placed['ts']).mean():.2%}); "
        f"all rows: correct street {(frame['street'] == frame['ts']).mean():.2%}, "
        f"failed {int((frame['level'] == 'failed').sum())}, "
        f"ambiguous {int(frame['ambiguous'].sum())}.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--sql-sample", type=int, default=1_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse the database if it exists")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    server = resolve_database_url(from_env())
    url = make_url(server).set(database=DB).render_as_string(hide_password=False)
    geo = generate_geography(42)
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (DB,)).fetchone()
    if not (args.reuse and exists):
        url = build(server, geo)
    engine = make_engine(url)

    raw, truth = requests_frame(geo, args.requests, seed=42)
    texts = raw["地址"].astype(str).tolist()
    with engine.connect() as conn:
        started = time.perf_counter()
        geocoder = Geocoder.load(conn)
        load_s = time.perf_counter() - started
        counts = {
            t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one()
            for t in ("gazetteer_roads", "gazetteer_addresses", "gazetteer_places")
        }
    matches = geocoder.best_many(texts)
    frame = pd.DataFrame(
        {
            "level": [m.level for m in matches],
            "grid": [m.grid_code for m in matches],
            "street": [m.street_code for m in matches],
            "ambiguous": [m.ambiguous for m in matches],
            "tg": truth["grid_code"].to_numpy(),
            "ts": truth["street_code"].to_numpy(),
            "number": raw["地址"].astype(str).str.contains(r"\d+号").to_numpy(),
            "address_only": truth["defects"].str.contains("address_only").to_numpy(),
        }
    )
    roads = [
        m.matched.rstrip("号").rstrip("0123456789").removesuffix("甲").removesuffix("乙")
        if m.level in ("address_point", "interpolated")
        else None
        for m in matches
    ]
    frame["distance"] = lane_distance(
        geo, roads, truth["true_lng"].to_numpy(), truth["true_lat"].to_numpy()
    )

    # every official community name, with and without its suffix
    communities = pd.read_csv(DATA_DIR / "xicheng_communities.csv", dtype=str)
    forms = ok = 0
    for name, street in zip(communities["name"], communities["street_code"], strict=True):
        short = name.removesuffix("居委会")
        for text in (name, short, short.removesuffix("社区")):
            forms += 1
            ok += geocoder.geocode(text, limit=1)[0].street_code == street

    # speed: distinct addresses, a fresh geocoder each run (nothing cached)
    distinct = list(dict.fromkeys(texts))
    rates, cpu_rates = [], []
    for _ in range(3):
        with engine.connect() as conn:
            fresh = Geocoder.load(conn)
        started, cpu = time.perf_counter(), time.process_time()
        fresh.best_many(distinct)
        rates.append(len(distinct) / (time.perf_counter() - started))
        cpu_rates.append(len(distinct) / (time.process_time() - cpu))
    load = os.getloadavg()[0]
    sample = distinct[: args.sql_sample]
    with engine.connect() as conn:
        started = time.perf_counter()
        sql_found = [sql_geocode(conn, t) for t in sample]
        sql_rate = len(sample) / (time.perf_counter() - started)
    sql_placed = sum(p is not None for p in sql_found)

    bands = pd.cut(frame["distance"], BANDS, right=False)
    numbered = frame[frame["number"]]
    band_lines = [
        "| true point to its address's lane | rows | correct grid | correct street |",
        "|---|---:|---:|---:|",
    ]
    for band, sub in numbered.groupby(bands[frame["number"]], observed=True):
        band_lines.append(
            f"| {band.left:.0f}–{band.right:.0f} m | {len(sub)} | "
            f"{(sub['grid'] == sub['tg']).mean():.1%} | {(sub['street'] == sub['ts']).mean():.1%} |"
        )
    only = frame[frame["address_only"]]
    section = "\n".join(
        [
            f"<!-- {SECTION}:start -->",
            "## The address geocoder — `bench/bench_geocode.py`",
            "",
            f"Machine: {machine()}. `python bench/bench_geocode.py --requests {args.requests}`. "
            f"Gazetteer: {counts['gazetteer_roads']} road pieces, "
            f"{counts['gazetteer_addresses']} address points (门牌), "
            f"{counts['gazetteer_places']} places; `Geocoder.load` {load_s:.1f} s.",
            "",
            f"### Quality on the demo truth: the {len(only)} address-only rows",
            "",
            *quality(only),
            "",
            f"### The same address model, every row's address ({len(frame)} rows)",
            "",
            *quality(frame),
            "",
            "By how far the true point lies from the lane its address names (rows with a "
            "house number): a request said by a house number stands at that house, 4–20 m "
            "back from its lane (`etl.demo.extracts.house_points`); an interpolated plate is "
            "placed 10 m beside the line, so a house near a grid's edge can fall on the other "
            "side of it.",
            "",
            *band_lines,
            "",
            f"Official community names, with and without 社区居委会 / 居委会 / 社区: "
            f"{ok} of {forms} forms resolve to their street.",
            "",
            "### Speed (distinct addresses a second, no repeats)",
            "",
            f"{len(distinct)} distinct addresses, median of 3 runs, each on a fresh geocoder; "
            f"wall time on a shared machine (load average {load:.1f} on "
            f"{os.cpu_count()} cores) and the process's own CPU time (what one free core "
            "gives). The SQL geocoder's time is the client's wall time (the work is the "
            "server's).",
            "",
            "| geocoder | addresses/s (wall) | addresses/s (CPU) | placed |",
            "|---|---:|---:|---:|",
            f"| `Geocoder.best_many` (in memory) | {np.median(rates):,.0f} | "
            f"{np.median(cpu_rates):,.0f} | {(frame['street'].notna()).mean():.1%} |",
            f"| a SQL query per address (intake geocoder before issue 14), "
            f"{len(sample)} addresses | {sql_rate:,.0f} | — | {sql_placed / len(sample):.1%} |",
            f"<!-- {SECTION}:end -->",
        ]
    )
    print(section)
    write_section(args.out, SECTION, section)
    engine.dispose()
    if not args.keep:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"drop database if exists {DB} with (force)")


if __name__ == "__main__":
    main()
