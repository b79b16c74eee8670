"""Grid labels: the Python rule and the SQL rule agree, checked on the database."""

from __future__ import annotations

import sqlalchemy as sa

from layers.queries.labels import grid_label, grid_label_sql, grid_serial


def test_serial_is_the_last_three_digits() -> None:
    assert grid_serial("110102001004003") == 3
    assert grid_serial("110102001004120") == 120


def test_label_names_the_community_and_the_number() -> None:
    assert grid_label("百万庄社区", "110102014001004") == "百万庄社区 第4网格"
    assert grid_label(None, "110102014001004") == "网格 110102014001004"


def test_sql_label_matches_python(engine: sa.Engine) -> None:
    cases = [
        ("百万庄社区", "110102014001004"),
        ("府右街南社区", "110102001004120"),
        (None, "110102001004007"),
    ]
    with engine.connect() as conn:
        for name, code in cases:
            got = conn.execute(
                sa.select(grid_label_sql(sa.literal(name, sa.Text), sa.literal(code, sa.Text)))
            ).scalar_one()
            assert got == grid_label(name, code)
