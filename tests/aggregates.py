"""The request aggregates recomputed straight from service_requests, and the hand-made
requests they are checked on (tests/etl/test_aggregates.py, tests/etl/test_load_locks.py,
tests/app/test_api.py)."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from typing import Any

import sqlalchemy as sa

from etl.aggregates import day_bounds
from layers.aggregates import CATEGORY_SPANS, CELL_DLAT, CELL_DLNG, CELL_ORIGIN, SPANS, period_start
from tests.district import request_row

CATEGORIES = ["环境卫生", "噪声扰民", "停车管理", "供暖"]
TIMES = ["00:00:05", "07:45:00", "12:30:00", "18:05:00", "23:59:55"]
FIRST_DAY = dt.date(2026, 9, 20)
# The loads' "now": after every hand-made time (they span up to 131 days from FIRST_DAY),
# whatever day the suite runs on.
LOAD_NOW = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)
LAST_DAY = dt.date(2026, 11, 28)


def requests(n: int = 240, seed: int = 7) -> list[dict[str, str]]:
    """Requests spread over three months, both streets, four categories, midnight edges."""
    rng = random.Random(seed)
    span = (LAST_DAY - FIRST_DAY).days + 1
    rows = []
    for i in range(n):
        day = FIRST_DAY + dt.timedelta(days=rng.randrange(span))
        received = f"{day} {rng.choice(TIMES)}"
        values = {
            "受理时间": received,
            "派单时间": received,
            "经度": f"{rng.uniform(116.3002, 116.3398):.6f}",
            "纬度": f"{rng.uniform(39.9002, 39.9198):.6f}",
            "诉求类别": rng.choice(CATEGORIES),
        }
        if rng.random() < 0.6:
            valid = rng.random() < 0.8
            values.update(
                状态="已办结",
                响应时间=received,
                办结时间=received,
                是否有效回访="是" if valid else "否",
                是否联系=rng.choice(["是", "否"]),
                是否解决=rng.choice(["是", "否"]),
                满意度=rng.choice(["满意", "基本满意", "不满意"]),
            )
        else:
            values["状态"] = rng.choice(["已派单", "处理中"])
        rows.append(request_row(f"Q{i:04d}", **values))
    return rows


def _rows(conn: sa.Connection, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    return sorted((tuple(r) for r in conn.execute(sa.text(sql), params)), key=repr)


LOCAL_DAY = "(received_at at time zone 'Asia/Shanghai')::date"
CELL = (
    f"floor((ST_X(geom) - {CELL_ORIGIN[0]!r}) / {CELL_DLNG!r})::int, "
    f"floor((ST_Y(geom) - {CELL_ORIGIN[1]!r}) / {CELL_DLAT!r})::int"
)


def _by_category_and_total(keys: str, period: str) -> str:
    """Direct counts per key and category, and per key over all categories (NULL)."""
    return (
        f"select {period}, {keys}, category, count(*)::int from service_requests "
        f"where category is not null group by {period}, {keys}, category "
        f"union all select {period}, {keys}, null, count(*)::int from service_requests "
        f"group by {period}, {keys}"
    )


def _periods(daily: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Period rows from daily rows, in Python: totals per dekad, month and quarter, and per
    category per month."""
    sums: Counter[tuple[Any, ...]] = Counter()
    for day, *keys, category, n in daily:
        for span in SPANS:
            if category is None or span in CATEGORY_SPANS:
                sums[(span, period_start(span, day), *keys, category)] += n
    return sorted(((*key, n) for key, n in sums.items()), key=repr)


def assert_exact(conn: sa.Connection) -> None:
    """Every aggregate table equals its direct recomputation from service_requests."""
    for table, keys in (
        ("request_daily", "street_code, community_code, grid_code"),
        ("request_cells_daily", "street_code, cell_x, cell_y"),
    ):
        direct_keys = keys.replace("cell_x, cell_y", CELL)
        daily = _rows(conn, _by_category_and_total(direct_keys, LOCAL_DAY))
        stored = _rows(conn, f"select day, {keys}, category, received from {table}")
        assert stored == daily, table
        periods = table.replace("daily", "periods")
        stored = _rows(conn, f"select span, first_day, {keys}, category, received from {periods}")
        assert stored == _periods(daily), periods
    valid = "callback_valid is true"
    street_daily = f"""
        select {LOCAL_DAY}, street_code, count(*)::int,
               count(*) filter (where status = '已办结')::int,
               count(*) filter (where {valid})::int,
               count(*) filter (where {valid} and callback_contacted)::int,
               count(*) filter (where {valid} and callback_solved)::int,
               count(*) filter (where {valid} and satisfaction = '满意')::int,
               count(*) filter (where {valid} and satisfaction = '基本满意')::int,
               max(updated_at)
          from service_requests group by 1, 2"""
    assert _rows(conn, "select * from request_street_daily") == _rows(conn, street_daily)
    open_requests = (
        "select id, street_code, community_code, grid_code, category, received_at, due_at "
        "from service_requests where status is distinct from '已办结'"
    )
    assert _rows(conn, "select * from request_open") == _rows(conn, open_requests)


UNITS = {
    "street": "street_code",
    "community": "community_code",
    "grid": "grid_code",
    "cell": CELL,
}


def direct_heat(
    conn: sa.Connection,
    level: str,
    since: dt.date,
    until: dt.date,
    category: str | None = None,
    street: str | None = None,
) -> Counter[Any]:
    """count(*) per unit straight from service_requests, with the same filters."""
    where = "received_at >= :lo and received_at < :hi"
    if category is not None:
        where += " and category = :category"
    if street is not None:
        where += " and street_code = :street"
    sql = f"select {UNITS[level]}, count(*) from service_requests where {where} group by 1"
    if level == "cell":
        sql += ", 2"
    params = {
        "lo": day_bounds(since, "Asia/Shanghai")[0],
        "hi": day_bounds(until, "Asia/Shanghai")[1],
        "category": category,
        "street": street,
    }
    counts: Counter[Any] = Counter()
    for row in conn.execute(sa.text(sql), params):
        key = f"{row[0]}_{row[1]}" if level == "cell" else row[0]
        counts[key] += row[-1]
    return counts
