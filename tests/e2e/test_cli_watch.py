"""`convection run PATH --watch` against a real server: prints the result, then every change."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def _values(stream: Any, out: queue.Queue[Any]) -> None:
    """Parse the concatenated (indented) JSON documents the command prints."""
    decoder = json.JSONDecoder()
    buf = ""
    for line in iter(stream.readline, ""):
        buf += line
        while buf.strip():
            try:
                value, end = decoder.raw_decode(buf.lstrip())
            except json.JSONDecodeError:
                break
            out.put(value)
            buf = buf.lstrip()[end:]


def test_run_watch_prints_every_new_result(server: Any) -> None:
    server.call("mutation", "counter:increment", {"name": "watched"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "convection", "run", "counter:get", '{"name": "watched"}', "--watch", "--url", server.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    values: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=_values, args=(proc.stdout, values), daemon=True).start()
    try:
        assert values.get(timeout=30) == 1
        server.call("mutation", "counter:increment", {"name": "watched"})
        assert values.get(timeout=30) == 2
        server.call("mutation", "counter:increment", {"name": "watched"})
        assert values.get(timeout=30) == 3
    finally:
        proc.kill()
        proc.wait(timeout=10)
