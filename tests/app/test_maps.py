"""The readable maps' data (issue 14): the heat's colour scale and the hot grids' labels, on a
real PostGIS, against counts and labels made here from the rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from etl.aggregates import refresh_request_aggregates
from layers.queries import heat
from tests.aggregates import direct_heat, requests
from tests.clock import FrozenClock
from tests.district import write_csv
from tests.helpers import clocked_app, ok
from tests.plugins.hand import STREET_B, run_layer

NOW = dt.datetime.fromisoformat("2026-11-18T15:20:00+08:00")


@pytest.fixture
def app(connection: sa.Connection) -> Flask:
    return clocked_app(connection, FrozenClock(NOW))


@pytest.fixture
def spread(connection: sa.Connection, district: Any, tmp_path: Path) -> None:
    """240 requests over Sept–Nov 2026, loaded through the ETL and aggregated."""
    run_layer(connection, write_csv(tmp_path / "r.csv", requests()), "service_requests")
    refresh_request_aggregates(connection)


def _quintiles(counts: list[int]) -> list[int]:
    """The counts at 20 %, 40 %, … 100 % (the smallest count with at least that share at or
    below it)."""
    return [int(v) for v in np.quantile(counts, [0.2, 0.4, 0.6, 0.8, 1.0], method="inverted_cdf")]


@pytest.mark.parametrize("level", heat.LEVELS)
def test_the_heat_scale_is_the_quintiles_of_the_units_counts(
    client: FlaskClient, connection: sa.Connection, spread: None, level: str
) -> None:
    for since, until, extra in [
        ("2026-09-25", "2026-11-06", {}),
        ("2026-10-01", "2026-10-31", {"street": STREET_B}),
        ("2026-10-05", "2026-10-05", {"category": "噪声扰民"}),
    ]:
        body = ok(
            client, "/api/heat/service_requests", level=level, since=since, until=until, **extra
        )
        want = direct_heat(
            connection,
            level,
            dt.date.fromisoformat(since),
            dt.date.fromisoformat(until),
            extra.get("category"),
            extra.get("street"),
        )
        counts = [n for code, n in want.items() if code is not None]
        if counts:
            assert body["breaks"] == _quintiles(counts), (level, since, extra)
            assert (body["min"], body["max"]) == (min(counts), max(counts))
        else:
            assert (body["breaks"], body["min"], body["max"]) == ([], 0, 0)


def test_an_empty_window_has_no_scale(client: FlaskClient, spread: None) -> None:
    body = ok(client, "/api/heat/service_requests", level="cell", category="没有这类")
    assert (body["breaks"], body["min"], body["max"], body["items"]) == ([], 0, 0, [])


def test_hot_grids_carry_their_label_and_code(
    client: FlaskClient, connection: sa.Connection, spread: None
) -> None:
    body = ok(client, f"/api/command/{STREET_B}/summary")
    assert body["hot_grids"]
    names = dict(connection.execute(sa.text("select code, name from communities")).all())
    for grid in body["hot_grids"]:
        community = connection.execute(
            sa.text("select community_code from grids where code = :g"), {"g": grid["code"]}
        ).scalar_one()
        # the label rule written out here: the community's name and the code's last 3 digits
        assert grid["label"] == f"{names[community]} 第{int(grid['code'][12:])}网格"
