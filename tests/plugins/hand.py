"""The `hand` fixture: hand-made requests, cases, targets, projects, halls and lanes in the
tiny district, around the frozen instant of the module's `clock` fixture (tests/app/test_api.py,
tests/app/test_any_hour.py)."""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from etl.aggregates import refresh_request_aggregates
from etl.jobs import run_file
from layers.queries.window import previous_month
from tests.clock import FrozenClock
from tests.district import request_row, write_csv

STREET_A, STREET_B = "110102001", "110102003"


def run_layer(conn: sa.Connection, path: Path, layer: str, now: dt.datetime | None = None) -> None:
    report = run_file(conn, path, layer=layer, now=now)
    assert report.rejected == 0, report.reasons


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass(frozen=True)
class Hand:
    now: dt.datetime
    today: dt.date
    this: dt.date  # this month
    last: dt.date  # last month
    earlier: dt.date  # the month before


def _at(day: dt.date, time: str = "09:00:00") -> str:
    return f"{day} {time}"


def _callback(contacted: str, solved: str, satisfaction: str, valid: str = "是") -> dict[str, str]:
    return {
        "状态": "已办结",
        "是否有效回访": valid,
        "是否联系": contacted,
        "是否解决": solved,
        "满意度": satisfaction,
    }


A = {"经度": "116.305", "纬度": "39.905"}  # grid GRID_A, street A
A2 = {"经度": "116.315", "纬度": "39.915"}  # another grid of street A
B = {"经度": "116.335", "纬度": "39.915"}  # grid 110102003002002, street B


def hand_requests(h: Hand) -> list[dict[str, str]]:
    """Requests whose three rates are worked out by hand in the tests below."""
    last, this, earlier = h.last, h.this, h.earlier
    recent = [h.now - dt.timedelta(hours=hours) for hours in (1, 3, 30)]
    return [
        # Last month, street A: V = 5 (one more callback is not valid).
        request_row("L1", 受理时间=_at(last), **A, **_callback("是", "是", "满意")),
        request_row("L2", 受理时间=_at(last), **A, **_callback("是", "是", "满意")),
        request_row("L3", 受理时间=_at(last), **A, **_callback("是", "是", "基本满意")),
        request_row("L4", 受理时间=_at(last), **A2, **_callback("是", "否", "基本满意")),
        request_row("L5", 受理时间=_at(last), **A2, **_callback("否", "否", "不满意")),
        request_row("L6", 受理时间=_at(last), **A, **_callback("是", "是", "满意", valid="否")),
        # Last month, street B: open, long overdue, no callbacks (V = 0).
        request_row("L7", 受理时间=_at(last), 派单时间=_at(last), **B),
        request_row("L8", 受理时间=_at(last), 派单时间=_at(last), **B, 诉求类别="噪声扰民"),
        # This month: A scores 50, B 100.
        request_row("T1", 受理时间=_at(this, "00:30:00"), **A, **_callback("是", "是", "满意")),
        request_row("T2", 受理时间=_at(this, "00:30:00"), **A, **_callback("否", "否", "不满意")),
        request_row("T3", 受理时间=_at(this, "00:30:00"), **B, **_callback("是", "是", "满意")),
        # The month before: a tie (both 100, volume 2).
        request_row("E1", 受理时间=_at(earlier), **A, **_callback("是", "是", "满意")),
        request_row("E2", 受理时间=_at(earlier), **A, **_callback("是", "是", "满意")),
        request_row("E3", 受理时间=_at(earlier), **B, **_callback("是", "是", "满意")),
        request_row("E4", 受理时间=_at(earlier), **B, **_callback("是", "是", "满意")),
        # Recent ones in street A, open and not yet due (7 working days).
        *(
            request_row(
                f"N{i}",
                受理时间=f"{t:%Y-%m-%d %H:%M:%S}",
                派单时间=f"{t:%Y-%m-%d %H:%M:%S}",
                诉求类别=category,
                **A2,
            )
            for i, (t, category) in enumerate(
                zip(recent, ["停车管理", "噪声扰民", "停车管理"], strict=True)
            )
        ),
    ]


PROJECTS = [
    # (source id, name, kind, phase, progress, planned start/end, actual start/end, lng, lat)
    (
        "P1",
        "测试胡同整治",
        "背街小巷整治",
        "施工",
        40,
        "2026-03-01",
        "2026-12-31",
        "2026-03-15",
        "",
    ),
    (
        "P2",
        "测试小区改造",
        "老旧小区改造",
        "完成",
        100,
        "2025-03-01",
        "2025-12-31",
        "2025-03-15",
        "2025-12-20",
    ),
    ("P3", "测试街区更新", "街区更新", "规划", 0, "2027-01-01", "2027-06-30", "", ""),
]
TARGETS = [
    ("S1", "测试批发市场", "批发市场", "进行中", 70, "2026-01-01", "2026-06-30", "2026-02-01", ""),
    (
        "S2",
        "测试仓库",
        "仓储物流",
        "已完成",
        100,
        "2026-01-01",
        "2026-05-31",
        "2026-01-10",
        "2026-06-15",
    ),
]


def _project_features() -> dict[str, Any]:
    places = {"P1": (116.305, 39.905), "P2": (116.335, 39.915), "P3": (116.315, 39.915)}
    features = []
    for sid, name, kind, phase, progress, ps, pe, as_, ae in PROJECTS:
        x, y = places[sid]
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "项目编号": sid,
                    "项目名称": name,
                    "类型": kind,
                    "阶段": phase,
                    "进度(%)": progress,
                    "计划开始": ps,
                    "计划完成": pe,
                    "实际开始": as_ or None,
                    "实际完成": ae or None,
                },
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[x, y], [x + 0.002, y], [x + 0.002, y + 0.002], [x, y + 0.002], [x, y]]
                    ],
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


@pytest.fixture
def hand(connection: sa.Connection, district: Any, tmp_path: Path, clock: FrozenClock) -> Hand:
    """Hand-made requests, cases, targets, projects, halls and lanes; aggregated; around the
    frozen clock's instant."""
    now = clock.local()
    this = now.date().replace(day=1)
    last = previous_month(this)
    h = Hand(now, now.date(), this, last, previous_month(last))
    # Some hand-made rows fall later on the frozen day than the frozen instant (this month's
    # rows at 00:30 on the 1st, at 00:05) or carry later callback times; the ETL's check of
    # future times is not what these tests are about, so the loads run a little later.
    now = now + dt.timedelta(days=2)
    run_layer(connection, write_csv(tmp_path / "r.csv", hand_requests(h)), "service_requests", now)
    old = f"{h.last} 09:00:00"
    cases = [
        {"案件编号": "C1", "立案时间": old, "案件类型": "违法建设", "执法部门": "城管、规自",
         "是否联合执法": "是", "案情描述": "", "地址": "", "经度": "116.305", "纬度": "39.905",
         "坐标系": "WGS84", "状态": "调查取证", "结案时间": "", "办理期限": "5"},
        {"案件编号": "C2", "立案时间": f"{h.today} 00:01:00", "案件类型": "无照经营",
         "执法部门": "市场监管", "是否联合执法": "否", "案情描述": "", "地址": "",
         "经度": "116.306", "纬度": "39.906", "坐标系": "WGS84", "状态": "立案",
         "结案时间": "", "办理期限": "30"},
        {"案件编号": "C3", "立案时间": old, "案件类型": "违法建设", "执法部门": "城管",
         "是否联合执法": "否", "案情描述": "", "地址": "", "经度": "116.335", "纬度": "39.915",
         "坐标系": "WGS84", "状态": "已结案", "结案时间": old, "办理期限": "5"},
    ]  # fmt: skip
    run_layer(connection, write_rows(tmp_path / "cases.csv", cases), "enforcement_cases", now)
    places = {"S1": ("116.305", "39.905"), "S2": ("116.335", "39.915")}
    targets = [
        {"项目编号": sid, "名称": name, "类型": kind, "地址": "", "经度": places[sid][0],
         "纬度": places[sid][1], "坐标系": "WGS84", "建筑面积(平方米)": "1200", "商户数": "30",
         "状态": status, "进度(%)": progress, "计划开始": ps, "计划完成": pe, "实际开始": as_,
         "实际完成": ae}
        for sid, name, kind, status, progress, ps, pe, as_, ae in TARGETS
    ]  # fmt: skip
    run_layer(connection, write_rows(tmp_path / "targets.csv", targets), "relocation_targets", now)
    projects = tmp_path / "projects.geojson"
    projects.write_text(json.dumps(_project_features(), ensure_ascii=False), encoding="utf-8")
    run_layer(connection, projects, "renovation_projects", now)
    connection.execute(
        sa.text(
            "insert into service_halls (code, name, street_code, address, phone, geom) values "
            "('H001', '测试街道公共服务大厅', :a, '测试胡同1号', '010-1234', "
            " ST_SetSRID(ST_MakePoint(116.301, 39.901), 4326)), "
            "('H003', '测试三街道服务中心', :b, '测试胡同3号', null, "
            " ST_SetSRID(ST_MakePoint(116.331, 39.901), 4326))"
        ),
        {"a": STREET_A, "b": STREET_B},
    )
    connection.execute(
        sa.text(
            "insert into lanes (code, name, kind, street_code, lane_chief, geom) values "
            "('L1', '测试胡同', '胡同', :a, '张三', "
            " ST_SetSRID(ST_MakeLine(ST_MakePoint(116.301, 39.905), "
            " ST_MakePoint(116.309, 39.905)), 4326))"
        ),
        {"a": STREET_A},
    )
    refresh_request_aggregates(connection)
    return h
