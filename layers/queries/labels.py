"""How people name the places on the map: a grid is "百万庄社区 第4网格", never a bare code.

A grid's serial is the last three digits of its 15-digit code (the community's 12 digits come
first); its label is its community's name and the serial. One rule, in Python and in SQL, so
the pages, the API and the reports name a grid alike.
"""

from __future__ import annotations

import sqlalchemy as sa

GRID_SERIAL_DIGITS = 3


def grid_serial(grid_code: str) -> int:
    """The grid's number within its community: 110102001004003 → 3."""
    return int(grid_code[-GRID_SERIAL_DIGITS:])


def grid_label(community_name: str | None, grid_code: str) -> str:
    """百万庄社区 第4网格; a grid whose community is unknown keeps its code after 网格."""
    if not community_name:
        return f"网格 {grid_code}"
    return f"{community_name} 第{grid_serial(grid_code)}网格"


def grid_label_sql(
    community_name: sa.ColumnElement[str], grid_code: sa.ColumnElement[str]
) -> sa.ColumnElement[str]:
    """The same label in SQL, from a community's name column and a grid's code column."""
    serial = sa.cast(sa.func.right(grid_code, GRID_SERIAL_DIGITS), sa.Integer)
    named = community_name + " 第" + sa.cast(serial, sa.Text) + "网格"
    return sa.func.coalesce(named, "网格 " + grid_code)
