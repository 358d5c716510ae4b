"""A fan-out micro benchmark: the server's CPU per update delivered to N raw sockets.

    .venv/bin/python bench/fanout_micro.py --n 1000 --rounds 10

Starts ``convection serve`` (bench/app/convex), opens N raw sync WebSockets from this process
(one asyncio loop, the ``websockets`` client: cheaper per socket than the npm client), each
subscribed to ``messages:top({channel})``; then, per round, inserts one message over HTTP and
waits until every socket has received the Transition carrying it. Reports the median wall
time to the last delivery and, more robust on a shared machine, the server's CPU time per
round (utime + stime from /proc) divided by N: the per-subscriber cost of one update.

Not part of ``run.py`` (no reference system); it is the tool behind PROFILES.md's fan-out
numbers. Nothing here is a timed assertion of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from harness import PROCS, VENV_BIN, Convection, cpu_seconds, log, rss_mb, summarize_profile


async def _client(url: str, channel: str, ready: asyncio.Event, counts: list[int], seen: dict[int, float],
                  idx: int, target: list[int]) -> Any:
    from websockets.asyncio.client import connect

    ws = await connect(url, max_size=None, open_timeout=60)
    await ws.send(json.dumps({"type": "Connect", "sessionId": str(uuid.uuid4()), "connectionCount": 0,
                              "lastCloseReason": "InitialConnect", "clientTs": 0}))
    await ws.send(json.dumps({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [
        {"type": "Add", "queryId": 0, "udfPath": "messages:top", "args": [{"channel": channel}]}]}))

    async def reader() -> None:
        async for text in ws:
            msg = json.loads(text)
            if msg.get("type") != "Transition":
                continue
            for mod in msg["modifications"]:
                if mod.get("type") == "QueryUpdated":
                    value = mod["value"]
                    if counts[idx] == 0:
                        counts[idx] = 1
                        ready.set()
                    if value == target[0]:
                        seen[idx] = time.perf_counter()

    return ws, asyncio.get_running_loop().create_task(reader())


async def fanout(base_url: str, pid: int, n: int, rounds: int, profile: Path | None = None) -> tuple[list[float], list[float]]:
    """N raw sockets on ``messages:top``; per round one insert over HTTP. Returns the wall
    times to the last delivery (ms) and the server's CPU per round (ms)."""
    import httpx

    http = httpx.Client(base_url=base_url, timeout=60)

    def insert(k: int) -> None:
        http.post("/api/mutation", json={"path": "messages:send", "args": {"channel": channel, "n": k, "body": "x"},
                                         "format": "json"}).raise_for_status()

    url = base_url.replace("http://", "ws://") + "/api/1.48.0/sync"
    channel = f"fan-{uuid.uuid4().hex[:8]}"
    counts = [0] * n
    seen: dict[int, float] = {}
    target = [-1]
    ready = asyncio.Event()
    clients = []
    for i in range(n):
        clients.append(await _client(url, channel, ready, counts, seen, i, target))
    deadline = time.time() + 120
    while sum(counts) < n and time.time() < deadline:
        await asyncio.sleep(0.05)
    log(f"{sum(counts)} of {n} sockets subscribed; server RSS {rss_mb(pid):.0f} MB")
    walls, cpus = [], []
    spy = None
    if profile:
        spy = PROCS.start([str(VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--rate", "500",
                           "--nonblocking", "--format", "raw", "--output", str(profile)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(1)
    for r in range(rounds):
        seen.clear()
        target[0] = r + 1
        c0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        await asyncio.to_thread(insert, r + 1)
        deadline = time.time() + 60
        while len(seen) < n and time.time() < deadline:
            await asyncio.sleep(0.002)
        walls.append((max(seen.values()) - t0) * 1000 if seen else float("nan"))
        await asyncio.sleep(0.2)  # let the server go idle before reading its CPU
        cpus.append((cpu_seconds(pid) - c0) * 1000)
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT only
        spy.wait(60)
        log(summarize_profile(profile, top=25))  # type: ignore[arg-type]
    for ws, task in clients:
        task.cancel()
        await ws.close()
    return walls, cpus


def report(n: int, walls: list[float], cpus: list[float]) -> str:
    return (f"N={n}: last delivery median {statistics.median(walls):.1f} ms (rounds {[round(w) for w in walls]}); "
            f"server CPU per round median {statistics.median(cpus):.1f} ms = "
            f"{statistics.median(cpus) * 1000 / n:.1f} us per subscriber")


async def main_async(a: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="convection-fanout-"))
    cvx = Convection(tmp, "fanout")
    cvx.start()
    try:
        walls, cpus = await fanout(cvx.url, cvx.pid, a.n, a.rounds, a.profile)
        log(report(a.n, walls, cpus))
    finally:
        cvx.stop()
        PROCS.stop_all()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--profile", type=Path, default=None, help="py-spy the server into this raw file")
    asyncio.run(main_async(ap.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
