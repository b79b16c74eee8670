"""ETL jobs: one run = one file = one record in `etl_runs`.

extract → validate → coordinates → assign → route → load → replay (the case history of
service requests and enforcement cases, `etl.replay`), in one transaction. The run
record is written first, in a short transaction of its own on a second connection (status
'running', who, where, which file, the process and the loading session), so that every run
is on record whatever happens to it:
- a run that fails is marked 'failed' with the error, again in a transaction of its own,
  while its data is rolled back — the database is exactly as it was;
- a run whose process is killed cannot mark itself: its loading session holds a
  transaction-level advisory lock on the run's id until it ends, and `mark_interrupted`
  (called by every run and by `blockdata etl runs`) marks 'failed' the runs still
  'running' whose lock is free.
While the loading transaction itself holds a lock on `etl_runs` that the second connection
would wait for (a bulk load that had to drop the foreign keys, earlier in the same
transaction), the record is written in the loading transaction instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from tqdm import tqdm

from etl import aggregate_batch, load, replay, swap
from etl.aggregates import (
    HEAT_NAMES,
    REFRESH_LOCK,
    Twins,
    aggregates_zone,
    build_twins,
    rebuild_from_batch,
    rebuild_from_twins,
    refresh_request_aggregates,
)
from etl.extract import ROW, Extract, read_extract
from etl.geocode import RunGeocoder
from etl.mapping import Mapping, load_mapping
from etl.place import DEFAULT_BUDGET_MB, placer_for
from etl.rules import load_routing, load_time_limits
from etl.transform import Prepared, prepare, required_columns
from layers import Layer, etl_rejects, etl_runs, get_layer


class EtlError(RuntimeError):
    """A run failed as a whole; the database is as it was. Carries the run's report."""

    def __init__(self, message: str, report: RunReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class RunReport:
    run_id: int
    layer: str
    source: str
    file_name: str
    status: str = "running"
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    warnings: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. why the placement cache was skipped
    cases_created: int = 0  # etl.replay: cases created for new rows
    steps_added: int = 0  # etl.replay: history rows added (the steps replayed)
    geocoded: dict[str, int] = field(default_factory=dict)  # rows placed by address, by level
    retry_of: int | None = None  # the run whose rejects this run re-ran

    def lines(self) -> list[str]:
        """A short report in Chinese and English."""
        retry = f" · 重试运行 retry of run {self.retry_of}" if self.retry_of is not None else ""
        out = [
            f"运行 run {self.run_id} · {self.layer} · {self.file_name}{retry} · {self.status}",
            f"读取 read {self.read} = 新增 inserted {self.inserted} + 更新 updated {self.updated}"
            f" + 未变 unchanged {self.unchanged} + 拒绝 rejected {self.rejected}"
            f"  ({self.seconds:.1f} s)",
        ]
        if self.reasons:
            out.append(
                "拒绝原因 rejected: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items()))
            )
        if self.geocoded:
            out.append(
                "地址定位 geocoded: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.geocoded.items()))
            )
        if self.cases_created or self.steps_added:
            out.append(
                f"案件 cases: 新建 created {self.cases_created}, "
                f"流转记录 history rows added {self.steps_added}"
            )
        if self.warnings:
            out.append(
                "提示 warnings: " + ", ".join(f"{k} {v}" for k, v in sorted(self.warnings.items()))
            )
        out.extend(f"警告 warning: {note}" for note in self.notes)
        if self.error:
            out.append(f"错误 error: {self.error}")
        return out


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# The advisory lock a loading session holds on its run: (RUN_LOCK_CLASS, run id).
RUN_LOCK = "etl_run"
CONFLICTING = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
INTERRUPTED = (
    "中断 interrupted: 加载进程在完成前结束，数据未改动 "
    "the loading process ended before the run finished; nothing of it was kept"
)
SIDE_LOCK_TIMEOUT = "5s"


def _run_lock(run_id: Any) -> Any:
    return sa.func.pg_advisory_xact_lock(sa.func.hashtext(RUN_LOCK), sa.cast(run_id, sa.Integer))


def _blocks_side_writes(conn: sa.Connection) -> bool:
    """Whether `conn`'s transaction holds a lock on etl_runs that writes must wait for."""
    return bool(
        conn.execute(
            sa.text(
                "select exists (select 1 from pg_locks where pid = pg_backend_pid() "
                "and locktype = 'relation' and relation = 'etl_runs'::regclass "
                "and mode = any(:modes))"
            ),
            {"modes": list(CONFLICTING)},
        ).scalar_one()
    )


def _record(conn: sa.Connection, statement: sa.Executable) -> None:
    """Execute `statement` on etl_runs in a short transaction of its own (a second
    connection), or in `conn`'s transaction when that one holds etl_runs against it."""
    if not _blocks_side_writes(conn):
        try:
            with conn.engine.connect() as side, side.begin():
                side.execute(sa.select(sa.func.set_config("lock_timeout", SIDE_LOCK_TIMEOUT, True)))
                side.execute(statement)
            return
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":
                raise
    conn.execute(statement)


def succeed_run(conn: sa.Connection, run_id: int, report: RunReport, **more: Any) -> None:
    """Record run `run_id` as succeeded with the report's counts, warnings and rejects'
    reasons (in the run's transaction: it commits with the load)."""
    report.status = "succeeded"
    conn.execute(
        sa.update(etl_runs)
        .where(etl_runs.c.id == run_id)
        .values(
            status="succeeded",
            finished_at=sa.func.now(),
            read=report.read,
            inserted=report.inserted,
            updated=report.updated,
            unchanged=report.unchanged,
            rejected=report.rejected,
            warnings={
                **report.warnings,
                **{f"reject:{k}": v for k, v in report.reasons.items()},
                **{f"geocoded:{k}": v for k, v in report.geocoded.items()},
            },
            **more,
        )
    )


def fail_run(
    conn: sa.Connection, run_id: int, report: RunReport, exc: BaseException, started: float
) -> NoReturn:
    """Record run `run_id` as failed with `exc` (on its own connection: the run's transaction
    is rolled back), zero the report's counts and raise EtlError (a KeyboardInterrupt goes on
    as itself). `started`: the run's `time.monotonic()` at its start."""
    report.status = "failed"
    report.error = f"{type(exc).__name__}: {exc}"[:2000]
    report.inserted = report.updated = report.unchanged = report.rejected = 0
    report.cases_created = report.steps_added = 0
    _record(
        conn,
        sa.update(etl_runs)
        .where(etl_runs.c.id == run_id)
        .values(status="failed", finished_at=sa.func.now(), error=report.error),
    )
    report.seconds = time.monotonic() - started
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    raise EtlError(report.error, report) from exc


def mark_interrupted(conn: sa.Connection) -> list[int]:
    """Mark 'failed' the runs still 'running' whose loading session is gone (their advisory
    lock is free); their ids. Call it outside any load's transaction, then commit."""
    ids = conn.execute(
        sa.update(etl_runs)
        .where(
            etl_runs.c.status == "running",
            sa.func.pg_try_advisory_xact_lock(sa.func.hashtext(RUN_LOCK), etl_runs.c.id),
        )
        .values(status="failed", finished_at=sa.func.now(), error=INTERRUPTED)
        .returning(etl_runs.c.id)
    ).scalars()
    found = sorted(ids)
    for run_id in found:  # the heat tables a killed bulk load built beside it
        with contextlib.suppress(sa.exc.OperationalError), conn.begin_nested():
            swap.discard(conn, HEAT_NAMES, f"r{run_id}")
    return found


def _mark_interrupted_aside(conn: sa.Connection) -> None:
    """`mark_interrupted` on a second connection, skipped when etl_runs is busy."""
    if _blocks_side_writes(conn):
        return
    try:
        with conn.engine.connect() as side, side.begin():
            side.execute(sa.select(sa.func.set_config("lock_timeout", "1s", True)))
            mark_interrupted(side)
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":
            raise


def _start_run(
    conn: sa.Connection,
    file: Path | str,
    mapping: Mapping,
    options: dict[str, Any],
    retry_of: int | None = None,
) -> int:
    """Record the run as 'running' and commit that; `conn`'s transaction holds its lock.
    `file`: the file loaded (its name is recorded), or the name to record."""
    file_name = file.name if isinstance(file, Path) else file
    sequence = sa.func.pg_get_serial_sequence("etl_runs", "id")
    run_id = int(conn.execute(sa.select(sa.func.nextval(sequence))).scalar_one())
    conn.execute(sa.select(_run_lock(run_id)))
    backend = conn.execute(sa.select(sa.func.pg_backend_pid())).scalar_one()
    _mark_interrupted_aside(conn)
    _record(
        conn,
        sa.insert(etl_runs).values(
            id=run_id,
            layer=mapping.layer,
            source=mapping.source,
            file_name=file_name,
            options=options,
            retry_of=retry_of,
            status="running",
            run_by=_user(),
            host=socket.gethostname(),
            pid=os.getpid(),
            backend_pid=backend,
        ),
    )
    return run_id


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _batch_aggregates(
    rows: Any, zone: str, parts: dict[str, Future[Any]] | None = None
) -> dict[str, Any] | None:
    """The batch's aggregates (`etl.aggregate_batch`) in `zone`'s days, None when it cannot
    compute them. `parts`: a future per table, each resolved as soon as its table is done
    (None, or the error, when the batch fails), for the twins' fill to start early."""
    parts = parts or {}

    def ready(name: str, table: Any) -> None:
        if name in parts:
            parts[name].set_result(table)

    try:
        return aggregate_batch.batch_aggregates(rows, zone, ready)
    except aggregate_batch.NotComputable:
        return None
    finally:
        for part in parts.values():
            if not part.done():
                part.set_result(None)


class _Aggregates:
    """The request aggregates around one load of requests.

    When the load will be a bulk load into an empty table, the batch's aggregates are
    computed beside it, and the heat tables built from them on a second connection
    (`etl.aggregates.build_twins`) while this one writes the rows: both cores work."""

    def __init__(
        self,
        conn: sa.Connection,
        layer: Layer,
        rows: Any,
        executor: Executor,
        run_id: int,
        zone: str,
    ) -> None:
        self.active = layer.name == "service_requests"
        self.zone = zone
        self.batch: Future[dict[str, Any] | None] | None = None
        self.twins: Twins | None = None
        self.swapped = False
        if not (self.active and load.is_bulk(conn, layer, rows)):
            return
        if load.is_empty(conn, layer) and not _holds(conn, HEAT_NAMES):
            parts: dict[str, Future[Any]] = {name: Future() for name in HEAT_NAMES}
            self.batch = executor.submit(_batch_aggregates, rows, zone, parts)
            self.twins = build_twins(conn.engine, parts, executor, f"r{run_id}")
        else:
            self.batch = executor.submit(_batch_aggregates, rows, zone)

    def refresh(self, conn: sa.Connection, counts: dict[str, int]) -> None:
        """From the batch when the table holds exactly the batch; else the refresh — a full
        one in place after any other bulk load (which holds the heat tables' locks)."""
        batch = self.batch.result() if self.batch is not None else None
        if counts.get("replaced") and batch is not None:
            twins = self.twins
            if twins is not None and twins.help(conn) and twins.fill.exception() is None:
                rebuild_from_twins(conn, twins, batch, self.zone)
                self.swapped = True
            else:
                if twins is not None:
                    twins.drop_helped(conn)
                rebuild_from_batch(conn, batch, self.zone)
            return
        bulk = bool(counts.get("bulk"))
        refresh_request_aggregates(conn, full=bulk, locked=bulk, zone=self.zone)

    def close(self, failed: bool) -> None:
        """Drop the twins unless they were swapped in by a run that succeeded."""
        if self.twins is not None and (failed or not self.swapped):
            self.twins.discard(failed)


def _holds(conn: sa.Connection, tables: list[str]) -> bool:
    """Whether `conn`'s transaction holds an ACCESS EXCLUSIVE lock on one of `tables`."""
    return bool(
        conn.execute(
            sa.text(
                "select exists (select 1 from pg_locks where pid = pg_backend_pid() "
                "and mode = 'AccessExclusiveLock' "
                "and relation = any(cast(:tables as regclass[])))"
            ),
            {"tables": tables},
        ).scalar_one()
    )


def _spec(mapping: str | Path | None, layer: str | None, source: str | None) -> Mapping:
    if mapping is None:
        if layer is None:
            raise ValueError("give --layer or --mapping")
        mapping = layer
    spec = load_mapping(mapping)
    if layer is not None and spec.layer != get_layer(layer).name:
        raise ValueError(f"mapping {spec.name!r} is for layer {spec.layer!r}, not {layer!r}")
    if source:
        spec = Mapping(**{**spec.__dict__, "source": source})
    return spec


def run_file(
    conn: sa.Connection,
    path: Path,
    *,
    layer: str | None = None,
    mapping: str | Path | None = None,
    source: str | None = None,
    crs: str | None = None,
    progress: bool = False,
    after_load: Callable[[sa.Connection], None] | None = None,
    cache_dir: Path | None = None,
    sheet: str | None = None,
    allow_crs_mismatch: bool = False,
    now: dt.datetime | None = None,
    zone: str | None = None,
    placement_mb: float | None = None,
) -> RunReport:
    """Load one extract on `conn`, in the caller's transaction.

    `zone`: the district's time zone (BLOCKDATA_TZ, passed by the CLI): the file's times
    without an offset are wall-clock times there, and the aggregates count its days. None:
    the zone the database's aggregates are keyed on (`request_aggregates_zone`).

    The run is recorded first and committed (see the module doc). The data goes in under
    a savepoint: when the run fails as a whole, the savepoint is rolled back, the run is
    marked failed, and EtlError (with the report) is raised; the data is as it was. (When
    the record had to be written in the caller's transaction, the caller commits to keep
    it.) `sheet` picks a workbook's sheet; `allow_crs_mismatch` loads points whose declared
    coordinate system looks wrong (etl.crs_check) instead of failing; `now` is the clock
    the rows' times are checked against (what is in the future). Rows with an address and
    no coordinates are geocoded (`etl.geocode`: the gazetteer is read once a run).
    """
    started = time.monotonic()
    spec = _spec(mapping, layer, source)
    options: dict[str, Any] = {"mapping": spec.name, "crs": crs, "source": spec.source}
    if sheet is not None:
        options["sheet"] = sheet
    if allow_crs_mismatch:
        options["allow_crs_mismatch"] = True
    zone = zone or aggregates_zone(conn)
    run_id = _start_run(conn, path, spec, options)
    return _execute(
        conn,
        RunReport(run_id=run_id, layer=spec.layer, source=spec.source, file_name=path.name),
        spec,
        lambda: read_extract(path, sheet=sheet, expect=required_columns(spec)),
        started=started,
        checksum_of=path,
        crs=crs,
        check_crs=not allow_crs_mismatch,
        now=now,
        zone=zone,
        cache_dir=cache_dir,
        placement_mb=placement_mb,
        progress=progress,
        after_load=after_load,
    )


def _execute(
    conn: sa.Connection,
    report: RunReport,
    spec: Mapping,
    read: Callable[[], Extract],
    *,
    started: float,
    checksum_of: Path | None,
    crs: str | None,
    check_crs: bool,
    now: dt.datetime | None,
    zone: str,
    cache_dir: Path | None,
    placement_mb: float | None,
    progress: bool,
    after_load: Callable[[sa.Connection], None] | None,
    retry: _Retry | None = None,
) -> RunReport:
    """The recorded run `report.run_id` of the rows `read` gives (see `run_file`)."""
    run_id = report.run_id
    # The file's checksum, and a bulk load's aggregates, are computed beside the load
    # (hashlib, NumPy and Arrow release the GIL).
    hashing = ThreadPoolExecutor(max_workers=4)
    checksum = hashing.submit(_sha256, checksum_of) if checksum_of is not None else None
    aggregates: _Aggregates | None = None
    geocoder = RunGeocoder(conn)
    bar = tqdm(
        total=4,
        desc=f"{spec.layer} {report.file_name}",
        unit="step",
        disable=not progress,
        leave=False,
    )
    try:
        bar.set_postfix_str("读取 read")
        mark = time.monotonic()
        extract = read()
        report.timings["read"] = time.monotonic() - mark
        bar.update()
        with conn.begin_nested():
            # One load of a source at a time: the upsert's insert and update see each other.
            conn.execute(
                sa.text("select pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"etl:{spec.layer}:{spec.source}"},
            )
            bar.set_postfix_str(f"校验 validate {extract.rows} rows")
            placer = placer_for(
                conn,
                cache_dir,
                budget_mb=placement_mb or DEFAULT_BUDGET_MB,
                warnings=report.notes,
            )
            prepared = prepare(
                extract,
                spec,
                placer,
                load_routing(),
                load_time_limits(),
                crs=crs,
                check_crs=check_crs,
                now=now,
                zone=zone,
                geocoder=geocoder,
            )
            report.timings["validate"] = time.monotonic() - mark - report.timings["read"]
            if geocoder.seconds:
                report.timings["  geocode"] = geocoder.seconds
            if retry is not None:
                retry.screen(conn, spec, prepared)
            bar.update()
            bar.set_postfix_str(f"入库 load {prepared.table.num_rows} rows")
            aggregates = _Aggregates(conn, spec.layer_obj, prepared.table, hashing, run_id, zone)
            counts = load.upsert(
                conn,
                spec.layer_obj,
                prepared.table,
                run_id,
                progress=spec.progress,
                timings=report.timings,
                also_lock=HEAT_NAMES if aggregates.active else (),
                advisory=[REFRESH_LOCK] if aggregates.active else (),
                # The twins are built on the second core meanwhile (measured in bench_etl:
                # parallel index workers then cost about 8 % more wall time, not less).
                index_workers=0 if aggregates.twins is not None else 2,
            )
            load.save_rejects(conn, run_id, prepared.rejects)
            if retry is not None:
                retry.settle(conn, run_id)
            if aggregates.active:
                mark = time.monotonic()
                aggregates.refresh(conn, counts)
                report.timings["aggregates"] = time.monotonic() - mark
            mark = time.monotonic()
            replayed = replay.replay(conn, spec.layer, spec.source, run_id)
            if replay.replayable(spec.layer):
                report.timings["replay"] = time.monotonic() - mark
                for name, seconds in replayed.timings.items():
                    report.timings[f"  replay {name}"] = seconds
            bar.update()
            warnings = Counter(prepared.warnings) + replayed.warnings
            if report.notes:
                warnings["placement_cache"] += len(report.notes)
            if counts["stale"]:
                warnings["stale_version"] += counts["stale"]
            report.read = prepared.read
            report.inserted = counts["inserted"]
            report.updated = counts["updated"]
            report.unchanged = counts["unchanged"]
            report.rejected = len(prepared.rejects)
            report.warnings = dict(warnings)
            report.reasons = dict(Counter(r["reason"] for r in prepared.rejects))
            report.geocoded = dict(prepared.geocoded)
            report.cases_created = replayed.cases_created
            report.steps_added = replayed.steps_added
            report.status = "succeeded"
            if after_load is not None:
                after_load(conn)
            succeed_run(
                conn,
                run_id,
                report,
                file_sha256=checksum.result() if checksum is not None else None,
            )
            bar.update()
    except (Exception, KeyboardInterrupt) as exc:
        fail_run(conn, run_id, report, exc, started)
    finally:
        bar.close()
        if aggregates is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                aggregates.close(failed=report.status != "succeeded")
        hashing.shutdown(wait=True, cancel_futures=True)
    report.seconds = time.monotonic() - started
    return report


class RetryError(ValueError):
    """The run cannot be retried (no such run, or its rejects were never kept)."""


ALREADY_LOADED = "already_loaded"


@dataclass
class _Retry:
    """The rejects a retry run took: `screen` drops the rows a later run has loaded since
    (a row is never loaded twice); `settle` marks the rejects taken by the retry run."""

    of: int
    chain: list[int]  # the retried run and the retries of it: their loads are this row's
    taken: list[int]  # etl_rejects ids
    raw: dict[int, dict[str, Any]]  # row number → the reject's raw content

    def screen(self, conn: sa.Connection, spec: Mapping, prepared: Prepared) -> None:
        table = prepared.table
        if table.num_rows == 0:
            return
        target = spec.layer_obj.table
        ids = table.column("source_id").to_pylist()
        loaded = dict(
            conn.execute(
                sa.select(target.c.source_id, target.c.etl_run_id).where(
                    target.c.source == spec.source,
                    target.c.source_id.in_(ids),
                    sa.or_(target.c.etl_run_id.is_(None), target.c.etl_run_id.not_in(self.chain)),
                )
            ).all()
        )
        if not loaded:
            return
        rows = table.column(ROW).to_pylist()
        drop = np.array([i in loaded for i in ids], dtype=bool)
        for row, source_id in zip(np.array(rows)[drop], np.array(ids, object)[drop], strict=True):
            by = loaded[source_id]
            prepared.rejects.append(
                {
                    "row_number": int(row),
                    "source_id": source_id,
                    "reason": ALREADY_LOADED,
                    "message": f"已由第 {by} 次运行载入，不再重试 already loaded by run {by}; "
                    "not retried",
                    "retryable": False,
                    "raw": self.raw[int(row)],
                }
            )
        prepared.table = table.filter(pa.array(~drop))

    def settle(self, conn: sa.Connection, run_id: int) -> None:
        conn.execute(
            sa.update(etl_rejects).where(etl_rejects.c.id.in_(self.taken)).values(retried_in=run_id)
        )


def _chain(conn: sa.Connection, run_id: int) -> list[int]:
    """The run and every retry of it, and of those."""
    found = [run_id]
    todo = [run_id]
    while todo:
        todo = list(
            conn.execute(sa.select(etl_runs.c.id).where(etl_runs.c.retry_of.in_(todo))).scalars()
        )
        found.extend(todo)
    return found


def _rejects_extract(rows: Sequence[Any]) -> Extract:
    """The rejects' raw content as an extract of strings, with their rows' numbers."""
    columns: dict[str, None] = {}
    for r in rows:
        columns.update(dict.fromkeys(r.raw))
    data = {
        c: pa.array([None if (v := r.raw.get(c)) is None else str(v) for r in rows], pa.string())
        for c in columns
    }
    data[ROW] = pa.array([r.row_number for r in rows], pa.int32())
    return Extract(table=pa.table(data), columns=list(columns), encoding=None)


def retry_run(
    conn: sa.Connection,
    run_id: int,
    *,
    mapping: str | Path | None = None,
    progress: bool = False,
    after_load: Callable[[sa.Connection], None] | None = None,
    cache_dir: Path | None = None,
    now: dt.datetime | None = None,
    zone: str | None = None,
    placement_mb: float | None = None,
) -> RunReport | None:
    """Re-run the retryable rejects of run `run_id` (and of its retries) not retried yet,
    as a new run linked to it (`etl_runs.retry_of`); None when none wait.

    The rows go through the same steps as a file's (their raw content as the file had it,
    with the run's mapping, source and coordinate system; `mapping` for a mapping file
    that is not shipped). Rows that pass are loaded, the others are kept as the new run's
    rejects with their reasons; every reject taken is marked `retried_in` the new run, so
    it is taken once. A row whose record a later run has loaded since is not loaded again
    (`already_loaded`). A failed retry changes nothing but its run record (`run_file`).
    """
    started = time.monotonic()
    run = conn.execute(sa.select(etl_runs).where(etl_runs.c.id == run_id)).first()
    if run is None:
        raise RetryError(f"没有这次运行 no such run: {run_id}")
    if run.status != "succeeded":
        raise RetryError(
            f"运行 {run_id} 未成功，没有保留拒绝行 run {run_id} did not succeed ({run.status}): "
            "it kept no rejects; run its file again"
        )
    options = dict(run.options or {})
    spec = _spec(mapping or options.get("mapping") or run.layer, run.layer, run.source)
    chain = _chain(conn, run_id)
    # Locked: a concurrent retry of the same run waits, then finds them taken.
    pending = conn.execute(
        sa.select(etl_rejects.c.id, etl_rejects.c.row_number, etl_rejects.c.raw)
        .where(
            etl_rejects.c.run_id.in_(chain),
            etl_rejects.c.retryable,
            etl_rejects.c.retried_in.is_(None),
        )
        .order_by(etl_rejects.c.row_number, etl_rejects.c.id)
        .with_for_update(of=etl_rejects)
    ).all()
    if not pending:
        return None
    extract = _rejects_extract(pending)
    crs = options.get("crs")
    allow = bool(options.get("allow_crs_mismatch"))
    new_options: dict[str, Any] = {
        "mapping": spec.name,
        "crs": crs,
        "source": spec.source,
        "retry_of": run_id,
    }
    if allow:
        new_options["allow_crs_mismatch"] = True
    zone = zone or aggregates_zone(conn)
    new_id = _start_run(conn, run.file_name or "", spec, new_options, retry_of=run_id)
    report = RunReport(
        run_id=new_id,
        layer=spec.layer,
        source=spec.source,
        file_name=run.file_name or "",
        retry_of=run_id,
    )
    retry = _Retry(
        of=run_id,
        chain=chain,
        taken=[r.id for r in pending],
        raw={r.row_number: dict(r.raw) for r in pending},
    )
    return _execute(
        conn,
        report,
        spec,
        lambda: extract,
        started=started,
        checksum_of=None,
        crs=crs,
        check_crs=not allow,
        now=now,
        zone=zone,
        cache_dir=cache_dir,
        placement_mb=placement_mb,
        progress=progress,
        after_load=after_load,
        retry=retry,
    )
