"""numpy and psycopg are optional extras (``convection[vector]``, ``convection[postgres]``):
an app without vector indexes runs without numpy (and never imports it), a SQLite deployment
never imports psycopg, and using either feature without its package fails with a message
naming the extra to install.

Each case runs in a fresh interpreter where the package is blocked (``sys.modules[name] =
None`` makes every import of it fail as if it were not installed)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAT = ROOT / "examples" / "chat" / "convex"
VECTOR_APP = ROOT / "tests" / "search" / "app" / "convex"


def _run(blocked: str, body: str) -> dict[str, object]:
    lines = [
        "import json, sys",
        f"sys.modules[{blocked!r}] = None",
        "out = {}",
        "try:",
        textwrap.indent(textwrap.dedent(body).strip("\n"), "    "),
        "except Exception as exc:",
        "    out['error'] = type(exc).__name__",
        "    out['code'] = getattr(exc, 'code', None)",
        "    out['message'] = str(exc)",
        f"out['loaded'] = sys.modules.get({blocked!r}, 'absent') is not None",
        "print(json.dumps(out))",
    ]
    script = "\n".join(lines)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_an_app_without_vector_indexes_runs_without_numpy() -> None:
    out = _run("numpy", f"""
        from convection.testing import TestBackend
        with TestBackend({str(CHAT)!r}) as backend:
            channel = backend.mutation("channels:create", {{"name": "general"}})
            out["channels"] = len(backend.query("channels:list", {{}}))
        """)
    assert out == {"channels": 1, "loaded": False}


def test_a_vector_index_without_numpy_names_the_extra() -> None:
    out = _run("numpy", f"""
        from convection.testing import TestBackend
        with TestBackend({str(VECTOR_APP)!r}) as backend:
            out["started"] = True
        """)
    assert out["code"] == "MissingExtra", out
    assert "pip install 'convection[vector]'" in str(out["message"])
    assert "numpy" in str(out["message"])


def test_postgres_without_psycopg_names_the_extra() -> None:
    out = _run("psycopg", """
        from convection.persistence import open_persistence
        open_persistence("postgres://user@127.0.0.1:1/db")
        """)
    assert out["code"] == "MissingExtra", out
    assert "pip install 'convection[postgres]'" in str(out["message"])


def test_a_sqlite_deployment_never_imports_psycopg() -> None:
    out = _run("psycopg", f"""
        from convection.testing import TestBackend
        with TestBackend({str(CHAT)!r}) as backend:
            out["channels"] = len(backend.query("channels:list", {{}}))
        """)
    assert out == {"channels": 0, "loaded": False}


def test_serving_an_app_without_vector_indexes_does_not_import_numpy() -> None:
    out = _run("not_a_module", f"""
        from convection.testing import TestBackend
        with TestBackend({str(CHAT)!r}) as backend:
            backend.query("channels:list", {{}})
        out["numpy"] = "numpy" in sys.modules
        out["psycopg"] = "psycopg" in sys.modules
        """)
    assert out == {"numpy": False, "psycopg": False, "loaded": False}
