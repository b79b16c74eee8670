"""Aggregates of service requests: exact counts behind the heat maps and the scorecards.

Everything is keyed on the request's received day — its local date in the district's time
zone (the `zone` of `request_aggregates_zone`, which follows the BLOCKDATA_TZ setting) — so a
change to a request touches only the rows of that day (and of the periods holding it):

- `request_daily` / `request_periods`: requests received per unit (street, community, grid:
  the request's own codes), per day or per period (dekad, month, quarter), and category —
  the heat at the admin levels.
- `request_cells_daily` / `request_cells_periods`: the same per ~100 m cell (see `cell_x`)
  and street — the zoomed-in heat. A cell crossing a street boundary has a row per street.
- `request_street_daily`: per street and day, received, resolved (status 已办结 now), the valid
  callbacks and their answers (the three rates), the latest update — the scorecards.
- `request_open`: the requests open now, narrow, for the open and overdue counts.

In the four heat tables a row with `category` NULL holds the total over all categories and
the other rows one category each (a request without a category is in the totals only, which
is what a `category = …` filter finds for it). A window of days is cut into the fewest whole
periods and days, so a year reads ~20 rows per unit, a month ~10, whatever the window.

`request_dirty_days` is written by statement triggers on `service_requests` (migration 0003):
every INSERT, UPDATE, DELETE (COPY included) marks the received days it touched, `place` when
a request appeared, disappeared, or changed day, category, codes or position — only those
days need the heat tables recomputed; any change needs the scorecard rows. A TRUNCATE marks
NULL: everything. `etl.aggregates.refresh_request_aggregates` consumes the marks.

`request_aggregates_zone` holds the one time zone the days are counted in; the triggers mark
days in it (migration 0009). Another zone needs every aggregate rebuilt (`blockdata db
rebuild-aggregates`): until then a refresh in another zone and the readers refuse.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import sqlalchemy as sa

from layers.registry import metadata

# The cell lattice: a local equirectangular frame tangent at CELL_LAT0 (x = R·cos φ0·Δλ,
# y = R·Δφ), cut into CELL_SIZE_M squares from CELL_ORIGIN. Across the district the cells are
# 100 m to a few tenths of a per cent; a cell is a pure function of the stored coordinates, so
# every request is in exactly one. Changing these constants needs `refresh(full=True)`.
CELL_SIZE_M = 100.0
CELL_ORIGIN = (116.0, 39.5)
CELL_LAT0 = 39.9
EARTH_RADIUS_M = 6_371_008.8
CELL_DLAT = math.degrees(CELL_SIZE_M / EARTH_RADIUS_M)
CELL_DLNG = CELL_DLAT / math.cos(math.radians(CELL_LAT0))


def local_day(column: Any, zone: str) -> sa.ColumnElement[Any]:
    """The date of a timestamptz column in time zone `zone` (an IANA name; the triggers use
    the same expression with the zone of `request_aggregates_zone`)."""
    return sa.cast(sa.func.timezone(sa.literal(zone, sa.Text), column), sa.Date)


def cell_x(geom: Any) -> sa.ColumnElement[int]:
    """Column index of the cell holding a point geometry."""
    return sa.cast(sa.func.floor((sa.func.ST_X(geom) - CELL_ORIGIN[0]) / CELL_DLNG), sa.Integer)


def cell_y(geom: Any) -> sa.ColumnElement[int]:
    """Row index of the cell holding a point geometry."""
    return sa.cast(sa.func.floor((sa.func.ST_Y(geom) - CELL_ORIGIN[1]) / CELL_DLAT), sa.Integer)


# Periods coarser than a day, each nesting in the next: 上/中/下旬 (days 1–10, 11–20, 21–end),
# months, quarters. Every period has its total over all categories; months also have one
# row per category (a category filter reads few rows anyway).
SPANS = ("dekad", "month", "quarter")
CATEGORY_SPANS = ("month",)


def period_start(span: str, day: dt.date) -> dt.date:
    """The first day of the `span` ("day" or one of SPANS) holding `day`."""
    if span == "dekad":
        return day.replace(day=min((day.day - 1) // 10, 2) * 10 + 1)
    if span == "month":
        return day.replace(day=1)
    if span == "quarter":
        return dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return day


def period_after(span: str, start: dt.date) -> dt.date:
    """The first day after the `span` that begins on `start`."""
    if span == "day" or (span == "dekad" and start.day < 21):
        return start + dt.timedelta(days=10 if span == "dekad" else 1)
    months = 3 if span == "quarter" else 1
    month = start.month - 1 + months
    return dt.date(start.year + month // 12, month % 12 + 1, 1)


def period_start_sql(span: str, day: Any) -> sa.ColumnElement[dt.date]:
    """period_start in SQL, for a date column."""
    if span == "quarter":
        return sa.cast(sa.func.date_trunc("quarter", day), sa.Date)
    month = sa.cast(sa.func.date_trunc("month", day), sa.Date)
    if span == "month":
        return month
    dekad = sa.func.least((sa.cast(sa.extract("day", day), sa.Integer) - 1) // 10, 2)
    return sa.cast(month + dekad * 10, sa.Date)


# The heat tables change a little after every load; vacuumed soon after, their pages stay
# all-visible and the heat queries run as index-only scans of the key index.
HEAT_STORAGE = {
    "autovacuum_vacuum_insert_scale_factor": "0.01",
    "autovacuum_vacuum_scale_factor": "0.01",
}
GRID_UNITS = ("street_code", "community_code", "grid_code")
CELL_UNITS = ("street_code", "cell_x", "cell_y")


def _unit(name: str) -> sa.Column[Any]:
    """A unit column: the request's own code (none when unplaced), or a cell index."""
    codes = {"street_code": 9, "community_code": 12, "grid_code": 15}
    if name in codes:
        return sa.Column(name, sa.String(codes[name]))
    return sa.Column(name, sa.Integer, nullable=False)


def _heat_columns(units: tuple[str, ...]) -> list[sa.Column[Any]]:
    return [
        *(_unit(u) for u in units),
        sa.Column("category", sa.Text, comment="NULL: all categories"),
        sa.Column("received", sa.Integer, nullable=False),
    ]


def _key(name: str, *columns: str) -> sa.Index:
    """The unique key, covering `received`: heat queries are index-only scans of it."""
    return sa.Index(
        f"ux_{name}_key",
        *columns,
        unique=True,
        postgresql_include=["received"],
        postgresql_nulls_not_distinct=True,
    )


def _daily_table(name: str, units: tuple[str, ...]) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("day", sa.Date, nullable=False),
        *_heat_columns(units),
        _key(name, "category", "day", *units),
        sa.Index(f"ix_{name}_day_street_code", "day", "street_code"),
        postgresql_with=HEAT_STORAGE,
    )


def _periods_table(name: str, units: tuple[str, ...]) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("span", sa.String(7), nullable=False, comment="dekad, month or quarter"),
        sa.Column("first_day", sa.Date, nullable=False),
        *_heat_columns(units),
        _key(name, "category", "span", "first_day", *units),
        # Rows whose count fell to 0 in a refresh, found at once and deleted.
        sa.Index(f"ix_{name}_emptied", "first_day", postgresql_where=sa.text("received = 0")),
        sa.CheckConstraint("span in ('dekad', 'month', 'quarter')", name="span"),
        sa.CheckConstraint("span = 'month' or category is null", name="totals_only"),
        postgresql_with=HEAT_STORAGE,
    )


request_daily = _daily_table("request_daily", GRID_UNITS)
request_periods = _periods_table("request_periods", GRID_UNITS)
request_cells_daily = _daily_table("request_cells_daily", CELL_UNITS)
request_cells_periods = _periods_table("request_cells_periods", CELL_UNITS)

STREET_MEASURES = (
    "received",
    "resolved",
    "callbacks",
    "contacted",
    "solved",
    "satisfied",
    "basic_satisfied",
)

request_street_daily = sa.Table(
    "request_street_daily",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("street_code", sa.String(9)),
    *(sa.Column(name, sa.Integer, nullable=False) for name in STREET_MEASURES),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
    sa.Index(
        "ux_request_street_daily_key",
        "day",
        "street_code",
        unique=True,
        postgresql_nulls_not_distinct=True,
    ),
)

request_open = sa.Table(
    "request_open",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("street_code", sa.String(9), index=True),
    sa.Column("community_code", sa.String(12)),
    sa.Column("grid_code", sa.String(15)),
    sa.Column("category", sa.Text),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True)),
)

request_dirty_days = sa.Table(
    "request_dirty_days",
    metadata,
    sa.Column("day", sa.Date, comment="NULL: every day (after a TRUNCATE)"),
    sa.Column(
        "place",
        sa.Boolean,
        nullable=False,
        comment="a request was added, removed, moved, re-dated or re-categorised",
    ),
)

request_aggregates_zone = sa.Table(
    "request_aggregates_zone",
    metadata,
    sa.Column("id", sa.Boolean, primary_key=True, comment="true: the table has one row"),
    sa.Column("zone", sa.Text, nullable=False, comment="IANA time zone of the aggregates' days"),
    sa.CheckConstraint("id", name="one_row"),
)

AGGREGATE_TABLES = (
    request_daily,
    request_periods,
    request_cells_daily,
    request_cells_periods,
    request_street_daily,
    request_open,
)
