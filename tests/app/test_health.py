from __future__ import annotations

import socket

import sqlalchemy as sa

from app import create_app


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
