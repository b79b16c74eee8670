"""The demo generated for today: the later extract is taken at `now`, never after it.

Each case freezes a `now` on day TODAY (local time of the district) and generates the demo
with end=TODAY. The expectations are computed from the files of the same seed generated
without `now` (the whole day simulated, extract taken at the next midnight): the extract
taken at `now` must be exactly that day seen at `now`.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import unicodedata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import sqlalchemy as sa

from etl.demo import extracts as ex
from etl.demo.geography import Geography, generate_geography, write_geography
from etl.demo.load import load

ZONE = "Asia/Shanghai"
TODAY = dt.date(2026, 12, 7)  # a Monday: a working day's volume
SIZE: dict[str, Any] = {"requests": 4_000, "cases": 150, "targets": 40, "projects": 40}
SEED = 11
NOWS = {
    "00:05": dt.datetime(2026, 12, 7, 0, 5),
    "10:00": dt.datetime(2026, 12, 7, 10, 0),
    "23:50": dt.datetime(2026, 12, 7, 23, 50),
}
TIMES = ("受理时间", "派单时间", "响应时间", "办结时间")
BROKEN = ("bad_date", "missing_required")  # lines whose times or ids cannot be read


@pytest.fixture(scope="module")
def geo() -> Geography:
    return generate_geography(42)


@pytest.fixture(scope="module")
def files(geo: Geography, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The extracts of TODAY for each frozen now, and for the whole day ('day')."""
    out = {}
    for key, now in [*NOWS.items(), ("day", None)]:
        path = tmp_path_factory.mktemp(f"now-{key.replace(':', '')}")
        ex.generate_extracts(geo, path, seed=SEED, end=TODAY, now=now, **SIZE)
        write_geography(geo, path)
        out[key] = path
    return out


def _lines(path: Path, file: str) -> list[dict[str, str]]:
    """Lines of a request file with their truth (source id, defects), text normalised."""
    truth = _truth(path, file)
    if file == ex.APP:
        wb = openpyxl.load_workbook(path / file, read_only=True)
        rows = [["" if v is None else _cell(v) for v in r] for r in wb.worksheets[0].values]
        wb.close()
    else:
        with (path / file).open(encoding=ex.ENCODING[file], newline="") as fh:
            rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert len(body) == len(truth)
    out = []
    for row, t in zip(body, truth, strict=True):
        line = {
            h: unicodedata.normalize("NFKC", v).strip() for h, v in zip(header, row, strict=True)
        }
        line["sid"], line["defects"] = t["source_id"], t["defects"]
        out.append(line)
    return out


def _cell(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _truth(path: Path, file: str) -> list[dict[str, str]]:
    with (path / ex.TRUTH).open(encoding="utf-8", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["file"] == file]


def _time(value: str) -> dt.datetime | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M"):
        try:
            return dt.datetime.strptime(value, fmt)
        except ValueError:
            pass
    raise AssertionError(f"not a time: {value!r}")


def _last_state(lines: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    """The last readable line of each request (a later version comes after the first)."""
    out = {}
    for line in lines:
        if not any(d in line["defects"] for d in BROKEN):
            out[line["sid"]] = line
    return out


def _main_states(path: Path) -> dict[str, int]:
    states: dict[str, int] = {}
    for file in (ex.HOTLINE, ex.GRID, ex.APP):
        for line in _lines(path, file):
            states[line["sid"]] = max(states.get(line["sid"], 0), ex.STATUSES.index(line["状态"]))
    return states


@pytest.mark.parametrize("key", list(NOWS))
def test_no_file_holds_a_time_after_now(files: dict[str, Path], key: str) -> None:
    now = NOWS[key]
    path = files[key]
    midnight = dt.datetime.combine(TODAY, dt.time())
    manifest = json.loads((path / ex.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["update_time"] == now.isoformat(sep=" ")

    main_sids = set(_main_states(path))
    for file in ex.REQUEST_FILES:
        for line in _lines(path, file):
            if "bad_date" in line["defects"]:
                continue
            stamps = [_time(line[c]) for c in TIMES]
            assert all(s is None or s <= now for s in stamps), line
            if file != ex.UPDATE:
                assert all(s is None or s <= midnight for s in stamps), line
            elif line["sid"] not in main_sids and stamps[0] is not None:
                assert midnight <= stamps[0] <= now, line  # a new request of today

    with (path / ex.CASES).open(encoding="utf-8", newline="") as fh:
        cases = list(csv.DictReader(fh))
    opened = [_time(c["立案时间"]) for c in cases if c["立案时间"][:1].isdigit()]
    closed = [_time(c["结案时间"]) for c in cases if c["结案时间"][:1].isdigit()]
    assert opened and closed
    assert all(t is not None and t <= now for t in opened + closed)

    wb = openpyxl.load_workbook(path / ex.TARGETS, read_only=True)
    rows = list(wb.worksheets[0].values)
    wb.close()
    header = list(rows[0])
    actual = [
        r[header.index(c)] for r in rows[1:] for c in ("实际开始", "实际完成") if r[header.index(c)]
    ]
    assert actual and all(_date(v) <= TODAY for v in actual)
    features = json.loads((path / ex.PROJECTS).read_text(encoding="utf-8"))["features"]
    actual = [
        f["properties"][c] for f in features for c in ("实际开始", "实际完成") if f["properties"][c]
    ]
    assert actual and all(_date(v) <= TODAY for v in actual)


def _date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


@pytest.mark.parametrize("key", list(NOWS))
def test_the_later_extract_is_the_day_seen_at_now(files: dict[str, Path], key: str) -> None:
    now = NOWS[key]
    day = _last_state(_lines(files["day"], ex.UPDATE))
    got = _last_state(_lines(files[key], ex.UPDATE))
    main = _main_states(files["day"])
    assert main == _main_states(files[key])  # the main extracts do not depend on now

    # What the whole day's extract says had happened by `now`, line by line.
    expected: dict[str, dict[str, str]] = {}
    for sid, line in day.items():
        stamps = [_time(line[c]) for c in TIMES]
        if stamps[0] is None or stamps[0] > now:
            continue
        seen = {
            c: line[c] if s is not None and s <= now else ""
            for c, s in zip(TIMES, stamps, strict=True)
        }
        state = sum(1 for c in TIMES[1:] if seen[c])
        if sid in main and state <= main[sid]:
            continue  # nothing moved on by now: the request is not repeated
        expected[sid] = {**seen, "状态": ex.STATUSES[state]}
    # requests whose lines are all unreadable in one of the files cannot be compared
    every_day = {t["source_id"] for t in _truth(files["day"], ex.UPDATE)}
    every_now = {t["source_id"] for t in _truth(files[key], ex.UPDATE)}
    assert every_now <= every_day
    unreadable = (every_day - set(day)) | (every_now - set(got))
    shown = {
        sid: {c: line[c] for c in (*TIMES, "状态")}
        for sid, line in got.items()
        if sid not in unreadable
    }
    assert shown == {sid: v for sid, v in expected.items() if sid not in unreadable}

    updated = sum(sid in main for sid in shown)
    new = sum(sid not in main for sid in shown)
    if key == "00:05":
        assert new == sum(
            sid not in main and _time(line["受理时间"]) <= now  # type: ignore[operator]
            for sid, line in day.items()
        )
    else:
        assert updated > 0 and new > 0, (updated, new)


def test_same_seed_and_now_give_identical_files(geo: Geography, tmp_path: Path) -> None:
    now = NOWS["10:00"]
    a = ex.generate_extracts(geo, tmp_path / "a", seed=SEED, end=TODAY, now=now, **SIZE)
    b = ex.generate_extracts(geo, tmp_path / "b", seed=SEED, end=TODAY, now=now, **SIZE)
    # an aware `now` is the same instant on the district's clock
    aware = now.replace(tzinfo=ZoneInfo(ZONE)).astimezone(dt.UTC)
    c = ex.generate_extracts(
        geo, tmp_path / "c", seed=SEED, end=TODAY, now=aware, zone=ZONE, **SIZE
    )
    later = ex.generate_extracts(
        geo, tmp_path / "d", seed=SEED, end=TODAY, now=now + dt.timedelta(hours=1), **SIZE
    )
    for name, path in a.items():
        assert path.read_bytes() == b[name].read_bytes(), name
        assert path.read_bytes() == c[name].read_bytes(), name
    assert a["requests_update"].read_bytes() != later["requests_update"].read_bytes()
    assert a["requests_hotline"].read_bytes() == later["requests_hotline"].read_bytes()


def test_now_before_the_extracts_midnight_is_refused(geo: Geography, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="before the extracts' midnight"):
        ex.generate_extracts(
            geo, tmp_path, seed=SEED, end=TODAY, now=dt.datetime(2026, 12, 6, 23, 59), **SIZE
        )


@pytest.mark.parametrize("key", list(NOWS))
def test_loaded_demo_holds_nothing_after_now(
    connection: sa.Connection, files: dict[str, Path], key: str
) -> None:
    now = NOWS[key].replace(tzinfo=ZoneInfo(ZONE))
    report = load(connection, files[key], zone=ZONE, now=now)
    for run in report.runs:
        assert run.status == "succeeded"
        assert "future_time" not in run.reasons, (run.file_name, run.reasons)
    future = connection.execute(
        sa.text(
            "select count(*) from etl_rejects where reason = 'future_time' and run_id = any(:r)"
        ),
        {"r": [run.run_id for run in report.runs]},
    ).scalar_one()
    assert future == 0

    checks = {
        "service_requests": ("received_at", "dispatched_at", "responded_at", "resolved_at"),
        "enforcement_cases": ("opened_at", "closed_at"),
    }
    for table, columns in checks.items():
        for column in columns:
            latest = connection.execute(sa.text(f"select max({column}) from {table}")).scalar()
            assert latest is not None and latest <= now, (table, column, latest)
    for table in ("relocation_targets", "renovation_projects"):
        for column in ("actual_start", "actual_end"):
            latest = connection.execute(sa.text(f"select max({column}) from {table}")).scalar()
            assert latest is not None and latest <= now.date(), (table, column, latest)

    update = report.runs[-1]
    assert update.file_name == ex.UPDATE
    if key != "00:05":
        assert update.inserted > 0 and update.updated > 0, update.lines()
