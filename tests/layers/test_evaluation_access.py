"""Migration 0022 on a real PostgreSQL: who reads and writes the evaluation's tables
(row-level security as the reader, scoped as each role), and what cannot change once
written (the score audit, the publications). The expected outcome of each write is stated
by hand from the migration's rules: an input is written by an assessor of its owner unit
only; survey results and publications by the district only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, ProgrammingError

from layers.queries import access
from tests.clock import BEIJING
from tests.district import Cell
from tests.helpers import add_unit, add_user

A, B = "110102001", "110102003"
OWNER, OTHER = "district-eval-owner", "district-eval-other"
NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=BEIJING)


def _as(conn: sa.Connection, role: str, street: str | None = None, unit: str | None = None) -> None:
    conn.exec_driver_sql("reset role")
    access.scope(conn, access.zone_of(role, street), unit=access.unit_of(role, unit))


def _score(street: str = A, owner: str = OWNER) -> sa.TextClause:
    return sa.text(
        "insert into evaluation_scores (scheme_code, period, item_code, street_code, owner_unit,"
        f" points, evidence, scored_by, scored_at) values ('x', '2026-11', 'i1', '{street}',"
        f" '{owner}', 8, '会议记录', 'a', now())"
    )


def _try(conn: sa.Connection, statement: sa.TextClause, **params: Any) -> bool:
    """Whether the statement went through (inside a savepoint: a refusal is rolled back)."""
    try:
        with conn.begin_nested():
            result = conn.execute(statement, params)
            return result.rowcount != 0 if result.returns_rows is False else True
    except (ProgrammingError, DBAPIError):
        return False


@pytest.fixture
def units(connection: sa.Connection, district: list[Cell]) -> None:
    assert {street for _, _, street, _ in district} >= {A, B}
    add_unit(connection, OWNER)
    add_unit(connection, OTHER)


@pytest.mark.parametrize(
    ("role", "street", "unit", "allowed"),
    [
        ("assessor", None, OWNER, True),
        ("assessor", None, OTHER, False),
        ("district", None, None, False),
        ("analyst", None, None, False),
        ("commander", A, None, False),
        ("department", None, OWNER, False),
    ],
)
def test_only_the_owner_units_assessor_writes_a_score(
    connection: sa.Connection,
    units: None,
    role: str,
    street: str | None,
    unit: str | None,
    allowed: bool,
) -> None:
    _as(connection, role, street, unit)
    assert _try(connection, _score()) is allowed


def test_a_commander_reads_no_unpublished_score_but_its_own_tasks(
    connection: sa.Connection, units: None
) -> None:
    _as(connection, "assessor", unit=OWNER)
    connection.execute(_score(A))
    connection.execute(_score(B))
    for street in (A, B):
        connection.execute(
            sa.text(
                "insert into evaluation_tasks (kind, title, owner_unit, street_code, deadline)"
                " values ('city', '背街小巷整治', :o, :s, :d)"
            ),
            {"o": OWNER, "s": street, "d": NOW},
        )
    _as(connection, "commander", A)
    assert connection.execute(sa.text("select count(*) from evaluation_scores")).scalar() == 0
    streets = connection.execute(sa.text("select street_code from evaluation_tasks")).scalars()
    assert list(streets) == [A]
    _as(connection, "district")
    assert connection.execute(sa.text("select count(*) from evaluation_scores")).scalar() == 2


def test_survey_and_publication_are_the_districts(connection: sa.Connection, units: None) -> None:
    survey = sa.text(
        "insert into survey_results (period, street_code, question, scale, sample_size, counts,"
        " imported_at) values ('2026-11', :s, 'overall', 'three', 100, '{\"满意\": 80}', now())"
    )
    publication = sa.text(
        "insert into evaluation_publications (scheme_code, scheme_version, scheme_body, period,"
        " since, until, version, published_at) values ('x', 1, '{}', '2026-11', '2026-11-01',"
        " '2026-11-30', 1, now())"
    )
    for role, street, unit in (("assessor", None, OWNER), ("commander", A, None)):
        _as(connection, role, street, unit)
        assert not _try(connection, survey, s=A)
        assert not _try(connection, publication)
    _as(connection, "district")
    assert _try(connection, survey, s=A)
    assert _try(connection, publication)


def _publish(conn: sa.Connection) -> int:
    _as(conn, "district")
    pid = int(
        conn.execute(
            sa.text(
                "insert into evaluation_publications (scheme_code, scheme_version, scheme_body,"
                " period, since, until, version, published_at) values ('x', 1, '{}', '2026-11',"
                " '2026-11-01', '2026-11-30', 1, now()) returning id"
            )
        ).scalar_one()
    )
    for street, rank in ((A, 1), (B, 2)):
        conn.execute(
            sa.text(
                "insert into evaluation_rankings (publication_id, street_code, composite, rank)"
                " values (:p, :s, 90, :r)"
            ),
            {"p": pid, "s": street, "r": rank},
        )
        conn.execute(
            sa.text(
                "insert into evaluation_results (publication_id, street_code, result, inputs)"
                " values (:p, :s, '{}', '{}')"
            ),
            {"p": pid, "s": street},
        )
    return pid


def test_a_commander_sees_every_rank_and_its_own_result(
    connection: sa.Connection, units: None
) -> None:
    _publish(connection)
    _as(connection, "commander", A)
    ranked = connection.execute(sa.text("select street_code from evaluation_rankings"))
    assert sorted(ranked.scalars()) == [A, B]
    results = connection.execute(sa.text("select street_code from evaluation_results"))
    assert list(results.scalars()) == [A]


@pytest.mark.parametrize(
    "table", ["evaluation_publications", "evaluation_rankings", "evaluation_results"]
)
def test_a_publication_cannot_change_even_for_the_owner(
    connection: sa.Connection, units: None, table: str
) -> None:
    pid = _publish(connection)
    connection.exec_driver_sql("reset role")
    key = "id" if table == "evaluation_publications" else "publication_id"
    for statement in (
        f"update {table} set {key} = {key} where {key} = :p",
        f"delete from {table} where {key} = :p",
    ):
        with pytest.raises(DBAPIError, match="已发布的考评不可修改"), connection.begin_nested():
            connection.execute(sa.text(statement), {"p": pid})


def test_the_score_audit_is_append_only(connection: sa.Connection, units: None) -> None:
    _as(connection, "assessor", unit=OWNER)
    connection.execute(
        sa.text(
            "insert into evaluation_score_audit (scheme_code, period, item_code, street_code,"
            " owner_unit, old_points, new_points, changed_by, changed_at, source)"
            " values ('x', '2026-11', 'i1', :s, :o, null, 8, 'a', now(), 'form')"
        ),
        {"s": A, "o": OWNER},
    )
    assert not _try(connection, sa.text("update evaluation_score_audit set new_points = 10"))
    connection.exec_driver_sql("reset role")
    with pytest.raises(DBAPIError, match="只增不改"), connection.begin_nested():
        connection.execute(sa.text("delete from evaluation_score_audit"))


def test_an_assessor_is_bound_to_a_unit(connection: sa.Connection, units: None) -> None:
    add_user(connection, "assessor-1", "assessor", unit=OWNER)
    with pytest.raises(DBAPIError, match="ck_users_unit"), connection.begin_nested():
        add_user(connection, "assessor-2", "assessor")
