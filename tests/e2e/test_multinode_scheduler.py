"""Two ``convection serve`` nodes on one PostgreSQL (issue 13): exactly once across nodes.

* The scheduler runs on the node holding the ``scheduler`` lease. The holder is killed with
  SIGKILL in the middle of a schedule (one run under way, others due later); the other node
  takes the lease over within a lease period and runs the rest: the counter ends equal to the
  number of jobs scheduled, every job ``success``.
* A mutation sent with (sessionId, requestId) to one node and re-sent after the client
  reconnected to the other node is answered from ``_mutation_results`` without running again.

Each node has a data directory of its own (the owner lock is per directory) and the same
``--db``. Waiting is polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import APP_DIR, free_port
from test_e2e_protocol_errors import RawClient, mutation

pytestmark = pytest.mark.e2e

SCHED_APP = Path(__file__).parent / "sched_app" / "convex"
LEASE_MS = 3000
DEADLINE_S = 90.0
POLL_S = 0.05


def wait_until(what: str, check: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL_S)


class Node:
    """One ``convection serve --db <postgres>`` process with a data directory of its own."""

    def __init__(
        self, tmp: Path, name: str, db_url: str | None, functions: Path, spin_s: float = 0.0,
        extra_args: list[str] | None = None,
    ) -> None:
        self.name = name
        self.data = tmp / f"data-{name}"
        self.marker = tmp / f"runs-{name}.txt"  # one line per scheduled run started here
        self.logs = tmp / f"server-{name}.log"
        self.db_url = db_url
        self.functions = functions
        self.spin_s = spin_s
        self.extra_args = list(extra_args or [])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(
            os.environ,
            SCHED_MARKER=str(self.marker),
            SCHED_SPIN_S=str(self.spin_s),
            CONVECTION_SCHEDULER_LEASE_MS=str(LEASE_MS),
            PYTHONUNBUFFERED="1",
        )
        with self.logs.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "convection", "serve", "--functions", str(self.functions),
                 "--data", str(self.data), *(["--db", self.db_url] if self.db_url else []),
                 *self.extra_args, "--host", "127.0.0.1",
                 "--port", str(self.port), "--site-port", str(free_port())],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )
        wait_until(f"node {self.name} to listen", self._up)

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"node {self.name} exited: {self.logs.read_text()[-4000:]}")
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
def nodes(tmp_path: Path, postgres_store_url: str) -> Iterator[Callable[[Path, float], list[Node]]]:
    """Starts nodes ``a`` and ``b`` serving ``functions`` on one fresh PostgreSQL schema."""
    started: list[Node] = []

    def make(functions: Path, spin_s: float) -> list[Node]:
        for name in ("a", "b"):
            node = Node(tmp_path, name, postgres_store_url, functions, spin_s)
            node.start()
            started.append(node)
        return started

    yield make
    for node in started:
        node.stop()
        if node.logs.exists():
            print(f"--- node {node.name} log (tail) ---\n{node.logs.read_text()[-3000:]}")


def test_scheduled_functions_run_exactly_once_across_a_lease_failover(nodes: Callable[[Path, float], list[Node]]) -> None:
    a, b = nodes(SCHED_APP, 1.0)  # each run takes about a second before it commits
    # Jobs due over the next few seconds, scheduled through both nodes.
    jobs = [a.call("mutation", "counter:schedule_increment", {"delayMs": 300 * i}) for i in range(5)]
    jobs += [b.call("mutation", "counter:schedule_increment", {"delayMs": 1500 + 300 * i}) for i in range(5)]

    # Exactly one node runs them: the lease holder. Kill it with -9 while a run is under way.
    wait_until("a first run to start", lambda: a.runs_started() + b.runs_started() >= 1)
    holder, other = (a, b) if a.runs_started() else (b, a)
    assert other.runs_started() == 0
    holder.kill()

    # The other node takes the lease over within a lease period and runs what is left.
    wait_until("every job to finish on the surviving node",
               lambda: all(other.call("query", "counter:job_state", {"id": j}) == "success" for j in jobs))
    assert other.call("query", "counter:get") == len(jobs)  # none twice, none lost
    assert other.runs_started() >= 1
    # Runs cut short by the kill started again on the new holder; each committed once.
    assert holder.runs_started() + other.runs_started() >= len(jobs)


def test_an_idempotent_mutation_resent_to_another_node_is_not_run_again(nodes: Callable[[Path, float], list[Node]]) -> None:
    a, b = nodes(APP_DIR, 0.0)
    session = str(uuid.uuid4())
    name = f"multinode-{session}"
    with RawClient(a.url, session_id=session) as first:
        first.hello()
        first.send(mutation(3, "counter:increment", {"name": name}))
        original = first.recv_type("MutationResponse")
        assert original["success"] is True and original["result"] == 1
    # The client reconnects, this time through node b, and re-sends the same request.
    with RawClient(b.url, session_id=session) as second:
        second.hello()
        second.send(mutation(3, "counter:increment", {"name": name}))
        resent = second.recv_type("MutationResponse")
        assert resent["success"] is True
        assert resent["result"] == 1
        assert resent["ts"] == original["ts"]
        second.send(mutation(4, "counter:increment", {"name": name}))
        assert second.recv_type("MutationResponse")["result"] == 2
    assert a.call("query", "counter:get", {"name": name}) == 2
    assert b.call("query", "counter:get", {"name": name}) == 2


def test_workers_on_sqlite_run_each_scheduled_function_once(tmp_path: Path) -> None:
    """``serve --workers 2`` on SQLite: two processes, one lease; every job runs once."""
    node = Node(tmp_path, "w", None, SCHED_APP, extra_args=["--workers", "2"])
    node.start()
    try:
        jobs = [node.call("mutation", "counter:schedule_increment", {"delayMs": 100 * i}) for i in range(10)]
        wait_until("every job to finish",
                   lambda: all(node.call("query", "counter:job_state", {"id": j}) == "success" for j in jobs))
        assert node.call("query", "counter:get") == len(jobs)
        assert node.runs_started() == len(jobs)  # no run started twice (no crash here)
    finally:
        node.stop()
