"""The project's own private PostgreSQL + PostGIS cluster under `var/pg/`.

Used only when DATABASE_URL is not set. PostgreSQL refuses to run as root, so when
we are root the server runs as an unprivileged system user (Debian's `postgres`, or
`blockdata` created on demand) and its files live in `/var/lib/blockdata/<key>/`,
which that user can reach; `var/pg` is then a symlink to it. A normal user owns
`var/pg/` directly. Clients connect over TCP on 127.0.0.1 with a generated password
(kept in `var/pgcluster.json`, mode 0600), so the URL works for psql and SQLAlchemy
alike, whoever runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import DEFAULT_TZ, Settings, check_tz

DB_NAME = "blockdata"
DB_USER = "blockdata"
SERVER_CONF = """
# Blockdata managed cluster
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockdir}'
max_connections = 100
shared_buffers = 1GB
work_mem = 64MB
maintenance_work_mem = 512MB
max_wal_size = 4GB
wal_level = minimal          # a private cluster: no replicas; bulk loads skip WAL
max_wal_senders = 0
checkpoint_timeout = 15min
wal_compression = on
jit = off
random_page_cost = 1.1
effective_cache_size = 8GB
timezone = '{tz}'
log_timezone = '{tz}'
"""


class ClusterError(RuntimeError):
    """The managed cluster cannot do what was asked; the message says what to do."""


def find_bindir(preferred: Path | None = None) -> Path:
    """The PostgreSQL bin directory: the configured one, else the newest with PostGIS."""
    if preferred is not None:
        if not (preferred / "initdb").exists():
            raise ClusterError(f"BLOCKDATA_PG_BINDIR has no initdb: {preferred}")
        return preferred
    found: list[tuple[int, bool, Path]] = []
    for candidate in Path("/usr/lib/postgresql").glob("*/bin"):
        name = candidate.parent.name
        if (candidate / "initdb").exists() and name.isdigit():
            postgis = Path(f"/usr/share/postgresql/{name}/extension/postgis.control").exists()
            found.append((int(name), postgis, candidate))
    if not found:
        raise ClusterError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: "
            "run `make setup` (as root) or set DATABASE_URL"
        )
    found.sort(key=lambda item: (item[1], item[0]), reverse=True)
    major, has_postgis, bindir = found[0]
    if not has_postgis:
        raise ClusterError(
            f"PostGIS is not installed for PostgreSQL {major}: run `make setup` as root "
            f"(apt-get install postgresql-{major}-postgis-3) or set DATABASE_URL"
        )
    return bindir


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int


def _server_user() -> OsUser | None:
    """The user the server runs as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "blockdata"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return OsUser(name, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "blockdata"],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam("blockdata")
    return OsUser("blockdata", entry.pw_uid, entry.pw_gid)


class Cluster:
    """A private cluster: `init`, `start`, `stop`, `status`, `url`."""

    def __init__(self, var_dir: Path, bindir: Path | None = None, tz: str = DEFAULT_TZ) -> None:
        self.var_dir = var_dir
        self._bindir = bindir
        self.tz = check_tz(tz)  # the default of sessions that set none (psql), and the log's
        self.link = var_dir / "pg"
        self.meta_path = var_dir / "pgcluster.json"
        self.key = hashlib.sha1(str(var_dir).encode()).hexdigest()[:12]

    @classmethod
    def from_settings(cls, settings: Settings) -> Cluster:
        return cls(settings.var_dir, settings.pg_bindir, settings.tz)

    @property
    def root(self) -> Path:
        return self.link.resolve()

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    def meta(self) -> dict[str, Any]:
        if not self.meta_path.exists():
            raise ClusterError(
                f"no managed cluster in {self.var_dir}: run `blockdata db start` "
                "(or set DATABASE_URL)"
            )
        data: dict[str, Any] = json.loads(self.meta_path.read_text())
        return data

    def url(self) -> str:
        meta = self.meta()
        return (
            f"postgresql://{meta['user']}:{meta['password']}@127.0.0.1:{meta['port']}"
            f"/{meta['database']}"
        )

    def initialized(self) -> bool:
        return self.meta_path.exists() and (self.datadir / "PG_VERSION").exists()

    def _run(self, args: list[str], user: OsUser | None, **kwargs: Any) -> str:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        kw: dict[str, Any] = {}
        if user is not None:
            kw = {"user": user.uid, "group": user.gid, "extra_groups": []}
            env["HOME"] = str(self.root)
        proc = subprocess.run(
            args, env=env, cwd=self.root, capture_output=True, text=True, **kw, **kwargs
        )
        if proc.returncode != 0:
            raise ClusterError(
                f"{Path(args[0]).name} failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        return proc.stdout

    def _prepare_root(self, user: OsUser | None) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        if user is None:
            if self.link.is_symlink():
                self.link.unlink()
            self.link.mkdir(exist_ok=True)
            self.link.chmod(0o700)
            return
        # Root: keep the files where the unprivileged server user can reach them.
        target = Path("/var/lib/blockdata") / self.key
        target.mkdir(parents=True, exist_ok=True)
        Path("/var/lib/blockdata").chmod(0o755)
        os.chown(target, user.uid, user.gid)
        target.chmod(0o700)
        if (self.link.is_symlink() or self.link.exists()) and self.link.resolve() != target:
            if self.link.is_dir() and not self.link.is_symlink():
                shutil.rmtree(self.link)
            else:
                self.link.unlink()
        if not self.link.exists():
            self.link.symlink_to(target)

    def _socket_dir(self) -> str:
        sockdir = self.root / "run"
        # The socket path (dir + "/.s.PGSQL.NNNNN") must fit in 107 bytes.
        return str(sockdir) if len(str(sockdir)) < 90 else ""

    def init(self) -> None:
        """initdb, configure, and record port and password. Idempotent."""
        if self.initialized():
            return
        bindir = find_bindir(self._bindir)
        user = _server_user()
        self._prepare_root(user)
        if (self.datadir / "PG_VERSION").exists():
            shutil.rmtree(self.datadir)  # a half-made cluster from an interrupted init
        password = secrets.token_urlsafe(18)
        pwfile = self.root / "initpw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        sockdir = self._socket_dir()
        if sockdir:
            Path(sockdir).mkdir(exist_ok=True)
        if user is not None:
            os.chown(pwfile, user.uid, user.gid)
            if sockdir:
                os.chown(sockdir, user.uid, user.gid)
        try:
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    DB_USER,
                    "--pwfile",
                    str(pwfile),
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-instructions",
                ],
                user,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        port = 20000 + int(self.key, 16) % 20000
        while not _port_free(port):
            port += 1
        conf = self.datadir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(SERVER_CONF.format(port=port, sockdir=sockdir, tz=self.tz))
        meta = {
            "port": port,
            "user": DB_USER,
            "password": password,
            "database": DB_NAME,
            "bindir": str(bindir),
            "datadir": str(self.datadir),
            "os_user": user.name if user else pwd.getpwuid(os.geteuid()).pw_name,
        }
        self.meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        self.meta_path.chmod(0o600)

    def _server_user_for(self) -> OsUser | None:
        if os.geteuid() != 0:
            return None
        stat = self.datadir.stat()
        return OsUser(pwd.getpwuid(stat.st_uid).pw_name, stat.st_uid, stat.st_gid)

    def running(self) -> bool:
        if not self.initialized():
            return False
        bindir = Path(self.meta()["bindir"])
        try:
            self._run(
                [str(bindir / "pg_ctl"), "status", "-D", str(self.datadir)], self._server_user_for()
            )
        except ClusterError:
            return False
        return True

    def start(self) -> None:
        """Start the server (initialising it first if needed) and make sure the database exists."""
        self.init()
        if not self.running():
            bindir = Path(self.meta()["bindir"])
            self._run(
                [
                    str(bindir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.logfile),
                ],
                self._server_user_for(),
            )
        self._ensure_database()

    def stop(self) -> None:
        if not self.running():
            return
        bindir = Path(self.meta()["bindir"])
        self._run(
            [str(bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.datadir)],
            self._server_user_for(),
        )

    def destroy(self) -> list[Path]:
        """Stop the server and delete its files: `var/pg` and, when it links there (root),
        this var/'s own directory `/var/lib/blockdata/<key>` — never another. The removed
        paths. A server that does not stop keeps its files (ClusterError)."""
        if self.initialized():
            self.stop()
        removed: list[Path] = []
        if self.link.is_symlink():
            target = self.link.resolve()
            if target == Path("/var/lib/blockdata") / self.key and target.is_dir():
                shutil.rmtree(target)
                removed.append(target)
            self.link.unlink()
            removed.append(self.link)
        elif self.link.is_dir():
            shutil.rmtree(self.link)
            removed.append(self.link)
        if self.meta_path.exists():
            self.meta_path.unlink()
            removed.append(self.meta_path)
        return removed

    def _ensure_database(self) -> None:
        import psycopg

        meta = self.meta()
        admin = re.sub(r"/[^/]+$", "/postgres", self.url())
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                    exists = conn.execute(
                        "select 1 from pg_database where datname = %s", (meta["database"],)
                    ).fetchone()
                    if not exists:
                        conn.execute(f'create database "{meta["database"]}"')
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def status(self) -> dict[str, Any]:
        info: dict[str, Any] = {"initialized": self.initialized(), "running": self.running()}
        if info["initialized"]:
            meta = self.meta()
            info.update(
                port=meta["port"],
                datadir=meta["datadir"],
                os_user=meta["os_user"],
                bindir=meta["bindir"],
                logfile=str(self.logfile),
            )
        return info
