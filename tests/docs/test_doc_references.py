"""No dangling references (issue 17.7): the code cites the project's own docs/ pages, never
the design documents the repository does not contain (SEMANTICS.md, PROTOCOL.md,
ARCHITECTURE.md, API.md, STYLE.md, BENCHMARKS.md), and every docs/ page it cites exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "convection"
OUTSIDE_DOCS = re.compile(r"\b(SEMANTICS|PROTOCOL|ARCHITECTURE|API|STYLE|BENCHMARKS)\.md\b")
CITED_PAGE = re.compile(r"\bdocs/[A-Za-z0-9_/\-]+\.md\b")


def _sources() -> list[Path]:
    files = sorted([*SRC.rglob("*.py"), *SRC.rglob("*.html"), *SRC.rglob("*.js")])
    assert files
    return files


def test_code_cites_no_document_outside_the_repository() -> None:
    dangling = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _sources()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if OUTSIDE_DOCS.search(line) or "§" in line
    ]
    assert dangling == [], "cite a docs/ page instead:\n" + "\n".join(dangling)


def test_every_cited_docs_page_exists() -> None:
    missing = sorted(
        {
            f"{path.relative_to(ROOT)}: {page}"
            for path in [*_sources(), ROOT / "pyproject.toml", ROOT / "scripts" / "test"]
            for page in CITED_PAGE.findall(path.read_text())
            if not (ROOT / page).exists()
        }
    )
    assert missing == []


def test_the_internals_pages_are_linked_from_the_index() -> None:
    index = (ROOT / "docs" / "README.md").read_text()
    for page in sorted((ROOT / "docs" / "internals").glob("*.md")):
        if page.name == "helpers-brief.md":
            continue
        assert f"internals/{page.name}" in index, page.name
