"""``convection dev`` prints the call log: one line per function call, a failure with its
message and user frames, each call followed by its log lines (the real CLI in a subprocess)."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

NOTES = '''
from convection import mutation

@mutation
def add(ctx, text):
    print("adding", text)
    return ctx.db.insert("notes", {"text": text})

@mutation
def boom(ctx):
    raise ValueError("the boom went off")
'''

DEADLINE_S = 60.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, path: str) -> dict[str, object]:
    args = {"text": "hi"} if path.endswith("add") else {}
    req = urllib.request.Request(
        url + "/api/mutation", data=json.dumps({"path": path, "args": args, "format": "json"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        out: dict[str, object] = json.loads(resp.read())
        return out


def test_dev_prints_one_line_per_call(tmp_path: Path) -> None:
    folder = tmp_path / "convex"
    folder.mkdir()
    (folder / "notes.py").write_text(textwrap.dedent(NOTES))
    port = _port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "convection", "dev", "--functions", str(folder), "--data", str(tmp_path / "data"),
         "--port", str(port), "--site-port", str(_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()

    def wait_for(text: str) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                assert proc.poll() is None, "".join(seen)
                continue
            seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {DEADLINE_S}s:\n{''.join(seen)}")

    try:
        wait_for("serving")
        deadline = time.monotonic() + DEADLINE_S
        while True:  # the port answers once uvicorn is up
            try:
                assert _post(url, "notes:add")["status"] == "success"
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "".join(seen)
                time.sleep(0.1)
        ok = wait_for("notes:add")
        assert " M notes:add " in ok and ok.rstrip().endswith("ok")
        assert "[LOG] adding hi" in wait_for("[LOG]")
        assert _post(url, "notes:boom")["status"] == "error"
        failed = wait_for("notes:boom")
        assert "failed: Uncaught ValueError: the boom went off" in failed
        assert "notes.py" in wait_for("at boom")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
