"""Keep the request aggregates exact; and the rules of the three rates.

`refresh_request_aggregates` consumes the days the triggers marked in `request_dirty_days`
and recomputes each of them whole from `service_requests`, so the result is exact whatever
changed (a new request, a new status, a corrected category or date, a deletion) and untouched
days are not read. The period rows (dekads, months, quarters) stay the sums of their daily
rows: each refresh adds the difference between the recomputed days' new and old rows. The
first refresh (empty aggregates), a TRUNCATE of the requests, too many marked days or
`full=True` rebuild everything instead. It runs on the caller's connection, inside the
caller's transaction.

A rebuild never holds up readers for long (`etl.swap`): the four heat tables are built aside
and swapped in under locks taken with a short timeout (`etl.locks`), and the two small ones
are rewritten in place, which takes no lock a reader waits for. A bulk load, which holds the
tables' locks already, rebuilds them in place (`locked=True`) — from the batch it loaded when
that is everything (`rebuild_from_batch`). The map server's role (an Open311 intake) may
rewrite the aggregates' rows but not create tables or indexes: its full rebuild of a small
table (`ddl=False`) deletes and inserts rows in place.

Days are local days in one time zone, recorded in `request_aggregates_zone` (an IANA name:
the caller passes the district's, BLOCKDATA_TZ; etl/ never reads settings). A refresh in
another zone than the recorded one refuses (`AggregatesZoneError`) unless it rebuilds
everything (`full=True`, or nothing was built yet): days of two zones are never mixed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import sqlalchemy as sa
import yaml
from sqlalchemy.dialects.postgresql import insert as pg_insert

from etl import swap
from etl.load import write_copy
from etl.yamlcache import read_yaml
from layers import get_layer
from layers.aggregates import (
    CATEGORY_SPANS,
    SPANS,
    STREET_MEASURES,
    cell_x,
    cell_y,
    local_day,
    period_start_sql,
    request_aggregates_zone,
    request_cells_daily,
    request_cells_periods,
    request_daily,
    request_dirty_days,
    request_open,
    request_periods,
    request_street_daily,
)

CONFIG_DIR = Path(__file__).resolve().parent / "config"
RESOLVED = "已办结"
SATISFIED = "满意"
BASIC_SATISFIED = "基本满意"
# One refresh at a time: the key of the transaction-level advisory lock they take.
REFRESH_LOCK = "request_aggregates"
# With more changed days than this, one rebuild of everything is cheaper than day by day.
FULL_REBUILD_DAYS = 120
# An Open311 request rebuilds everything only for a table of at most this many requests
# (estimated): about a second; more is left to the next load.
FULL_REBUILD_IN_REQUEST = 100_000
# A full rebuild groups a million requests in memory and builds its indexes in one sort each.
BULK_SETTINGS = {
    "work_mem": "512MB",
    "maintenance_work_mem": "1GB",
    "max_parallel_maintenance_workers": "2",
}
RATE_NAMES = ("response_rate", "resolution_rate", "satisfaction_rate")
HEAT_TABLES = ((request_daily, request_periods), (request_cells_daily, request_cells_periods))


class AggregatesZoneError(RuntimeError):
    """The aggregates are keyed on another time zone's days than the one asked for."""

    def __init__(self, built: str, wanted: str) -> None:
        self.built, self.wanted = built, wanted
        super().__init__(
            f"诉求聚合按 {built} 时区的日期建立，当前时区设置为 {wanted}：请运行 "
            f"`blockdata db rebuild-aggregates` 重建 (the request aggregates are keyed on "
            f"{built} days, the configured zone BLOCKDATA_TZ is {wanted}: rebuild them with "
            "`blockdata db rebuild-aggregates`)"
        )


class RatesConfigError(ValueError):
    """rates.yaml is malformed; the message names the entry."""


@dataclass(frozen=True)
class RatesConfig:
    """k (the weight of 基本满意) and the composite's weights (DESIGN.md, "The three rates")."""

    k: float
    weights: dict[str, float]


def load_rates(path: Path | None = None) -> RatesConfig:
    """Read etl/config/rates.yaml: k in [0, 1]; three weights ≥ 0 that sum to 1."""
    path = path or CONFIG_DIR / "rates.yaml"
    try:
        doc = read_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise RatesConfigError(f"cannot read {path}: {exc}") from exc
    try:
        k = float(doc["k"])
        weights = {name: float(doc["weights"][name]) for name in RATE_NAMES}
    except (KeyError, TypeError, ValueError) as exc:
        raise RatesConfigError(
            f"{path}: expected k and weights for {', '.join(RATE_NAMES)}: {exc!r}"
        ) from exc
    if not 0 <= k <= 1:
        raise RatesConfigError(f"{path}: k must lie in [0, 1], got {k}")
    if min(weights.values()) < 0 or abs(sum(weights.values()) - 1) > 1e-9:
        raise RatesConfigError(f"{path}: weights must be ≥ 0 and sum to 1, got {weights}")
    return RatesConfig(k=k, weights=weights)


def three_rates(counts: dict[str, int], config: RatesConfig) -> dict[str, float | None]:
    """The three rates (fractions) and the composite score (0–100); all None when V = 0.

    `counts` holds callbacks (V), contacted, solved, satisfied and basic_satisfied.
    """
    valid = counts["callbacks"]
    if not valid:
        return dict.fromkeys((*RATE_NAMES, "composite"))
    rates = {
        "response_rate": counts["contacted"] / valid,
        "resolution_rate": counts["solved"] / valid,
        "satisfaction_rate": (counts["satisfied"] + config.k * counts["basic_satisfied"]) / valid,
    }
    composite = 100 * sum(config.weights[name] * rates[name] for name in RATE_NAMES)
    return {**rates, "composite": composite}


@dataclass
class RefreshReport:
    """What a refresh did: a full rebuild or the days recomputed, and the rows written."""

    full: bool
    deferred: bool = False  # a full rebuild was needed and not allowed: the marks remain
    days: int = 0
    place_days: int = 0
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)


def day_bounds(day: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the local day `day` in time zone `zone`, as aware datetimes (a day
    of a zone with daylight saving may last 23 or 25 hours)."""
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(day, dt.time(), tz)
    return start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)


def days_bounds(since: dt.date, until: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the local days since … until (both included) in time zone `zone`."""
    return day_bounds(since, zone)[0], day_bounds(until, zone)[1]


def aggregates_zone(conn: sa.Connection) -> str:
    """The time zone the aggregates' days are counted in (`request_aggregates_zone`)."""
    return str(conn.execute(sa.select(request_aggregates_zone.c.zone)).scalar_one())


def check_zone(conn: sa.Connection, zone: str) -> None:
    """Refuse to read aggregates built in another zone than `zone` (AggregatesZoneError);
    empty aggregates hold no day of any zone."""
    built = aggregates_zone(conn)
    if built != zone and _built(conn):
        raise AggregatesZoneError(built, zone)


def _built(conn: sa.Connection) -> bool:
    return bool(conn.execute(sa.select(sa.exists().select_from(request_street_daily))).scalar_one())


def _requests() -> sa.Table:
    return get_layer("service_requests").table


def _on_days(query: sa.Select[Any], days: list[dt.date] | None, zone: str) -> sa.Select[Any]:
    """`query` over service_requests restricted to the requests received on `days`.

    A join with the days' [start, end) bounds: one index range scan on received_at per day.
    None means all days.
    """
    if days is None:
        return query
    r = _requests()
    bounds = sa.values(
        sa.column("lo", sa.DateTime(timezone=True)),
        sa.column("hi", sa.DateTime(timezone=True)),
        name="days",
    ).data([day_bounds(d, zone) for d in days])
    return query.join_from(
        r, bounds, (r.c.received_at >= bounds.c.lo) & (r.c.received_at < bounds.c.hi)
    )


def _flag(condition: Any, name: str) -> sa.Label[int]:
    return sa.case((condition, 1), else_=0).label(name)


def _keyed(days: list[dt.date] | None, zone: str) -> sa.Subquery:
    """The requests of `days` with their aggregate keys and 0/1 measures computed once."""
    r = _requests()
    valid = r.c.callback_valid.is_(True)
    query = sa.select(
        local_day(r.c.received_at, zone).label("day"),
        r.c.street_code,
        r.c.community_code,
        r.c.grid_code,
        cell_x(r.c.geom).label("cell_x"),
        cell_y(r.c.geom).label("cell_y"),
        r.c.category,
        _flag(r.c.status == RESOLVED, "resolved"),
        _flag(valid, "callbacks"),
        _flag(valid & r.c.callback_contacted.is_(True), "contacted"),
        _flag(valid & r.c.callback_solved.is_(True), "solved"),
        _flag(valid & (r.c.satisfaction == SATISFIED), "satisfied"),
        _flag(valid & (r.c.satisfaction == BASIC_SATISFIED), "basic_satisfied"),
        r.c.updated_at,
    )
    return _on_days(query, days, zone).subquery("k")


def _insert(conn: sa.Connection, table: sa.Table, select: sa.Select[Any]) -> int:
    """INSERT INTO table (the select's column names) SELECT …; the rows inserted."""
    names = [c.name for c in select.selected_columns]
    result = conn.execute(
        sa.insert(table).from_select(names, select),
        execution_options={"preserve_rowcount": True},
    )
    return int(result.rowcount)


def _daily_heat(k: sa.Subquery, daily: sa.Table) -> sa.Select[Any]:
    """Requests per day, unit and category, and per day and unit over all categories.

    GROUPING SETS computes both in one pass; the HAVING drops the per-category row of the
    requests without a category (they are in the total only).
    """
    keys = [k.c[c.name] for c in daily.c if c.name not in ("category", "received")]
    return (
        sa.select(*keys, k.c.category, sa.func.count().label("received"))
        .group_by(sa.func.grouping_sets(sa.tuple_(*keys, k.c.category), sa.tuple_(*keys)))
        .having((sa.func.grouping(k.c.category) == 1) | k.c.category.is_not(None))
    )


def _periods_from(daily: sa.Table, days: list[dt.date] | None = None, sign: int = 1) -> Any:
    """The daily rows (of `days`, None: all) summed per period and key, optionally negated:
    per dekad, month and quarter for the totals, per month for each category."""
    keys = [c for c in daily.c if c.name not in ("day", "received")]
    parts = []
    for span in SPANS:
        first_day = period_start_sql(span, daily.c.day).label("first_day")
        query = sa.select(sa.literal(span, sa.String).label("span"), first_day, *keys)
        if span not in CATEGORY_SPANS:
            query = query.where(daily.c.category.is_(None))
        if days is not None:
            query = query.where(daily.c.day.in_(days))
        parts.append(query.add_columns((sign * daily.c.received).label("received")))
    rows = sa.union_all(*parts).subquery("d")
    group = [c for c in rows.c if c.name != "received"]
    return sa.select(*group, sa.func.sum(rows.c.received).label("received")).group_by(*group)


def _delta_table(periods: sa.Table) -> sa.Table:
    """A temporary table for the changes of one refresh to the period rows."""
    columns = [sa.Column(c.name, c.type) for c in periods.columns]
    return sa.Table(
        f"delta_{periods.name}",
        sa.MetaData(),
        *columns,
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )


def _refresh_heat(
    conn: sa.Connection, daily: sa.Table, periods: sa.Table, days: list[dt.date], zone: str
) -> dict[str, int]:
    """Recompute the daily rows of `days`; add the difference to the period rows."""
    delta = _delta_table(periods)
    delta.drop(conn, checkfirst=True)
    delta.create(conn)
    _insert(conn, delta, _periods_from(daily, days, sign=-1))
    conn.execute(sa.delete(daily).where(daily.c.day.in_(days)))
    inserted = _insert(conn, daily, _daily_heat(_keyed(days, zone), daily))
    _insert(conn, delta, _periods_from(daily, days))
    keys = [c for c in delta.c if c.name != "received"]
    change = (
        sa.select(*keys, sa.func.sum(delta.c.received).label("received"))
        .group_by(*keys)
        .having(sa.func.sum(delta.c.received) != 0)
    )
    upsert = pg_insert(periods).from_select([c.name for c in delta.c], change)
    upsert = upsert.on_conflict_do_update(
        index_elements=[c.name for c in keys],
        set_={"received": periods.c.received + upsert.excluded.received},
    )
    changed = conn.execute(upsert, execution_options={"preserve_rowcount": True}).rowcount
    conn.execute(sa.delete(periods).where(periods.c.received == 0))
    delta.drop(conn)
    return {daily.name: inserted, periods.name: int(changed)}


def _street_daily(k: sa.Subquery) -> sa.Select[Any]:
    measures = [sa.func.sum(k.c[m]).label(m) for m in STREET_MEASURES if m != "received"]
    return sa.select(
        k.c.day,
        k.c.street_code,
        sa.func.count().label("received"),
        *measures,
        sa.func.max(k.c.updated_at).label("updated_at"),
    ).group_by(k.c.day, k.c.street_code)


def _open(days: list[dt.date] | None, zone: str) -> sa.Select[Any]:
    r = _requests()
    query = sa.select(*(r.c[c.name] for c in request_open.c)).where(
        r.c.status.is_distinct_from(RESOLVED)
    )
    return _on_days(query, days, zone)


def _size(conn: sa.Connection) -> int:
    """The planner's estimate of the number of requests (0 before the first ANALYZE)."""
    estimate = conn.execute(
        sa.text("select reltuples from pg_class where oid = 'service_requests'::regclass")
    ).scalar_one()
    return max(int(estimate), 0)


def _needs_full(conn: sa.Connection) -> bool:
    """Never built: no aggregate rows although there are requests."""
    return not _built(conn) and bool(
        conn.execute(sa.select(sa.exists().select_from(_requests()))).scalar_one()
    )


@contextmanager
def _settings(conn: sa.Connection, **values: str) -> Iterator[None]:
    """Settings for the rest of the block, as SET LOCAL would (a rollback undoes them too)."""
    old = {
        name: conn.execute(sa.select(sa.func.current_setting(name))).scalar_one() for name in values
    }
    for name, value in values.items():
        conn.execute(sa.select(sa.func.set_config(name, value, True)))
    yield
    for name, value in old.items():
        conn.execute(sa.select(sa.func.set_config(name, value, True)))


# The tables a rebuild swaps or truncates (ACCESS EXCLUSIVE); the two small ones, scorecards
# and open requests, are rewritten row by row (DELETE, INSERT), which no reader waits for.
HEAT_TABLE_LIST = (request_daily, request_periods, request_cells_daily, request_cells_periods)


def _rebuild(conn: sa.Connection, locked: bool, zone: str, ddl: bool = True) -> dict[str, int]:
    """Everything from scratch in `zone`'s days, the zone recorded with them: in place when
    the caller holds the heat tables' locks, else built aside and swapped in; without `ddl`
    (the map server's role), rows deleted and inserted in place."""
    conn.execute(sa.update(request_aggregates_zone).values(zone=zone))
    if not ddl:
        return _rebuild_rows(conn, zone)
    with _settings(conn, **BULK_SETTINGS):
        return _rebuild_in_place(conn, zone) if locked else _rebuild_aside(conn, zone)


def _rebuild_rows(conn: sa.Connection, zone: str) -> dict[str, int]:
    """Every aggregate row deleted and inserted again, indexes kept: for a small table only
    (`FULL_REBUILD_IN_REQUEST`), by a role that may write rows but not make tables or
    indexes. DELETE, not TRUNCATE: readers do not wait."""
    keyed = _keyed(None, zone)
    rows = {}
    for daily, periods in HEAT_TABLES:
        conn.execute(sa.delete(periods))
        conn.execute(sa.delete(daily))
        rows[daily.name] = _insert(conn, daily, _daily_heat(keyed, daily))
        rows[periods.name] = _insert(conn, periods, _periods_from(daily))
    rows.update(_rewrite_small(conn, _street_daily(keyed), zone))
    return rows


def _rebuild_in_place(conn: sa.Connection, zone: str) -> dict[str, int]:
    """Truncated, filled and indexed once (bulk-load practice); the caller holds the locks."""
    _truncate_heat(conn)
    keyed = _keyed(None, zone)
    rows = {}
    for daily, periods in HEAT_TABLES:
        rows[daily.name] = _insert(conn, daily, _daily_heat(keyed, daily))
        rows[periods.name] = _insert(conn, periods, _periods_from(daily))
    _index_heat(conn)
    rows.update(_rewrite_small(conn, _street_daily(keyed), zone))
    return rows


def _truncate_heat(conn: sa.Connection) -> None:
    """Empty the heat tables and drop their indexes (the caller holds their locks).

    Truncated in this transaction, they are written without WAL at wal_level minimal."""
    conn.execute(sa.text("truncate " + ", ".join(t.name for t in HEAT_TABLE_LIST)))
    for table in HEAT_TABLE_LIST:
        for index in table.indexes:
            conn.execute(sa.schema.DropIndex(index))


def _index_heat(conn: sa.Connection) -> None:
    for table in HEAT_TABLE_LIST:
        for index in table.indexes:
            conn.execute(sa.schema.CreateIndex(index))
    for table in HEAT_TABLE_LIST:
        conn.execute(sa.text(f"analyze {table.name}"))


def _rewrite_small(
    conn: sa.Connection, street_daily: sa.Select[Any] | pa.Table, zone: str
) -> dict[str, int]:
    """The scorecard rows (from a query, or a batch's rows) and the open requests, rewritten
    whole in place: row locks only, readers see the old rows until the commit."""
    conn.execute(sa.delete(request_street_daily))
    if isinstance(street_daily, pa.Table):
        write_copy(conn, request_street_daily.name, street_daily)
        scorecards = street_daily.num_rows
    else:
        scorecards = _insert(conn, request_street_daily, street_daily)
    conn.execute(sa.delete(request_open))
    return {
        request_street_daily.name: scorecards,
        request_open.name: _insert(conn, request_open, _open(None, zone)),
    }


def _twin(table: sa.Table, tag: str) -> sa.Table:
    """The SQLAlchemy view of `table`'s twin (`etl.swap.create_aside`), for queries."""
    columns = [sa.Column(c.name, c.type) for c in table.columns]
    name = swap.twin_name(table.name, tag)
    return sa.Table(name, sa.MetaData(), *columns, schema=swap.BUILD_SCHEMA)


HEAT_NAMES = [t.name for t in HEAT_TABLE_LIST]


def _rebuild_aside(conn: sa.Connection, zone: str) -> dict[str, int]:
    """The heat tables built aside and swapped in; the two small tables rewritten in place.

    Readers go on reading the old heat tables until the swap, whose locks are taken as
    `etl.locks.acquire` takes them, after everything else is done."""
    tag = "t" + secrets.token_hex(4)  # the twins live in this transaction only
    twins = {}
    for table in HEAT_TABLE_LIST:
        swap.create_aside(conn, table.name, tag)
        twins[table.name] = _twin(table, tag)
    keyed = _keyed(None, zone)
    rows = {}
    for daily, periods in HEAT_TABLES:
        built = twins[daily.name]
        rows[daily.name] = _insert(conn, built, _daily_heat(keyed, built))
        rows[periods.name] = _insert(conn, twins[periods.name], _periods_from(built))
    for name in HEAT_NAMES:
        swap.copy_indexes(conn, name, tag)
        conn.exec_driver_sql(f"analyze {swap.twin(name, tag)}")
    rows.update(_rewrite_small(conn, _street_daily(keyed), zone))
    swap.swap(conn, HEAT_NAMES, tag)
    return rows


def rebuild_from_batch(conn: sa.Connection, batch: dict[str, pa.Table], zone: str) -> RefreshReport:
    """Aggregates of a table that holds exactly the rows of one load, from that batch's
    aggregates (`etl.aggregate_batch.batch_aggregates`, in `zone`'s days), written by COPY.

    The caller is a bulk load into an empty table: it holds the heat tables' locks and the
    refresh lock, and the table's rows were written in this transaction."""
    started = time.monotonic()
    conn.execute(sa.delete(request_dirty_days))  # marks of rows that are gone
    conn.execute(sa.update(request_aggregates_zone).values(zone=zone))
    rows = {}
    with _settings(conn, **BULK_SETTINGS):
        _truncate_heat(conn)
        for table in HEAT_TABLE_LIST:
            write_copy(conn, table.name, batch[table.name], freeze=True)
            rows[table.name] = batch[table.name].num_rows
        _index_heat(conn)
        rows.update(_rewrite_small(conn, _scorecards(conn, batch), zone))
    return _batch_report(batch, rows, started)


def _scorecards(conn: sa.Connection, batch: dict[str, pa.Table]) -> pa.Table:
    """The batch's scorecard rows with `updated_at`: the time of the load's transaction."""
    now = conn.execute(sa.select(sa.func.now())).scalar_one()
    table = batch[request_street_daily.name]
    stamp = pa.array([now] * table.num_rows, pa.timestamp("us", tz="UTC"))
    return table.append_column("updated_at", stamp)


def _batch_report(
    batch: dict[str, pa.Table], rows: dict[str, int], started: float
) -> RefreshReport:
    report = RefreshReport(full=True, rows=rows, seconds=time.monotonic() - started)
    days = batch[request_street_daily.name].column("day")
    report.days = report.place_days = len(set(days.to_pylist()))
    return report


TWIN_SETTINGS = {**BULK_SETTINGS, "max_parallel_maintenance_workers": "0"}
"""A twin is built beside other work (the load's own index builds, the other twins): no
parallel workers."""


@dataclass
class Twins:
    """The heat tables of a batch, built as twins (`etl.swap`) on a second connection while
    the load writes its rows: PostgreSQL fills and indexes them on a second core. Their
    transaction commits; `rebuild_from_twins` swaps them in, in the load's transaction.

    The load's connection, once its own work is done, builds the twins the second one has
    not started yet (`help`): the last ones are built on both cores."""

    engine: sa.Engine
    tag: str
    parts: dict[str, Future[pa.Table | None]]
    statements: dict[str, list[str]]
    fill: Future[dict[str, int]] = field(init=False)
    queue: deque[str] = field(default_factory=lambda: deque(HEAT_NAMES))
    helped: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, last: bool = False) -> str | None:
        """The next twin nobody builds yet (the second connection takes them in order, the
        load's connection from the end), or None."""
        with self.lock:
            if not self.queue:
                return None
            return self.queue.pop() if last else self.queue.popleft()

    def build(self, conn: sa.Connection, name: str) -> int:
        """Fill and index the twin of `name` on `conn`, in its transaction."""
        table = self.parts[name].result()
        if table is None:
            raise ValueError("no batch aggregates to build the twins from")
        twin = swap.twin(name, self.tag)
        # Emptied in this transaction: COPY FREEZE, and no WAL at wal_level minimal.
        conn.exec_driver_sql(f"truncate {twin}")
        write_copy(conn, twin, table, freeze=True)
        for statement in self.statements[name]:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql(f"analyze {twin}")
        return table.num_rows

    def help(self, conn: sa.Connection) -> bool:
        """Build, on the load's connection `conn`, the twins not started yet; False when one
        failed (then none of them is kept: `drop_helped`, and the aggregates come another way)."""
        while (name := self.take(last=True)) is not None:
            if self.fill.done() and self.fill.exception() is not None:
                return False
            try:
                with conn.begin_nested(), _settings(conn, **TWIN_SETTINGS):
                    self.helped[name] = self.build(conn, name)
            except Exception:
                self.helped[name] = -1
                return False
        return True

    def rows(self) -> dict[str, int]:
        """The rows of every twin (after the fill ends)."""
        return {**self.fill.result(), **self.helped}

    def drop_helped(self, conn: sa.Connection) -> None:
        """Drop the twins built on the load's connection, on it (it holds their locks)."""
        swap.discard(conn, list(self.helped), self.tag)

    def discard(self, failed: bool) -> None:
        """Drop the twins (after the fill ends), when they are not swapped in: all of them
        after a failed run (its rollback released the load's locks on them), else those the
        second connection built (`drop_helped` dropped the others)."""
        with contextlib.suppress(Exception):
            self.fill.result()
        names = [n for n in HEAT_NAMES if failed or n not in self.helped]
        with self.engine.connect() as side, side.begin():
            swap.discard(side, names, self.tag)


def build_twins(
    engine: sa.Engine,
    parts: dict[str, Future[pa.Table | None]],
    executor: Executor,
    tag: str,
) -> Twins:
    """Create the heat tables' twins now (before the load locks the heat tables, whose
    definitions the twins copy), and fill them on `executor` from `parts`, each heat
    table's batch rows as they are grouped (`aggregate_batch.batch_aggregates`' `ready`):
    the first twin is written while the others are grouped. `tag` names them for this load
    alone (`etl.jobs` uses the run's id)."""
    with engine.connect() as side, side.begin():
        statements = {}
        for name in HEAT_NAMES:
            swap.create_aside(side, name, tag)
            statements[name] = swap.index_statements(side, name, tag)
    twins = Twins(engine, tag, parts, statements)

    def fill() -> dict[str, int]:
        rows = {}
        with engine.connect() as side, side.begin():
            for setting, value in TWIN_SETTINGS.items():
                side.execute(sa.select(sa.func.set_config(setting, value, True)))
            while (name := twins.take()) is not None:
                rows[name] = twins.build(side, name)
        return rows

    twins.fill = executor.submit(fill)
    return twins


def rebuild_from_twins(
    conn: sa.Connection, twins: Twins, batch: dict[str, pa.Table], zone: str
) -> RefreshReport:
    """`rebuild_from_batch` with the heat tables built beside the load (`build_twins`):
    swapped in (the caller holds their locks), the small tables rewritten from the batch."""
    started = time.monotonic()
    rows = twins.rows()
    conn.execute(sa.delete(request_dirty_days))  # marks of rows that are gone
    conn.execute(sa.update(request_aggregates_zone).values(zone=zone))
    swap.swap(conn, HEAT_NAMES, twins.tag, locked=True)
    rows.update(_rewrite_small(conn, _scorecards(conn, batch), zone))
    return _batch_report(batch, rows, started)


def refresh_request_aggregates(
    conn: sa.Connection,
    *,
    full: bool = False,
    locked: bool = False,
    full_up_to: int | None = None,
    zone: str | None = None,
    ddl: bool = True,
) -> RefreshReport:
    """Bring the request aggregates up to date with `service_requests` (see the module doc).

    `locked`: the caller holds ACCESS EXCLUSIVE locks on the heat tables (a bulk load), so
    a full rebuild happens in place. `full_up_to` (a web request): a refresh that would
    rebuild everything from more requests than that leaves the marks for the next load and
    does nothing (`deferred`). `zone`: the district's time zone (None: the one the
    aggregates were built in); another zone than the recorded one rebuilds everything when
    `full` or when nothing was built yet, and otherwise raises AggregatesZoneError before
    anything changed. Without `ddl` (the map server's role) a rebuild rewrites rows only.
    """
    started = time.monotonic()
    # One refresh at a time: a second one waits here, then sees the first one's rows.
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(REFRESH_LOCK))))
    built_in = aggregates_zone(conn)
    zone = zone or built_in
    if zone != built_in and not full:
        if _built(conn):
            raise AggregatesZoneError(built_in, zone)
        full = True
    consumed = conn.begin_nested()
    marks = conn.execute(
        sa.delete(request_dirty_days).returning(
            request_dirty_days.c.day, request_dirty_days.c.place
        )
    ).all()
    days = sorted({day for day, _ in marks if day is not None})
    place_days = sorted({day for day, place in marks if place and day is not None})
    full = (
        full
        or any(day is None for day, _ in marks)
        or len(place_days) > FULL_REBUILD_DAYS
        or _needs_full(conn)
    )
    if full and full_up_to is not None and _size(conn) > full_up_to:
        consumed.rollback()
        return RefreshReport(full=False, deferred=True)
    consumed.commit()
    report = RefreshReport(full=full, days=len(days), place_days=len(place_days))
    if full:
        report.rows = _rebuild(conn, locked, zone, ddl)
    elif days:
        if place_days:
            for daily, periods in HEAT_TABLES:
                report.rows.update(_refresh_heat(conn, daily, periods, place_days, zone))
        conn.execute(sa.delete(request_street_daily).where(request_street_daily.c.day.in_(days)))
        report.rows[request_street_daily.name] = _insert(
            conn, request_street_daily, _street_daily(_keyed(days, zone))
        )
        opened = local_day(request_open.c.received_at, zone)
        conn.execute(sa.delete(request_open).where(opened.in_(days)))
        report.rows[request_open.name] = _insert(conn, request_open, _open(days, zone))
    report.seconds = time.monotonic() - started
    return report


def refresh_unless_busy(
    conn: sa.Connection, wait: float = 2.0, zone: str | None = None
) -> RefreshReport | None:
    """refresh_request_aggregates, unless another refresh keeps the lock past `wait` seconds.

    For the intake of single requests: another intake's refresh is over in moments, but a
    bulk load's rebuild can hold the lock for a minute. Then None: the days this transaction
    marked stay in `request_dirty_days`, and the next refresh consumes them. Nor does it
    rebuild a large table's aggregates inside a request (after a TRUNCATE, say): that waits
    for the next load, and the report says `deferred`. Run by the map server's role, which
    may write the aggregates' rows but not make tables or indexes (`ddl=False`).
    """
    deadline = time.monotonic() + wait
    lock = sa.select(sa.func.pg_try_advisory_xact_lock(sa.func.hashtext(REFRESH_LOCK)))
    while not conn.execute(lock).scalar_one():
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)
    return refresh_request_aggregates(
        conn, full_up_to=FULL_REBUILD_IN_REQUEST, zone=zone, ddl=False
    )
