"""The report's pictures, drawn offline with matplotlib (no basemap tiles): the composite
bar chart with its parts stacked, the change of rank, and a map per street (its polygon, its
grids shaded by the period's requests).

Each figure is returned as SVG text (vector, text drawn as paths: no font needed to view
it) or PNG bytes. Figures are made with `matplotlib.figure.Figure`, not pyplot: no global
state, safe in a server's threads.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

PART_NAMES = {"internal": "内部评价", "survey": "满意度测评", "hotline": "热线三率"}
PART_COLOURS = {"internal": "#1e88e5", "survey": "#43a047", "hotline": "#fb8c00"}
MAP_CMAP = "YlOrRd"
STYLE: Any = {  # matplotlib rc parameters
    "font.family": ["Noto Sans CJK SC", "Noto Sans CJK JP", "DejaVu Sans"],
    "font.size": 9,
    "axes.unicode_minus": False,
    "svg.fonttype": "none",  # text as text: WeasyPrint sets it in the embedded font
    "svg.hashsalt": "blockdata",  # the same figure, the same bytes
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@contextmanager
def _style() -> Iterator[None]:
    with mpl.rc_context(STYLE):
        yield


def _save(fig: Figure, fmt: str, dpi: int = 150, tight: bool = True) -> bytes:
    out = io.BytesIO()
    fig.savefig(
        out, format=fmt, dpi=dpi, bbox_inches="tight" if tight else None, metadata=_metadata(fmt)
    )
    return out.getvalue()


def _metadata(fmt: str) -> dict[str, Any]:
    return {"Date": None} if fmt == "svg" else {"Software": None}


def composite_chart(streets: list[dict[str, Any]], parts: dict[str, float], fmt: str) -> bytes:
    """Horizontal bars in rank order: each street's composite as the sum of its parts'
    weighted points (weight × part score / 100), the composite written at the bar's end."""
    with _style():
        fig = Figure(figsize=(7.2, 0.32 * len(streets) + 1.0))
        ax = fig.add_subplot()
        names = [row["name"] for row in streets]
        y = list(range(len(streets)))
        left = [0.0] * len(streets)
        for part in ("internal", "survey", "hotline"):
            weight = float(parts.get(part, 0))
            widths = [weight * (row.get(part) or 0.0) / 100 for row in streets]
            ax.barh(y, widths, left=left, color=PART_COLOURS[part], label=PART_NAMES[part])
            left = [a + b for a, b in zip(left, widths, strict=True)]
        for i, row in enumerate(streets):
            text = "—" if row.get("composite") is None else f"{row['composite']:.2f}"
            ax.text(left[i] + 0.8, i, text, va="center", fontsize=8)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_xlim(0, 110)
        ax.set_xlabel("综合得分")
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, fontsize=8, frameon=False)
        return _save(fig, fmt)


def rank_change_chart(streets: list[dict[str, Any]], fmt: str) -> bytes:
    """Each street's change of rank against the previous period (up: positive, green)."""
    with _style():
        fig = Figure(figsize=(7.2, 0.32 * len(streets) + 1.0))
        ax = fig.add_subplot()
        changes = [row.get("rank_change") or 0 for row in streets]
        y = list(range(len(streets)))
        colours = ["#43a047" if c > 0 else "#e53935" for c in changes]
        ax.barh(y, changes, color=colours)
        ax.axvline(0, color="#555555", linewidth=0.8)
        ax.set_yticks(y, [row["name"] for row in streets])
        ax.invert_yaxis()
        ax.set_xlabel("名次变化（上升为正）")
        return _save(fig, fmt)


def _rings(geometry: dict[str, Any]) -> list[Any]:
    """The exterior rings of a (Multi)Polygon GeoJSON geometry, as (n, 2) arrays."""
    from shapely.geometry import shape

    geom = shape(geometry)
    parts = getattr(geom, "geoms", [geom])
    return [np.asarray(part.exterior.coords) for part in parts if not part.is_empty]


class MapPainter:
    """Draws the street maps on one figure reused from street to street (clearing its axes),
    each grid a polygon of one PolyCollection: a figure, or a patch per grid, costs more than
    the drawing. The grids' shading is on one scale for every street of the report (`vmax`),
    so maps compare."""

    def __init__(self, vmax: float, fmt: str, size: tuple[float, float] = (3.4, 3.0)) -> None:
        self.fmt = fmt
        self.norm = Normalize(vmin=0, vmax=max(vmax, 1))
        with _style():
            self.fig = Figure(figsize=size)
            self.ax = self.fig.add_axes((0, 0, 0.84, 1))
            self.cax = self.fig.add_axes((0.86, 0.15, 0.03, 0.7))
            self.fig.colorbar(
                mpl.cm.ScalarMappable(norm=self.norm, cmap=MAP_CMAP), cax=self.cax, label="诉求量"
            )

    def draw(self, street_map: dict[str, Any]) -> bytes:
        with _style():
            ax = self.ax
            ax.clear()
            ax.set_axis_off()
            ax.set_aspect(1.3)  # ~1/cos(40°): degrees drawn to scale at Beijing's latitude
            polygons, values = [], []
            for grid in street_map["grids"]:
                for ring in _rings(grid["geometry"]):
                    polygons.append(ring)
                    values.append(grid["n"])
            grids = PolyCollection(
                polygons, array=values, cmap=MAP_CMAP, norm=self.norm, edgecolors="#9e9e9e",
                linewidths=0.2,
            )  # fmt: skip
            ax.add_collection(grids)
            outline = _rings(street_map["street"])
            ax.add_collection(
                PolyCollection(outline, facecolors="none", edgecolors="#c62828", linewidths=1.0)
            )
            ax.autoscale_view()
            return _save(self.fig, self.fmt, dpi=110, tight=False)


def street_maps(maps: dict[str, dict[str, Any]], fmt: str) -> dict[str, bytes]:
    """street code → its map."""
    vmax = max((g["n"] for m in maps.values() for g in m["grids"]), default=0)
    painter = MapPainter(vmax, fmt)
    return {code: painter.draw(street_map) for code, street_map in maps.items()}
