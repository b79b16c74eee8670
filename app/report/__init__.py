"""The monthly report (通报) as a file: HTML, PDF or XLSX, from the dict of
`layers.evaluation.report` (build_report / gather).

HTML: the Jinja template app/templates/report_monthly.html, autoescaped, its pictures
inline as data: URIs (charts SVG, maps PNG), so the file stands alone and loads nothing from
outside. PDF: the same HTML laid out by WeasyPrint, which embeds the CJK font (Noto Sans CJK,
Debian's fonts-noto-cjk) as a subset. XLSX: openpyxl, a sheet per table, numbers as numbers.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.report import figures

FORMATS = ("html", "pdf", "xlsx")
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# The departments' table: (path in department_ratings' rows, header, kind).
DEPARTMENT_COLUMNS = (
    ("rank", "名次", "int"),
    ("name", "部门", "text"),
    ("score", "得分", "num"),
    ("rating_rate", "街道评价满意率", "pct"),
    ("rated", "评价次数", "int"),
    ("whistles.summoned", "吹哨报到", "int"),
    ("whistles.late", "迟到", "int"),
    ("whistles.median_delay_minutes", "报到时长中位数（分钟）", "minutes"),
    ("cases.dispatched", "派单案件", "int"),
    ("on_time_rate", "按时办结率", "pct"),
    ("cases.returned", "退单", "int"),
    ("return_rate", "退单率", "pct"),
)


def department_cells(department: dict[str, Any]) -> list[Any]:
    """A department's values in the order of DEPARTMENT_COLUMNS (None where absent)."""
    cells = []
    for path, _, _ in DEPARTMENT_COLUMNS:
        value: Any = department
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if path == "name":  # a street's unit with its street's name first, when known
            value = department.get("title") or value
        cells.append(value)
    return cells


class ReportError(ValueError):
    """A report that cannot be made as asked (message in Chinese)."""


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def data_uri(content: bytes, fmt: str) -> str:
    mime = "image/svg+xml" if fmt == "svg" else f"image/{fmt}"
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def images(report: dict[str, Any], charts: str = "svg", maps: str = "png") -> dict[str, Any]:
    """The report's pictures as data: URIs: the two charts (SVG by default: text stays sharp)
    and a map per street (PNG by default: 15 maps of a few hundred grids each lay out several
    times faster in the PDF as pictures than as vector paths; bench/bench_report.py)."""
    streets = report["streets"]
    return {
        "composite": data_uri(figures.composite_chart(streets, report["parts"], charts), charts),
        "rank_change": data_uri(figures.rank_change_chart(streets, charts), charts),
        "maps": {
            code: data_uri(picture, maps)
            for code, picture in figures.street_maps(report["maps"], maps).items()
        },
    }


def render_html(report: dict[str, Any], charts: str = "svg", maps: str = "png") -> str:
    template = _environment().get_template("report_monthly.html")
    return template.render(
        report=report,
        images=images(report, charts, maps),
        aspects=list(report.get("aspect_names") or {}),
        department_columns=[
            {"header": header, "kind": kind} for _, header, kind in DEPARTMENT_COLUMNS
        ],
        department_rows=[department_cells(d) for d in report["departments"]],
    )


def render_pdf(report: dict[str, Any], charts: str = "svg", maps: str = "png") -> bytes:
    from weasyprint import HTML

    html = render_html(report, charts, maps)
    pdf: bytes = HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
    return pdf


def render(report: dict[str, Any], fmt: str) -> bytes:
    """The report in format `fmt` (one of FORMATS)."""
    if fmt == "html":
        return render_html(report).encode("utf-8")
    if fmt == "pdf":
        return render_pdf(report)
    if fmt == "xlsx":
        from app.report.xlsx import render_xlsx

        return render_xlsx(report)
    raise ReportError(f"不支持的格式 {fmt!r}，可选 {'、'.join(FORMATS)} unknown format")


def write(report: dict[str, Any], fmt: str, path: Path) -> int:
    """Render and write to `path` through a temporary file in the same directory, renamed
    over it only when complete: a failure leaves no file, or the old one, never half a file.
    Returns the bytes written."""
    content = render(report, fmt)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with tmp.open("xb") as out:
            out.write(content)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(content)
