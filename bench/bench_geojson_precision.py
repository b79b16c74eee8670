"""Benchmark: GeoJSON features at 6, 7 and 9 decimals and PostGIS's default, in one run.

    python bench/bench_geojson_precision.py [--rows 1000000] [--reuse] [--rounds 5]
                                            [--before DIR] [--out docs/benchmarks.md]

Loads N requests into a throwaway database `blockdata_bench_geojson` (bench_etl's
`loaded_database`), then, for each precision in turn, round after round (so that the
machine's drift hits every variant alike), through the one feature SQL of
layers.queries.features, as a district reader (the connection scoped as the server's is):
  - the same OGC page: 1000 features of `service_requests` after the middle key, and the
    first 1000 grids (polygons: where the decimals weigh most);
  - the same GeoJSON export of the whole table (`layers.queries.export.geojson_chunks`, the
    COPY the API and the CLI read), its bytes counted and dropped.
Median wall time, CPU time of the database backend (from /proc: other work on the machine
moves it much less than the wall time) and bytes of each, side by side; the page is read
PAGE_REPEATS times a round, the export runs without parallel workers here, so that its
backend does all the work. `--before DIR` (a checkout of the code before issue 11's
features module, e.g. `git archive <rev> | tar -x -C DIR`) adds the same two
things end to end, old code against new, each as its own process (PYTHONPATH), in the order
A B B A: `blockdata export --format geojson` of the table, and 100 OGC pages of 1000 by the
`next` links through the Flask app. Results replace the `bench_geojson_precision` section
of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402

DB = "blockdata_bench_geojson"
VARIANTS: tuple[int | None, ...] = (6, 7, 9, None)  # None: ST_AsGeoJSON's default (9)
PAGE = 1000
PAGE_REPEATS = 20


def label(digits: int | None) -> str:
    return "default (9)" if digits is None else str(digits)


def backend_cpu(conn: sa.Connection) -> float:
    """CPU seconds (user + system) the connection's PostgreSQL backend has used so far."""
    pid = conn.execute(sa.text("select pg_backend_pid()")).scalar_one()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, rounds: int) -> dict[int | None, dict[str, list[float]]]:
    """Per precision: page seconds and bytes, export seconds, backend CPU seconds and bytes,
    every round."""
    import datetime as dt

    from layers import get_layer
    from layers.queries import access, export, features, slices

    layer = get_layer("service_requests")
    collection = features.find("service_requests")
    grids = features.find("grids")
    whole = slices.Slice(layer)
    prov = export.provenance(whole, 0, None, "geojson", dt.datetime.now(dt.UTC))
    engine = make_engine(url)
    out: dict[int | None, dict[str, list[float]]] = {
        d: {
            "page_s": [],
            "page_cpu": [],
            "page_b": [],
            "grids_s": [],
            "grids_b": [],
            "export_s": [],
            "export_cpu": [],
            "export_b": [],
        }
        for d in VARIANTS
    }
    with engine.connect() as conn:
        middle = conn.execute(
            sa.text("select percentile_disc(0.5) within group (order by id) from service_requests")
        ).scalar_one()
    try:
        for r in range(rounds):
            order = VARIANTS if r % 2 == 0 else tuple(reversed(VARIANTS))
            for digits in order:
                with engine.connect() as conn:
                    access.scope(conn, access.DISTRICT)
                    features.page(conn, collection, [], PAGE, middle, digits)  # warm
                    cpu = backend_cpu(conn)
                    for _ in range(PAGE_REPEATS):
                        t = time.perf_counter()
                        page, _ = features.page(conn, collection, [], PAGE, middle, digits)
                        out[digits]["page_s"].append(time.perf_counter() - t)
                    out[digits]["page_cpu"].append((backend_cpu(conn) - cpu) / PAGE_REPEATS)
                    out[digits]["page_b"].append(sum(len(f) for f in page) + len(page))
                    features.page(conn, grids, [], PAGE, None, digits)  # warm
                    t = time.perf_counter()
                    page, _ = features.page(conn, grids, [], PAGE, None, digits)
                    out[digits]["grids_s"].append(time.perf_counter() - t)
                    out[digits]["grids_b"].append(sum(len(f) for f in page) + len(page))
                    conn.rollback()
                with engine.connect() as conn:
                    access.scope(conn, access.DISTRICT)
                    cpu = backend_cpu(conn)
                    t = time.perf_counter()
                    size = sum(
                        len(chunk)
                        for chunk in export.geojson_chunks(conn, whole, prov, None, digits)
                    )
                    out[digits]["export_s"].append(time.perf_counter() - t)
                    out[digits]["export_cpu"].append(backend_cpu(conn) - cpu)
                    out[digits]["export_b"].append(size)
                    conn.rollback()
                print(
                    f"round {r + 1} digits {label(digits)}: page "
                    f"{out[digits]['page_s'][-1] * 1000:.1f} ms, export "
                    f"{out[digits]['export_s'][-1]:.2f} s "
                    f"(backend CPU {out[digits]['export_cpu'][-1]:.2f} s)",
                    file=sys.stderr,
                )
    finally:
        engine.dispose()
    return out


PAGING = """
import json, statistics, sys, time
from app import create_app, ogc
url, pages, token, boxes = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
app = create_app({"DATABASE_URL": url})
if ogc.bp.name not in app.blueprints:
    app.register_blueprint(ogc.bp)
client = app.test_client()
headers = {"Authorization": "Bearer " + token}
items = "/ogc/collections/service_requests/items"
path = items + "?limit=1000"
client.get(path, headers=headers)
n, size, t = 0, 0, time.perf_counter()
for _ in range(pages):
    r = client.get(path, headers=headers)
    assert r.status_code == 200, r.status_code
    body = r.get_json()
    n += len(body["features"])
    size += len(r.get_data())
    nxt = [l["href"] for l in body["links"] if l["rel"] == "next" and "f=json" in l["href"]]
    if not nxt:
        break
    path = nxt[0].split("localhost", 1)[1]
paging = time.perf_counter() - t
small = []
cpu = time.process_time()
for box in boxes:
    t = time.perf_counter()
    r = client.get(f"{items}?limit=100&bbox={box}", headers=headers)
    assert r.status_code == 200, r.status_code
    small.append(time.perf_counter() - t)
cpu = (time.process_time() - cpu) / len(boxes)
print(n, size, paging, statistics.median(small), cpu)
"""


def small_boxes(url: str, n: int = 200) -> list[str]:
    """`n` boxes of about 200 m over the district's requests, the same every run."""
    import random

    engine = make_engine(url)
    with engine.connect() as conn:
        x0, y0, x1, y1 = conn.execute(
            sa.text(
                "select ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) from "
                "(select ST_EstimatedExtent('public', 'service_requests', 'geom')::geometry e) b"
            )
        ).one()
    engine.dispose()
    rng = random.Random(11)
    boxes = []
    for _ in range(n):
        x, y = rng.uniform(x0, x1 - 0.0024), rng.uniform(y0, y1 - 0.0018)
        boxes.append(f"{x:.5f},{y:.5f},{x + 0.0024:.5f},{y + 0.0018:.5f}")
    return boxes


def before_after(url: str, before: Path, token: str, pairs: int = 1) -> list[str]:
    """Old code against new, A B B A (`pairs` times): the CLI's GeoJSON export, 100 OGC pages
    of 1000, and 200 small-box OGC requests (limit 100)."""
    versions = {"before": str(before), "after": str(ROOT)}
    results: dict[str, dict[str, list[float]]] = {
        v: {
            "export_s": [],
            "export_b": [],
            "ogc_s": [],
            "ogc_n": [],
            "ogc_b": [],
            "box_s": [],
            "box_cpu": [],
        }
        for v in versions
    }
    boxes = json.dumps(small_boxes(url))
    with tempfile.TemporaryDirectory(dir=ROOT / "var") as tmp:
        target = Path(tmp) / "x.geojson"
        for version in ("before", "after", "after", "before") * pairs:
            env = {
                **os.environ,
                "PYTHONPATH": versions[version],
                "DATABASE_URL": url,
                "BLOCKDATA_VAR": str(ROOT / "var"),  # the web role's password
            }
            cli = "from app.cli import main; main()"
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", cli, "export", "service_requests", "-q", "-o", str(target)],
                env=env,
                check=True,
                cwd=versions[version],
                capture_output=True,
            )
            results[version]["export_s"].append(time.perf_counter() - t)
            results[version]["export_b"].append(target.stat().st_size)
            target.unlink()
            proc = subprocess.run(
                [sys.executable, "-c", PAGING, url, "100", token, boxes],
                env=env,
                check=True,
                cwd=versions[version],
                capture_output=True,
                text=True,
            )
            n, size, seconds, box, box_cpu = proc.stdout.split()[-5:]
            results[version]["box_s"].append(float(box))
            results[version]["box_cpu"].append(float(box_cpu))
            results[version]["ogc_s"].append(float(seconds))
            results[version]["ogc_n"].append(int(n))
            results[version]["ogc_b"].append(int(size))
            print(
                f"{version}: export {results[version]['export_s'][-1]:.1f} s, ogc {seconds} s, "
                f"small box p50 {float(box) * 1000:.1f} ms",
                file=sys.stderr,
            )
    lines = [
        "| code | `blockdata export --format geojson`, s (each run) | MB | "
        "OGC 100 pages of 1000, features/s (each run) | MB per page | "
        "OGC small box, limit 100, p50 ms (each run) | … the app's CPU ms per request |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for version in ("before", "after"):
        r = results[version]
        rates = [n / s for n, s in zip(r["ogc_n"], r["ogc_s"], strict=True)]
        lines.append(
            f"| {version} | {' / '.join(f'{s:.1f}' for s in r['export_s'])} | "
            f"{r['export_b'][0] / 2**20:,.0f} | {' / '.join(f'{x:,.0f}' for x in rates)} | "
            f"{r['ogc_b'][0] / max(1, r['ogc_n'][0] / PAGE) / 2**20:.2f} | "
            f"{' / '.join(f'{x * 1000:.1f}' for x in r['box_s'])} | "
            f"{' / '.join(f'{x * 1000:.2f}' for x in r['box_cpu'])} |"
        )
    return lines


def main() -> None:
    from bench_etl import loaded_database, machine, write_section

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep a loaded database")
    parser.add_argument("--db", default=DB, help="the database to load (or reuse)")
    parser.add_argument("--before", type=Path, help="a checkout of the code before the change")
    parser.add_argument("--pairs", type=int, default=1, help="--before: A B B A this many times")
    parser.add_argument(
        "--only-before-after", action="store_true", help="--before's table only, printed"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()

    url = loaded_database(resolve_database_url(from_env()), args.db, args.rows, args.reuse)
    if args.only_before_after:
        from bench_export import api_token

        print("\n".join(before_after(url, args.before, api_token(url), args.pairs)))
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        total = conn.execute(sa.text("select count(*) from service_requests")).scalar_one()
    engine.dispose()
    load0 = os.getloadavg()
    found = measure(url, args.rounds)
    load1 = os.getloadavg()
    med = statistics.median
    seven = found[7]
    lines = [
        "<!-- bench_geojson_precision:start -->",
        "## GeoJSON precision: one feature SQL, 6 / 7 / 9 decimals",
        "",
        f"`python bench/bench_geojson_precision.py --rows {args.rows} --rounds {args.rounds}"
        + (" --before DIR" if args.before else "")
        + f"` on {machine()}; {total:,} requests; {time.strftime('%Y-%m-%d')}; load average "
        f"{load0[0]:.1f} → {load1[0]:.1f}. The one feature SQL of `layers.queries.features` "
        "(OGC items and item, /api features, `blockdata export`), read as a district reader; "
        f"median of {args.rounds} rounds, the variants in turn, the order reversed every round.",
        "",
        "| decimals | OGC page of 1000, ms | page, backend CPU ms | page KB | "
        "page of 1000 grids, ms | grids KB | "
        "GeoJSON export of the table, s | export, backend CPU s | export MB | "
        "export CPU vs 7 decimals |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for digits in VARIANTS:
        f = found[digits]
        lines.append(
            f"| {label(digits)} | {med(f['page_s']) * 1000:.1f} | "
            f"{med(f['page_cpu']) * 1000:.1f} | {med(f['page_b']) / 1024:,.0f} | "
            f"{med(f['grids_s']) * 1000:.1f} | {med(f['grids_b']) / 1024:,.0f} | "
            f"{med(f['export_s']):.2f} | {med(f['export_cpu']):.2f} | "
            f"{med(f['export_b']) / 2**20:,.0f} | "
            f"{med(f['export_cpu']) / med(seven['export_cpu']):.2f}× |"
        )
    print("\n".join(lines), file=sys.stderr)
    if args.before:
        from bench_export import api_token

        lines += ["", "Before and after (the same database, alternating A B B A):", ""]
        lines += before_after(url, args.before, api_token(url), args.pairs)
    lines.append("<!-- bench_geojson_precision:end -->")
    section = "\n".join(lines)
    print(section)
    write_section(args.out, "bench_geojson_precision", section)


if __name__ == "__main__":
    main()
