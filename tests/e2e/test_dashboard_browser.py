"""The dashboard in a real browser: ``python -m convection serve`` (the ``fresh_server``
fixture), headless Chromium driven by playwright-core (``browser/dashboard.mjs``): enter the
admin key, see a table with its count and a document, run a function as admin, watch
function logs arrive.

Same harness as test_chat_browser.py: playwright-core comes from the chat example's
``web/node_modules`` (``npm ci`` there when missing; skipped without node) and Debian's
Chromium at /usr/bin/chromium (installed with apt-get when missing and possible, skipped
otherwise).
"""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import ServerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MODULES_DIR = ROOT / "examples" / "chat"  # its devDependencies include playwright-core
HARNESS = Path(__file__).resolve().parent / "browser" / "dashboard.mjs"

BROWSER_TIMEOUT_S = 90.0




def _node_with_playwright() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the browser test drives Chromium with playwright-core")
    if not (MODULES_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"node is installed but npm is not: cannot install {MODULES_DIR}")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=MODULES_DIR, capture_output=True, text=True, timeout=600, check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci failed in {MODULES_DIR}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return node


def test_the_dashboard_shows_tables_documents_and_runs_functions(fresh_server: ServerProcess, chromium: str) -> None:
    node = _node_with_playwright()
    fresh_server.call("mutation", "messages:send", {"body": "hello from the browser test", "author": "e2e"})
    answer = {"$integer": base64.b64encode(struct.pack("<q", 42)).decode()}
    fresh_server.call("mutation", "vals:put", {"key": "answer", "value": answer})

    done = subprocess.run(
        [node, str(HARNESS), str(MODULES_DIR), fresh_server.url, chromium, fresh_server.admin_key],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failure = next((e["fatal"] for e in events if "fatal" in e), None)
    assert failure is None and done.returncode == 0, (
        f"browser harness failed ({done.returncode}):\n{failure}\n{done.stderr[-4000:]}\n"
        f"server log:\n{fresh_server.log()[-4000:]}"
    )
    result = next(e["result"] for e in events if "result" in e)
    assert "convection admin-key" in result["hint"]
    assert result["messagesCount"] == "1"
    assert result["valsCount"] == "1"
    assert "hello from the browser test" in result["messageDoc"]
    assert 'author: "e2e"' in result["messageDoc"]
    assert "value: 42n" in result["valueDoc"]  # an int64, rendered readably
    assert "42n" in result["runResult"]
    assert "messages:list" in result["logEntry"] and "[LOG] listing messages" in result["logEntry"]
    assert result["consoleErrors"] == []
