"""Extract: read a source file into a table of strings, whatever its format and encoding.

Every value comes out as text (or null), exactly as the source wrote it, with the row's
1-based number in the file (`_row`). Typing and validation happen later, so that a bad
value can be rejected with its raw content. Rows that cannot be parsed at all (a wrong
number of fields, a stray quote, a file cut inside a quoted field) are returned
separately, with their text and the reason.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections.abc import Collection, Sequence
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
    sheet: str | None = None  # the sheet read, for workbooks
    ignored_sheets: dict[str, int] = field(default_factory=dict)  # other sheets with rows

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


def read_extract(
    path: Path,
    encoding: str | None = None,
    *,
    sheet: str | None = None,
    expect: Collection[str] = (),
) -> Extract:
    """Read CSV, XLSX or a geo file (GeoJSON, GeoPackage, Shapefile) into strings.

    `sheet` picks a workbook's sheet; `expect` (source column names) tells which sheets
    of a workbook hold the data when `sheet` is not given.
    """
    if not path.exists():
        raise ExtractError(f"文件不存在 no such file: {path}")
    suffix = path.suffix.lower()
    if sheet is not None and suffix not in EXCEL_SUFFIXES:
        raise ExtractError(f"--sheet 只用于 Excel 文件 applies to workbooks only, not {path.name}")
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, encoding)
    if suffix in EXCEL_SUFFIXES:
        return _read_excel(path, sheet, expect)
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
    """A CSV file: pyarrow for the common case, the careful reader when anything is off.

    pyarrow's reader is fast but follows an unclosed quote to the next quote in the file,
    however far: one stray quote swallows the rows after it, and a file cut inside its
    last quoted field ends in a value that looks whole. So its result is taken only when
    no value spans lines, no row has the wrong number of fields and the last record is
    not left inside an open quote. Otherwise `_read_records` reads the file record by
    record with the stdlib csv module and resynchronises after a bad quote.
    """
    data = path.read_bytes()
    head = data[: 1 << 20]
    if not head.strip() and not data.strip():
        raise ExtractError(f"文件为空 the file is empty: {path.name}")
    encoding = encoding or detect_encoding(head)
    if encoding == "utf-16":
        data, encoding = data.decode("utf-16").encode("utf-8"), "utf-8"
    elif head.count(b"\x00") > len(head) // 4:
        raise ExtractError(
            f"文件编码错误 {path.name} looks like UTF-16 without a byte-order mark "
            "(every other byte is NUL); save it as UTF-8"
        )
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    first_line = data[: data.find(b"\n")] if b"\n" in head else data
    try:
        columns = _header(first_line, encoding, delimiter)
    except UnicodeDecodeError as exc:
        raise ExtractError(f"文件编码错误 the header is not valid {encoding}: {exc}") from exc
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise ExtractError(f"列名重复 duplicate column names: {dupes}")
    if _ends_mid_character(data, encoding) or _last_record_open(data, encoding, delimiter):
        return _read_records(path.name, data, encoding, delimiter, columns)
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
            pa.py_buffer(data),
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
        return _read_records(path.name, data, encoding, delimiter, columns)
    except UnicodeDecodeError as exc:
        raise ExtractError(f"文件编码错误 {path.name} is not valid {encoding}: {exc}") from exc
    if bad or table.num_rows + 1 != _lines(data):
        # A wrong number of fields, or a value running over a line end (a quoted line break
        # or a stray quote; or just blank lines): the careful reader tells them apart and
        # numbers every row.
        return _read_records(path.name, data, encoding, delimiter, columns)
    table = table.append_column(ROW, pa.array(np.arange(1, table.num_rows + 1, dtype=np.int32)))
    return Extract(table=table, columns=columns, encoding=encoding)


def _lines(data: bytes) -> int:
    """Lines in the file: as many as records plus the header when no value spans lines."""
    raw = np.frombuffer(data, dtype=np.uint8)
    block = 1 << 24
    breaks = sum(int(np.count_nonzero(raw[i : i + block] == 10)) for i in range(0, len(raw), block))
    return breaks + (0 if data.endswith(b"\n") else 1)


def _last_record_open(data: bytes, encoding: str, delimiter: str) -> bool:
    """True when the file's last line, read as one record, ends inside an open quote."""
    end = len(data)
    while end and data[end - 1 : end] in (b"\r", b"\n"):
        end -= 1
    last = data[data.rfind(b"\n", 0, end) + 1 : end]
    if b'"' not in last:
        return False
    return not _quotes(last.decode(encoding, errors="replace"), delimiter)[0]


def _ends_mid_character(data: bytes, encoding: str) -> bool:
    """True when the file stops inside a multi-byte character: it was cut off."""
    tail = data[-64:]
    for skip in range(4):  # the sample may itself start inside a character
        try:
            tail[skip:].decode(encoding)
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data" and exc.start > 3:
                return False
            continue
        return False
    return True


def _quotes(text: str, delimiter: str) -> tuple[bool, bool]:
    """Follow CSV quoting over the text of one record: (quotes closed, well formed).

    The csv module's rules: a quote opens a field only at the field's start, `""` inside
    a quoted field is a quote, and after the closing quote comes the delimiter or the end
    of the line (else the record is not well formed, though both readers accept it).
    """
    start, plain, quoted, closing = 0, 1, 2, 3
    state, ok = start, True
    for char in text:
        if state == quoted:
            if char == '"':
                state = closing
        elif state == closing:
            if char == '"':
                state = quoted
            elif char == delimiter or char in "\r\n":
                state = start
            else:
                ok, state = False, plain
        elif state == start:
            if char == '"':
                state = quoted
            elif char != delimiter and char not in "\r\n":
                state = plain
        elif char == delimiter or char == "\n":
            state = start
    return state != quoted, ok


def _read_records(
    name: str, data: bytes, encoding: str, delimiter: str, columns: list[str]
) -> Extract:
    """Read record by record (stdlib csv), keeping every record that cannot be trusted.

    A record that runs over several lines is kept only when its quotes close properly
    and it has the header's number of fields. Otherwise the quote on its first line is
    a stray one: that line is rejected (`bad_quote`, with its line number) and reading
    starts again on the next line, so the rows after it load. A record still inside an
    open quote at the end of the file was cut off (`truncated`): it is rejected, never
    stored with its cut value. Rows are numbered as records (the header not counted,
    blank lines skipped), the same numbers the fast path gives.
    """
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.reason != "unexpected end of data":
            raise ExtractError(f"文件编码错误 {name} is not valid {encoding}: {exc}") from exc
        # The file ends in a character cut in half: a truncated file, not a wrong encoding.
        text = data.decode(encoding, errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    last = len(lines)
    while last > 1 and not lines[last - 1].strip():
        last -= 1
    good: list[list[str]] = []
    rows: list[int] = []
    bad: list[BadRow] = []
    number = 0

    def reject(record: int, line: int, reason: str, message: str) -> None:
        bad.append(
            BadRow(record, lines[line], reason, f"第 {line + 1} 行 line {line + 1}: {message}")
        )

    line = 1  # lines[0] is the header
    while line < len(lines):
        reader = csv.reader((f"{lines[i]}\n" for i in range(line, len(lines))), delimiter=delimiter)
        restart = None
        while True:
            first = line + reader.line_num
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # e.g. a field larger than the csv module takes
                number += 1
                reject(number, first, "bad_quote", f"引号不配对 unbalanced quote ({exc})")
                restart = first + 1
                break
            end = line + reader.line_num  # one past the record's last line
            if not record or (len(record) == 1 and not record[0].strip() and end - first == 1):
                continue
            number += 1
            spans = end - first > 1
            closed, well_formed = (True, True)
            if spans or end >= last:
                closed, well_formed = _quotes("\n".join(lines[first:end]), delimiter)
            if not closed and first >= last - 1:
                reject(
                    number,
                    first,
                    "truncated",
                    "文件在引号内结束, 最后一行被截断 the file ends inside an open quote: "
                    "the last row was cut off",
                )
                restart = end
                break
            if spans and not (closed and well_formed):
                reject(
                    number,
                    first,
                    "bad_quote",
                    "引号不配对 unbalanced quote: this row is rejected, the rows after it "
                    "are read on their own",
                )
                restart = first + 1
                break
            if len(record) == len(columns):
                good.append(record)
                rows.append(number)
            else:
                bad.append(
                    BadRow(
                        number,
                        "\n".join(lines[first:end]),
                        "bad_row",
                        f"第 {first + 1} 行 line {first + 1}: 字段数不符 expected "
                        f"{len(columns)} fields, found {len(record)} "
                        "(truncated or malformed row)",
                    )
                )
        if restart is None:
            break
        line = restart
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


def _sheet_rows(
    data: Sequence[Sequence[object]],
) -> tuple[list[str], list[tuple[int, Sequence[object]]]]:
    """A sheet's header and its non-empty rows, each with its number (the header not counted)."""
    if not data:
        return [], []
    columns = [str(c).strip() if c is not None else "" for c in data[0]]
    while columns and not columns[-1]:
        columns.pop()
    records = [(i + 1, r) for i, r in enumerate(data[1:]) if any(v not in (None, "") for v in r)]
    return columns, records


def _read_excel(path: Path, sheet: str | None, expect: Collection[str]) -> Extract:
    """One sheet of a workbook: the one `sheet` names, else the only one holding the data.

    A sheet holds data when it has rows under its header; with `expect` (the mapping's
    required columns) only sheets whose header has them all count. The other sheets with
    rows are returned as ignored, so that the run names them. Data on several sheets is
    refused: the caller says which with `sheet` (one run per sheet), rather than a silent
    choice of the first.
    """
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
        names = list(book.sheet_names)
        if sheet is not None and sheet not in names:
            raise ExtractError(
                f"没有这个工作表 no sheet {sheet!r} in {path.name}; its sheets: {names}"
            )
        sheets = {
            name: _sheet_rows(book.get_sheet_by_name(name).to_python(skip_empty_area=False))
            for name in names
        }
    except ExtractError:
        raise
    except Exception as exc:  # calamine raises its own types for corrupt files
        raise ExtractError(f"无法读取 Excel 文件 cannot read {path.name}: {exc}") from exc
    if not any(columns for columns, _ in sheets.values()):
        raise ExtractError(f"文件为空 the file is empty: {path.name}")
    filled = [name for name, (_, records) in sheets.items() if records]
    if sheet is None:
        fits = [n for n in filled if set(expect) <= set(sheets[n][0])] if expect else filled
        if len(fits) > 1:
            listed = ", ".join(f"{n!r} ({len(sheets[n][1])} 行 rows)" for n in fits)
            raise ExtractError(
                f"数据分布在多个工作表 the data of {path.name} is spread over {len(fits)} "
                f"sheets: {listed}; load each with --sheet NAME"
            )
        if fits:
            sheet = fits[0]
        elif len(filled) == 1:
            sheet = filled[0]  # the columns check names what it lacks
        elif filled:
            listed = "; ".join(f"{n!r}: {sheets[n][0]}" for n in filled)
            raise ExtractError(
                f"没有工作表含必需的列 no sheet of {path.name} has the required columns "
                f"{sorted(expect)}: {listed}; choose one with --sheet NAME"
            )
        else:
            sheet = next(n for n, (columns, _) in sheets.items() if columns)
    ignored = {n: len(sheets[n][1]) for n in filled if n != sheet}
    columns, records = sheets[sheet]
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise ExtractError(f"列名重复 duplicate column names in sheet {sheet!r}: {dupes}")
    arrays = [
        pa.array([_cell(r[i]) if i < len(r) else None for _, r in records], pa.string())
        for i in range(len(columns))
    ]
    table = pa.Table.from_arrays(arrays, names=columns)
    table = table.append_column(ROW, pa.array([n for n, _ in records], pa.int32()))
    return Extract(table=table, columns=columns, encoding=None, sheet=sheet, ignored_sheets=ignored)


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
