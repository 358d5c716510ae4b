"""In-process fan-out micro benchmark: CPU per subscriber per update, without sockets.

    .venv/bin/python bench/fanout_inproc.py --n 1000 --rounds 20 [--profile out.prof]

Builds the real deployment (``open_deployment`` on bench/app/convex, a temporary SQLite
store) and N real :class:`SyncWorker`s whose ``send`` only counts frames, each subscribed to
``messages:top``; per round one insert, then the loop runs until every worker has sent the
Transition. Reports this process's CPU time (``time.process_time``) per subscriber per round:
everything the server does per subscriber except the socket write itself, and unaffected by
other processes' load (unlike wall time). ``--profile`` writes a cProfile of the rounds.
Also prints how many times a result was encoded for the wire (``QueryCache.encodes``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from convection.server.app import open_deployment
from convection.sync.worker import SyncWorker

APP = Path(__file__).resolve().parent / "app" / "convex"


async def run(n: int, rounds: int, profile: Path | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="convection-fanout-inproc-"))
    dep = open_deployment(APP, tmp / "data")
    app = dep.app if hasattr(dep, "app") else dep.application  # type: ignore[attr-defined]
    app._loop = asyncio.get_running_loop()
    target = [-1]
    seen = [0]
    done = asyncio.Event()

    async def send(text: str) -> None:
        if target[0] >= 0 and f'"value":{target[0]}'.encode() in text.encode():
            seen[0] += 1
            if seen[0] == n:
                done.set()

    async def close(code: int, reason: str) -> None:
        pass

    workers = []
    for _ in range(n):
        w = SyncWorker(app, send, close)
        w.start()
        await w.handle_text(orjson.dumps({"type": "Connect", "sessionId": str(uuid.uuid4()), "connectionCount": 0,
                                          "lastCloseReason": "InitialConnect", "clientTs": 0}).decode())
        await w.handle_text(orjson.dumps({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [
            {"type": "Add", "queryId": 0, "udfPath": "messages:top", "args": [{"channel": "fan"}]}]}).decode())
        workers.append(w)
    while sum(w.outbox.transitions_sent for w in workers) < n:
        await asyncio.sleep(0.01)
    prof = cProfile.Profile() if profile else None
    cpus = []
    encodes0 = getattr(app.cache, "encodes", 0)
    for r in range(rounds):
        seen[0] = 0
        done.clear()
        target[0] = r + 1
        c0 = time.process_time()
        if prof:
            prof.enable()
        await app.run_mutation("messages:send", {"channel": "fan", "n": r + 1, "body": "x"}, _anon())
        await asyncio.wait_for(done.wait(), 60)
        if prof:
            prof.disable()
        cpus.append(time.process_time() - c0)
    encodes = getattr(app.cache, "encodes", 0) - encodes0
    print(f"N={n}: CPU per round median {statistics.median(cpus) * 1000:.1f} ms, min {min(cpus) * 1000:.1f} ms "
          f"= {statistics.median(cpus) * 1e6 / n:.1f} us (min {min(cpus) * 1e6 / n:.1f}) per subscriber; "
          f"results encoded {encodes} times in {rounds} rounds")
    if prof:
        prof.dump_stats(str(profile))
    for w in workers:
        await w.aclose()


def _anon():  # type: ignore[no-untyped-def]
    from convection.application.interface import ANONYMOUS

    return ANONYMOUS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--profile", type=Path, default=None)
    a = ap.parse_args()
    asyncio.run(run(a.n, a.rounds, a.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
