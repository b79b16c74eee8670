"""Benchmark: the map's search box (/api/search) on the demo district, beside the obvious way.

    python bench/bench_search.py [--requests 200000] [--calls 30] [--reuse] [--out FILE]

Builds (or with --reuse keeps) a database `blockdata_bench_search` with the demo district
(`blockdata demo load` at its default size: 200,000 requests, 3,000 cases). Then, through the
app in-process (Flask's test client: login session, row-level security, JSON), the median and
95th percentile of --calls searches of each kind, as the district and as a commander:
community names, grid labels ("百万庄社区 第4网格"), lane names, work-order numbers (工单编号),
their prefixes, case numbers (#123), addresses the geocoder resolves ("…社区附近"), and typos
(the fuzzy fallback). The geocoder is loaded once per zone before timing (the server keeps it).

Beside it, in SQL on the same connection (the district's reader): the work-order lookup of
layers.queries.search with and without migration 0026's text_pattern_ops index (dropped in a
rolled-back transaction), and the obvious search — one ILIKE '%q%' over every name and over the
requests' work-order numbers and addresses. Results replace the `bench_search` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
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

from bench_etl import fresh_database, machine, write_section  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import create_app  # noqa: E402
from app.config import from_env, resolve_database_url  # noqa: E402
from app.db import make_engine  # noqa: E402
from etl.demo.load import generate, load  # noqa: E402
from layers.queries import access  # noqa: E402
from layers.queries import search as search_query  # noqa: E402
from tests.clock import BEIJING, FrozenClock  # noqa: E402
from tests.helpers import add_user, login  # noqa: E402

DB = "blockdata_bench_search"
END = dt.date(2026, 11, 18)
NOW = dt.datetime(2026, 11, 18, 15, 0, tzinfo=BEIJING)
NAIVE = """
select kind, name from (
  select 'street' kind, name from streets union all
  select 'community', name from communities union all
  select 'lane', name from lanes union all
  select 'landmark', name from landmarks union all
  select 'request', source_id from service_requests
   where source_id ilike :p or address ilike :p
) x where name ilike :p limit 10
"""


def _database(server_url: str, requests: int, reuse: bool) -> str:
    url = make_url(server_url).set(database=DB).render_as_string(hide_password=False)
    if reuse:
        try:
            with psycopg.connect(url) as conn:
                have = conn.execute("select count(*) from service_requests").fetchone()
            if have and have[0] >= requests * 0.95:
                return url
        except psycopg.Error:
            pass
    fresh_database(server_url, DB)
    engine = make_engine(url)
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), requests=requests, end=END)
        with engine.connect() as conn:
            load(conn, Path(tmp))
            conn.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("vacuum analyze")
    engine.dispose()
    return url


def _queries(engine: sa.Engine, street: str, n: int) -> dict[str, list[str]]:
    """n queries of each kind, drawn from the rows (in the commander's street)."""
    rng = random.Random(7)

    def pick(sql: str) -> list[str]:
        with engine.connect() as conn:
            values = [str(v) for v in conn.execute(sa.text(sql), {"s": street}).scalars()]
        return rng.sample(values, min(n, len(values)))

    communities = pick("select name from communities where street_code = :s")
    return {
        "社区名称": communities,
        "网格标签": pick(
            "select c.name || ' 第' || right(g.code, 3)::int || '网格' from grids g "
            "join communities c on c.code = g.community_code where g.street_code = :s"
        ),
        "街巷名称": pick("select name from lanes where street_code = :s"),
        "工单编号": pick("select source_id from service_requests where street_code = :s"),
        "工单编号前缀": [
            s[:-3] for s in pick("select source_id from service_requests where street_code = :s")
        ],
        "案件号": pick("select '#' || id from cases where street_code = :s"),
        "地址（地理编码）": [f"{c}附近" for c in communities],
        "错字（模糊）": [c[0] + "某" + c[2:] for c in communities if len(c) > 3],
    }


def _stats(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times) * 1000, times[int(0.95 * (len(times) - 1))] * 1000


def _api(client: Any, queries: dict[str, list[str]]) -> dict[str, tuple[float, float]]:
    out = {}
    every: list[float] = []
    for kind, texts in queries.items():
        times = []
        for text in texts:
            t = time.perf_counter()
            response = client.get("/api/search", query_string={"q": text})
            times.append(time.perf_counter() - t)
            assert response.status_code == 200, response.get_data(as_text=True)
        out[kind] = _stats(times)
        every += times
    out["全部"] = _stats(every)
    return out


def _sql(engine: sa.Engine, fn: Callable[[sa.Connection, str], Any], texts: list[str]) -> float:
    times = []
    with engine.connect() as conn:
        access.scope(conn, access.DISTRICT)
        for text in texts:
            t = time.perf_counter()
            fn(conn, text)
            times.append(time.perf_counter() - t)
        conn.rollback()
    return _stats(times)[0]


def _without_index(
    engine: sa.Engine, fn: Callable[[sa.Connection, str], Any], texts: list[str]
) -> float:
    times = []
    with engine.connect() as conn:
        conn.exec_driver_sql("drop index ix_service_requests_source_id_pattern")
        access.scope(conn, access.DISTRICT)
        for text in texts:
            t = time.perf_counter()
            fn(conn, text)
            times.append(time.perf_counter() - t)
        conn.rollback()
    return _stats(times)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    server = resolve_database_url(from_env())
    url = _database(server, args.requests, args.reuse)
    engine = make_engine(url)
    with engine.begin() as conn:
        street = conn.exec_driver_sql(
            "select street_code from service_requests group by 1 order by count(*) desc limit 1"
        ).scalar_one()
        old = "(select id from users where name like 'bench-search-%')"
        conn.execute(sa.text(f"delete from sessions where user_id in {old}"))
        conn.execute(sa.text("delete from users where name like 'bench-search-%'"))
        district = add_user(conn, "bench-search-district", "district")
        commander = add_user(conn, "bench-search-commander", "commander", street)
        counts = conn.exec_driver_sql(
            "select (select count(*) from service_requests), (select count(*) from cases),"
            " (select count(*) from communities), (select count(*) from grids),"
            " (select count(*) from lanes), (select count(*) from landmarks)"
        ).one()
    queries = _queries(engine, street, args.calls)
    app = create_app({"DATABASE_URL": url}, settings=from_env().with_(clock=FrozenClock(NOW)))
    results = {}
    for who, uid in (("区级", district), ("战区司令", commander)):
        client = login(app.test_client(), uid)
        client.get("/api/search", query_string={"q": "某某社区附近"})  # the geocoder, loaded
        for texts in queries.values():  # warm-up
            client.get("/api/search", query_string={"q": texts[0]})
        results[who] = _api(client, queries)
    reach = search_query.Reach(requests=True, cases=True)

    def ours(conn: sa.Connection, text: str) -> Any:
        return search_query.search(conn, text, 10, reach)

    def naive(conn: sa.Connection, text: str) -> Any:
        return conn.execute(sa.text(NAIVE), {"p": f"%{text}%"}).all()

    orders = queries["工单编号"]
    names = queries["社区名称"] + queries["街巷名称"]
    compare = [
        ("工单编号：本实现（0026 索引）", _sql(engine, ours, orders)),
        ("工单编号：本实现，无 0026 索引", _without_index(engine, ours, orders)),
        ("工单编号：朴素 ILIKE '%q%'（名称、工单号、地址）", _sql(engine, naive, orders)),
        ("名称：本实现", _sql(engine, ours, names)),
        ("名称：朴素 ILIKE '%q%'（名称、工单号、地址）", _sql(engine, naive, names)),
    ]
    app.extensions["blockdata.engine"].dispose()
    engine.dispose()

    lines = [
        "<!-- bench_search:start -->",
        "## Search (/api/search) — `bench/bench_search.py`",
        "",
        f"{machine()}; {dt.datetime.now(dt.UTC):%Y-%m-%d}. Demo district: {counts[0]:,} "
        f"requests, {counts[1]:,} cases, {counts[2]} communities, {counts[3]:,} grids, "
        f"{counts[4]:,} lanes, {counts[5]:,} landmarks. `python bench/bench_search.py "
        f"--requests {args.requests} --calls {args.calls}`.",
        "",
        "Through the app in-process (session, row-level security, JSON), milliseconds per "
        f"search, {args.calls} queries of each kind drawn from the rows of the busiest street "
        "(target: p50 < 50 ms):",
        "",
        "| 查询 | 区级 p50 | 区级 p95 | 战区司令 p50 | 战区司令 p95 |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in results["区级"]:
        d, c = results["区级"][kind], results["战区司令"][kind]
        lines.append(f"| {kind} | {d[0]:.1f} | {d[1]:.1f} | {c[0]:.1f} | {c[1]:.1f} |")
    lines += [
        "",
        "The query alone (layers.queries.search on the district reader's connection), beside "
        "the obvious alternative, median ms:",
        "",
        "| 方式 | p50 ms |",
        "|---|---:|",
        *(f"| {label} | {ms:.1f} |" for label, ms in compare),
        "<!-- bench_search:end -->",
    ]
    section = "\n".join(lines)
    print(section)
    write_section(args.out, "bench_search", section)


if __name__ == "__main__":
    main()
