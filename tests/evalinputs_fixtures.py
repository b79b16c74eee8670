"""Shared by the evaluation inputs' tests: a hand-written scheme stored as a row (two
district departments own its items), the roles' scopes, a small XLSX writer."""

from __future__ import annotations

import io
from typing import Any

import sqlalchemy as sa
from openpyxl import Workbook

from layers.evaluation.tables import evaluation_schemes
from layers.queries import access
from tests.evalcore_fixtures import scheme_body
from tests.helpers import add_unit

A, B = "110102001", "110102003"
OWNER, OTHER = "district-eval-owner", "district-eval-other"
PERIOD = "2026-11"

# evalcore's small scheme's period, parts and hotline; items owned by two units here.
BODY: dict[str, Any] = {
    **{k: v for k, v in scheme_body().items() if k in ("name", "period", "parts", "hotline")},
    "code": "test",
    "internal": [
        {
            "code": "tasks",
            "name": "市里下达和部门任务",
            "max": 40,
            "items": [
                {
                    "code": "city_tasks",
                    "name": "市级任务",
                    "owner": OWNER,
                    "max": 25,
                    "rule": "on_time",
                },
                {
                    "code": "dept_tasks",
                    "name": "部门任务",
                    "owner": OTHER,
                    "max": 15,
                    "rule": "on_time",
                },
            ],
        },
        {
            "code": "law",
            "name": "依法行政及综合管理",
            "max": 25,
            "items": [
                {"code": "law_a", "name": "依法行政", "owner": OWNER, "max": 10, "rule": "manual"},
                {"code": "law_b", "name": "综合管理", "owner": OTHER, "max": 15, "rule": "manual"},
            ],
        },
        {
            "code": "party",
            "name": "党群工作",
            "max": 15,
            "items": [
                {
                    "code": "party_build",
                    "name": "党建",
                    "owner": OWNER,
                    "max": 15,
                    "rule": "manual",
                },
            ],
        },
        {
            "code": "work",
            "name": "工作评价",
            "max": 20,
            "items": [
                {"code": "work_a", "name": "工作评价", "owner": OTHER, "max": 20, "rule": "manual"},
            ],
        },
        {
            "code": "bonus",
            "name": "加扣分项",
            "max": 5,
            "items": [
                {
                    "code": "overdue",
                    "name": "超期扣分",
                    "owner": OTHER,
                    "max": 5,
                    "rule": "per_event",
                    "each": -0.5,
                    "cap": 5,
                },
                {"code": "honours", "name": "市级表彰", "owner": OWNER, "max": 3, "rule": "manual"},
            ],
        },
    ],
    "survey": {
        "scale_values": {"满意": 100, "基本满意": 90, "不满意": 0},
        "questions": [
            {"code": "overall", "text": "总体满意度", "weight": 0.5, "scale": "three"},
            {"code": "environment", "text": "环境整治", "weight": 0.25, "scale": "five"},
            {"code": "service", "text": "为民服务", "weight": 0.25, "scale": "five"},
        ],
    },
    "classes": [{"name": "先进", "rank_at_most": 3}],
}
OWNER_MANUAL = ("law_a", "party_build", "honours")  # in the scheme's order


def add_scheme(conn: sa.Connection) -> None:
    """The two units and the scheme (version 1), as the owner."""
    add_unit(conn, OWNER)
    add_unit(conn, OTHER)
    conn.execute(
        sa.insert(evaluation_schemes).values(code="test", version=1, name="测试考评", body=BODY)
    )


def scope_as(
    conn: sa.Connection, role: str, street: str | None = None, unit: str | None = None
) -> None:
    """The rest of the transaction as the reader, scoped as `role` (row-level security)."""
    conn.exec_driver_sql("reset role")
    access.scope(conn, access.zone_of(role, street), unit=access.unit_of(role, unit))


def workbook(rows: list[list[Any]], title: str | None = None) -> bytes:
    book = Workbook()
    ws = book.active
    if title:
        ws.title = title
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
