"""Hand-built evaluation Results and reports for the report's tests and bench
(tests/layers/test_report*.py, tests/app/test_report*.py, bench/bench_report.py): the Result
shape of docs/evaluation.md, numbers written out by hand, and street maps of boxes."""

from __future__ import annotations

import copy
from typing import Any

PARTS = {"internal": 40, "survey": 40, "hotline": 20}

# (code, name, internal, survey, margin, hotline, rank_change, class); ranked as listed.
STREETS: list[
    tuple[str, str, float | None, float | None, float, float | None, int | None, str | None]
] = [
    ("110102001", "西长安街街道", 95.0, 92.5, 2.1, 88.25, 2, "先进"),
    ("110102003", "新街口街道", 93.5, 91.0, 2.4, 86.5, -1, "先进"),
    ("110102004", "月坛街道", 90.0, 92.0, 1.9, 85.0, 0, "先进"),
    ("110102005", "展览路街道", 91.25, 88.5, 2.6, 84.75, 4, "进步"),
    ("110102006", "德胜街道", 88.0, 89.5, 2.2, 83.0, -2, None),
    ("110102007", "金融街街道", 87.5, 88.0, 2.0, 82.5, 1, None),
    ("110102008", "什刹海街道", 86.0, 87.5, 2.3, 81.0, -3, None),
    ("110102009", "大栅栏街道", 85.5, 86.0, 2.8, 80.25, 0, None),
    ("110102010", "天桥街道", 84.0, 85.5, 2.5, 79.5, 1, None),
    ("110102011", "椿树街道", 83.0, 84.0, 2.7, 78.0, -1, None),
    ("110102012", "陶然亭街道", 82.0, 83.5, 2.9, 77.25, 2, None),
    ("110102013", "广安门内街道", 80.5, 82.0, 3.0, 76.0, -4, None),
    ("110102014", "牛街街道", 79.0, 80.0, 3.1, 74.5, 0, "治理"),
    ("110102015", "白纸坊街道", 78.0, 79.5, 3.3, 70.0, 1, "治理"),
    ("110102016", "广安门外街道", 77.5, 81.0, 3.2, None, None, None),
]

ITEMS = {  # item code → (aspect, max)
    "city_tasks": ("tasks", 25.0),
    "dept_tasks": ("tasks", 15.0),
    "law_admin": ("law", 25.0),
    "party_build": ("party", 15.0),
    "work_review": ("work", 20.0),
    "overdue": ("bonus", 5.0),
}

SCHEME_BODY: dict[str, Any] = {
    "code": "xicheng",
    "name": "西城区街道工作考评",
    "parts": PARTS,
    "internal": [
        {
            "code": "tasks",
            "name": "市里下达和部门任务",
            "max": 40,
            "items": [
                {"code": "city_tasks", "name": "市级任务按时完成", "max": 25},
                {"code": "dept_tasks", "name": "部门任务按时完成", "max": 15},
            ],
        },
        {
            "code": "law",
            "name": "依法行政及综合管理",
            "max": 25,
            "items": [{"code": "law_admin", "name": "依法行政", "max": 25}],
        },
        {
            "code": "party",
            "name": "党群工作",
            "max": 15,
            "items": [{"code": "party_build", "name": "党建工作", "max": 15}],
        },
        {
            "code": "work",
            "name": "工作评价",
            "max": 20,
            "items": [{"code": "work_review", "name": "部门工作评价", "max": 20}],
        },
        {
            "code": "bonus",
            "name": "加扣分项",
            "max": 5,
            "items": [{"code": "overdue", "name": "超期未办结扣分", "max": 5}],
        },
    ],
}


def composite(internal: float | None, survey: float | None, hotline: float | None) -> float | None:
    if internal is None or survey is None or hotline is None:
        return None
    return round((40 * internal + 40 * survey + 20 * hotline) / 100, 2)


def _items(internal: float, i: int) -> dict[str, dict[str, Any]]:
    """Item points adding up to `internal` (the bonus item −0.5 × i % 3)."""
    bonus = -0.5 * (i % 3)
    rest = internal - bonus
    city = min(25.0, round(rest * 0.25, 2))
    dept = min(15.0, round(rest * 0.15, 2))
    law = min(25.0, round(rest * 0.25, 2))
    party = min(15.0, round(rest * 0.15, 2))
    work = round(rest - city - dept - law - party, 2)
    points = {
        "city_tasks": city,
        "dept_tasks": dept,
        "law_admin": law,
        "party_build": party,
        "work_review": work,
        "overdue": bonus,
    }
    return {
        code: {"points": value, "rule": "manual", "basis": None} for code, value in points.items()
    }


def result(streets: list[tuple[Any, ...]] | None = None, label: str = "2026-11") -> dict[str, Any]:
    """A Result as compute.evaluate returns it, for `streets` (default STREETS)."""
    rows = []
    for i, (code, name, internal, survey, margin, hotline, change, klass) in enumerate(
        streets or STREETS
    ):
        items = _items(internal, i) if internal is not None else {}
        aspects: dict[str, float] = {}
        for item_code, scored in items.items():
            aspect = ITEMS[item_code][0]
            aspects[aspect] = round(aspects.get(aspect, 0.0) + scored["points"], 2)
        rates = (
            None
            if hotline is None
            else {
                "requests": 1000 - 40 * i,
                "callbacks": 600 - 20 * i,
                "response_rate": 0.99 - 0.004 * i,
                "resolution_rate": 0.9 - 0.01 * i,
                "satisfaction_rate": 0.92 - 0.01 * i,
                "composite": hotline,
            }
        )
        rows.append(
            {
                "code": code,
                "name": name,
                "rank": i + 1 if hotline is not None else len(streets or STREETS),
                "rank_change": change,
                "class": klass,
                "composite": composite(internal, survey, hotline),
                "internal": internal,
                "survey": survey,
                "survey_margin": margin,
                "survey_sample": 400,
                "hotline": hotline,
                "aspects": aspects,
                "items": items,
                "rates": rates or {"requests": 0, "callbacks": 0, "response_rate": None,
                                   "resolution_rate": None, "satisfaction_rate": None,
                                   "composite": None},
                "missing": [] if i % 4 else ["party_build"],
            }
        )  # fmt: skip
    since, until = _window(label)
    return {
        "scheme": {"code": "xicheng", "version": 1, "name": "西城区街道工作考评"},
        "period": {"label": label, "since": since, "until": until},
        "parts": dict(PARTS),
        "published": None,
        "streets": rows,
    }


def _window(label: str) -> tuple[str, str]:
    import calendar

    year, month = map(int, label.split("-"))
    last = calendar.monthrange(year, month)[1]
    return f"{label}-01", f"{label}-{last:02d}"


def departments() -> list[dict[str, Any]]:
    """Rows shaped as layers.queries.departments.department_ratings returns them."""
    names = ["区城管委", "区住建委", "区市场监管局", "区环保局", "区交通支队"]
    return [
        {
            "code": f"D{i:02d}",
            "name": name,
            "kind": "district_department",
            "street_code": None,
            "whistles": {
                "summoned": 8 - i,
                "arrived": 8 - i,
                "late": i % 2,
                "median_delay_minutes": 25.0 + 5 * i,
                "mean_delay_minutes": 27.5 + 5 * i,
            },
            "ratings": {"满意": 20 - i, "基本满意": 5, "不满意": i},
            "rated": 25,
            "rating_rate": round((20 - i + 0.9 * 5) / 25, 4),
            "cases": {
                "dispatched": 120 - 10 * i,
                "assisted": 3,
                "returned": 2 + i,
                "judged": 100 - 10 * i,
                "on_time": 95 - 12 * i,
            },
            "on_time_rate": round((95 - 12 * i) / (100 - 10 * i), 4),
            "return_rate": round((2 + i) / (120 - 10 * i), 4),
            "components": {},
            "score": round(92.5 - 3.25 * i, 2),
            "rank": i + 1,
        }
        for i, name in enumerate(names)
    ]


def _box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    ring = [[x0, y0], [x0, y1], [x1, y1], [x1, y0], [x0, y0]]
    return {"type": "MultiPolygon", "coordinates": [[ring]]}


def maps(codes: list[str], grids_per_side: int = 6) -> dict[str, dict[str, Any]]:
    """A box per street (5 × 3 across the district) cut into grids_per_side² grids."""
    out = {}
    for i, code in enumerate(codes):
        x0, y0 = 116.30 + 0.02 * (i % 5), 39.88 + 0.02 * (i // 5)
        step = 0.02 / grids_per_side
        grids = []
        for gx in range(grids_per_side):
            for gy in range(grids_per_side):
                n = (gx * 7 + gy * 3 + i) % 23
                grids.append(
                    {
                        "code": f"{code}{gx:03d}{gy:03d}",
                        "n": n,
                        "geometry": _box(
                            x0 + gx * step,
                            y0 + gy * step,
                            x0 + (gx + 1) * step,
                            y0 + (gy + 1) * step,
                        ),
                    }
                )
        out[code] = {
            "street": _box(x0, y0, x0 + 0.02, y0 + 0.02),
            "grids": grids,
            "total": sum(g["n"] for g in grids),
        }
    return out


def report(the_result: dict[str, Any] | None = None, grids_per_side: int = 6) -> dict[str, Any]:
    """A report dict as layers.evaluation.report.build_report makes it, without a database."""
    res = copy.deepcopy(the_result or result())
    streets = []
    for i, row in enumerate(res["streets"]):
        street = dict(row)
        street["changes"] = {"composite": 1.25 - 0.5 * i, "internal": 0.5, "survey": -0.75,
                             "hotline": None if row.get("hotline") is None else 2.0}  # fmt: skip
        street["previous_rank"] = None
        street["top_categories"] = [
            {"category": "噪声扰民", "n": 40 - i, "share": 0.3},
            {"category": "环境卫生", "n": 30 - i, "share": 0.2},
        ]
        street["worst_items"] = [
            {
                "code": "work_review",
                "name": "部门工作评价",
                "points": 15.0,
                "max": 20.0,
                "lost": 5.0,
            }
        ]
        streets.append(street)
    return {
        "title": f"{res['scheme']['name']} {res['period']['label']} 通报",
        "scheme": res["scheme"],
        "period": res["period"],
        "previous_period": "2026-10",
        "parts": res["parts"],
        "published": res["published"],
        "aspect_names": {a["code"]: a["name"] for a in SCHEME_BODY["internal"]},
        "streets": streets,
        "departments": departments(),
        "top_problems": [
            {"category": "噪声扰民", "n": 520, "share": 0.26},
            {"category": "环境卫生", "n": 410, "share": 0.205},
            {"category": "停车管理", "n": 300, "share": 0.15},
        ],
        "requests": 2000,
        "maps": maps([row["code"] for row in res["streets"]], grids_per_side),
        "generated_at": "2026-12-01T09:00+08:00",
    }
