"""The monthly report's files (app/report) from a hand-built report: the PDF opens and every
page renders (pdftoppm), holds the ranking (pdftotext) and embeds a CJK font (pdffonts); the
XLSX reads back as written; the HTML escapes what it shows and loads nothing from outside;
`blockdata report monthly` refuses bad input in Chinese and leaves no file behind."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from PIL import Image

from app.cli import main
from app.report import render
from tests import evalreport_fixtures as fx


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return fx.report()


@pytest.fixture(scope="module")
def pdf(report: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pdf") / "report.pdf"
    path.write_bytes(render(report, "pdf"))
    return path


def _run(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


def test_every_page_of_the_pdf_renders(pdf: Path, tmp_path: Path) -> None:
    pages = int(re.search(r"Pages:\s+(\d+)", _run("pdfinfo", pdf)).group(1))  # type: ignore[union-attr]
    _run("pdftoppm", "-r", "30", "-png", pdf, tmp_path / "page")
    pngs = sorted(tmp_path.glob("page-*.png"))
    assert pages > 0
    assert len(pngs) == pages
    for png in pngs:
        with Image.open(png) as image:
            grey = image.convert("L")
            lo, hi = grey.getextrema()
            assert lo < 128 < hi, f"{png.name} is blank"


def test_the_pdf_holds_the_ranking_in_order(pdf: Path) -> None:
    text = _run("pdftotext", "-layout", "-f", "1", "-l", "1", pdf, "-")
    lines = [line for line in text.splitlines() if "街道" in line and re.search(r"\d\.\d\d", line)]
    expected = [
        (name, fx.composite(internal, survey, hotline))
        for _, name, internal, survey, _, hotline, _, _ in fx.STREETS
    ]
    assert len(lines) == len(expected)
    for line, (name, composite) in zip(lines, expected, strict=True):
        assert name in line
        shown = "—" if composite is None else f"{composite:.2f}"
        assert shown in line.split(name, 1)[1].split()[:3], line
    assert "92.65" in lines[0]  # 40 % × 95 + 40 % × 92.5 + 20 % × 88.25


def test_the_pdf_holds_the_departments_and_top_problems(pdf: Path) -> None:
    text = _run("pdftotext", "-layout", pdf, "-")
    for d in fx.departments():  # e.g. 区城管委 … 92.50 … 95.0% on time (95 of 100)
        line = next(line for line in text.splitlines() if d["name"] in line)
        cells = line.split(d["name"], 1)[1].split()
        assert cells[0] == f"{d['score']:.2f}"
        assert f"{100 * d['cases']['on_time'] / d['cases']['judged']:.1f}%" in cells
    assert re.search(r"1\s+噪声扰民\s+520\s+26\.0%", text)


def test_the_pdf_embeds_a_cjk_font(pdf: Path) -> None:
    fonts = _run("pdffonts", pdf).splitlines()[2:]
    cjk = [line for line in fonts if "CJK" in line]
    assert cjk, fonts
    for line in fonts:  # name type… emb sub uni: every font embedded (as a subset)
        emb, sub = line.split()[-5:-3]
        assert (emb, sub) == ("yes", "yes"), line


def test_the_xlsx_ranking_reads_back_as_written(report: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "r.xlsx"
    path.write_bytes(render(report, "xlsx"))
    book = load_workbook(path)
    assert book.sheetnames == ["排名", "各街道得分", "部门评价", "突出问题"]
    sheet = book["排名"]
    assert sheet.freeze_panes == "A2"
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:6] == ("名次", "名次变化", "街道代码", "街道", "类别", "综合得分")
    expected = []
    for i, (code, name, internal, survey, margin, hotline, change, klass) in enumerate(fx.STREETS):
        rank = i + 1 if hotline is not None else len(fx.STREETS)
        rates = [0.99 - 0.004 * i, 0.9 - 0.01 * i, 0.92 - 0.01 * i, 1000 - 40 * i]
        if hotline is None:
            rates = [None, None, None, 0]
        expected.append(
            (rank, change, code, name, klass, fx.composite(internal, survey, hotline),
             internal, survey, margin, hotline, *rates)
        )  # fmt: skip
    assert rows[1:] == expected
    assert sheet["F2"].number_format == "0.00"
    assert sheet["K2"].number_format == "0.0%"
    assert isinstance(sheet["F2"].value, float)
    assert sheet.column_dimensions["D"].width >= 12  # 广安门外街道: 12 wide
    departments = list(book["部门评价"].iter_rows(values_only=True))
    assert departments[0][:3] == ("名次", "部门", "得分")
    assert [row[:3] for row in departments[1:]] == [
        (d["rank"], d["name"], d["score"]) for d in fx.departments()
    ]
    dispatched = departments[0].index("派单案件")
    assert [row[dispatched] for row in departments[1:]] == [120, 110, 100, 90, 80]


def test_the_html_escapes_and_stands_alone(tmp_path: Path) -> None:
    streets = list(fx.STREETS[:3])
    hostile = "<script>alert(1)</script>街道"
    streets[1] = (streets[1][0], hostile, *streets[1][2:])
    html = render(fx.report(fx.result(streets)), "html").decode("utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;街道" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    sources = re.findall(r"""src="([^"]*)\"""", html)
    assert len(sources) == 2 + 3  # two charts, three maps
    assert all(s.startswith("data:image/svg+xml;base64,") for s in sources[:2])  # charts
    assert all(s.startswith("data:image/png;base64,") for s in sources[2:])  # maps
    assert "@import" not in html and "url(" not in html


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["report", "monthly", *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "2026-13", "--format", "pdf"], "考评期 '2026-13' 格式错误"),
        (["--period", "11/2026", "--format", "pdf"], "考评期 '11/2026' 格式错误"),
        (["--period", "2026-11", "--format", "docx"], "不支持的格式 docx"),
        (["--period", "2026-11"], "不支持的格式 文件后缀 .txt"),
    ],
)
def test_bad_input_is_refused_in_chinese_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "report.txt"
    out.write_text("the old file", encoding="utf-8")
    result = _cli(*args, "--out", str(out))
    assert result.exit_code != 0
    assert message in result.output
    assert out.read_text(encoding="utf-8") == "the old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt"]


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    result = _cli("--period", "2026-11", "--out", str(tmp_path / "no" / "r.pdf"))
    assert result.exit_code != 0
    assert "目录不存在" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_failed_render_leaves_the_old_file_and_no_part(
    report: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.report as rendering

    out = tmp_path / "report.xlsx"
    out.write_bytes(b"the old file")

    def broken(_report: dict[str, Any]) -> bytes:
        raise RuntimeError("disk full")

    monkeypatch.setattr("app.report.xlsx.render_xlsx", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        rendering.write(report, "xlsx", out)
    assert out.read_bytes() == b"the old file"
    assert [p.name for p in tmp_path.iterdir()] == ["report.xlsx"]
    assert rendering.write(report, "html", out) == out.stat().st_size  # then a good one
    assert out.read_bytes().startswith(b"<!DOCTYPE html>")


def test_streets_with_their_public_line_only_show_dashes() -> None:
    """A commander's published Result: the other streets carry code, name, rank, change,
    class and composite only (the shared ranking macro serves the /evaluation page too)."""
    full = fx.result()
    public = ("code", "name", "rank", "rank_change", "class", "composite")
    full["streets"] = [full["streets"][0]] + [
        {k: s[k] for k in public} for s in full["streets"][1:]
    ]
    report = fx.report(full)
    for s in report["streets"][1:]:
        s.pop("changes"), s.pop("worst_items"), s.pop("top_categories")
    html = render(report, "html").decode("utf-8")
    row = re.search(r'<tr class="street" data-code="110102003">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[2] == "新街口街道" and cells[4] == "91.10"
    assert cells[5:] == ["—"] * 6
    book = load_workbook(io.BytesIO(render(report, "xlsx")))
    second = next(book["排名"].iter_rows(min_row=3, max_row=3, values_only=True))
    assert second[3] == "新街口街道" and second[5] == 91.1 and second[6:] == (None,) * 8
