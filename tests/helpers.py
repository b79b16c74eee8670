"""Plain helpers shared by test modules (fixtures live in conftest.py and tests/plugins/)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import psycopg
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from app.auth import new_token
from app.db import make_engine
from layers.accounts import api_tokens

OPEN311 = "/open311/v2"


def add_user(
    conn: sa.Connection,
    name: str,
    role: str = "district",
    street: str | None = None,
    unit: str | None = None,
) -> int:
    """A user in the test transaction (password: 'secret-password'); a department user's
    `unit` must exist (see `add_unit`)."""
    from app.auth import hash_password
    from layers.accounts import users

    return int(
        conn.execute(
            sa.insert(users)
            .values(
                name=name,
                role=role,
                street_code=street,
                unit_code=unit,
                password_hash=hash_password("secret-password"),
            )
            .returning(users.c.id)
        ).scalar_one()
    )


DEPARTMENT_UNIT = "district-testdept"


def add_unit(conn: sa.Connection, code: str = DEPARTMENT_UNIT, active: bool = True) -> str:
    """A district department (区级部门) `code`, unless it exists: a department user's unit."""
    from sqlalchemy.dialects.postgresql import insert

    from layers.units import units

    conn.execute(
        insert(units)
        .values(code=code, name=f"测试单位 {code}", kind="district_department", active=active)
        .on_conflict_do_nothing()
    )
    return code


def login(client: FlaskClient, user_id: int) -> FlaskClient:
    """Log `client` in as `user_id`: a session row (in the test's transaction, or committed
    when the app has its own engine: then DATABASE_URL is the owner's) and its cookie."""
    from app.auth import SESSION_KEY, new_session_id
    from layers.accounts import sessions

    config = client.application.config
    clock = config.get("AUTH_CLOCK")
    now = clock() if clock is not None else dt.datetime.now(dt.UTC)
    sid, digest = new_session_id()
    row = {"sid_sha256": digest, "user_id": user_id, "created_at": now, "last_seen_at": now}
    shared = config.get("DB_CONNECTION")
    if shared is not None:
        shared.execute(sa.insert(sessions).values(**row))
    else:
        owner = make_engine(config["DATABASE_URL"], poolclass=sa.pool.NullPool)
        with owner.begin() as conn:
            conn.execute(sa.insert(sessions).values(**row))
        owner.dispose()
    with client.session_transaction() as sess:
        sess[SESSION_KEY] = sid
    return client


def request_ids(conn: sa.Connection, where: str = "true", **params: Any) -> list[int]:
    return list(
        conn.execute(
            sa.text(f"select id from service_requests where {where} order by id"), params
        ).scalars()
    )


def json_error(client: FlaskClient, url: str, status: int = 400) -> str:
    response = client.get(url)
    assert response.status_code == status, (url, response.get_data(as_text=True)[:300])
    assert response.is_json
    body = response.get_json()
    assert "Traceback" not in response.get_data(as_text=True)
    return str(body["message"])


def get(client: FlaskClient, path: str, **params: Any) -> tuple[int, Any]:
    response = client.get(path + ("?" + urlencode(params) if params else ""))
    assert response.is_json, response.get_data(as_text=True)[:200]
    assert "Traceback" not in response.get_data(as_text=True)
    return response.status_code, response.get_json()


def ok(client: FlaskClient, path: str, **params: Any) -> Any:
    status, body = get(client, path, **params)
    assert status == 200, body
    return body


def token(connection: sa.Connection, role: str, street: str | None = None) -> str:
    """An API token of a new user in `role`."""
    uid = add_user(connection, f"o311-{role}-{street}", role, street)
    value, digest = new_token()
    connection.execute(sa.insert(api_tokens).values(user_id=uid, token_sha256=digest))
    return value


def call(
    client: FlaskClient, method: str, path: str, *, json: Any = None, **params: Any
) -> tuple[int, Any, Any]:
    """(status, JSON body, headers); GET parameters go in the query, POST ones in the form."""
    url = OPEN311 + path
    if method == "GET":
        response = client.get(url + ("?" + urlencode(params) if params else ""))
    elif json is not None:
        response = client.post(url + ("?" + urlencode(params) if params else ""), json=json)
    else:
        response = client.post(url, data=params)
    text = response.get_data(as_text=True)
    assert response.is_json, text[:200]
    assert "Traceback" not in text
    return response.status_code, response.get_json(), response.headers


# CREATE DATABASE copies template1 and fails while another session uses it — such as another
# pytest-xdist worker's CREATE DATABASE at the same moment: the workers take turns.
CREATE_LOCK = 0x626C6B64  # an advisory lock key of the test server ("blkd")


def new_database(server_url: str, name: str) -> str:
    """A new, empty database `name` on the test server (dropped first if a killed run left
    it); its URL. The caller migrates it and drops it (`drop_database`)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute("select pg_advisory_lock(%s)", (CREATE_LOCK,))
        try:
            conn.execute(f'create database "{name}"')
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (CREATE_LOCK,))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def grid_of(conn: sa.Connection, lng: float, lat: float) -> tuple[str, str, str]:
    """(grid, community, street) of the grid containing the point, by PostGIS."""
    row = conn.execute(
        sa.text(
            "select code, community_code, street_code from grids"
            " where ST_Contains(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
        ),
        {"x": lng, "y": lat},
    ).one()
    return row[0], row[1], row[2]


def post_request(client: FlaskClient, key: str, point: tuple[float, float], **more: str) -> Any:
    """An Open311 POST of a 环境卫生 request at `point` with the token `key`."""
    return call(
        client,
        "POST",
        "/requests.json",
        api_key=key,
        service_code="环境卫生",
        long=str(point[0]),
        lat=str(point[1]),
        description="楼道堆放杂物",
        **more,
    )


def clocked_app(connection: sa.Connection, clock: Any) -> Any:
    """The app on the test's connection (rolled back with it), its clock injected."""
    from app import create_app
    from app.config import from_env

    return create_app(
        {"TESTING": True, "DB_CONNECTION": connection, "WTF_CSRF_ENABLED": False},
        settings=from_env().with_(clock=clock),
    )
