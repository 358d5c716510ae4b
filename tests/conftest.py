"""Shared fixtures.

``postgres_url`` (session): a throwaway PostgreSQL server for the tests that run on the
PostgreSQL store. It is started from Debian's binaries (``/usr/lib/postgresql/<v>/bin``, or
``initdb`` on PATH) in a temp directory: ``initdb -A trust``, a free loopback port plus a unix
socket in that directory, fsync off (the data is thrown away), one database; stopped and
removed at the end of the session. PostgreSQL refuses to run as root, so under root the server
runs as the system user ``convection-test`` (created with ``useradd`` if missing). Set
``CONVECTION_TEST_POSTGRES_URL`` to use an existing server instead. Without binaries (and no
URL) the PostgreSQL tests are skipped, saying why.

``postgres_store_url``: a URL naming a fresh, empty PostgreSQL schema (``?schema=...``), so
every test gets its own store on the one server.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["s3_moto"]  # moto_s3 / s3_bucket: the S3 blob store on moto (tests/s3_moto.py)

POSTGRES_TEST_USER = "convection-test"
POSTGRES_TEST_DB = "convection_test"


@dataclass
class PostgresServer:
    """A running throwaway server; ``url`` connects over the unix socket."""

    url: str
    tcp_url: str
    data_dir: Path | None = None
    bin_dir: Path | None = None
    user: str | None = None

    def stop(self) -> None:
        if self.data_dir is None or self.bin_dir is None:
            return
        subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
            user=self.user,
            cwd=self.data_dir.parent,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def postgres_bin_dir() -> Path | None:
    """Where initdb/pg_ctl/postgres live, newest version first; None when not installed."""
    versions = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    versions.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    """The user to run PostgreSQL as: ourselves unless root, else a system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_TEST_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", POSTGRES_TEST_USER],
            check=True,
            capture_output=True,
        )
    return POSTGRES_TEST_USER


def start_postgres(bin_dir: Path) -> PostgresServer:
    """initdb + pg_ctl start in a fresh temp directory; returns once it accepts connections."""
    user = _server_user()
    base = Path(tempfile.mkdtemp(prefix="convection-pg-"))
    data_dir, socket_dir = base / "data", base
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    db_user = user or pwd.getpwuid(os.geteuid()).pw_name

    def run(*args: str) -> None:
        result = subprocess.run(
            list(args), user=user, cwd=base, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")

    port = _free_port()
    server = PostgresServer(
        url=f"postgresql://{db_user}@/{POSTGRES_TEST_DB}?host={socket_dir}&port={port}",
        tcp_url=f"postgres://{db_user}@127.0.0.1:{port}/{POSTGRES_TEST_DB}",
        data_dir=data_dir,
        bin_dir=bin_dir,
        user=user,
    )
    try:
        run(str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", db_user,
            "-E", "UTF8", "--no-sync", "--no-instructions")
        options = (
            f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        run(str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(base / "server.log"),
            "-o", options, "-w", "-t", "60", "start")
        run(str(bin_dir / "createdb"), "-h", str(socket_dir), "-p", str(port), "-U", db_user,
            POSTGRES_TEST_DB)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    external = os.environ.get("CONVECTION_TEST_POSTGRES_URL")
    if external:
        yield PostgresServer(url=external, tcp_url=external)
        return
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL binaries not found (/usr/lib/postgresql/*/bin/initdb or initdb on PATH); "
            "install postgresql (Debian: apt-get install postgresql) or set "
            "CONVECTION_TEST_POSTGRES_URL"
        )
    server = start_postgres(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url


def fresh_schema_url(url: str) -> str:
    """``url`` with a new, unused schema name (the store creates the schema)."""
    schema = "t_" + uuid.uuid4().hex[:16]
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


@pytest.fixture
def postgres_store_url(postgres_url: str) -> str:
    return fresh_schema_url(postgres_url)
