"""`blockdata audit`: retention (prune, also in `db maintain`) and terminal-safe output."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from app.cli import main
from app.commands.users import printable
from layers.accounts import audit_log, sessions, users

TAG = f"audit-test-{os.getpid()}"


@pytest.fixture
def aged(engine: sa.Engine) -> Iterator[dict[int, int]]:
    """Committed audit rows 400, 200, 179 and 10 days old (id → age), and an ended session
    and a live one of a user."""
    ages = (400, 200, 179, 10)
    with engine.begin() as conn:
        ids = [
            conn.execute(
                sa.insert(audit_log)
                .values(
                    user_name=TAG,
                    action="export",
                    at=sa.func.now() - sa.text(f"interval '{age} days'"),
                )
                .returning(audit_log.c.id)
            ).scalar_one()
            for age in ages
        ]
        uid = conn.execute(
            sa.insert(users)
            .values(name=TAG, role="analyst", password_hash="x")
            .returning(users.c.id)
        ).scalar_one()
        old = sa.func.now() - sa.text("interval '200 days'")
        conn.execute(
            sa.insert(sessions).values(
                sid_sha256="a" * 64, user_id=uid, created_at=old, last_seen_at=old, ended_at=old
            )
        )
        conn.execute(
            sa.insert(sessions).values(
                sid_sha256="b" * 64,
                user_id=uid,
                created_at=sa.func.now(),
                last_seen_at=sa.func.now(),
            )
        )
    yield dict(zip(ids, ages, strict=True))
    with engine.begin() as conn:
        conn.execute(sa.delete(audit_log).where(audit_log.c.user_name == TAG))
        conn.execute(sa.delete(users).where(users.c.id == uid))


def _left(engine: sa.Engine) -> tuple[list[int], list[str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_log.c.id).where(audit_log.c.user_name == TAG).order_by(audit_log.c.id)
        ).scalars()
        left = list(rows)
        sids = conn.execute(
            sa.select(sessions.c.sid_sha256)
            .join(users, users.c.id == sessions.c.user_id)
            .where(users.c.name == TAG)
            .order_by(sessions.c.sid_sha256)
        ).scalars()
        return left, [s[0] for s in sids]


def test_prune_keeps_180_days_by_default(
    aged: dict[int, int], engine: sa.Engine, database_url: str
) -> None:
    env = {"DATABASE_URL": database_url, "BLOCKDATA_AUDIT_RETENTION_DAYS": ""}
    result = CliRunner().invoke(main, ["audit", "prune"], env=env)
    assert result.exit_code == 0, result.output
    left, sids = _left(engine)
    assert left == sorted(i for i, age in aged.items() if age < 180)
    assert sids == ["b"]  # the session that ended 200 days ago is gone


def test_the_retention_is_a_setting_and_db_maintain_prunes(
    aged: dict[int, int], engine: sa.Engine, database_url: str
) -> None:
    env = {"DATABASE_URL": database_url, "BLOCKDATA_AUDIT_RETENTION_DAYS": "30"}
    result = CliRunner().invoke(main, ["db", "maintain", "--layer", "service_requests"], env=env)
    assert result.exit_code == 0, result.output
    assert "older than 30 days" in result.output
    assert _left(engine)[0] == [i for i, age in aged.items() if age < 30]


def test_a_bad_retention_is_named() -> None:
    result = CliRunner().invoke(
        main, ["audit", "prune"], env={"BLOCKDATA_AUDIT_RETENTION_DAYS": "half a year"}
    )
    assert result.exit_code != 0
    assert "BLOCKDATA_AUDIT_RETENTION_DAYS" in str(result.exception) + result.output


HOSTILE = {
    "ESC": "\x1b[2J\x1b]0;pwned\x07",
    "CR": "ok\rFAKE",
    "C1 CSI": "\x9b31m",
    "bidi": "\u202egpj.exe",
    "isolate": "\u2066x\u2069",
    "DEL": "\x7f",
}


def _forbidden(text: str) -> list[str]:
    """The characters of `text` a terminal would act on or reorder (the newlines between
    the lines of output aside)."""
    return [
        c
        for c in text
        if c != "\n"
        and (
            ord(c) < 0x20
            or 0x7F <= ord(c) <= 0x9F
            or c in "\u061c\u200e\u200f"
            or 0x202A <= ord(c) <= 0x202E
            or 0x2066 <= ord(c) <= 0x2069
        )
    ]


def test_audit_output_escapes_control_characters(engine: sa.Engine, database_url: str) -> None:
    name = TAG + "\x1b[31m\u202e"
    with engine.begin() as conn:
        for label, value in HOSTILE.items():
            conn.execute(
                sa.insert(audit_log).values(
                    user_name=name, action="export", path=f"/x?{value}", filters={label: value}
                )
            )
    try:
        for args in (["audit", "--user", name], ["audit", "--user", name, "--json"]):
            # color: click would strip ANSI sequences itself (not a terminal) and hide them
            result = CliRunner().invoke(main, args, env={"DATABASE_URL": database_url}, color=True)
            assert result.exit_code == 0, result.output
            assert len(result.output.splitlines()) == len(HOSTILE)
            assert _forbidden(result.output) == [], args
        text = (
            CliRunner()
            .invoke(main, ["audit", "--user", name], env={"DATABASE_URL": database_url})
            .output
        )
        assert "\\x1b[2J" in text and "\\u202egpj.exe" in text and "\\x0dFAKE" in text
        assert "\\x9b31m" in text
        lines = (
            CliRunner()
            .invoke(main, ["audit", "--user", name, "--json"], env={"DATABASE_URL": database_url})
            .output.splitlines()
        )
        decoded = [json.loads(line) for line in lines]  # still JSON, the values intact
        assert {d["path"] for d in decoded} == {f"/x?{v}" for v in HOSTILE.values()}
    finally:
        with engine.begin() as conn:
            conn.execute(sa.delete(audit_log).where(audit_log.c.user_name == name))


def test_printable_is_reversible_and_visible() -> None:
    assert printable("a\\b\x00c\u200fd") == "a\\\\b\\x00c\\u200fd"
    assert printable("北京 西城") == "北京 西城"
