"""The grid officer (网格员) and the clerk bound to a street (migration 0019).

A grid officer reports (the 上报 page's form, with its CSRF token; Open311 POST) in its
street and reads its own reports; it may not dispatch nor take any transition (403, in
Chinese), nor read the case queue. The clerk is bound to one street's centre: it sees that
street's cases only; `users add` requires its street; a clerk left unbound by the upgrade
is refused (login and every request) until `users bind` gives it one.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from app import create_app, migrate
from app.cli import main
from app.config import from_env
from app.db import make_engine
from layers.cases.machine import ACTIONS
from tests.clock import BEIJING, FrozenClock
from tests.helpers import (
    add_user,
    call,
    drop_database,
    grid_of,
    login,
    new_database,
    post_request,
    token,
)
from tests.plugins.ogc import COMMITTED_A, COMMITTED_B

A, B = "110102001", "110102003"
POINT_A = (116.315, 39.915)
POINT_A2 = (116.305, 39.905)
POINT_B = (116.335, 39.915)
CLOCK = FrozenClock(dt.datetime(2026, 11, 18, 16, 0, tzinfo=BEIJING))
PASSWORD = "secret-password"


def _app(connection: sa.Connection, photo_dir: Path, csrf: bool = False) -> Flask:
    settings = from_env().with_(clock=CLOCK, photo_dir=photo_dir)
    return create_app(
        {"TESTING": True, "DB_CONNECTION": connection, "WTF_CSRF_ENABLED": csrf},
        settings=settings,
    )


@pytest.fixture
def app(connection: sa.Connection, tmp_path: Path) -> Flask:
    return _app(connection, tmp_path / "photos")


def _png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (seed, 0, 0)).save(out, format="PNG")
    return out.getvalue()


def _report(client: FlaskClient, point: tuple[float, float], **more: Any) -> Any:
    data = {
        "category": "环境卫生",
        "description": "垃圾满溢",
        "long": str(point[0]),
        "lat": str(point[1]),
        **more,
    }
    # As report.js posts it: asking for JSON (errors of a page are HTML otherwise).
    return client.post(
        "/report",
        data=data,
        content_type="multipart/form-data",
        headers={"Accept": "application/json"},
    )


def _cases(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("select count(*) from cases")).scalar_one())


def test_a_grid_officer_reports_in_its_street_with_the_pages_csrf_token(
    connection: sa.Connection, district: Any, tmp_path: Path
) -> None:
    app = _app(connection, tmp_path / "photos", csrf=True)
    officer = login(app.test_client(), add_user(connection, "go-1", "grid_officer", A))
    page = officer.get("/report")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "网格员上报" in html and 'id="bd-me-role">网格员' in html
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html.split('id="bd-report-form"')[1])
    assert csrf is not None
    # Without the token: refused, nothing stored.
    before = _cases(connection)
    assert _report(officer, POINT_A).status_code == 400
    assert _cases(connection) == before
    # With it: 201 and the case number; the case is in 受理 in the officer's street.
    photo = (io.BytesIO(_png(1)), "p.png", "image/png")
    response = _report(officer, POINT_A, csrf_token=csrf[1], photo=photo)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    row = connection.execute(
        sa.text(
            "select c.state, c.street_code, c.reported_by, r.grid_code, r.community_code,"
            " (select count(*) from case_photos p where p.case_id = c.id) as photos"
            " from cases c join service_requests r on r.id = c.service_request_id"
            " where c.id = :id"
        ),
        {"id": body["case_id"]},
    ).one()
    placed = grid_of(connection, *POINT_A)
    assert tuple(row) == ("received", placed[2], "go-1", placed[0], placed[1], 1)
    assert (body["street"], body["community"], body["grid"], body["photos"]) == (
        placed[2],
        placed[1],
        placed[0],
        1,
    )
    # Outside its street: 403, nothing stored (the photo neither).
    before = _cases(connection)
    photo = (io.BytesIO(_png(2)), "q.png", "image/png")
    outside = _report(officer, POINT_B, csrf_token=csrf[1], photo=photo)
    assert outside.status_code == 403 and "不在辖区内" in outside.get_json()["message"]
    assert _cases(connection) == before
    assert connection.execute(sa.text("select count(*) from case_photos")).scalar_one() == 1


def test_bad_reports_are_400_in_chinese(
    app: Flask, connection: sa.Connection, district: Any
) -> None:
    officer = login(app.test_client(), add_user(connection, "go-bad", "grid_officer", A))
    before = _cases(connection)
    for more, words in [
        ({"category": ""}, "请选择问题类别"),
        ({"category": "没有这类"}, "未知问题类别"),
        ({"description": " "}, "请填写问题描述"),
        ({"long": "", "lat": ""}, "请在地图上选择位置"),
        ({"lat": "abc"}, "坐标不是数字"),
        ({"lat": "95"}, "坐标超出范围"),
        ({"description": "x" * 4001}, "过长"),
        ({"other": "1"}, "未知字段"),
        ({"photo": (io.BytesIO(b"not an image"), "a.jpg", "image/jpeg")}, "不是 JPEG"),
    ]:
        response = _report(officer, POINT_A, **more)
        assert 400 <= response.status_code < 500, more
        assert response.is_json and words in response.get_json()["message"], (
            more,
            response.get_json(),
        )
    # A multipart part without a name: 400, not a server error.
    boundary = "b0undary"
    raw = (
        f"--{boundary}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{boundary}--\r\n"
    ).encode()
    response = officer.post(
        "/report",
        data=raw,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "未知字段" in response.get_json()["message"]
    assert _cases(connection) == before


def test_a_grid_officer_cannot_dispatch_nor_read_the_queue(
    app: Flask, anonymous: FlaskClient, connection: sa.Connection, district: Any
) -> None:
    officer = login(app.test_client(), add_user(connection, "go-2", "grid_officer", A))
    filed = _report(officer, POINT_A)
    assert filed.status_code == 201
    case_id = filed.get_json()["case_id"]
    for action in ACTIONS:
        response = officer.post(
            f"/api/cases/{case_id}/transitions",
            json={"action": action, "version": 0, "main_unit": f"{A}-city"},
        )
        assert response.status_code == 403, action
        assert "无权" in response.get_json()["message"], action
    for url in ("/api/cases", f"/api/cases/{case_id}", "/api/whistles"):
        assert officer.get(url).status_code == 403, url
    assert officer.post("/api/whistles", json={}).status_code == 403
    state = connection.execute(
        sa.text(
            "select state, version, (select count(*) from case_history where case_id = :id)"
            " from cases where id = :id"
        ),
        {"id": case_id},
    ).one()
    assert tuple(state) == ("received", 0, 0)
    # Its token files through Open311 too, and may not read the requests' list.
    key = token(connection, "grid_officer", A)
    status, body, _ = post_request(anonymous, key, POINT_A)
    assert status == 200 and body[0]["case_id"] > case_id
    assert call(anonymous, "GET", "/requests.json", api_key=key)[0] == 403


def test_a_grid_officer_sees_its_street_and_its_own_reports(
    app: Flask, connection: sa.Connection, district: Any
) -> None:
    mine = login(app.test_client(), add_user(connection, "go-3", "grid_officer", A))
    colleague = login(app.test_client(), add_user(connection, "go-4", "grid_officer", A))
    other_street = login(app.test_client(), add_user(connection, "go-5", "grid_officer", B))
    ids = [_report(mine, p).get_json()["case_id"] for p in (POINT_A, POINT_A2)]
    theirs = _report(colleague, POINT_A).get_json()["case_id"]
    assert _report(other_street, POINT_B).status_code == 201
    listed = mine.get("/api/reports").get_json()["reports"]
    expected = (
        connection.execute(
            sa.text(
                "select id from cases where reported_by = 'go-3' order by received_at desc, id desc"
            )
        )
        .scalars()
        .all()
    )
    assert [r["case_id"] for r in listed] == expected == sorted(ids, reverse=True)
    assert theirs not in [r["case_id"] for r in listed]
    assert {r["street"] for r in listed} == {A}
    assert all(r["state_label"] == "受理" and r["photos"] == 0 for r in listed)
    # The boundaries it reads are its street's only (row-level security, as a commander).
    streets = mine.get("/api/layers/streets/geojson").get_json()
    assert [f["properties"]["code"] for f in streets["features"]] == [A]
    grids = mine.get("/api/layers/grids/geojson").get_json()["features"]
    in_a = connection.execute(
        sa.text("select count(*) from grids where street_code = :s"), {"s": A}
    ).scalar_one()
    assert len(grids) == in_a > 0
    # Pages: the report page only.
    for url, status in (("/report", 200), ("/", 403), ("/imports", 403), (f"/command/{A}", 403)):
        assert mine.get(url).status_code == status, url


def test_a_clerk_sees_only_its_streets_cases(
    app: Flask, anonymous: FlaskClient, connection: sa.Connection, district: Any
) -> None:
    key = token(connection, "district")
    for point in (POINT_A, POINT_A2, POINT_B):
        status, body, _ = post_request(anonymous, key, point)
        assert status == 200, body
    for street in (A, B):
        clerk = login(app.test_client(), add_user(connection, f"clerk-{street}", "clerk", street))
        got = clerk.get("/api/cases?limit=500").get_json()
        expected = (
            connection.execute(
                sa.text("select id from cases where street_code = :s order by id"), {"s": street}
            )
            .scalars()
            .all()
        )
        assert sorted(c["id"] for c in got["cases"]) == expected and expected
        assert sum(got["counts"]["by_state"].values()) == len(expected)
        other = connection.execute(
            sa.text("select min(id) from cases where street_code <> :s"), {"s": street}
        ).scalar_one()
        assert clerk.get(f"/api/cases/{other}").status_code == 404
        assert clerk.get("/imports").status_code == 200  # the load reports stay the district's


def test_an_unbound_clerk_is_refused_until_bound(
    app: Flask, connection: sa.Connection, district: Any
) -> None:
    """A clerk made before migration 0019 has no street: its login is refused with the
    message, its session and token too; nothing of any street is readable."""
    uid = add_user(connection, "old-clerk", "clerk")  # the state the upgrade leaves it in
    client = app.test_client()
    refused = client.post("/login", data={"name": "old-clerk", "password": PASSWORD})
    assert refused.status_code == 200
    assert "尚未绑定街道" in refused.get_data(as_text=True)
    assert "blockdata users bind" in refused.get_data(as_text=True)
    live = connection.execute(
        sa.text("select count(*) from sessions where user_id = :u and ended_at is null"),
        {"u": uid},
    ).scalar_one()
    assert live == 0
    session = login(app.test_client(), uid)
    for url in ("/imports", "/api/cases", "/api/layers/streets/geojson"):
        response = session.get(url, headers={"Accept": "application/json"})
        assert response.status_code == 403, url
        assert "尚未绑定街道" in response.get_json()["message"], url
    connection.execute(
        sa.text("update users set street_code = :s where id = :u"), {"s": A, "u": uid}
    )
    again = app.test_client().post("/login", data={"name": "old-clerk", "password": PASSWORD})
    assert again.status_code == 302 and again.headers["Location"] == "/imports"


def test_the_upgrade_keeps_an_old_clerk_unbound(server_url: str) -> None:
    """Upgrading a database with a clerk of revision 0018 keeps its row, without a street
    (so it is refused until bound); the check allows that for a clerk only."""
    name = f"blockdata_test_unbound_{__import__('os').getpid()}"
    url = new_database(server_url, name)
    try:
        cfg = migrate.alembic_config(url)
        migrate.upgrade(cfg, "0018")
        engine = make_engine(url)
        with engine.begin() as conn:
            add_user(conn, "clerk-0018", "clerk")
        migrate.upgrade(cfg)
        with engine.begin() as conn:
            row = conn.execute(
                sa.text("select role, street_code from users where name = 'clerk-0018'")
            ).one()
            assert tuple(row) == ("clerk", None)
            for role in ("commander", "grid_officer"):
                with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
                    add_user(conn, f"no-street-{role}", role)
            with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
                conn.execute(
                    sa.text(
                        "insert into users (name, role, street_code, password_hash)"
                        " values ('d', 'district', '110102001', 'x')"
                    )
                )
        # And back: 0018 again (no grid officer, no photos, clerks without a street), then up.
        migrate.downgrade(cfg, "0018")
        with engine.connect() as conn:
            assert conn.execute(sa.text("select to_regclass('case_photos')")).scalar() is None
            assert conn.execute(sa.text("select count(*) from users")).scalar_one() == 1
        migrate.upgrade(cfg)
        engine.dispose()
    finally:
        drop_database(server_url, name)


def _cli(url: str, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": url})


def test_users_add_and_bind_the_street_roles(committed_url: str) -> None:
    engine = make_engine(committed_url)
    try:
        for name, role in (("bind-clerk", "clerk"), ("bind-go", "grid_officer")):
            made = _cli(
                committed_url,
                "users",
                "add",
                name,
                "--role",
                role,
                "--street",
                COMMITTED_A,
                "--password",
                PASSWORD,
            )
            assert made.exit_code == 0, made.output
        for args, words in [
            (["--role", "clerk"], "--street"),
            (["--role", "grid_officer"], "--street"),
            (["--role", "district", "--street", COMMITTED_A], "--street"),
            (["--role", "clerk", "--street", "999999999"], "没有这个街道"),
        ]:
            result = _cli(committed_url, "users", "add", "bind-bad", *args, "--password", PASSWORD)
            assert result.exit_code == 2, (args, result.output)
            assert words in result.output, (args, result.output)
        listed = _cli(committed_url, "users", "list")
        lines = {x.split()[0]: x.split()[1:3] for x in listed.output.splitlines() if x.strip()}
        assert lines["bind-clerk"] == ["clerk", COMMITTED_A]
        assert lines["bind-go"] == ["grid_officer", COMMITTED_A]
        rows = json.loads(_cli(committed_url, "users", "list", "--json").output)
        assert {r["name"]: r["street_code"] for r in rows if r["name"].startswith("bind-")} == {
            "bind-clerk": COMMITTED_A,
            "bind-go": COMMITTED_A,
        }
        # An old, unbound clerk is bound with `users bind`; its sessions end.
        with engine.begin() as conn:
            add_user(conn, "bind-old", "clerk")
        bound = _cli(committed_url, "users", "bind", "bind-old", "--street", COMMITTED_B)
        assert bound.exit_code == 0, bound.output
        refused = _cli(committed_url, "users", "bind", "bind-old", "--street", "999999999")
        assert refused.exit_code == 2 and "没有这个街道" in refused.output
        with engine.begin() as conn:
            add_user(conn, "bind-analyst", "analyst")
        no_street = _cli(committed_url, "users", "bind", "bind-analyst", "--street", COMMITTED_A)
        assert no_street.exit_code == 2 and "analyst" in no_street.output
        with engine.connect() as conn:
            streets = dict(
                conn.execute(
                    sa.text("select name, street_code from users where name like 'bind-%'")
                ).all()
            )
        assert streets == {
            "bind-clerk": COMMITTED_A,
            "bind-go": COMMITTED_A,
            "bind-old": COMMITTED_B,
            "bind-analyst": None,
        }
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("delete from users where name like 'bind-%'"))
        engine.dispose()
