"""The managed cluster end to end, through the real console script, in a private var/ dir."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BD = str(Path(sys.executable).parent / "blockdata")


def _run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([BD, *args], env=env, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"blockdata {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
    return proc


def _psql(url: str, sql: str) -> str:
    proc = subprocess.run(["psql", url, "-Atc", sql], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    var = tmp_path_factory.mktemp("instance") / "var"
    var.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["BLOCKDATA_VAR"] = str(var)
    yield env
    _run(env, "db", "stop", check=False)
    if (var / "pg").exists():
        shutil.rmtree((var / "pg").resolve(), ignore_errors=True)


def test_cluster_lifecycle(cluster_env: dict[str, str]) -> None:
    env = cluster_env
    before = _run(env, "db", "status", check=False)
    assert before.returncode == 1
    assert json.loads(before.stdout)["initialized"] is False

    _run(env, "db", "start")
    status = json.loads(_run(env, "db", "status").stdout)
    assert status["running"] is True
    if os.geteuid() == 0:
        assert status["os_user"] != "root"
    url = _run(env, "db", "url").stdout.strip()
    assert url.startswith("postgresql://") and f":{status['port']}/" in url

    _run(env, "db", "upgrade", "head")
    version = _psql(url, "select postgis_version()")
    assert version.split()[0].startswith("3.")
    _psql(
        url,
        "insert into streets (code, name, geom) values ('110102001', '西长安街街道', "
        "ST_Multi(ST_MakeEnvelope(116.37, 39.90, 116.38, 39.91, 4326)))",
    )

    _run(env, "db", "stop")
    assert _run(env, "db", "status", check=False).returncode == 1
    _run(env, "db", "start")
    assert _psql(url, "select name from streets") == "西长安街街道"  # data survives stop/start

    _psql(url, "delete from streets")
    _run(env, "db", "downgrade", "base")
    assert _psql(url, "select count(*) from pg_tables where tablename = 'service_requests'") == "0"
    _run(env, "db", "upgrade", "head")
    assert _psql(url, "select count(*) from pg_tables where tablename = 'service_requests'") == "1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str | urllib.request.Request) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_serve_healthz_follows_the_database(cluster_env: dict[str, str], tmp_path: Path) -> None:
    env = cluster_env
    _run(env, "db", "start")
    _run(env, "db", "upgrade", "head")
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [BD, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    health = f"http://127.0.0.1:{port}/healthz"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _get(health)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        assert status == 200
        assert str(body["postgis"]).startswith("3.")
        # The server's connections log in as the web role, not as the owner.
        url = _run(env, "db", "url").stdout.strip()
        logins = _psql(
            url,
            "select string_agg(distinct usename, ',') from pg_stat_activity"
            " where application_name = 'blockdata'",
        )
        assert logins == "blockdata_web"

        _run(env, "db", "stop")
        status, body = _get(health)
        assert status == 503
        assert body["database"] == "down"
        # An endpoint that must read (a token to check): a JSON 503 asking to retry, not a 500.
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/layers", headers={"Authorization": "Bearer bd_x"}
        )
        for _ in range(3):  # each worker, whichever answers
            status, body = _get(request)
            assert (status, body["error"]) == (503, "service_unavailable"), body
        assert server.poll() is None  # the server stays up

        _run(env, "db", "start")
        status, body = _get(health)
        assert status == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_serve_refuses_without_a_web_login(cluster_env: dict[str, str]) -> None:
    """The web role's password is made by `db upgrade`: without it, no serving as the owner."""
    env = dict(cluster_env)
    web = Path(env["BLOCKDATA_VAR"]) / "web_role.json"
    kept = web.read_text()
    web.unlink()
    try:
        refused = _run(env, "serve", "--port", str(_free_port()), check=False)
        assert refused.returncode == 1
        assert "blockdata db upgrade" in refused.stderr
    finally:
        web.write_text(kept)


def test_make_clean_removes_the_clusters_data(cluster_env: dict[str, str]) -> None:
    """Last in this module: `make clean` deletes the cluster's files, under
    /var/lib/blockdata/<key> as root, besides var/."""
    env = cluster_env
    _run(env, "db", "start")
    var = Path(env["BLOCKDATA_VAR"])
    data = (var / "pg").resolve()
    if os.geteuid() == 0:
        assert data.parent == Path("/var/lib/blockdata")
    makefile = Path(__file__).resolve().parents[2] / "Makefile"
    proc = subprocess.run(
        ["make", "-s", "-f", str(makefile), "clean", f"BD={BD}", f"VENV={var.parent / 'no-venv'}"],
        cwd=var.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert not data.exists() and not var.exists()
