"""Is a file's declared coordinate system the right one?

Chinese sources mix WGS84, GCJ-02 (Amap, Tencent) and BD-09 (Baidu), 300 m to 1 km apart
in Beijing. Points declared in the wrong one land in a wrong street, or outside the
district, with nothing else amiss. So before converting, the points of each declared
system are placed as if they were in each supported system: when another system puts far
fewer of them outside the district than the declared one, the declaration is wrong.

Rule (per declared system, over its rows with usable coordinates, at most SAMPLE of them):
at least MIN_POINTS points, and another system leaves at least MIN_MORE points and
MIN_SHARE of them fewer outside, and at most a third as many. A file of points that lie
outside whatever the system (another district's extract) is not a mismatch: every system
gives the same share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from etl import coords

FloatArray = npt.NDArray[np.float64]
Inside = Callable[[FloatArray, FloatArray], npt.NDArray[np.bool_]]

MIN_POINTS = 10
MIN_MORE = 5
MIN_SHARE = 0.10
RATIO = 3
SAMPLE = 20_000
NAMES = {coords.WGS84: "WGS84", coords.GCJ02: "GCJ-02", coords.BD09: "BD-09"}


@dataclass(frozen=True)
class Finding:
    declared: str  # the code rows declared
    likely: str  # the code that fits best
    rows: int  # rows declared so, with usable coordinates
    checked: int  # of which placed in each system (a sample of large files)
    outside: dict[str, int]  # points outside the district, by system

    def describe(self) -> str:
        def share(code: str) -> str:
            k = self.outside[code]
            return f"{k} 个 ({k / self.checked:.0%})"

        declared, likely = NAMES[self.declared], NAMES[self.likely]
        return (
            f"{self.checked} 个声明为 {declared} 的点中 {share(self.declared)} 在辖区外, "
            f"按 {likely} 只有 {share(self.likely)}: 坐标多半是 {likely} — "
            f"of {self.checked} points declared {declared}, "
            f"{self.outside[self.declared]} fall outside the district; "
            f"read as {likely}, {self.outside[self.likely]} would"
        )


class CrsMismatch(ValueError):
    """The points fit another coordinate system far better than the declared one."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        likely = sorted({f.likely for f in findings})
        hint = " / ".join(f"--crs {code}" for code in likely)
        super().__init__(
            "坐标系疑似不符, 未导入 coordinate system mismatch, nothing loaded: "
            + "; ".join(f.describe() for f in findings)
            + f". 请改正坐标系 Declare the right system ({hint}, or the rows' 坐标系 column);"
            " --allow-crs-mismatch loads the points as declared."
        )


def _sample(n: int) -> npt.NDArray[np.intp]:
    """Evenly spaced row positions: the same rows on every run of the same file."""
    if n <= SAMPLE:
        return np.arange(n)
    return np.linspace(0, n - 1, SAMPLE).astype(np.intp)


def check(
    lng: FloatArray, lat: FloatArray, declared: npt.NDArray[np.object_], inside: Inside
) -> list[Finding]:
    """Findings for each declared system another system fits far better (empty: all fine).

    `lng`, `lat` are the points as the source wrote them; `declared` each row's code;
    `inside(lng, lat)` tells which WGS84 points lie in the district.
    """
    findings = []
    finite = np.isfinite(lng) & np.isfinite(lat)
    for code in coords.CODES:
        rows = np.flatnonzero(finite & (declared == code))
        if len(rows) < MIN_POINTS:
            continue
        pick = rows[_sample(len(rows))]
        x, y = lng[pick], lat[pick]
        outside = {
            other: int((~inside(*coords.to_wgs84(x, y, other))).sum()) for other in coords.CODES
        }
        best = min(coords.CODES, key=lambda c: (outside[c], c != code))
        fewer = outside[code] - outside[best]
        if (
            best != code
            and fewer >= MIN_MORE
            and fewer >= MIN_SHARE * len(pick)
            and outside[best] * RATIO <= outside[code]
        ):
            findings.append(Finding(code, best, len(rows), len(pick), outside))
    return findings
