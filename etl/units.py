"""Units (承办单位, layers/units.py): built from configuration, imported from a file.

`build_units` gives every street its centre and seven departments (the names of
`etl.rules.DEPARTMENTS`) and loads the district's departments from
etl/config/district_departments.yaml. `import_units` loads stations (科站队所) and district
departments from a CSV, XLSX or YAML file. Both are ETL runs (`etl.jobs`): recorded in
`etl_runs` before they load, every bad row kept in `etl_rejects` with its reason while the
good rows load, and a run that fails as a whole leaves the database as it was. Units are
upserted by code (new, changed, unchanged are counted), never deleted: a unit that closes
gets `active` 否.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.dialects import postgresql as pg

from etl.extract import ExtractError, _cell, read_extract
from etl.jobs import RunReport, _start_run, fail_run, succeed_run
from etl.load import save_rejects
from etl.mapping import Mapping as SourceMapping
from etl.rules import CONFIG_DIR, DEPARTMENTS
from etl.transform import _bad_row, _printable
from etl.yamlcache import read_yaml
from layers import get_layer
from layers.units import (
    CODE_LENGTH,
    CODE_PATTERN,
    DISTRICT_PREFIX,
    STREET_KINDS,
    UNIT_KINDS,
    units,
)

LAYER = "units"  # etl_runs.layer of the units' runs
SOURCE = "units"
DISTRICT_DEPARTMENTS = CONFIG_DIR / "district_departments.yaml"

# The generated units of every street: code suffix → name.
CENTRE = ("centre", "政务服务和街区治理中心")
DEPARTMENT_SUFFIXES = {
    "综合保障部": "general",
    "党群工作部": "party",
    "平安建设部": "safety",
    "城市管理部": "city",
    "社会建设部": "social",
    "民生保障部": "livelihood",
    "地区发展部": "development",
}
GENERATED_SUFFIXES = frozenset({CENTRE[0], *DEPARTMENT_SUFFIXES.values()})
GENERATED_KINDS = ("centre", "department")

# A field → the column names a file may give it (English, Chinese).
COLUMNS = {
    "code": ("code", "编码", "单位编码"),
    "name": ("name", "名称", "单位名称"),
    "kind": ("kind", "类型", "单位类型"),
    "street_code": ("street_code", "街道编码"),
    "active": ("active", "启用", "是否启用"),
}
REQUIRED_COLUMNS = ("code", "name", "kind")
# Spellings of a kind → the kind.
KIND_NAMES = {
    **{kind: kind for kind in UNIT_KINDS},
    "中心": "centre",
    "街道中心": "centre",
    CENTRE[1]: "centre",
    "大部": "department",
    "七大部": "department",
    "科站队所": "station",
    "站所": "station",
    "区级部门": "district_department",
    "区直部门": "district_department",
}
TRUE = {"", "是", "启用", "true", "yes", "y", "1"}
FALSE = {"否", "停用", "false", "no", "n", "0"}
# The YAML form: these keys, each a list of units (the kind follows from the key).
YAML_KEYS = {"stations": "station", "district_departments": "district_department"}
YAML_SUFFIXES = {".yaml", ".yml"}
_CODE = re.compile(CODE_PATTERN)


class UnitsFileError(ValueError):
    """The file as a whole cannot be loaded (format, columns); names the file and why."""


@dataclass(frozen=True)
class _Row:
    number: int  # 1-based data row of the file
    raw: dict[str, Any]  # as the file has it, for the reject
    fields: dict[str, str]  # code, name, kind, street_code, active: stripped text


@dataclass(frozen=True)
class _Unit:
    code: str
    name: str
    kind: str
    street_code: str | None
    active: bool


class _Invalid(Exception):
    """A row that cannot load: its reject reason and a message naming the bad value."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def generated_units(street_codes: Iterable[str]) -> list[dict[str, Any]]:
    """Every street's centre and seven departments (code, name, kind, street_code)."""
    out = []
    for street in street_codes:
        made = [(CENTRE[0], CENTRE[1], "centre")]
        made += [(DEPARTMENT_SUFFIXES[name], name, "department") for name in DEPARTMENTS]
        out += [
            {"code": f"{street}-{suffix}", "name": name, "kind": kind, "street_code": street}
            for suffix, name, kind in made
        ]
    return out


# --- reading ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    return (_cell(value) or "").strip()


def _field_columns(columns: list[str], path: Path) -> dict[str, str]:
    """Field → the file's column for it; UnitsFileError for a missing or doubled one."""
    found: dict[str, str] = {}
    for name, spellings in COLUMNS.items():
        present = [c for c in columns if c in spellings]
        if len(present) > 1:
            raise UnitsFileError(f"列重复 {path.name}: {name} is given twice, as {present}")
        if present:
            found[name] = present[0]
    missing = [" / ".join(COLUMNS[f]) for f in REQUIRED_COLUMNS if f not in found]
    if missing:
        raise UnitsFileError(f"缺少列 {path.name} lacks the columns: {', '.join(missing)}")
    return found


def _read_table(path: Path, sheet: str | None) -> tuple[list[_Row], list[dict[str, Any]]]:
    """A CSV or XLSX file's rows, and the rows it could not parse (as rejects)."""
    try:
        extract = read_extract(path, sheet=sheet)
    except ExtractError as exc:
        raise UnitsFileError(str(exc)) from exc
    found = _field_columns(extract.columns, path)
    records = extract.table.to_pylist()
    rows = [
        _Row(
            number=int(record["_row"]),
            raw={c: record[c] for c in extract.columns},
            fields={name: _text(record[column]) for name, column in found.items()},
        )
        for record in records
    ]
    return rows, [_bad_row(bad) for bad in extract.bad_rows]


def _read_yaml(path: Path) -> list[_Row]:
    """The YAML form: `stations:` and `district_departments:`, each a list of mappings with
    code, name, street_code (stations) and active."""
    try:
        doc = read_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise UnitsFileError(f"无法读取 cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict) or not doc or set(doc) - set(YAML_KEYS):
        raise UnitsFileError(
            f"{path.name}: a mapping with the keys {sorted(YAML_KEYS)} is expected, "
            f"not {sorted(doc) if isinstance(doc, dict) else type(doc).__name__}"
        )
    rows = []
    number = 0
    for key, kind in YAML_KEYS.items():
        entries = doc.get(key) or []
        if not isinstance(entries, list):
            raise UnitsFileError(f"{path.name}: {key} must be a list")
        for entry in entries:
            number += 1
            if not isinstance(entry, dict):
                raise UnitsFileError(f"{path.name}: {key} entry {number} is not a mapping")
            unknown = set(entry) - {"code", "name", "street_code", "active"}
            if unknown:
                raise UnitsFileError(
                    f"{path.name}: {key} entry {number} has unknown keys {sorted(unknown)}"
                )
            raw = {k: _cell(v) for k, v in entry.items()} | {"kind": kind}
            fields = {name: _text(raw.get(name)) for name in COLUMNS}
            rows.append(_Row(number=number, raw=raw, fields=fields))
    return rows


# --- validation ------------------------------------------------------------------------


def _check(row: _Row, streets: Mapping[str, str], generated: bool) -> _Unit:
    """The unit a row describes; raises _Invalid with the reason and a message naming the
    bad value."""
    f = row.fields
    if any("\x00" in v for v in f.values()):
        raise _Invalid("nul_byte", "含 NUL 字节 a value holds a NUL byte")
    missing = [name for name in REQUIRED_COLUMNS if not f.get(name)]
    if missing:
        raise _Invalid("missing_required", f"必填项为空 empty: {', '.join(missing)}")
    code, name = f["code"], f["name"]
    kind = KIND_NAMES.get(f["kind"])
    if kind is None:
        raise _Invalid(
            "bad_value",
            f"未知单位类型 unknown kind {f['kind']!r}: one of {', '.join(UNIT_KINDS)}",
        )
    if kind in GENERATED_KINDS and not generated:
        raise _Invalid(
            "generated_unit",
            f"中心和七大部由 `blockdata units build` 生成 the centre and the seven departments "
            f"are built for every street, not imported: {code!r} ({kind})",
        )
    street = f.get("street_code") or None
    if kind in STREET_KINDS and street is None:
        raise _Invalid(
            "street_required", f"{UNIT_KINDS[kind]}须填街道编码 {kind} needs street_code"
        )
    if kind not in STREET_KINDS and street is not None:
        raise _Invalid(
            "street_not_allowed",
            f"区级部门不属于街道 a district department has no street_code: {street!r}",
        )
    if street is not None and street not in streets:
        raise _Invalid("unknown_street", f"没有这个街道 no such street: {street!r}")
    prefix = f"{street}-" if street is not None else DISTRICT_PREFIX
    if len(code) > CODE_LENGTH or not _CODE.match(code) or not code.startswith(prefix):
        raise _Invalid(
            "code_format",
            f"编码格式不对 code {code!r}: {prefix} and lower-case letters, digits and hyphens, "
            f"at most {CODE_LENGTH} characters",
        )
    suffix = code.removeprefix(prefix)
    if kind not in GENERATED_KINDS and street is not None and suffix in GENERATED_SUFFIXES:
        raise _Invalid(
            "generated_unit",
            f"编码留给中心和七大部 the code {code!r} is the centre's or a department's",
        )
    active = f.get("active", "").lower()
    if active not in TRUE | FALSE:
        raise _Invalid("bad_value", f"启用须为是或否 active must be 是 or 否, not {active!r}")
    return _Unit(code, name, kind, street, active in TRUE)


def _reject(row: _Row, reason: str, message: str) -> dict[str, Any]:
    return {
        "row_number": row.number,
        "source_id": _printable(row.fields.get("code") or None),
        "reason": reason,
        "message": _printable(message),
        "retryable": False,
        "raw": {k: _printable(v) for k, v in row.raw.items()},
    }


def _validate(
    rows: list[_Row], existing: dict[str, _Unit], streets: Mapping[str, str], generated: bool
) -> tuple[list[_Unit], list[dict[str, Any]]]:
    """The units to load and the rejects. Of a code given twice the last copy loads; a name
    held by another unit of the same street (or of the district's departments), in the
    database or on an earlier row, is refused."""
    checked: list[tuple[_Row, _Unit]] = []
    rejects = []
    for row in rows:
        try:
            checked.append((row, _check(row, streets, generated)))
        except _Invalid as bad:
            rejects.append(_reject(row, bad.reason, bad.message))
    last = {unit.code: row.number for row, unit in checked}
    names = {(u.street_code, u.name): u.code for u in existing.values()}
    kept = []
    for row, unit in checked:
        if last[unit.code] != row.number:
            rejects.append(
                _reject(row, "duplicate", f"编码重复 code {unit.code!r} again on a later row")
            )
            continue
        holder = names.get((unit.street_code, unit.name))
        if holder is not None and holder != unit.code:
            rejects.append(
                _reject(
                    row,
                    "duplicate_name",
                    f"名称已被占用 the name {unit.name!r} is {holder!r}'s",
                )
            )
            continue
        old = existing.get(unit.code)
        if old is not None:
            names.pop((old.street_code, old.name), None)
        names[(unit.street_code, unit.name)] = unit.code
        kept.append(unit)
    return kept, sorted(rejects, key=lambda r: r["row_number"])


# --- loading ---------------------------------------------------------------------------


def _existing(conn: sa.Connection) -> dict[str, _Unit]:
    return {
        r.code: _Unit(r.code, r.name, r.kind, r.street_code, r.active)
        for r in conn.execute(
            sa.select(units.c.code, units.c.name, units.c.kind, units.c.street_code, units.c.active)
        )
    }


def _streets(conn: sa.Connection) -> dict[str, str]:
    streets = get_layer("streets").table
    return {code: name for code, name in conn.execute(sa.select(streets.c.code, streets.c.name))}


def _upsert(conn: sa.Connection, kept: list[_Unit], existing: dict[str, _Unit]) -> Counter[str]:
    """Insert the new units, update the changed ones; the counts of each and of unchanged."""
    counts: Counter[str] = Counter(inserted=0, updated=0, unchanged=0)
    changed = []
    for unit in kept:
        old = existing.get(unit.code)
        state = "inserted" if old is None else "unchanged" if old == unit else "updated"
        counts[state] += 1
        if state != "unchanged":
            changed.append(asdict(unit))
    if changed:
        statement = pg.insert(units)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[units.c.code],
                set_={
                    "name": statement.excluded.name,
                    "kind": statement.excluded.kind,
                    "street_code": statement.excluded.street_code,
                    "active": statement.excluded.active,
                    "updated_at": sa.func.now(),
                },
            ),
            changed,
        )
    return counts


def _run(
    conn: sa.Connection,
    path: Path,
    read: Any,
    *,
    generated: bool,
    options: dict[str, Any],
) -> RunReport:
    """One run: recorded first (etl.jobs), then read, validate and upsert under a savepoint;
    `read(conn)` gives the rows and the unparsable rows' rejects."""
    started = time.monotonic()
    spec = SourceMapping(name=LAYER, layer=LAYER, source=SOURCE, crs=None, columns={}, required=())
    run_id = _start_run(conn, path, spec, options)
    report = RunReport(run_id=run_id, layer=LAYER, source=SOURCE, file_name=path.name)
    try:
        with conn.begin_nested():
            conn.execute(
                sa.text("select pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"etl:{LAYER}:{SOURCE}"},
            )
            rows, unparsed = read(conn)
            existing = _existing(conn)
            kept, rejects = _validate(rows, existing, _streets(conn), generated)
            rejects = sorted([*rejects, *unparsed], key=lambda r: r["row_number"])
            counts = _upsert(conn, kept, existing)
            save_rejects(conn, run_id, rejects)
            report.read = len(rows) + len(unparsed)
            report.inserted = counts["inserted"]
            report.updated = counts["updated"]
            report.unchanged = counts["unchanged"]
            report.rejected = len(rejects)
            report.reasons = dict(Counter(r["reason"] for r in rejects))
            succeed_run(conn, run_id, report)
    except (Exception, KeyboardInterrupt) as exc:
        report.read = 0
        report.reasons = {}
        fail_run(conn, run_id, report, exc, started)
    report.seconds = time.monotonic() - started
    return report


def import_units(conn: sa.Connection, path: Path, *, sheet: str | None = None) -> RunReport:
    """Load the stations and district departments of a CSV, XLSX or YAML file, in the
    caller's transaction (the caller commits); EtlError when the run fails as a whole."""
    path = Path(path)

    def read(_: sa.Connection) -> tuple[list[_Row], list[dict[str, Any]]]:
        if path.suffix.lower() in YAML_SUFFIXES:
            if sheet is not None:
                raise UnitsFileError(
                    f"--sheet 只用于 Excel 文件 applies to workbooks only: {path.name}"
                )
            return _read_yaml(path), []
        return _read_table(path, sheet)

    options: dict[str, Any] = {"units": "import"} | ({"sheet": sheet} if sheet else {})
    return _run(conn, path, read, generated=False, options=options)


def build_units(
    conn: sa.Connection, district_departments: Path = DISTRICT_DEPARTMENTS
) -> RunReport:
    """Every street's centre and seven departments, and the units of the YAML file
    `district_departments` (default: the configured list), in the caller's transaction (the
    caller commits); EtlError when the run fails as a whole."""
    path = Path(district_departments)

    def read(conn: sa.Connection) -> tuple[list[_Row], list[dict[str, Any]]]:
        made = [
            _Row(number=i, raw=unit, fields={k: v or "" for k, v in unit.items()})
            for i, unit in enumerate(generated_units(sorted(_streets(conn))), start=1)
        ]
        listed = [
            _Row(number=len(made) + row.number, raw=row.raw, fields=row.fields)
            for row in _read_yaml(path)
        ]
        return made + listed, []

    return _run(conn, path, read, generated=True, options={"units": "build"})
