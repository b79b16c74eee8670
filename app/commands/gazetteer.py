"""`blockdata gazetteer`: the address geocoder's gazetteer (地名地址库); `blockdata geocode`."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import sqlalchemy as sa

from app.commands.units import _run

if TYPE_CHECKING:
    from etl.geocoder import Match

T = TypeVar("T")
KINDS = ("road", "address", "poi")
LEVEL_NAMES = {
    "address_point": "门牌",
    "interpolated": "门牌插值",
    "road": "道路",
    "landmark": "地标",
    "community": "社区",
    "street": "街道",
    "failed": "未匹配",
}
OUT_COLUMNS = (
    "level",
    "score",
    "lng",
    "lat",
    "street_code",
    "community_code",
    "grid_code",
    "matched",
    "ambiguous",
    "message",
)


def _on_connection(work: Callable[[sa.Connection], T], commit: bool = False) -> T:
    """`work` on a connection of its own (committed when `commit`)."""
    from app.db import engine_from_env

    engine = engine_from_env(poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            result = work(conn)
            if commit:
                conn.commit()
            return result
    finally:
        engine.dispose()


@click.group("gazetteer")
def gazetteer_group() -> None:
    """The gazetteer (地名地址库): names, roads, address points (门牌) and places."""


@gazetteer_group.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--kind", type=click.Choice(KINDS), required=True, help="道路 / 门牌 / 地标")
@click.option(
    "--mapping",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A YAML file naming the file's columns and its coordinate system (crs).",
)
@click.option("--sheet", help="The workbook's sheet (when several hold rows).")
def import_(file: Path, kind: str, mapping: Path | None, sheet: str | None) -> None:
    """Load FILE (CSV, XLSX, GeoJSON or GPKG) of roads, address points (门牌) or places.

    A bad row is rejected with its reason (`blockdata etl rejects RUN`), the others load;
    a file that cannot be read loads nothing. Importing the same file again replaces it."""
    from etl.gazetteer import GazetteerFileError, import_file

    try:
        _run(lambda conn: import_file(conn, file, kind, mapping, sheet=sheet))
    except GazetteerFileError as exc:
        raise click.ClickException(str(exc)) from exc


@gazetteer_group.command("build")
def build() -> None:
    """Derive the gazetteer from the loaded layers: the streets' and communities' names,
    the lanes with their house-number ranges, the landmarks and halls (imports stay)."""
    from etl.gazetteer import build as build_gazetteer

    report = _on_connection(build_gazetteer, commit=True)
    for line in report.lines():
        click.echo(line)


@gazetteer_group.command("stats")
@click.option("--json", "as_json", is_flag=True)
def stats(as_json: bool) -> None:
    """Rows of each gazetteer table, by source (build or the imported file)."""
    from etl.gazetteer import stats as gazetteer_stats

    counts = _on_connection(gazetteer_stats)
    if as_json:
        click.echo(json.dumps(counts, ensure_ascii=False, indent=2))
        return
    titles = {
        "gazetteer_names": "名称 names",
        "gazetteer_roads": "道路 roads",
        "gazetteer_addresses": "门牌 address points",
        "gazetteer_places": "地标 places",
    }
    for table, by_source in counts.items():
        total = sum(by_source.values())
        parts = ", ".join(f"{s} {n}" for s, n in sorted(by_source.items()))
        click.echo(f"{titles[table]}: {total}" + (f" ({parts})" if parts else ""))


def _line(m: Match) -> str:
    where = "-" if m.lng is None or m.lat is None else f"{m.lng:.6f},{m.lat:.6f}"
    codes = " ".join(
        f"{label} {code}"
        for label, code in (
            ("街道", m.street_code),
            ("社区", m.community_code),
            ("网格", m.grid_code),
        )
        if code
    )
    out = f"{LEVEL_NAMES[m.level]} {m.level} {m.score:.2f} {where} {m.matched} {codes}".rstrip()
    if m.qualifiers:
        out += f" 限定词 {'、'.join(m.qualifiers)}"
    if m.ambiguous:
        out += f" 候选街道 {'、'.join(m.candidates)}"
    if m.message:
        out += f" — {m.message}"
    return out


def _row(m: Match) -> dict[str, Any]:
    d = m.as_dict()
    for c in ("lng", "lat"):  # 1e-7° is about 1 cm
        d[c] = None if d[c] is None else round(d[c], 7)
    d["ambiguous"] = "是" if m.ambiguous else ""
    return {c: "" if d[c] is None else d[c] for c in OUT_COLUMNS}


@click.command("geocode")
@click.argument("address", required=False)
@click.option(
    "--file",
    "file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A CSV file of addresses (UTF-8 or GB18030).",
)
@click.option("--column", default="地址", show_default=True, help="The CSV's address column.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="CSV to write.")
@click.option("--limit", default=3, show_default=True, type=click.IntRange(1, 50))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def geocode(
    address: str | None, file: Path | None, column: str, out: Path | None, limit: int, as_json: bool
) -> None:
    """Geocode ADDRESS, or every row of --file (its --column): level, score, point, codes.

    With --file, each row's best match is written (to --out, else to the standard output)
    as the file's columns followed by level, score, lng, lat, street_code, community_code,
    grid_code, matched, ambiguous, message."""
    from etl.geocoder import Geocoder

    if (address is None) == (file is None):
        raise click.UsageError("请给出一个地址或 --file give an ADDRESS or --file, not both")
    rows: list[dict[str, str]] = []
    header: list[str] = []
    if file is not None:
        header, rows = _read_csv(file, column)
    geocoder = _on_connection(Geocoder.load)
    if address is not None:
        found = geocoder.geocode(address, limit=limit)
        if as_json:
            click.echo(json.dumps([m.as_dict() for m in found], ensure_ascii=False, indent=2))
        else:
            for m in found:
                click.echo(_line(m))
        if found[0].level == "failed":
            sys.exit(1)
        return
    matches = geocoder.best_many([r.get(column) or "" for r in rows])
    fields = [*header, *(c for c in OUT_COLUMNS if c not in header)]
    target = out.open("w", encoding="utf-8-sig", newline="") if out else sys.stdout
    try:
        writer = csv.DictWriter(target, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r, m in zip(rows, matches, strict=True):
            writer.writerow({**r, **_row(m)})
    finally:
        if out:
            target.close()
    if out:
        failed = sum(m.level == "failed" for m in matches)
        levels: dict[str, int] = {}
        for m in matches:
            levels[m.level] = levels.get(m.level, 0) + 1
        summary = ", ".join(f"{LEVEL_NAMES[k]} {k} {v}" for k, v in levels.items())
        click.echo(f"已写入 wrote {len(rows)} 行 rows to {out}: {summary}; 未匹配 failed {failed}")


def _read_csv(path: Path, column: str) -> tuple[list[str], list[dict[str, str]]]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise click.ClickException(f"无法识别文件编码 unknown encoding: {path.name}")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = list(reader.fieldnames or [])
    if column not in header:
        raise click.ClickException(
            f"文件中没有列 {column!r} column missing; 有 columns: {', '.join(header)}"
        )
    return header, list(reader)
