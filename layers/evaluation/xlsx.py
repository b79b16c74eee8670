"""The assessor's XLSX template and its import, and the reading of the inputs' files.

The template (openpyxl): one row per item of the unit × street, columns TEMPLATE_COLUMNS,
the current scores filled in, a data validation on 得分 for each item's range, the sheet
protected but for 得分 and 依据说明, and a hidden sheet naming the scheme and the period (an
import of another period's template is refused). The import checks every row
(layers.evaluation.scoring.set_scores) and writes all of them or none; the rejected rows
come back with their row number, column and reason.

`read_table` reads an XLSX or CSV (UTF-8, with or without BOM; GB18030 too) by its header
names, for the tasks' and the survey's imports as well.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font, PatternFill, Protection
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from layers.cases import Actor
from layers.evaluation.scheme import Scheme
from layers.evaluation.scoring import (
    InputError,
    Score,
    check_period,
    manual_items,
    score_range,
    scores,
    set_scores,
    streets,
)

TEMPLATE_COLUMNS = ("街道编码", "街道", "考核项编码", "考核项", "满分", "得分", "依据说明")
SCORE_FIELDS = {
    "街道编码": "street",
    "考核项编码": "item",
    "得分": "points",
    "依据说明": "evidence",
}
SHEET = "评分"
META = "meta"  # hidden: scheme code, period, unit
MAX_ROWS = 20_000
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def code(value: object) -> str:
    """A code cell as text: Excel may have turned 110102001 into a number."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _csv_text(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputError("CSV 文件编码无法识别（请用 UTF-8） CSV must be UTF-8")


def _rows(data: bytes, filename: str, sheet: str | None = None) -> Iterable[tuple[Any, ...]]:
    if filename.lower().endswith(".csv"):
        return [tuple(r) for r in csv.reader(io.StringIO(_csv_text(data)))]
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InputError(
            f"无法读取文件 {filename!r}：应为 XLSX 或 CSV not an XLSX or CSV file ({exc})"
        ) from None
    ws = book[sheet] if sheet is not None and sheet in book.sheetnames else book.worksheets[0]
    return list(ws.iter_rows(values_only=True))


def read_table(
    data: bytes,
    filename: str,
    columns: Mapping[str, str],
    required: Iterable[str],
    sheet: str | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """(row number, {field: value}) of each non-empty data row; `columns`: header → field.
    A missing required column refuses the file (InputError); unknown columns are ignored."""
    rows = list(_rows(data, filename, sheet))
    if not rows:
        raise InputError("文件是空的 the file is empty")
    header = [str(h).strip() if h is not None else "" for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(
            f"缺少列：{'、'.join(missing)} missing columns",
            rejected=[
                {"row": 1, "column": c, "reason": "缺少该列 missing column"} for c in missing
            ],
        )
    if len(rows) - 1 > MAX_ROWS:
        raise InputError(f"行数过多（至多 {MAX_ROWS} 行） too many rows")
    where = {columns[h]: i for i, h in enumerate(header) if h in columns}
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if all(v is None or str(v).strip() == "" for v in row):
            continue
        out.append((n, {f: (row[i] if i < len(row) else None) for f, i in where.items()}))
    return out


def template(conn: sa.Connection, scheme: Scheme, period: str, unit: str) -> bytes:
    """The unit's manual items × every street, its current scores filled in."""
    check_period(period)
    grid = scores(conn, scheme, period, unit=unit)
    current = {(s["item"], s["street"]): s for s in grid["scores"]}
    items = manual_items(scheme, unit)
    book = Workbook()
    ws = book.active
    ws.title = SHEET
    ws.append(list(TEMPLATE_COLUMNS))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ranges: dict[tuple[Decimal, Decimal], list[str]] = {}
    editable = PatternFill("solid", fgColor="FFF2CC")
    row = 1
    known = streets(conn)
    for it in items:
        low, high = score_range(it)
        ranges.setdefault((low, high), []).append(f"F{row + 1}:F{row + len(known)}")
        for street, name in known.items():
            row += 1
            stored = current.get((it.code, street))
            ws.append(
                [
                    street,
                    name,
                    it.code,
                    it.name,
                    float(high),
                    None if stored is None else stored["points"],
                    None if stored is None else stored["evidence"],
                ]
            )
            for cell in ws[row]:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    cell.data_type = "s"  # text as typed, never a formula
            for col in (6, 7):
                cell = ws.cell(row=row, column=col)
                cell.protection = Protection(locked=False)
                cell.fill = editable
    for (low, high), cells in ranges.items():
        check = DataValidation(
            type="decimal",
            operator="between",
            formula1=str(low),
            formula2=str(high),
            allow_blank=True,
            showErrorMessage=True,
            errorTitle="得分超出范围",
            error=f"得分应在 {low} 到 {high} 之间",
        )
        for cell in cells:
            check.add(cell)
        ws.add_data_validation(check)
    for i, width in enumerate((12, 14, 16, 24, 8, 8, 40), start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "A2"
    ws.protection.sheet = True
    meta = book.create_sheet(META)
    meta.append(["scheme", scheme.code])
    meta.append(["period", period])
    meta.append(["unit", unit])
    meta.sheet_state = "hidden"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _meta(data: bytes) -> dict[str, str]:
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        return {}
    if META not in book.sheetnames:
        return {}
    return {str(r[0]): code(r[1]) for r in book[META].iter_rows(values_only=True) if r and r[0]}


def import_scores(
    conn: sa.Connection,
    scheme: Scheme,
    period: str,
    data: bytes,
    filename: str,
    actor: Actor,
    now: dt.datetime,
    source: str = "xlsx",
) -> dict[str, Any]:
    """Every filled row of a template (a blank 得分 is left as it is) written, or none.

    Refused with every reason (InputError, `rejected`: row, column, reason): what
    `scoring.set_scores` refuses, a template of another scheme or period, a missing column."""
    check_period(period)
    meta = _meta(data) if not filename.lower().endswith(".csv") else {}
    for key, want in (("scheme", scheme.code), ("period", period)):
        if meta.get(key) and meta[key] != want:
            raise InputError(
                f"模板的{'考评方案' if key == 'scheme' else '考评周期'}是 {meta[key]}，"
                f"不是 {want} the template is for another {key}"
            )
    table = read_table(data, filename, SCORE_FIELDS, tuple(SCORE_FIELDS), sheet=SHEET)
    names = {field: header for header, field in SCORE_FIELDS.items()}
    filled = [
        Score(
            code(r["item"]),
            code(r["street"]),
            r["points"].strip() if isinstance(r["points"], str) else r["points"],
            None if r["evidence"] is None else str(r["evidence"]),
            row=n,
        )
        for n, r in table
        if not (r["points"] is None or (isinstance(r["points"], str) and not r["points"].strip()))
    ]
    if not filled:
        raise InputError("模板中没有填写任何得分 no score filled in")
    return set_scores(conn, scheme, period, filled, actor, now, source, names, "导入")
