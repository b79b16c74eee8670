"""Benchmark: exporting N service requests, ours beside GDAL's ogr2ogr, in one run.

    python bench/bench_export.py [--rows 1000000] [--reuse] [--out docs/benchmarks.md]

Loads N requests into a throwaway database `blockdata_bench_export` (bench_etl's helpers:
demo boundaries, clustered requests, `etl.jobs.run_file`), then times, each as its own
process under `/usr/bin/time` (wall time and peak resident memory):
  - `ogr2ogr -f GeoJSON` straight from the PostGIS table (the issue's yardstick), and
    `ogr2ogr -f GPKG` / `-f CSV`;
  - `blockdata export` to GeoJSON, CSV, GeoPackage and Parquet;
  - the HTTP API: `/api/layers/service_requests/features` (GeoJSON and `f=csv`) served as
    `blockdata serve --workers 1 --threads 4` runs it (waitress) in its own process, read
    by one client that writes the body to disk: total time and time to the first byte (the
    server spools the export to a file first: its database transaction ends then); memory
    is the server's peak resident set (VmHWM) after the download;
  - the cost of the CSV formula guard (`export._csv_cell`): the same CSV export in this
    process with and without it, in turn, three times each.
Every output is counted (features or rows) against the table. Results replace the
`bench_export` section of docs/benchmarks.md; `--only http` or `--only csv-guard` runs one
part and prints it.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402

DB = "blockdata_bench_export"
BIN = Path(sys.executable).parent


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run `cmd` under /usr/bin/time: (wall seconds, peak resident MB)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        proc = subprocess.run(
            ["/usr/bin/time", "-o", report.name, "-f", "%e %M", *cmd],
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        wall, kb = report.read().split()[-2:]
    return float(wall), int(kb) / 1024


def geojson_features(path: Path) -> int:
    """Features in a GeoJSON file, counted without parsing it whole (both writers put one
    feature per line)."""
    with path.open("rb") as fh:
        return sum(1 for line in fh if b'"type":"Feature"' in line or b'"type": "Feature"' in line)


def csv_rows(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh) - 1  # no value of ours spans lines in this data set


def gpkg_rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f'select count(*) from "{table}"').fetchone()[0])


def parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def gdal_version() -> str:
    out = subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True).stdout
    return out.split(",")[0].removeprefix("GDAL ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_token(url: str) -> str:
    from app.auth import hash_password, new_token
    from layers.accounts import api_tokens, users

    engine = make_engine(url)
    token, digest = new_token()
    with engine.begin() as conn:
        uid = conn.execute(sa.select(users.c.id).where(users.c.name == "bench-analyst")).scalar()
        if uid is None:
            uid = conn.execute(
                sa.insert(users)
                .values(name="bench-analyst", role="analyst", password_hash=hash_password("x" * 16))
                .returning(users.c.id)
            ).scalar_one()
        conn.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
    engine.dispose()
    return token


def peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


def download(port: int, path: str, token: str, out: Path) -> tuple[float, float]:
    """GET `path` and write the body to `out`: (wall seconds, seconds to the first byte)."""
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status} {response.read()[:300]!r}")
    first = None
    with out.open("wb") as fh:
        while chunk := response.read(1 << 20):
            if first is None:
                first = time.perf_counter() - t
            fh.write(chunk)
    conn.close()
    return time.perf_counter() - t, first or 0.0


def serve(url: str, port: int, workers: int = 1, threads: int = 4) -> subprocess.Popen[bytes]:
    """`blockdata serve --workers W --threads T` in its own process (by default waitress, one
    process: its memory is the server's)."""
    code = (
        "from app import create_app; from app.cli import run_server;"
        f"run_server(lambda: create_app({{'DATABASE_URL': {url!r}}}), host='127.0.0.1', "
        f"port={port}, threads={threads}, workers={workers}, quiet=True)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def csv_guard(url: str, rows: int) -> str:
    """The CSV export of every request in this process, with the formula guard and without
    (`_csv_cell` as `_csv_value`), in turn, three times each: a line with the best times."""
    from app.config import system_clock
    from layers import get_layer
    from layers.queries import export, slices

    guarded = export._csv_cell
    engine = make_engine(url)
    best = {"with": float("inf"), "without": float("inf")}
    try:
        with tempfile.TemporaryDirectory(dir=ROOT / "var") as tmp:
            for _ in range(3):
                for name in ("with", "without"):
                    export._csv_cell = guarded if name == "with" else export._csv_value  # type: ignore[assignment]
                    path = Path(tmp) / "guard.csv"
                    with engine.connect() as conn:
                        t = time.perf_counter()
                        export.export_file(
                            conn,
                            slices.Slice(get_layer("service_requests")),
                            "csv",
                            path,
                            None,
                            system_clock(),
                        )
                        best[name] = min(best[name], time.perf_counter() - t)
                    path.unlink()
    finally:
        export._csv_cell = guarded  # type: ignore[method-assign]
        engine.dispose()
    one, five, _ = os.getloadavg()
    return (
        f"The CSV formula guard (a `'` before text that starts like a formula) on {rows:,} "
        f"requests, in this process, best of three each in turn: {best['with']:.1f} s with it, "
        f"{best['without']:.1f} s without (load {one:.1f}/{five:.1f})."
    )


def main() -> None:
    from bench_etl import loaded_database, machine, write_section

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep a loaded database")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--db", default=DB, help="the database to load (or reuse)")
    parser.add_argument("--only", choices=["http", "csv-guard"], help="one part, printed only")
    args = parser.parse_args()

    server_url = resolve_database_url(from_env())
    url = loaded_database(server_url, args.db, args.rows, args.reuse)
    if args.only == "csv-guard":
        print(csv_guard(url, args.rows))
        return
    with psycopg.connect(url) as conn:
        total = int(conn.execute("select count(*) from service_requests").fetchone()[0])  # type: ignore[index]
    pg = "PG:" + " ".join(
        f"{k}={v}"
        for k, v in {
            "host": make_url(url).host,
            "port": make_url(url).port,
            "dbname": args.db,
            "user": make_url(url).username,
            "password": make_url(url).password,
        }.items()
        if v is not None
    )
    env = {"DATABASE_URL": url}
    blockdata = str(BIN / "blockdata")
    rows: list[tuple[str, float, float, int, int]] = []
    first_bytes: dict[str, float] = {}

    with tempfile.TemporaryDirectory(dir=ROOT / "var") as tmp:
        out = Path(tmp)

        def run(label: str, cmd: list[str], target: Path, counter) -> None:  # type: ignore[no-untyped-def]
            target.unlink(missing_ok=True)
            wall, mb = timed(cmd, env)
            size = target.stat().st_size
            rows.append((label, wall, mb, counter(target), size))
            target.unlink()
            print(f"{label}: {wall:.1f} s, {mb:.0f} MB", file=sys.stderr)

        layer = "service_requests"
        files = {fmt: out / f"x.{fmt}" for fmt in ("geojson", "csv", "gpkg", "parquet")}
        count = {
            "geojson": geojson_features,
            "csv": csv_rows,
            "gpkg": lambda p: gpkg_rows(p, layer),
            "parquet": parquet_rows,
        }

        def ogr(fmt: str, *options: str) -> list[str]:
            driver = {"geojson": "GeoJSON", "csv": "CSV", "gpkg": "GPKG"}[fmt]
            return ["ogr2ogr", "-f", driver, str(files[fmt]), pg, layer, *options]

        def ours(fmt: str) -> list[str]:
            return [blockdata, "export", layer, "-q", "-o", str(files[fmt])]

        plan = [
            ("ogr2ogr -f GeoJSON", "geojson", ogr("geojson")),
            ("blockdata export --format geojson", "geojson", ours("geojson")),
            ("ogr2ogr -f GeoJSON (again)", "geojson", ogr("geojson")),
            ("blockdata export --format geojson (again)", "geojson", ours("geojson")),
            ("ogr2ogr -f CSV", "csv", ogr("csv", "-lco", "GEOMETRY=AS_XY")),
            ("blockdata export --format csv", "csv", ours("csv")),
            ("ogr2ogr -f GPKG", "gpkg", ogr("gpkg")),
            ("blockdata export --format gpkg", "gpkg", ours("gpkg")),
            ("blockdata export --format parquet", "parquet", ours("parquet")),
        ]
        for label, fmt, cmd in [] if args.only == "http" else plan:
            run(label, cmd, files[fmt], count[fmt])

        token = api_token(url)
        port = free_port()
        server = serve(url, port)
        try:
            for label, query, counter in (
                ("GET /api/layers/…/features (GeoJSON)", "", geojson_features),
                ("GET /api/layers/…/features?f=csv", "?f=csv", csv_rows),
            ):
                target = out / "http.out"
                before = peak_mb(server.pid)
                wall, first = download(port, f"/api/layers/{layer}/features{query}", token, target)
                after = peak_mb(server.pid)
                rows.append((label, wall, after, counter(target), target.stat().st_size))
                first_bytes[label] = first
                print(
                    f"{label}: {wall:.1f} s, first byte {first:.1f} s, server peak "
                    f"{before:.0f}→{after:.0f} MB",
                    file=sys.stderr,
                )
                target.unlink()
        finally:
            server.terminate()
            server.wait(10)

    for label, _, _, n, _ in rows:
        if n != total:
            raise SystemExit(f"{label} wrote {n} features, the table has {total}")
    load = os.getloadavg()
    lines = [
        "<!-- bench_export:start -->",
        "## Exports: 1M requests to files and over HTTP, beside ogr2ogr",
        "",
        f"`python bench/bench_export.py --rows {args.rows}` (run by `make bench`) on {machine()};",
        f"{total:,} requests, load average at the end {load[0]:.1f} / {load[1]:.1f}.",
        "Each line is one process timed by `/usr/bin/time` (wall, peak resident memory); for",
        "HTTP the memory is the server's peak resident set (VmHWM) after the download. Every",
        "output was counted and holds every row.",
        "",
        "| export | seconds | features/s | peak MB | size MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, wall, mb, n, size in rows:
        first = f" (first byte {first_bytes[label]:.1f})" if label in first_bytes else ""
        lines.append(
            f"| {label} | {wall:.1f}{first} | {n / wall:,.0f} | {mb:.0f} | {size / 2**20:,.0f} |"
        )
    if args.only == "http":
        print("\n".join(lines))
        return
    lines += [
        "",
        "Over HTTP the server spools the export to a temporary file, ends its transaction,",
        "then sends the file: the first byte comes when the file is complete, and a slow",
        "client holds neither a database connection nor a thread.",
        "",
        csv_guard(url, total),
        "",
        "Our GeoJSON is built by PostgreSQL (`ST_AsGeoJSON`, `row_to_json` of the published",
        "columns, 7 decimals) and streamed out of `COPY … TO STDOUT` in storage order;",
        "exports of 200k rows or more may use two parallel workers. ogr2ogr writes every",
        "column of the table, ours the published ones (all but `etl_run_id`), so the sizes",
        f"differ a little. ogr2ogr here is Debian's GDAL {gdal_version()}"
        + "; its time is CPU bound in itself (`ogr2ogr -f GeoJSON /vsistdout/ … > /dev/null`",
        "takes as long); the issue's anchor, 6.9 s, is not reproduced with this build.",
        "<!-- bench_export:end -->",
    ]
    section = "\n".join(lines)
    print(section)
    write_section(args.out, "bench_export", section)


if __name__ == "__main__":
    main()
