"""Publishing a period: frozen with its scheme and inputs; a changed input changes the live
result, not the published one; publishing again makes version 2; read back as each role
(a commander: every street's public line, its own street's detail only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from layers.evaluation.compute import evaluate
from layers.evaluation.publish import publications, publish, published, published_inputs
from layers.evaluation.scheme import Scheme, save_scheme
from layers.queries import access
from tests.district import Cell
from tests.evalcore_fixtures import LABEL, NOW, A, B, scheme_body, score, seed

PUBLIC = {"code", "name", "rank", "rank_change", "class", "composite"}


def _as(conn: sa.Connection, role: str, street: str | None = None, unit: str | None = None) -> None:
    conn.exec_driver_sql("reset role")
    access.scope(conn, access.zone_of(role, street), unit=access.unit_of(role, unit))


@pytest.fixture
def scheme(connection: sa.Connection, district: list[Cell]) -> Scheme:
    seed(connection)
    stored, _ = save_scheme(connection, scheme_body(), by="test")
    return stored


def _street(result: dict[str, Any], code: str) -> dict[str, Any]:
    return next(s for s in result["streets"] if s["code"] == code)


def test_a_published_period_is_frozen(connection: sa.Connection, scheme: Scheme) -> None:
    _as(connection, "district")
    live = evaluate(connection, scheme, LABEL, now=NOW)
    pid = publish(connection, scheme, LABEL, by="district-1", now=NOW)
    first = published(connection, "small", LABEL)
    assert first is not None
    assert first["published"] == {
        "id": pid,
        "version": 1,
        "published_at": NOW.isoformat(),
        "published_by": "district-1",
    }
    assert first["scheme"] == {"code": "small", "version": 1, "name": "测试考评"}
    assert first["streets"] == live["streets"]
    assert first["previous"] == live["previous"]
    assert first["departments"] is None
    inputs = published_inputs(connection, pid, A)
    assert inputs is not None and inputs["scores"] == {"b2": 2, "l1": 12, "p1": 10}
    assert inputs["hotline"]["callbacks"] == 10
    # An assessor scores A's missing item after publication: the live result changes…
    connection.exec_driver_sql("reset role")
    score(connection, A, "w1", 20)
    _as(connection, "district")
    after = evaluate(connection, scheme, LABEL, now=NOW)
    assert _street(after, A)["internal"] == _street(live, A)["internal"] + 20
    # … the published one does not.
    again = published(connection, "small", LABEL)
    assert again is not None and again["streets"] == first["streets"]
    # Publishing again makes version 2 with the new input; version 1 stays as it was.
    later = NOW + dt.timedelta(days=1)
    publish(connection, scheme, LABEL, by="district-2", now=later)
    second = published(connection, "small", LABEL)
    assert second is not None and second["published"]["version"] == 2
    assert _street(second, A)["internal"] == _street(after, A)["internal"]
    assert published(connection, "small", LABEL, version=1) == first
    assert [(p["period"], p["version"]) for p in publications(connection, "small")] == [
        (LABEL, 2),
        (LABEL, 1),
    ]
    assert published(connection, "small", "2026-10") is None
    assert published(connection, "small", LABEL, version=3) is None


def test_the_database_refuses_to_rewrite_a_publication(
    connection: sa.Connection, scheme: Scheme
) -> None:
    _as(connection, "district")
    pid = publish(connection, scheme, LABEL, by="d", now=NOW)
    connection.exec_driver_sql("reset role")
    with pytest.raises(DBAPIError, match="已发布的考评不可修改"), connection.begin_nested():
        connection.execute(
            sa.text("update evaluation_rankings set rank = 9 where publication_id = :p"),
            {"p": pid},
        )
    rank = connection.execute(
        sa.text(
            "select rank from evaluation_rankings where publication_id = :p and street_code = :s"
        ),
        {"p": pid, "s": A},
    ).scalar()
    assert rank == 1


def test_publishing_is_the_districts(connection: sa.Connection, scheme: Scheme) -> None:
    """The database lets only the district's scope (zone '*', no unit) write a publication."""
    _as(connection, "assessor", unit="district-eval-owner")
    with pytest.raises(DBAPIError), connection.begin_nested():
        publish(connection, scheme, LABEL, by="a", now=NOW)


@pytest.mark.parametrize(("street", "other"), [(A, B), (B, A)])
def test_a_commander_reads_every_rank_and_its_own_detail(
    connection: sa.Connection, scheme: Scheme, street: str, other: str
) -> None:
    _as(connection, "district")
    publish(connection, scheme, LABEL, by="d", now=NOW)
    full = published(connection, "small", LABEL)
    _as(connection, "commander", street)
    seen = published(connection, "small", LABEL)
    assert seen is not None and full is not None
    assert [s["code"] for s in seen["streets"]] == [A, B]
    assert _street(seen, street) == _street(full, street)
    assert set(_street(seen, other)) == PUBLIC
    assert {k: _street(full, other)[k] for k in PUBLIC} == _street(seen, other)


@pytest.mark.parametrize("role", ["assessor", "analyst"])
def test_the_other_evaluation_readers_see_every_detail(
    connection: sa.Connection, scheme: Scheme, role: str
) -> None:
    _as(connection, "district")
    publish(connection, scheme, LABEL, by="d", now=NOW)
    full = published(connection, "small", LABEL)
    _as(connection, role, unit="district-eval-owner" if role == "assessor" else None)
    assert published(connection, "small", LABEL) == full


def test_a_changed_scheme_publishes_as_a_new_version(
    connection: sa.Connection, scheme: Scheme
) -> None:
    """Recomputed under a changed scheme (the survey weighs more): version 2 carries scheme
    version 2 and its weights; version 1 keeps scheme version 1's."""
    _as(connection, "district")
    publish(connection, scheme, LABEL, by="d", now=NOW)
    connection.exec_driver_sql("reset role")
    body = scheme_body()
    body["parts"] = {"internal": 20, "survey": 60, "hotline": 20}
    heavier, changed = save_scheme(connection, body, by="test")
    assert changed and heavier.version == 2
    _as(connection, "district")
    publish(connection, heavier, LABEL, by="d", now=NOW)
    first = published(connection, "small", LABEL, version=1)
    second = published(connection, "small", LABEL)
    assert first is not None and second is not None
    assert (first["scheme"]["version"], second["scheme"]["version"]) == (1, 2)
    assert second["parts"] == {"internal": 20, "survey": 60, "hotline": 20}
    # A: 0.2 × 58.5 + 0.6 × 83.5 + 0.2 × 75.2 = 77.84 (the figures of test_evaluation_compute)
    assert _street(second, A)["composite"] == pytest.approx(0.2 * 58.5 + 0.6 * 83.5 + 0.2 * 75.2)
    assert _street(first, A)["composite"] == pytest.approx(0.4 * 58.5 + 0.4 * 83.5 + 0.2 * 75.2)
