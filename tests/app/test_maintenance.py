"""`blockdata db maintain`: the point layers rewritten in spatial order, nothing else changed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from app import migrate
from app.cli import main
from app.db import make_engine
from app.maintenance import is_clustered
from layers import get_layer
from tests.helpers import drop_database, new_database


@pytest.fixture(scope="module")
def maintained_url(server_url: str) -> Iterator[str]:
    """A database of its own (CLUSTER commits), migrated, with 2,000 requests inserted in an
    order that is random in space."""
    name = f"blockdata_test_maintain_{os.getpid()}"
    url = new_database(server_url, name)
    migrate.upgrade(migrate.alembic_config(url))
    with psycopg.connect(url) as conn:
        conn.execute(
            "insert into service_requests (source, source_id, received_at, status, geom)"
            " select 'test', 'r' || i, now() - i * interval '1 minute', 'open',"
            " ST_SetSRID(ST_MakePoint(116.30 + (i * 7919 % 2000) * 0.00005,"
            " 39.90 + (i * 104729 % 2000) * 0.00004), 4326)"
            " from generate_series(1, 2000) i"
        )
    yield url
    drop_database(server_url, name)


def _rows(url: str) -> tuple[list[tuple[object, ...]], list[int]]:
    """(every row by id, the ids in storage order of a 200 m box)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select id, source_id, status, ST_AsText(geom) from service_requests order by id"
        ).fetchall()
        pages = conn.execute(
            "select distinct (ctid::text::point)[0]::int from service_requests"
            " where geom && ST_MakeEnvelope(116.33, 39.92, 116.3326, 39.922, 4326)"
        ).fetchall()
    return rows, [p[0] for p in pages]


def test_maintain_clusters_the_point_layers_and_keeps_every_row(maintained_url: str) -> None:
    engine = make_engine(maintained_url)
    layer = get_layer("service_requests")
    with engine.connect() as conn:
        assert not is_clustered(conn, layer)
    before, pages_before = _rows(maintained_url)
    result = CliRunner().invoke(main, ["db", "maintain"], env={"DATABASE_URL": maintained_url})
    assert result.exit_code == 0, result.output
    assert "service_requests: 已按空间顺序重写 2,000 行" in result.output
    after, pages_after = _rows(maintained_url)
    assert after == before  # the same rows, ids and values
    # The box's points now sit on fewer heap pages than in arrival order.
    assert len(pages_after) < len(pages_before)
    with engine.connect() as conn:
        assert is_clustered(conn, layer)
        assert conn.execute(
            sa.text("select reltuples from pg_class where relname = 'service_requests'")
        ).scalar_one() == pytest.approx(2000, rel=0.01)  # analyzed
    engine.dispose()


def test_a_locked_table_is_skipped_and_reported(maintained_url: str) -> None:
    with psycopg.connect(maintained_url) as holder:
        holder.execute("lock table service_requests in access share mode")
        result = CliRunner().invoke(
            main,
            ["db", "maintain", "--layer", "service_requests"],
            env={"DATABASE_URL": maintained_url},
        )
        holder.rollback()
    assert result.exit_code == 1
    assert "service_requests: 未整理 not clustered" in result.output
    assert "lock timeout" in result.output


def test_an_unknown_layer_is_a_usage_error(maintained_url: str) -> None:
    result = CliRunner().invoke(
        main, ["db", "maintain", "--layer", "nope"], env={"DATABASE_URL": maintained_url}
    )
    assert result.exit_code == 2 and "nope" in result.output
