"""The ``convex_en`` tokenizer of full-text search (docs/search.md).

Convex's analyzer is Tantivy's ``SimpleTokenizer`` (runs of alphanumeric characters; every
other character separates tokens) followed by ``RemoveLongFilter::limit(32)`` and
``LowerCaser``. No stemming, no stop words.

Two details follow Tantivy exactly rather than the one-line summary:

* the length limit counts UTF-8 *bytes* of the token as written (before lowercasing), and a
  token is dropped when it has ``MAX_TEXT_TERM_LENGTH_BYTES`` bytes **or more** (Tantivy keeps
  ``len < limit``): with the default 32, a 31-byte token is indexed, a 32-byte one is not;
* "alphanumeric" is Python's ``str.isalnum`` (what ``re``'s ``\\w`` matches, minus ``_``),
  which agrees with Rust's ``char::is_alphanumeric`` except for a few combining marks that
  Unicode classes as ``Other_Alphabetic``.

The same function tokenizes documents and queries, so both sides always agree.
"""

from __future__ import annotations

import re

from convection import knobs

_TOKEN = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """The terms of ``text`` in order (duplicates kept)."""
    limit = knobs.MAX_TEXT_TERM_LENGTH_BYTES
    out: list[str] = []
    for tok in _TOKEN.findall(text):
        # A str's UTF-8 length is at least its code-point count and at most 4x it.
        if len(tok) * 4 >= limit and len(tok.encode("utf-8", "surrogatepass")) >= limit:
            continue
        out.append(tok.lower())
    return out
