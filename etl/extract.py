"""Extract: read a source file into a table of strings, whatever its format and encoding.

Every value comes out as text (or null), exactly as the source wrote it, with the row's
1-based number in the file (`_row`). Typing and validation happen later, so that a bad
value can be rejected with its raw content. Rows that cannot be parsed at all (a wrong
number of fields, as in a truncated file) are returned separately, with their text.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

ROW = "_row"
GEOMETRY = "_geometry_wkb"
CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls"}
GEO_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".fgb"}


class ExtractError(ValueError):
    """The file as a whole cannot be read; the message says why, naming the file."""


@dataclass(frozen=True)
class BadRow:
    row: int
    text: str
    reason: str
    message: str


@dataclass
class Extract:
    table: pa.Table
    columns: list[str]
    encoding: str | None
    bad_rows: list[BadRow] = field(default_factory=list)
    crs: str | None = None  # of the geometry, for geo files

    @property
    def rows(self) -> int:
        return self.table.num_rows + len(self.bad_rows)


def detect_encoding(head: bytes) -> str:
    """UTF-8 (with or without BOM) or GB18030 (a superset of GBK and GB2312)."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    for encoding in ("utf-8", "gb18030"):
        # Not final: a multi-byte character cut at the end of the sample is fine.
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            decoder.decode(head, final=False)
        except UnicodeDecodeError:
            continue
        return encoding
    raise ExtractError("无法识别文件编码 cannot detect the encoding (tried UTF-8, GBK/GB18030)")


def read_extract(path: Path, encoding: str | None = None) -> Extract:
    """Read CSV, XLSX or a geo file (GeoJSON, GeoPackage, Shapefile) into strings."""
    if not path.exists():
        raise ExtractError(f"文件不存在 no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, encoding)
    if suffix in EXCEL_SUFFIXES:
        return _read_excel(path)
    if suffix in GEO_SUFFIXES:
        return _read_geo(path, encoding)
    raise ExtractError(f"不支持的文件类型 unsupported file type {suffix!r}: {path.name}")


def _header(raw: bytes, encoding: str, delimiter: str) -> list[str]:
    text = raw.decode(encoding, errors="strict")
    first = next(csv.reader(io.StringIO(text), delimiter=delimiter), None)
    if not first:
        raise ExtractError("文件为空 the file is empty: no header row")
    return [name.strip().lstrip("\ufeff") for name in first]


def _read_csv(path: Path, encoding: str | None) -> Extract:
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    if not head.strip():
        raise ExtractError(f"文件为空 the file is empty: {path.name}")
    encoding = encoding or detect_encoding(head)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    first_line = head.split(b"\n", 1)[0]
    try:
        columns = _header(first_line, encoding, delimiter)
    except UnicodeDecodeError as exc:
        raise ExtractError(f"文件编码错误 the header is not valid {encoding}: {exc}") from exc
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise ExtractError(f"列名重复 duplicate column names: {dupes}")
    if _ends_mid_character(path, encoding):
        return _read_csv_slow(path, encoding, delimiter, columns)
    bad: list[tuple[int | None, str]] = []

    def on_bad(row: pacsv.InvalidRow) -> str:
        bad.append((row.number, row.text))
        return "skip"

    read_options = pacsv.ReadOptions(
        column_names=columns,
        skip_rows=1,
        encoding="utf8" if encoding in ("utf-8", "utf-8-sig") else encoding,
        block_size=8 << 20,
    )
    try:
        table = pacsv.read_csv(
            path,
            read_options=read_options,
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_bad
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in columns},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        if "utf8" in str(exc).lower():
            raise ExtractError(
                f"文件编码错误 {path.name} is not valid {encoding} throughout: {exc}"
            ) from exc
        # A row the fast parser cannot take (e.g. cut off mid-way): read it the careful way.
        return _read_csv_slow(path, encoding, delimiter, columns)
    except UnicodeDecodeError as exc:
        raise ExtractError(f"文件编码错误 {path.name} is not valid {encoding}: {exc}") from exc
    if bad:
        # Rare: re-read with the csv module, which knows every row's number.
        return _read_csv_slow(path, encoding, delimiter, columns)
    table = table.append_column(ROW, pa.array(np.arange(1, table.num_rows + 1, dtype=np.int32)))
    return Extract(table=table, columns=columns, encoding=encoding)


def _ends_mid_character(path: Path, encoding: str) -> bool:
    """True when the file stops inside a multi-byte character: it was cut off."""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 64))
        tail = fh.read()
    for skip in range(4):  # the sample may itself start inside a character
        try:
            tail[skip:].decode(encoding)
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data" and exc.start > 3:
                return False
            continue
        return False
    return True


def _read_csv_slow(path: Path, encoding: str, delimiter: str, columns: list[str]) -> Extract:
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.reason != "unexpected end of data":
            raise ExtractError(f"文件编码错误 {path.name} is not valid {encoding}: {exc}") from exc
        # The file ends in a character cut in half: a truncated file, not a wrong encoding.
        text = data.decode(encoding, errors="replace")
    good: list[list[str]] = []
    rows: list[int] = []
    bad: list[BadRow] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    next(reader, None)
    for number, record in enumerate(reader, start=1):
        if len(record) == len(columns):
            good.append(record)
            rows.append(number)
        elif any(value.strip() for value in record):
            bad.append(
                BadRow(
                    number,
                    delimiter.join(record),
                    "bad_row",
                    f"字段数不符 expected {len(columns)} fields, found {len(record)} "
                    "(truncated or malformed row)",
                )
            )
    arrays = [pa.array([r[i] for r in good], pa.string()) for i in range(len(columns))]
    table = pa.Table.from_arrays(arrays, names=columns)
    table = table.append_column(ROW, pa.array(rows, pa.int32()))
    return Extract(table=table, columns=columns, encoding=encoding, bad_rows=bad)


def _cell(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value)


def _read_excel(path: Path) -> Extract:
    from python_calamine import CalamineWorkbook

    try:
        sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
        data = sheet.to_python(skip_empty_area=False)
    except Exception as exc:  # calamine raises its own types for corrupt files
        raise ExtractError(f"无法读取 Excel 文件 cannot read {path.name}: {exc}") from exc
    if not data:
        raise ExtractError(f"文件为空 the file is empty: {path.name}")
    columns = [str(c).strip() for c in data[0]]
    while columns and not columns[-1]:
        columns.pop()
    records = [r for r in data[1:] if any(v not in (None, "") for v in r)]
    arrays = [
        pa.array([_cell(r[i]) if i < len(r) else None for r in records], pa.string())
        for i in range(len(columns))
    ]
    table = pa.Table.from_arrays(arrays, names=columns)
    numbers = [i + 1 for i, r in enumerate(data[1:]) if any(v not in (None, "") for v in r)]
    table = table.append_column(ROW, pa.array(numbers, pa.int32()))
    return Extract(table=table, columns=columns, encoding=None)


def _read_geo(path: Path, encoding: str | None) -> Extract:
    import pyogrio

    try:
        meta, _, geometry, fields = pyogrio.raw.read(path, encoding=encoding)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise ExtractError(f"无法读取 cannot read {path.name}: {exc}") from exc
    columns = [str(c) for c in meta["fields"]]
    arrays = []
    for values in fields:
        arrays.append(pa.array([_cell(v) for v in np.asarray(values, dtype=object)], pa.string()))
    table = pa.Table.from_arrays(arrays, names=columns) if columns else pa.table({})
    n = len(geometry) if geometry is not None else 0
    wkb = [bytes(g) if g is not None else None for g in (geometry if geometry is not None else [])]
    if not columns:
        table = pa.table({GEOMETRY: pa.array(wkb, pa.binary())})
    else:
        table = table.append_column(GEOMETRY, pa.array(wkb, pa.binary()))
    table = table.append_column(ROW, pa.array(np.arange(1, n + 1, dtype=np.int32)))
    crs = meta.get("crs")
    return Extract(table=table, columns=columns, encoding=encoding, crs=crs)
