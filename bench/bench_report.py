"""Benchmark: the monthly report (通报) of one period of the demo district (15 streets).

    python bench/bench_report.py [--rows 200000] [--repeat 3] [--keep]

Runs in a throwaway database `blockdata_bench_report` on the configured server (the managed
cluster or DATABASE_URL): migrates it, imports the demo district's boundaries, writes N
synthetic requests over the last 365 days (bench_heat's generator) and builds the aggregates.
Then, for last month:
  1. times the report's dict (`layers.evaluation.report.gather` under the demo's scheme,
     etl/config/evaluation/xicheng.yaml): the live evaluation of the period and of the one
     before (no manual scores, tasks or survey are loaded: the survey part is missing, so
     no composite; the hotline part, the aspects' rules and the report's queries run in
     full), the departments' table, top categories and the grids' counts from the
     aggregates; then the same through `build_report` on a hand-built Result of the 15
     streets (tests/evalreport_fixtures.py), whose composites are all there: the files are
     made from this one, so that every chart and column has numbers;
  2. times each file: PDF, HTML, XLSX, with the PDF's pages and size, and the PDF's parts
     (pictures; template; WeasyPrint's layout);
  3. compares the PDF made the obvious other ways in the same run: every picture SVG, or
     every picture PNG, instead of SVG charts and PNG maps; and the maps drawn the obvious
     way, a GeoDataFrame's .plot on a new figure per street, instead of one PolyCollection on
     one figure reused.
Prints a markdown table (p50 and max of --repeat runs); it writes nothing else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_etl import fresh_database, machine  # noqa: E402
from bench_heat import load_district, load_requests, refresh, vacuum  # noqa: E402
from weasyprint import HTML  # noqa: E402

from app import report as rendering  # noqa: E402
from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.report import figures  # noqa: E402
from etl.units import build_units  # noqa: E402
from layers.evaluation.report import build_report, gather  # noqa: E402
from layers.evaluation.scheme import DEMO_SCHEME, read_scheme_file, save_scheme  # noqa: E402
from layers.queries.window import previous_month  # noqa: E402

BENCH_DB = "blockdata_bench_report"


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    seconds, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        seconds.append(time.perf_counter() - started)
    return seconds, value


def _gathered(conn: sa.Connection, label: str, now: dt.datetime) -> dict[str, Any]:
    return gather(conn, None, label, zone_tz=from_env().tz, now=now)


def _hand_built(conn: sa.Connection, label: str, now: dt.datetime) -> dict[str, Any]:
    """The report of a hand-built Result of the district's streets (all composites there)."""
    from tests import evalreport_fixtures as fx

    streets = conn.execute(sa.text("select code, name from streets order by code")).all()
    rows = [
        (code, name, *fx.STREETS[i % len(fx.STREETS)][2:]) for i, (code, name) in enumerate(streets)
    ]
    result = fx.result(rows, label=label)
    previous = fx.result(rows, label=str(previous_month(dt.date.fromisoformat(label + "-01")))[:7])
    return build_report(
        conn, result, fx.departments(), previous=previous, scheme_body=fx.SCHEME_BODY,
        generated_at=now,
    )  # fmt: skip


def _maps_geopandas_per_street(maps: dict[str, dict[str, Any]], fmt: str) -> dict[str, bytes]:
    """The obvious way: each street's grids as a GeoDataFrame drawn by its .plot on a new
    figure (a patch per grid), saved with a tight bounding box."""
    import io

    import geopandas as gpd
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from shapely.geometry import shape

    vmax = max((g["n"] for m in maps.values() for g in m["grids"]), default=0)
    norm = Normalize(0, max(vmax, 1))
    out = {}
    with figures._style():
        for code, m in maps.items():
            fig = Figure(figsize=(3.4, 3.0))
            ax = fig.add_subplot()
            ax.set_axis_off()
            frame = gpd.GeoDataFrame(
                {"n": [g["n"] for g in m["grids"]]},
                geometry=[shape(g["geometry"]) for g in m["grids"]],
                crs="EPSG:4326",
            )
            frame.plot(ax=ax, column="n", cmap=figures.MAP_CMAP, norm=norm, legend=True,
                       edgecolor="#9e9e9e", linewidth=0.2)  # fmt: skip
            gpd.GeoSeries([shape(m["street"])]).boundary.plot(ax=ax, color="#c62828")
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=110, bbox_inches="tight")
            out[code] = buf.getvalue()
    return out


def _pages(pdf: bytes) -> int:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(pdf)
        f.flush()
        info = subprocess.run(["pdfinfo", f.name], capture_output=True, text=True, check=True)
    return int(next(x.split()[1] for x in info.stdout.splitlines() if x.startswith("Pages:")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    server = resolve_database_url(from_env())
    url = fresh_database(server, BENCH_DB)
    engine = make_engine(url, tz=from_env().tz)
    try:
        with tempfile.TemporaryDirectory() as work:
            load_district(engine, Path(work))
        with engine.begin() as conn:  # the units and the demo's scheme, as `demo load`
            build_units(conn)
            save_scheme(conn, read_scheme_file(DEMO_SCHEME), by="bench")
        loaded = load_requests(engine, args.rows)
        refresh(engine)
        vacuum(url)
        now = from_env().now()
        label = previous_month(now.date().replace(day=1)).isoformat()[:7]
        with engine.connect() as conn:
            grids = conn.execute(sa.text("select count(*) from grids")).scalar_one()
            live_s, live = timed(lambda: _gathered(conn, label, now), args.repeat)
            build, report = timed(lambda: _hand_built(conn, label, now), args.repeat)
        units = len(live["departments"])
        rows: list[tuple[str, list[float], str]] = [
            ("report dict: gather (live evaluation ×2, departments)", live_s, f"{units} units"),
            ("report dict: build_report (hand-built Result)", build, ""),
        ]
        for fmt in ("pdf", "html", "xlsx"):
            seconds, _ = timed(lambda f=fmt: rendering.render(live, f), 1)
            rows.append((f"{fmt.upper()} of the gathered report (once)", seconds, ""))

        for charts, maps in (("svg", "png"), ("svg", "svg")):
            pictures, _ = timed(
                lambda c=charts, m=maps: rendering.images(report, c, m), args.repeat
            )
            rows.append((f"  pictures: 2 charts {charts}, 15 maps {maps}", pictures, ""))
            html = rendering.render_html(report, charts, maps)
            layout, _ = timed(lambda h=html: HTML(string=h).write_pdf(), args.repeat)
            rows.append((f"  WeasyPrint layout, maps {maps}", layout, ""))

        def geopandas_maps() -> bytes:
            kept = figures.street_maps
            figures.street_maps = _maps_geopandas_per_street  # type: ignore[assignment]
            try:
                return rendering.render_pdf(report)
            finally:
                figures.street_maps = kept  # type: ignore[assignment]

        variants: list[tuple[str, Callable[[], bytes]]] = [
            ("PDF (charts SVG, maps PNG: the default)", lambda: rendering.render_pdf(report)),
            ("PDF, every picture SVG", lambda: rendering.render_pdf(report, "svg", "svg")),
            ("PDF, every picture PNG", lambda: rendering.render_pdf(report, "png", "png")),
            ("PDF, maps by geopandas .plot, a figure each", geopandas_maps),
        ]
        # round robin: the machine's other load falls on every variant alike
        spent: dict[str, list[float]] = {name: [] for name, _ in variants}
        made: dict[str, bytes] = {}
        for _ in range(args.repeat):
            for name, make in variants:
                seconds, made[name] = timed(make, 1)
                spent[name] += seconds
        for name, _ in variants:
            pdf = made[name]
            rows.append((name, spent[name], f"{_pages(pdf)} pages, {len(pdf) / 1e6:.2f} MB"))
        html_s, html_bytes = timed(lambda: rendering.render(report, "html"), args.repeat)
        rows.append(("HTML", html_s, f"{len(html_bytes) / 1e6:.2f} MB"))
        xlsx_s, xlsx = timed(lambda: rendering.render(report, "xlsx"), args.repeat)
        rows.append(("XLSX", xlsx_s, f"{len(xlsx) / 1e3:.0f} kB"))  # fmt: skip
    finally:
        engine.dispose()
        if not args.keep:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f"drop database if exists {BENCH_DB} with (force)")

    print(f"\n### Monthly report, period {label}: {loaded:,} requests, 15 streets, {grids:,} grids")
    print(f"\n{machine()}; --repeat {args.repeat}\n")
    print("| step | p50 s | max s | output |")
    print("|---|---:|---:|---|")
    for name, seconds, note in rows:
        print(f"| {name} | {statistics.median(seconds):.2f} | {max(seconds):.2f} | {note} |")


if __name__ == "__main__":
    main()
