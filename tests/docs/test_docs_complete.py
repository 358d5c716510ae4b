"""Docs stay complete: every knob, every CLI command and every error code is documented."""

from __future__ import annotations

import re
from pathlib import Path

from convection import knobs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _all_docs() -> str:
    return "\n".join(p.read_text() for p in DOCS.rglob("*.md"))


def test_every_knob_is_documented() -> None:
    text = (DOCS / "knobs.md").read_text()
    missing = [name for name in knobs.KNOBS if f"`{name}`" not in text]
    assert not missing, f"undocumented knobs (run scripts/gen_knobs_doc.py): {missing}"


def test_every_cli_command_is_documented() -> None:
    import typer.main

    from convection.cli.main import cli

    group = typer.main.get_command(cli)
    commands = sorted(getattr(group, "commands", {}))
    text = (DOCS / "cli.md").read_text()
    missing = [c for c in commands if f"convection {c}" not in text]
    assert commands and not missing, f"commands missing from docs/cli.md: {missing}"


def test_every_error_code_is_documented() -> None:
    src = ROOT / "src" / "convection"
    codes: set[str] = set()
    for path in src.rglob("*.py"):
        text = path.read_text()
        codes.update(re.findall(r'\bcode\s*=\s*"([A-Z][A-Za-z]+)"', text))
    documented = (DOCS / "errors.md").read_text()
    missing = sorted(c for c in codes if f"`{c}`" not in documented)
    assert not missing, f"error codes missing from docs/errors.md: {missing}"
