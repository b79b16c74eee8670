from __future__ import annotations

import socket
import threading
import time

import sqlalchemy as sa

from app import create_app
from app.db import make_engine


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthz_reports_postgis_and_schema(client, connection: sa.Connection) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    expected = connection.exec_driver_sql("select postgis_lib_version()").scalar_one()
    assert body["status"] == "ok"
    assert body["database"] == "up"
    assert body["postgis"] == expected
    revision = connection.exec_driver_sql("select version_num from alembic_version").scalar_one()
    assert body["schema_revision"] == revision


def test_healthz_503_json_when_database_unreachable() -> None:
    url = f"postgresql://nobody:x@127.0.0.1:{_closed_port()}/nothing"
    app = create_app({"TESTING": True, "DATABASE_URL": url})
    client = app.test_client()
    for _ in range(2):  # the app keeps answering, request after request
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.is_json
        body = response.get_json()
        assert body["database"] == "down"
        assert "Traceback" not in response.get_data(as_text=True)


def test_unknown_path_is_a_chinese_page_or_json_404(client) -> None:
    page = client.get("/no/such/page")  # a browser's: a page in Chinese with a way back
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "页面不存在" in page.get_data(as_text=True)
    for response in (
        client.get("/api/no/such/thing"),
        client.get("/no/such/page", headers={"Accept": "application/json"}),
    ):
        assert response.status_code == 404
        assert response.get_json()["error"] == "not_found"


def _waiting_for_service_requests(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "select exists (select 1 from pg_locks where not granted "
                    "and relation = 'service_requests'::regclass)"
                )
            ).scalar()
        )


def test_healthz_503_while_a_lock_blocks_the_readers(database_url: str) -> None:
    """A load holding service_requests, then a load queued behind a long reader: both hold
    up every new reader, and /healthz says so with the table's name; after them, ok."""
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "HEALTH_LOCK_WAIT": 0})
    client = app.test_client()
    engine = make_engine(database_url)
    try:
        with engine.connect() as load:
            load.execute(sa.text("lock table service_requests in access exclusive mode"))
            response = client.get("/healthz")
            assert response.status_code == 503
            body = response.get_json()
            assert body["database"] == "blocked" and "service_requests" in body["probe"]
            assert "Traceback" not in response.get_data(as_text=True)
            load.rollback()

        reader = engine.connect().execution_options(isolation_level="REPEATABLE READ")
        reader.execute(sa.text("select count(*) from service_requests"))
        waiter = engine.connect()
        done = threading.Event()

        def queued_load() -> None:
            waiter.execute(sa.text("lock table service_requests in access exclusive mode"))
            waiter.rollback()
            done.set()

        thread = threading.Thread(target=queued_load, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not _waiting_for_service_requests(engine):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        response = client.get("/healthz")
        body = response.get_json()
        assert response.status_code == 503 and body["database"] == "blocked"
        assert body["waiting_sessions"] >= 1 and "service_requests" in body["tables"]
        reader.commit()
        reader.close()
        thread.join(timeout=60)
        assert done.is_set()
        waiter.close()
        assert client.get("/healthz").status_code == 200
    finally:
        engine.dispose()
        app.extensions["blockdata.engine"].dispose()
