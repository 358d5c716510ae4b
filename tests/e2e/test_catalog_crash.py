"""Creating a table is part of the commit that first inserts into it: kill -9 the server at
random moments while mutations create new tables, restart, and every acknowledged insert is
readable (before the catalog moved into the log, a kill between its three separate writes left
tables whose documents were invisible forever)."""

from __future__ import annotations

import json
import random
import threading
import urllib.request

from conftest import ServerProcess

CYCLES = 20
WRITERS = 4


def post(url: str, kind: str, path: str, args: dict[str, object]) -> object:
    body = json.dumps({"path": path, "args": args, "format": "json"}).encode()
    req = urllib.request.Request(f"{url}/api/{kind}", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        out = json.loads(resp.read())
    assert out["status"] == "success", out
    return out["value"]


def test_kill_9_while_mutations_create_tables(fresh_server: ServerProcess) -> None:
    rng = random.Random(1234)
    acknowledged: dict[str, list[float]] = {}
    lock = threading.Lock()
    for cycle in range(CYCLES):
        stop = threading.Event()

        def writer(w: int, cycle: int = cycle, stop: threading.Event = stop) -> None:
            i = 0
            while not stop.is_set():
                table = f"c{cycle}_w{w}_t{i // 3}"  # a new table every third insert
                try:
                    post(fresh_server.url, "mutation", "dyn:insert", {"table": table, "n": i})
                except Exception:  # the server died mid-call: its outcome is unknown
                    return
                with lock:
                    acknowledged.setdefault(table, []).append(float(i))
                i += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        for t in threads:
            t.start()
        # let some inserts through, then kill at a random moment
        target = len(acknowledged) + rng.randint(1, 12)
        while len(acknowledged) < target and all(t.is_alive() for t in threads):
            threading.Event().wait(0.002)
        fresh_server.kill()
        stop.set()
        for t in threads:
            t.join(timeout=30)
        fresh_server.start()
    assert len(acknowledged) >= CYCLES
    for table, ns in acknowledged.items():
        got = post(fresh_server.url, "query", "dyn:read", {"table": table})
        assert isinstance(got, list)
        assert set(ns) <= set(got), (table, ns, got)
