"""Benchmark: N service requests with coordinates, CSV → PostGIS, assigned, upserted and
aggregated.

    python bench/bench_etl.py [--rows 1000000] [--rounds 3] [--out docs/benchmarks.md]

Runs in a throwaway database `blockdata_bench` on the configured server (the managed
cluster or DATABASE_URL): migrates it, imports the demo district's boundaries with
`etl.admin`, writes a CSV of N requests (GCJ-02 coordinates, clustered like real ones),
then times, in the same run:
  1. `blockdata etl run` (our pipeline) end to end into an empty table, the heat and
     scorecard aggregates included (the headline: what the user waits for);
  2. the same file again (nothing changes);
  3. the same first load with the aggregates written another way: by the load's own
     session after its rows (no second connection), and by SQL GROUP BY over the loaded
     table (the way before issue 10);
  4. the obvious alternative: pandas.read_csv → geopandas.sjoin → GeoDataFrame.to_postgis
     (no aggregates, no validation, no upsert);
  5. assignment alone: GridIndex vs geopandas.sjoin vs a PostGIS ST_Intersects join, with
     every answer compared to sjoin's.
The machine's load average is noted beside each load: on a shared machine, compare rows of
the same run. Results replace the `bench_etl` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import geopandas
import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import migrate  # noqa: E402
from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from etl import coords  # noqa: E402
from etl.admin import import_admin  # noqa: E402
from etl.assign import GridIndex  # noqa: E402
from etl.demo.geography import generate_geography, write_geography  # noqa: E402
from etl.jobs import run_file  # noqa: E402
from etl.place import _CACHE, placer_for  # noqa: E402
from layers import AGGREGATE_TABLES  # noqa: E402

BENCH_DB = "blockdata_bench"
CATEGORIES = [
    "环境卫生",
    "违法建设",
    "占道经营",
    "噪声扰民",
    "停车管理",
    "供暖",
    "物业管理",
    "市容市貌",
    "施工扰民",
    "养犬",
    "开墙打洞",
    "群租房",
    "道路维修",
    "园林绿化",
    "咨询",
]
SHARES = np.array([16, 8, 10, 9, 9, 6, 8, 7, 6, 3, 3, 3, 4, 3, 5], dtype=float)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.platform()}"


def fresh_database(server_url: str, name: str = BENCH_DB) -> str:
    """A new database `name` on the server, migrated to head."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"drop database if exists {name} with (force)")
        conn.execute(f"create database {name}")
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(migrate.alembic_config(url))
    return url


def load_district(
    engine: sa.Engine, workdir: Path, cache_dir: Path | None = None
) -> geopandas.GeoDataFrame:
    """Import the demo boundaries as `blockdata admin import` does (which also builds the
    grid lattice into the cache, so that loads find it ready)."""
    geo = generate_geography(42)
    files = write_geography(geo, workdir / "district")
    with engine.begin() as conn:
        for level, layer in [
            ("street", "streets"),
            ("community", "communities"),
            ("grid", "grids"),
        ]:
            import_admin(conn, files[layer], level)
    if cache_dir is not None:
        with engine.connect() as conn:
            placer_for(conn, cache_dir)
        _CACHE.clear()  # the load reads it from disk, as a new `blockdata etl run` would
    return geo.grids


def write_requests(
    grids: geopandas.GeoDataFrame,
    n: int,
    path: Path,
    seed: int = 7,
    end: dt.date = dt.date(2026, 11, 25),
) -> None:
    """N requests over the year before `end`, clustered around hotspots, in GCJ-02."""
    rng = np.random.default_rng(seed)
    outline = grids.geometry.union_all()
    minx, miny, maxx, maxy = outline.bounds
    hot = rng.uniform([minx, miny], [maxx, maxy], size=(60, 2))
    k = int(n * 1.6)
    pick = rng.integers(0, len(hot), k)
    xy = hot[pick] + rng.normal(0, 0.004, size=(k, 2))
    background = rng.random(k) < 0.35
    xy[background] = rng.uniform([minx, miny], [maxx, maxy], size=(int(background.sum()), 2))
    import shapely

    inside = shapely.contains_xy(outline, xy[:, 0], xy[:, 1])
    xy = xy[inside][:n]
    glng, glat = coords.wgs84_to_gcj02(xy[:, 0], xy[:, 1])
    start = np.datetime64(end - dt.timedelta(days=365), "s")
    received = start + rng.integers(0, 365 * 86400, n).astype("timedelta64[s]")
    received.sort()
    dispatched = received + rng.integers(600, 7200, n).astype("timedelta64[s]")
    responded = dispatched + rng.integers(600, 86400, n).astype("timedelta64[s]")
    resolved = responded + rng.integers(3600, 10 * 86400, n).astype("timedelta64[s]")
    # The extract is taken at midnight starting `end`: a step after it has not happened yet.
    taken = np.datetime64(end, "s")
    blank = lambda a: np.where(a < taken, a, np.datetime64("NaT"))  # noqa: E731
    status = np.select(
        [resolved < taken, responded < taken, dispatched < taken],
        ["已办结", "处理中", "已派单"],
        "受理",
    )
    dispatched, responded, resolved = blank(dispatched), blank(responded), blank(resolved)
    closed = status == "已办结"
    category = np.array(CATEGORIES)[rng.choice(len(CATEGORIES), n, p=SHARES / SHARES.sum())]
    fmt = lambda a: pd.Series(a).dt.strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    house = rng.integers(1, 120, n)
    frame = pd.DataFrame(
        {
            "工单编号": [f"GD{i:012d}" for i in range(n)],
            "受理时间": fmt(received),
            "来源渠道": np.where(rng.random(n) < 0.7, "12345热线", "12345网络"),
            "诉求类别": category,
            "诉求内容": pd.Series(category)
            + "问题，门口"
            + house.astype(str)
            + "号附近，请尽快处理。",
            "地址": "北京市西城区某某胡同" + pd.Series(house).astype(str) + "号",
            "经度": np.round(glng, 6),
            "纬度": np.round(glat, 6),
            "坐标系": "GCJ-02",
            "状态": status,
            "派单时间": fmt(dispatched),
            "响应时间": fmt(responded),
            "办结时间": fmt(resolved),
            "是否有效回访": np.where(closed, "是", ""),
            "是否联系": np.where(closed, "是", ""),
            "是否解决": np.where(closed, np.where(rng.random(n) < 0.8, "是", "否"), ""),
            "满意度": np.where(
                closed, rng.choice(["满意", "基本满意", "不满意"], n, p=[0.75, 0.15, 0.10]), ""
            ),
        }
    )
    frame.to_csv(path, index=False)


def loaded_database(server_url: str, name: str, rows: int, reuse: bool) -> str:
    """Database `name` with `rows` requests loaded by the real ETL (demo boundaries, clustered
    requests), vacuumed and in spatial order (`db maintain`); `reuse` keeps one that already
    holds them."""
    from etl.jobs import run_file

    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    if reuse:
        try:
            with psycopg.connect(url) as conn:
                have = conn.execute("select count(*) from service_requests").fetchone()
            if have and have[0] >= rows * 0.99:
                migrate.upgrade(migrate.alembic_config(url))
                _maintained(url)
                return url
        except psycopg.Error:
            pass
    fresh_database(server_url, name)
    engine = make_engine(url)
    with tempfile.TemporaryDirectory() as tmp:
        grids = load_district(engine, Path(tmp))
        csv = Path(tmp) / "requests.csv"
        write_requests(grids, rows, csv)
        with engine.connect() as conn:
            run_file(conn, csv, layer="service_requests")
            conn.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("vacuum analyze")
    engine.dispose()
    _maintained(url)
    return url


def _maintained(url: str) -> None:
    """The requests as `blockdata db maintain` (nightly) leaves them: in spatial order."""
    from app.maintenance import cluster, is_clustered
    from layers import get_layer

    engine = make_engine(url)
    layer = get_layer("service_requests")
    with engine.connect() as conn:
        done = is_clustered(conn, layer)
    if not done:
        for result in cluster(engine, [layer]):
            if result.error:
                raise SystemExit(f"db maintain: {result.error}")
    engine.dispose()


def write_section(out: Path, name: str, section: str) -> None:
    """Put `section` between `<!-- name:start -->` and `<!-- name:end -->` in `out`, or
    append it; the section itself carries the markers."""
    text = out.read_text(encoding="utf-8") if out.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- {name}:start -->.*<!-- {name}:end -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def timed(label: str, results: list[tuple[str, float, str]], fn, *args, note: str = "", **kw):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    value = fn(*args, **kw)
    results.append((label, time.perf_counter() - t, note))
    return value


def naive_load(engine: sa.Engine, grids: geopandas.GeoDataFrame, path: Path) -> int:
    """The obvious way: pandas, geopandas.sjoin, to_postgis (no upsert, no validation)."""
    frame = pd.read_csv(path, dtype=str)
    lng, lat = coords.to_wgs84(
        frame["经度"].astype(float).to_numpy(), frame["纬度"].astype(float).to_numpy(), "gcj02"
    )
    points = geopandas.GeoDataFrame(frame, geometry=geopandas.points_from_xy(lng, lat), crs=4326)
    joined = geopandas.sjoin(
        points,
        grids[["code", "community_code", "street_code", "geometry"]],
        predicate="within",
        how="left",
    )
    joined = joined.drop(columns=["index_right"])
    joined.to_postgis("naive_requests", engine, if_exists="replace", index=False)
    return len(joined)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the first loads")
    args = parser.parse_args()
    n = args.rows
    server = resolve_database_url(from_env())
    url = fresh_database(server)
    engine = make_engine(url)
    results: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = work / "cache"  # the CLI's var/cache
        grids = timed(
            "import demo boundaries (admin import)", results, load_district, engine, work, cache
        )
        csv = work / "requests.csv"
        timed("write the CSV (not part of the load)", results, write_requests, grids, n, csv)
        size = csv.stat().st_size / 2**20

        def ours(*patches: tuple[str, object]) -> str:
            """One run as `blockdata etl run` does it; `patches` replace parts of etl.jobs."""
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("checkpoint")
            before = os.getloadavg()[0]
            with ExitStack() as stack, engine.connect() as conn:
                for target, value in patches:
                    stack.enter_context(mock.patch(target, value))
                report = run_file(conn, csv, layer="service_requests", cache_dir=cache)
                conn.commit()
            parts = ", ".join(f"{k.strip()} {v:.1f} s" for k, v in report.timings.items())
            return (
                f"load average {before:.1f}→{os.getloadavg()[0]:.1f}; read {report.read:,}, "
                f"inserted {report.inserted:,}, updated {report.updated:,} ({parts})"
            )

        def empty() -> None:
            tables = ["service_requests", "etl_rejects", "etl_runs", "request_dirty_days"]
            tables += [t.name for t in AGGREGATE_TABLES]
            with engine.begin() as conn:
                conn.exec_driver_sql(f"truncate {', '.join(tables)} restart identity cascade")
                conn.exec_driver_sql("truncate request_dirty_days")

        # Untimed: the first load of a process reads the grid lattice and imports modules;
        # every timed load below starts as warm as the others.
        head = work / "warm.csv"
        with csv.open(encoding="utf-8") as src, head.open("w", encoding="utf-8") as dst:
            dst.writelines(line for _, line in zip(range(2001), src, strict=False))
        with engine.connect() as conn:
            run_file(conn, head, layer="service_requests", cache_dir=cache)
            conn.commit()
        no_twins = ("etl.jobs._holds", lambda conn, tables: True)
        no_batch = ("etl.jobs._batch_aggregates", lambda rows, zone, parts=None: None)
        variants: list[tuple[str, list[tuple[str, object]]]] = [
            ("same first load, aggregates by SQL GROUP BY (before issue 10)", [no_twins, no_batch]),
            ("same first load, heat tables written by the load's session", [no_twins]),
            ("**blockdata etl run — into an empty table, aggregates included**", []),
        ]
        # Rounds of the three first loads, alternating, so that a shared machine's slow
        # minute does not fall on one of them alone: each row shows the median round.
        runs: dict[str, list[tuple[float, str]]] = {label: [] for label, _ in variants}
        for _ in range(args.rounds):
            for label, patches in variants:
                empty()
                t = time.perf_counter()
                note = ours(*patches)
                runs[label].append((time.perf_counter() - t, note))
        for label, _ in variants:
            ordered = sorted(runs[label])
            seconds, note = ordered[len(ordered) // 2]
            every = ", ".join(f"{s:.1f}" for s, _ in runs[label])
            results.append((label, seconds, f"median of {len(ordered)} rounds ({every} s); {note}"))
        again = timed("blockdata etl run — the same file again", results, ours)
        results[-1] = (*results[-1][:2], again)
        # The headline first in the table.
        results.insert(2, results.pop(4))
        timed(
            "obvious way: pandas + sjoin + to_postgis",
            results,
            naive_load,
            engine,
            grids,
            csv,
            note="no validation, no upsert, no rejects",
        )

        # Assignment alone, on the same points.
        with engine.connect() as conn:
            pts = pd.read_sql(
                "select source_id, ST_X(geom) x, ST_Y(geom) y, grid_code from service_requests",
                conn,
            )
        x, y = pts["x"].to_numpy(), pts["y"].to_numpy()
        index = timed("GridIndex build", results, GridIndex, grids)
        a = timed("GridIndex.assign", results, index.assign, x, y)
        ours_codes = np.where(a.grid_index >= 0, grids["code"].to_numpy()[a.grid_index], None)
        gpts = geopandas.GeoDataFrame(geometry=geopandas.points_from_xy(x, y), crs=4326)
        joined = timed(
            "geopandas.sjoin (intersects)",
            results,
            geopandas.sjoin,
            gpts,
            grids[["code", "geometry"]],
            predicate="intersects",
            how="left",
        )
        ref = joined.groupby(level=0)["code"].min().reindex(range(len(pts))).to_numpy()
        same_sjoin = int((ref == ours_codes).sum())
        with engine.connect() as conn:
            t = time.perf_counter()
            pg = pd.read_sql(
                "select r.source_id, min(g.code) code from service_requests r "
                "join grids g on ST_Intersects(g.geom, r.geom) group by r.source_id",
                conn,
            )
            results.append(("PostGIS ST_Intersects join", time.perf_counter() - t, ""))
        merged = pts.merge(pg, on="source_id", how="left")
        same_pg = int((merged["code"] == merged["grid_code"]).sum())
    rows = len(pts)
    lines = [
        "<!-- bench_etl:start -->",
        "## ETL: service requests CSV → PostGIS",
        "",
        f"`python bench/bench_etl.py --rows {n} --rounds {args.rounds}` (run by `make bench`) "
        f"on {machine()};",
        f"PostgreSQL {server_version(engine)}; {time.strftime('%Y-%m-%d')}.",
        f"CSV: {n:,} rows, {size:.0f} MiB, GCJ-02 coordinates.",
        "",
        "| step | seconds | rows/s | note |",
        "|---|---:|---:|---|",
    ]
    for label, seconds, note in results:
        rate = (
            f"{n / seconds:,.0f}"
            if "etl run" in label or "obvious" in label or "first load" in label
            else ""
        )
        if label.startswith(("GridIndex.assign", "geopandas.sjoin", "PostGIS")):
            rate = f"{rows / seconds:,.0f}"
        lines.append(f"| {label} | {seconds:.2f} | {rate} | {note} |")
    lines += [
        "",
        f"Assignment agreement: GridIndex equals sjoin (ties → smallest code) for "
        f"{same_sjoin:,} of {rows:,} points; the stored grid_code equals the PostGIS join "
        f"for {same_pg:,} of {rows:,}.",
        "<!-- bench_etl:end -->",
    ]
    section = "\n".join(lines)
    write_section(args.out, "bench_etl", section)
    print(section)
    engine.dispose()
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"drop database if exists {BENCH_DB} with (force)")


def server_version(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("show server_version").scalar_one()).split()[0]


if __name__ == "__main__":
    main()
