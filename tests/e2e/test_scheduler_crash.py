"""Scheduled mutations run exactly once across a crash (SIGKILL) of the server.

Each test runs ``python -m convection serve`` on a temporary data directory with the app in
``sched_app/convex``, kills it with SIGKILL at a chosen moment and restarts it on the same
data directory. Waiting is polling with a deadline (a real process on a real clock), never a
fixed sleep standing in for a condition.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "sched_app" / "convex"
DEADLINE_S = 60.0
POLL_S = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, check: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL_S)


class Server:
    """One ``convection serve`` process over a fixed data directory (restartable)."""

    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "data"
        self.marker = tmp / "runs.txt"
        self.logs = tmp / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, spin_s: float = 0.0) -> None:
        env = dict(os.environ, SCHED_MARKER=str(self.marker), SCHED_SPIN_S=str(spin_s))
        with self.logs.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "convection", "serve", "--functions", str(APP),
                 "--data", str(self.data), "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        wait_until("the server to listen", self._up)

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited: {self.logs.read_text()}")
        try:
            return httpx.get(self.url + "/version", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def call(self, kind: str, path: str, args: dict[str, Any] | None = None) -> Any:
        r = httpx.post(
            f"{self.url}/api/{kind}", json={"path": path, "args": args or {}, "format": "json"}, timeout=30
        )
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        return body["value"]

    def runs_started(self) -> int:
        return len(self.marker.read_text().splitlines()) if self.marker.exists() else 0


@pytest.fixture
def sched_server(tmp_path: Path) -> Iterator[Server]:
    """A restartable server of this module's own (not conftest's shared ``server``)."""
    srv = Server(tmp_path)
    yield srv
    srv.stop()


def test_killed_before_the_due_time_runs_after_restart_once(sched_server: Server) -> None:
    server = sched_server
    server.start()
    job = server.call("mutation", "counter:schedule_increment", {"delayMs": 1500})
    server.kill()  # the job is committed, not yet due
    assert server.runs_started() == 0

    server.start()
    wait_until("the job to run after the restart", lambda: server.call("query", "counter:get") == 1)
    assert server.call("query", "counter:job_state", {"id": job}) == "success"
    assert server.runs_started() == 1

    # Once more: a restart never re-runs a finished job. A new job run after the restart
    # proves the executor has been through its queue.
    server.kill()
    server.start()
    second = server.call("mutation", "counter:schedule_increment", {"delayMs": 0})
    wait_until("the second job", lambda: server.call("query", "counter:job_state", {"id": second}) == "success")
    assert server.call("query", "counter:get") == 2
    assert server.runs_started() == 2


def test_killed_during_the_run_the_effect_happens_exactly_once(sched_server: Server) -> None:
    server = sched_server
    server.start(spin_s=10)  # the mutation starts, then sleeps before writing
    job = server.call("mutation", "counter:schedule_increment", {"delayMs": 0})
    wait_until("the run to start", lambda: server.runs_started() == 1)
    server.kill()  # mid-run: the mutation's transaction never committed

    server.start(spin_s=0)
    wait_until("the job to run again", lambda: server.call("query", "counter:get") == 1)
    assert server.call("query", "counter:job_state", {"id": job}) == "success"
    assert server.runs_started() == 2  # started twice, committed once
    assert server.call("query", "counter:get") == 1
