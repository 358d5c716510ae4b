"""A port already in use is a clean error before the start banner (issue 17.3): through the
CLI entry point, ``convection serve`` on a port another socket listens on exits with status 1
and a message naming the port and ``--port``, not uvicorn's ``[Errno 98]`` after the banner."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from convection.server.ports import PortInUse, ensure_port_free

CHAT = Path(__file__).resolve().parents[2] / "examples" / "chat" / "convex"


@pytest.fixture
def busy_port() -> object:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_on_a_busy_port_is_one_clean_error(busy_port: int, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "convection", "serve", "--functions", str(CHAT),
         "--data", str(tmp_path / "data"), "--host", "127.0.0.1", "--port", str(busy_port),
         "--site-port", "0"],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )
    out = " ".join((done.stdout + done.stderr).split())  # rich wraps at the terminal width
    assert done.returncode == 1, out
    assert f"Port {busy_port} on 127.0.0.1 is already in use" in out
    assert f"--port {busy_port + 10}" in out
    assert "serving" not in out  # no banner
    assert "Errno" not in out and "Traceback" not in out


def test_the_check_names_the_option(busy_port: int) -> None:
    with pytest.raises(PortInUse) as info:
        ensure_port_free("127.0.0.1", busy_port, "--site-port")
    assert info.value.code == "PortInUse"
    assert "--site-port" in info.value.message


def test_a_free_port_passes() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ensure_port_free("127.0.0.1", port)
    ensure_port_free("127.0.0.1", 0)
