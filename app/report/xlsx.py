"""The monthly report as a workbook (openpyxl): sheets 排名, 各街道得分, 部门评价, 突出问题.
Numbers are numbers (rates as fractions with a percent format), headers in Chinese, the header
row frozen, columns sized to their content."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

SCORE = "0.00"
PERCENT = "0.0%"
CHANGE = "+0.00;-0.00;0.00"

# The ranking sheet: (header, value of a Result street, number format).
RANKING_COLUMNS: tuple[tuple[str, Any, str | None], ...] = (
    ("名次", lambda s: s.get("rank"), "0"),
    ("名次变化", lambda s: s.get("rank_change"), "+0;-0;0"),
    ("街道代码", lambda s: s["code"], None),
    ("街道", lambda s: s["name"], None),
    ("类别", lambda s: s.get("class"), None),
    ("综合得分", lambda s: s.get("composite"), SCORE),
    ("内部评价", lambda s: s.get("internal"), SCORE),
    ("满意度测评", lambda s: s.get("survey"), SCORE),
    ("误差范围(±)", lambda s: s.get("survey_margin"), SCORE),
    ("热线三率", lambda s: s.get("hotline"), SCORE),
    ("响应率", lambda s: (s.get("rates") or {}).get("response_rate"), PERCENT),
    ("解决率", lambda s: (s.get("rates") or {}).get("resolution_rate"), PERCENT),
    ("满意率", lambda s: (s.get("rates") or {}).get("satisfaction_rate"), PERCENT),
    ("诉求量", lambda s: (s.get("rates") or {}).get("requests"), "0"),
)


def ranking_rows(report: dict[str, Any]) -> list[list[Any]]:
    """The ranking sheet's rows below its header, as written."""
    return [[value(s) for _, value, _ in RANKING_COLUMNS] for s in report["streets"]]


def _sheet(
    book: Workbook, title: str, headers: list[str], rows: list[list[Any]], formats: list[str | None]
) -> Worksheet:
    sheet = book.create_sheet(title)
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="F1F1F1")
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for row in rows:
        sheet.append(row)
    for col, fmt in enumerate(formats, start=1):
        if fmt is None:
            continue
        for (cell,) in sheet.iter_rows(min_row=2, min_col=col, max_col=col):
            cell.number_format = fmt
    for col, header in enumerate(headers, start=1):
        longest = max(
            [_width(header)] + [_width(row[col - 1]) for row in rows if col - 1 < len(row)]
        )
        sheet.column_dimensions[get_column_letter(col)].width = min(max(longest + 2, 8), 60)
    sheet.freeze_panes = "A2"
    return sheet


def _width(value: Any) -> int:
    """Display width: a CJK character counts two."""
    if value is None:
        return 0
    if isinstance(value, float):
        value = f"{value:.2f}"
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in str(value))


def _scores(report: dict[str, Any]) -> tuple[list[str], list[list[Any]], list[str | None]]:
    aspects = list(report.get("aspect_names") or {})
    headers = ["名次", "街道", *(report["aspect_names"][a] for a in aspects)]
    formats: list[str | None] = ["0", None, *(SCORE for _ in aspects)]
    for header in ("内部评价", "满意度测评", "热线三率", "综合得分"):
        headers += [header, f"{header}变化"]
        formats += [SCORE, CHANGE]
    headers.append("缺项")
    formats.append(None)
    rows = []
    for s in report["streets"]:
        aspect = s.get("aspects") or {}
        change = s.get("changes") or {}
        row = [s.get("rank"), s["name"], *(aspect.get(a) for a in aspects)]
        for part in ("internal", "survey", "hotline", "composite"):
            row += [s.get(part), change.get(part)]
        row.append("、".join(s.get("missing") or []) or None)
        rows.append(row)
    return headers, rows, formats


def _departments(report: dict[str, Any]) -> tuple[list[str], list[list[Any]], list[str | None]]:
    from app.report import DEPARTMENT_COLUMNS, department_cells

    kinds = {"int": "0", "num": SCORE, "minutes": "0.0", "pct": PERCENT, "text": None}
    headers = [header for _, header, _ in DEPARTMENT_COLUMNS]
    rows = [department_cells(d) for d in report["departments"]]
    return headers, rows, [kinds[kind] for _, _, kind in DEPARTMENT_COLUMNS]


def _problems(report: dict[str, Any]) -> tuple[list[str], list[list[Any]], list[str | None]]:
    headers = ["范围", "序号", "诉求类别", "诉求量", "占比"]
    rows: list[list[Any]] = [
        ["全区", i, p["category"], p["n"], p["share"]]
        for i, p in enumerate(report["top_problems"], start=1)
    ]
    for s in report["streets"]:
        rows += [
            [s["name"], i, p["category"], p["n"], p["share"]]
            for i, p in enumerate(s.get("top_categories") or [], start=1)
        ]
    headers += ["失分项", "得分", "满分"]
    rows = [[*row, None, None, None] for row in rows]
    for s in report["streets"]:
        rows += [
            [s["name"], i, None, None, None, item["name"], item["points"], item["max"]]
            for i, item in enumerate(s.get("worst_items") or [], start=1)
        ]
    return headers, rows, [None, "0", None, "0", PERCENT, None, SCORE, SCORE]


def render_xlsx(report: dict[str, Any]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    _sheet(
        book,
        "排名",
        [header for header, _, _ in RANKING_COLUMNS],
        ranking_rows(report),
        [fmt for _, _, fmt in RANKING_COLUMNS],
    )
    _sheet(book, "各街道得分", *_scores(report))
    _sheet(book, "部门评价", *_departments(report))
    _sheet(book, "突出问题", *_problems(report))
    book.properties.title = report["title"]
    book.properties.creator = "Blockdata"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
