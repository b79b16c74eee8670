"""The zone rule, scoping a connection and the audit row (layers/queries/access.py), used alike
by the web, the CLI export and the seeder."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from layers.accounts import audit_log
from layers.queries import access


@pytest.mark.parametrize(
    ("role", "street", "zone"),
    [
        ("commander", "110102001", "110102001"),
        ("clerk", "110102003", "110102003"),  # the street centre's (migration 0019)
        ("grid_officer", "110102003", "110102003"),
        # A street's user without a street (a clerk from before 0019) sees nothing.
        ("commander", None, access.NO_STREET),
        ("clerk", None, access.NO_STREET),
        ("grid_officer", None, access.NO_STREET),
        ("district", "110102001", "*"),
        ("analyst", None, "*"),
        ("planner", None, "*"),
        ("department", None, access.NO_STREET),
    ],
)
def test_the_street_roles_are_confined_to_their_street(
    role: str, street: str | None, zone: str
) -> None:
    assert access.zone_of(role, street) == zone


def test_scope_switches_to_the_reader_in_the_zone(connection: sa.Connection) -> None:
    owner = connection.execute(sa.text("select current_user")).scalar_one()
    access.scope(connection, "110102001")
    user, zone = connection.execute(
        sa.text("select current_user, current_setting('blockdata.zone')")
    ).one()
    assert (user, zone) == (access.READER_ROLE, "110102001")
    assert user != owner
    with pytest.raises(sa.exc.ProgrammingError):  # the reader may not read the accounts
        connection.execute(sa.text("select count(*) from users")).scalar_one()


def test_audit_keeps_who_what_and_drops_empty_filters(connection: sa.Connection) -> None:
    access.audit(
        connection,
        user_name="cli:test",
        role="analyst",
        action="export",
        path="blockdata export service_requests",
        filters={"layer": "service_requests", "bbox": None},
        rows=7,
    )
    row = connection.execute(
        sa.select(audit_log.c.user_name, audit_log.c.role, audit_log.c.filters, audit_log.c.rows)
        .order_by(audit_log.c.id.desc())
        .limit(1)
    ).one()
    assert tuple(row) == ("cli:test", "analyst", {"layer": "service_requests"}, 7)
