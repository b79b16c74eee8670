"""ETL jobs: one run = one file = one record in `etl_runs`.

extract → validate → coordinates → assign → route → load, in one transaction. The run
record is written first, in a transaction of its own, so that a failed load is still
recorded (status 'failed', with the error) while the data stays exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from tqdm import tqdm

from etl import load
from etl.aggregates import aggregates_zone, refresh_request_aggregates
from etl.extract import read_extract
from etl.mapping import Mapping, load_mapping
from etl.place import DEFAULT_BUDGET_MB, placer_for
from etl.rules import load_routing, load_time_limits
from etl.transform import prepare, required_columns
from layers import etl_runs, get_layer


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

    def lines(self) -> list[str]:
        """A short report in Chinese and English."""
        out = [
            f"运行 run {self.run_id} · {self.layer} · {self.file_name} · {self.status}",
            f"读取 read {self.read} = 新增 inserted {self.inserted} + 更新 updated {self.updated}"
            f" + 未变 unchanged {self.unchanged} + 拒绝 rejected {self.rejected}"
            f"  ({self.seconds:.1f} s)",
        ]
        if self.reasons:
            out.append(
                "拒绝原因 rejected: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items()))
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


def _start_run(conn: sa.Connection, path: Path, mapping: Mapping, options: dict[str, Any]) -> int:
    run_id: int = conn.execute(
        sa.insert(etl_runs)
        .values(layer=mapping.layer, source=mapping.source, file_name=path.name, options=options)
        .returning(etl_runs.c.id)
    ).scalar_one()
    return run_id


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

    The data goes in under a savepoint: when the run fails as a whole, the savepoint is
    rolled back, the run is marked failed, and EtlError (with the report) is raised — the
    caller commits to keep the record of the failure, and the data is as it was.
    `sheet` picks a workbook's sheet; `allow_crs_mismatch` loads points whose declared
    coordinate system looks wrong (etl.crs_check) instead of failing; `now` is the clock
    the rows' times are checked against (what is in the future).
    """
    started = time.monotonic()
    if mapping is None:
        if layer is None:
            raise ValueError("give --layer or --mapping")
        mapping = layer
    spec = load_mapping(mapping)
    if layer is not None and spec.layer != get_layer(layer).name:
        raise ValueError(f"mapping {spec.name!r} is for layer {spec.layer!r}, not {layer!r}")
    if source:
        spec = Mapping(**{**spec.__dict__, "source": source})
    options: dict[str, Any] = {"mapping": spec.name, "crs": crs, "source": spec.source}
    if sheet is not None:
        options["sheet"] = sheet
    if allow_crs_mismatch:
        options["allow_crs_mismatch"] = True
    zone = zone or aggregates_zone(conn)
    run_id = _start_run(conn, path, spec, options)
    # The file's checksum is computed beside the load (hashlib releases the GIL).
    hashing = ThreadPoolExecutor(max_workers=1)
    checksum = hashing.submit(_sha256, path)
    report = RunReport(run_id=run_id, layer=spec.layer, source=spec.source, file_name=path.name)
    bar = tqdm(
        total=4, desc=f"{spec.layer} {path.name}", unit="step", disable=not progress, leave=False
    )
    try:
        bar.set_postfix_str("读取 read")
        mark = time.monotonic()
        extract = read_extract(path, sheet=sheet, expect=required_columns(spec))
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
                check_crs=not allow_crs_mismatch,
                now=now,
                zone=zone,
            )
            report.timings["validate"] = time.monotonic() - mark - report.timings["read"]
            bar.update()
            bar.set_postfix_str(f"入库 load {prepared.table.num_rows} rows")
            counts = load.upsert(
                conn,
                spec.layer_obj,
                prepared.table,
                run_id,
                progress=spec.progress,
                timings=report.timings,
            )
            load.save_rejects(conn, run_id, prepared.rejects)
            if spec.layer == "service_requests":
                mark = time.monotonic()
                refresh_request_aggregates(conn, full=bool(counts.get("bulk")), zone=zone)
                report.timings["aggregates"] = time.monotonic() - mark
            bar.update()
            warnings = Counter(prepared.warnings)
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
            report.status = "succeeded"
            if after_load is not None:
                after_load(conn)
            conn.execute(
                sa.update(etl_runs)
                .where(etl_runs.c.id == run_id)
                .values(
                    status="succeeded",
                    finished_at=sa.func.now(),
                    file_sha256=checksum.result(),
                    read=report.read,
                    inserted=report.inserted,
                    updated=report.updated,
                    unchanged=report.unchanged,
                    rejected=report.rejected,
                    warnings={
                        **report.warnings,
                        **{f"reject:{k}": v for k, v in report.reasons.items()},
                    },
                )
            )
            bar.update()
    except (Exception, KeyboardInterrupt) as exc:
        report.status = "failed"
        report.error = f"{type(exc).__name__}: {exc}"[:2000]
        report.inserted = report.updated = report.unchanged = report.rejected = 0
        conn.execute(
            sa.update(etl_runs)
            .where(etl_runs.c.id == run_id)
            .values(status="failed", finished_at=sa.func.now(), error=report.error)
        )
        report.seconds = time.monotonic() - started
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise EtlError(report.error, report) from exc
    finally:
        bar.close()
        hashing.shutdown(wait=True, cancel_futures=True)
    report.seconds = time.monotonic() - started
    return report
