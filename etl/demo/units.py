"""The demo district's stations (科站队所): a units file as a district office would keep it.

Every street gets the stations a Xicheng street directs since the reform, named after the
street as they are on their doorplates (什刹海司法所, 什刹海派出所 …). The centres, the seven
departments and the district departments come from `blockdata units build`
(`etl.units.build_units`), not from this file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

FILE = "units.csv"
# The file's header, in Chinese as a district office writes it (etl.units.COLUMNS).
HEADER = ("编码", "名称", "类型", "街道编码", "启用")
# code suffix → the station's name after the street's short name
STATIONS = (
    ("justice", "司法所"),
    ("labour", "劳动保障所"),
    ("enforcement", "城管执法队"),
    ("police", "派出所"),
    ("market", "市场监管所"),
    ("housing", "房管所"),
)


def station_rows(streets: Iterable[tuple[str, str]]) -> list[tuple[str, str, str, str, str]]:
    """(code, name, kind, street code, active) of every street's stations; `streets`:
    (code, name) pairs."""
    return [
        (f"{code}-{suffix}", f"{name.removesuffix('街道')}{station}", "科站队所", code, "是")
        for code, name in sorted(streets)
        for suffix, station in STATIONS
    ]


def write_units(streets: Iterable[tuple[str, str]], out_dir: Path) -> Path:
    """Write the stations of `streets` to out_dir/units.csv (UTF-8 with a BOM, for Excel)."""
    path = Path(out_dir) / FILE
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(HEADER)
        writer.writerows(station_rows(streets))
    return path
