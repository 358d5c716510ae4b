"""The dashboard in a real browser: ``python -m convection serve`` (the ``fresh_server``
fixture) and headless Chromium driven by playwright-core (``browser/dashboard.mjs``), which
goes through every page as a user would and prints what it saw; this test asserts on it:

* login (a wrong key refused, the right one opens the dashboard);
* the grid: paging, sort by an index, filter by a field;
* insert, inline edit and delete, and an edit that breaks the schema refused with its message;
* a second tab updating live (the dashboard is a client of the sync protocol);
* files: upload, preview, download link and delete (``/files`` is a page, not a 404);
* the call log showing a failing mutation with its error, filtered by status and path;
* the schema with its indexes, running a function;
* an export and an import of a ZIP snapshot;
* the layout at 420 px (no clipped navigation or Sign-out) and keyboard use.

With ``DASHBOARD_SCREENSHOTS=<dir>`` the harness also saves a screenshot of each page there
(``scripts/dashboard_screenshots.sh`` refreshes ``docs/images/dashboard-*.png`` that way).

Same harness as test_chat_browser.py: playwright-core comes from the chat example's
``web/node_modules`` (``npm ci`` there when missing; skipped without node) and Debian's
Chromium at /usr/bin/chromium (installed with apt-get when missing and possible, skipped
otherwise).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import NodeScript, ServerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MODULES_DIR = ROOT / "examples" / "chat" / "web"  # its devDependencies include playwright-core
HARNESS = Path(__file__).resolve().parent / "browser" / "dashboard.mjs"

BROWSER_TIMEOUT_S = 240.0


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


def _admin_call(server: ServerProcess, path: str, args: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        server.url + "/api/function",
        data=json.dumps({"path": path, "args": args, "format": "convex_encoded_json"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Convex {server.admin_key}"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())
    assert out["status"] == "success", out
    return out["value"]


def _seed(server: ServerProcess) -> None:
    server.call("mutation", "messages:send", {"body": "hello from the browser test", "author": "e2e"})
    server.call("mutation", "messages:send", {"body": "the dashboard is live", "author": "ada"})
    answer = {"$integer": base64.b64encode(struct.pack("<q", 42)).decode()}
    server.call("mutation", "vals:put", {"key": "answer", "value": answer})
    for i in range(30):  # 30 counters c00..c29 with n = i: three pages of ten
        _admin_call(server, "_system/frontend:insert", {"table": "counters", "document": {"name": f"c{i:02d}", "n": float(i)}})


def test_the_dashboard_in_a_browser(fresh_server: ServerProcess, chromium: str, tmp_path: Path) -> None:
    node = _node_with_playwright()
    _seed(fresh_server)
    shots = os.environ.get("DASHBOARD_SCREENSHOTS")
    argv = [node, str(HARNESS), str(MODULES_DIR), fresh_server.url, chromium, fresh_server.admin_key, str(tmp_path)]
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        argv.append(str(Path(shots).resolve()))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    fatal = next((e for e in events if "fatal" in e), None)
    phases = [e["phase"] for e in events if "phase" in e]
    assert fatal is None and done.returncode == 0, (
        f"browser harness failed ({done.returncode}) in phase {phases[-1:]}:\n{fatal}\n{done.stderr[-4000:]}\n"
        f"server log:\n{fresh_server.log()[-4000:]}"
    )
    r = next(e["result"] for e in events if "result" in e)

    # Login.
    assert "convection admin-key" in r["hint"]
    assert (r["messagesCount"], r["valsCount"]) == ("2", "1")

    # The grid: pages of ten, newest first; sort by the by_name index; a filter on n.
    assert r["page1Rows"] == 10
    assert r["page1Names"] == [f"c{i:02d}" for i in range(29, 19, -1)]
    assert r["page2Names"] == [f"c{i:02d}" for i in range(19, 9, -1)]
    assert r["sortedAsc"][:3] == ["c00", "c01", "c02"]
    assert r["sortedDesc"][:3] == ["c29", "c28", "c27"]
    assert r["filteredNs"] == [25, 26, 27, 28, 29]
    assert r["filterChip"].startswith("n ≥ 25")

    # Insert, inline edit, Escape, a schema-breaking edit refused with its message, delete.
    assert r["editedBody"] == "edited inline" and r["escapeKept"] == "edited inline"
    assert "does not match the schema" in r["schemaError"] and "Path: .body" in r["schemaError"]
    assert "Validator: v.string()" in r["schemaError"]
    assert r["afterRefused"] == "edited inline"  # nothing was written
    assert r["deleted"]

    # A second tab: the new document and the count arrive without a reload, in both tabs.
    before, second, first = r["liveCounts"]
    assert second == before + 1 and first == second
    assert r["liveInfo"].startswith(f"{before + 1} documents")

    # Files.
    assert r["filesStatus"] == 200
    assert "image/png" in r["fileRow"] and "gradient" not in r["fileRow"]
    assert r["previewWidth"] == 120
    assert r["downloadStatus"] == 200
    assert r["fileDeleted"]

    # The call log: the failing mutation with its error; filters.
    assert "mutation" in r["failureEntry"] and "✖ failure" in r["failureEntry"]
    assert "ValueError: nope" in r["failureEntry"]
    assert r["filteredStatuses"] == ["failure"]

    # Schema and functions.
    assert "by_name" in r["schemaCounters"] and "ready" in r["schemaCounters"]
    assert "30 documents" in r["schemaCounters"]
    assert "validation enforced" in r["schemaState"]
    assert "42n" in r["runResult"]
    assert "messages:send" in r["scheduled"] and "pending" in r["scheduled"]
    assert "GREETING" in r["env"] and "hello" in r["env"]

    # Export, then import (replace) takes back the write made after the export.
    assert r["zipName"].startswith("snapshot_") and r["zipName"].endswith(".zip")
    assert r["exportStatus"].startswith("Exported")
    assert r["importStatus"].startswith("Imported")
    assert r["importProgress"][0] == r["importProgress"][1]
    assert sorted(r["afterImportBodies"]) == sorted(r["beforeExportBodies"])
    assert "after the export" not in r["afterImportBodies"]

    # 420 px: every page button and Sign out inside the viewport, no horizontal scrolling.
    for box in r["narrowBoxes"]:
        assert box["left"] >= 0 and box["right"] <= 420 and box["width"] > 0 and box["height"] > 0, box
    assert r["pageWidth"] <= 420, r.get("overflowing")
    assert r["afterSignOutFocus"] == "Data"

    assert r["consoleErrors"] == []


def test_the_dashboard_reconnects_after_a_server_restart(fresh_server: ServerProcess, chromium: str) -> None:
    """The page's sync client reconnects by itself (the server was killed and started again on
    the same port and data) and the grid is live again, without a reload."""
    node = _node_with_playwright()
    fresh_server.call("mutation", "messages:send", {"body": "before the restart"})
    script = NodeScript(node, "../browser/dashboard_reconnect.mjs", fresh_server.url,
                        {"modulesDir": str(MODULES_DIR), "chromium": chromium, "adminKey": fresh_server.admin_key})
    try:
        script.wait_for("phase", timeout=BROWSER_TIMEOUT_S)
        fresh_server.restart()
        script.send("restarted")
        result = script.finish(timeout=BROWSER_TIMEOUT_S)
    finally:
        script.kill()
    assert result == {"status": "live", "count": "2", "errors": []}
