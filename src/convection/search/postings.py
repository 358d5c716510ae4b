"""The layout of a search index in the MVCC index log: postings and statistics entries.

A search index is an ``_index`` document of kind ``search`` (``fields``: the search field,
then the filter fields). Its entries, all under its index id, are (docs/internals/
derived-indexes.md):

* **postings, unfiltered** (slot 0): ``00 | enc(term) | P``
* **postings by filter field i** (slot i+1): ``i+1 | enc(value_i) | enc(term) | P | enc_key(filter values)``
* **document-frequency deltas**: ``F0 | enc(term) | ts:u64 | delta:i64``
* **corpus deltas**: ``F1 | ts:u64 | documents:i64 | tokens:i64``
* **compacted statistics** (search/compaction.py): ``F2 | enc(term) | C:u64 | df:i64`` and
  ``F3 | C:u64 | documents:i64 | tokens:i64``, the sums of every delta with ts <= C (at most
  one live per term / index at any snapshot)

where ``enc`` is the order-preserving value encoding (indexing/keys.py) and the posting
suffix ``P = (0xFFFF - tf):u16 | dl:u32 | ~bits(_creationTime):u64 | internal id (16 bytes)``.
Within one term of one slot, postings are therefore ordered by term frequency descending,
then document length ascending, then newest first, then id: for a fixed ``tf`` that is BM25
score order, and exactly the order of the synthetic result keys ``(-score, -_creationTime,
id)``. A search reads one key range per term (``enc(term)``'s range; a prefix term is the
range of every term starting with it) and merges the per-``tf`` runs.

Every document contributes one posting per distinct term per slot, written by the commit
that writes the document (``search/service.py``, ``SearchKind.commit_rows``); an update
tombstones the postings that changed. Statistics are deltas keyed by commit ts, so the
statistics *at a snapshot* are the sum of the deltas with ts <= snapshot: exact and
deterministic, summed incrementally by :class:`Statistics` (a per-process cache holding, per
term, the sum up to some ts and adding only newer deltas).
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from convection.database.transaction import field_value
from convection.indexing.keys import decode_key, encode_key, encode_value
from convection.search.tokenizer import tokenize

UNFILTERED: Final = 0
DF_SLOT: Final = 0xF0
CORPUS_SLOT: Final = 0xF1
DF_BASE_SLOT: Final = 0xF2  # compacted statistics: the sum of every delta up to a ts
CORPUS_BASE_SLOT: Final = 0xF3
MAX_TF: Final = 0xFFFF
MAX_DL: Final = 0xFFFFFFFF
ID_BYTES: Final = 16

_suffix = struct.Struct(">HIQ")
_SUFFIX_BYTES: Final = _suffix.size + ID_BYTES
_double = struct.Struct(">d")
_u64 = struct.Struct(">Q")
_delta = struct.Struct(">Qq")
_corpus = struct.Struct(">Qqq")
_ALL: Final = (1 << 64) - 1

# Counts calls of ``analyze`` (tests assert that a restart tokenizes nothing).
TOKENIZED = [0]


def _ct_bits(ct: float) -> int:
    (bits,) = _u64.unpack(_double.pack(ct))
    return int(_ALL - bits) if ct >= 0 else int(bits)  # creation times are positive


def _ct_from(bits: int) -> float:
    (ct,) = _double.unpack(_u64.pack(_ALL - bits))
    return float(ct)


@dataclass(frozen=True, slots=True)
class Analyzed:
    """What a search index holds of one document."""

    freqs: dict[str, int]
    length: int
    creation_time: float
    filters: tuple[Any, ...]  # the filter field values (MISSING when absent)

    def suffix(self, iid: bytes, term: str) -> bytes:
        tf = min(self.freqs[term], MAX_TF)
        return _suffix.pack(MAX_TF - tf, min(self.length, MAX_DL), _ct_bits(self.creation_time)) + iid


def analyze(fields: tuple[str, ...], doc: dict[str, Any]) -> Analyzed:
    """Tokenize ``doc`` for an index over ``fields`` (search field, then filter fields)."""
    TOKENIZED[0] += 1
    text = field_value(doc, fields[0])
    tokens = tokenize(text) if isinstance(text, str) else []
    return Analyzed(
        dict(Counter(tokens)), len(tokens), float(doc["_creationTime"]),
        tuple(field_value(doc, f) for f in fields[1:]),
    )


def term_prefix(slot: int, filter_value: bytes, term: str) -> bytes:
    """The key prefix of ``term`` 's postings in a slot (``filter_value``: the encoded filter
    value of slot > 0, empty for slot 0)."""
    return bytes((slot,)) + filter_value + encode_value(term)


def term_end(prefix: bytes) -> bytes:
    """The end of a :func:`term_prefix` range (the term encoding ends with 0x00; a longer term
    continues with a character byte > 0x01, tokens never contain NUL)."""
    return prefix[:-1] + b"\x01"


def prefix_range(slot: int, filter_value: bytes, prefix: str) -> tuple[bytes, bytes]:
    """The key range of the postings of every term starting with ``prefix``."""
    start = bytes((slot,)) + filter_value + encode_value(prefix)[:-1]
    return start, start[:-1] + bytes((start[-1] + 1,)) if start[-1] < 0xFF else start + b"\xff"


def term_of(key: bytes, start: int) -> tuple[str, int]:
    """The term whose encoding starts at ``key[start]`` and where its encoding ends."""
    end = key.index(0, start + 1)
    return key[start + 1 : end].decode("utf-8"), end + 1


def posting_keys(a: Analyzed, iid: bytes) -> list[bytes]:
    """Every posting key of one analyzed document (slot 0, then one slot per filter field)."""
    if not a.freqs:
        return []
    encoded = [bytes((i + 1,)) + encode_value(v) for i, v in enumerate(a.filters)]
    tail = encode_key(list(a.filters)) if a.filters else b""
    dl = min(a.length, MAX_DL)
    ctb = _ct_bits(a.creation_time)  # once per document (Analyzed.suffix does it per term)
    pack = _suffix.pack
    out: list[bytes] = []
    for term, tf in a.freqs.items():
        enc_term = encode_value(term)
        suffix = pack(MAX_TF - min(tf, MAX_TF), dl, ctb) + iid
        out.append(b"\x00" + enc_term + suffix)
        for head in encoded:
            out.append(head + enc_term + suffix + tail)
    return out


@dataclass(frozen=True, slots=True)
class Posting:
    """One decoded posting of a scanned term range."""

    tf: int
    length: int
    creation_time: float
    iid: bytes
    tail: bytes  # encoded filter values (filtered slots)


def decode_posting(key: bytes, offset: int) -> Posting:
    """The posting whose suffix starts at ``key[offset]``."""
    inv_tf, dl, ctb = _suffix.unpack_from(key, offset)
    j = offset + _suffix.size
    return Posting(MAX_TF - inv_tf, dl, _ct_from(ctb), key[j : j + ID_BYTES], key[j + ID_BYTES :])


def tail_matches(tail: bytes, conditions: tuple[tuple[int, bytes], ...]) -> bool:
    """Whether a filtered posting's filter values satisfy ``conditions`` ((pos, encoded))."""
    if not conditions:
        return True
    values = decode_key(tail)
    return all(encode_value(values[pos]) == enc for pos, enc in conditions)


def tf_bucket(prefix: bytes, tf: int) -> tuple[bytes, bytes]:
    """The key range of one term's postings with term frequency ``tf``."""
    inv = MAX_TF - tf
    start = prefix + struct.pack(">H", inv)
    return start, prefix + struct.pack(">H", inv + 1) if inv < MAX_TF else term_end(prefix)


# --- statistics ----------------------------------------------------------------------------------
def df_prefix(term: str) -> bytes:
    return bytes((DF_SLOT,)) + encode_value(term)


def df_key(term: str, ts: int, delta: int) -> bytes:
    return df_prefix(term) + _delta.pack(ts, delta)


def corpus_key(ts: int, documents: int, tokens: int) -> bytes:
    return bytes((CORPUS_SLOT,)) + _corpus.pack(ts, documents, tokens)


def df_base_prefix(term: str) -> bytes:
    return bytes((DF_BASE_SLOT,)) + encode_value(term)


def df_base_key(term: str, ts: int, total: int) -> bytes:
    return df_base_prefix(term) + _delta.pack(ts, total)


def corpus_base_key(ts: int, documents: int, tokens: int) -> bytes:
    return bytes((CORPUS_BASE_SLOT,)) + _corpus.pack(ts, documents, tokens)


def stat_ts_of(key: bytes) -> int:
    """The ts of a df delta or df base key (``F0``/``F2 | enc(term) | ts | value``)."""
    return int(_delta.unpack_from(key, len(key) - _delta.size)[0])


def corpus_ts_of(key: bytes) -> int:
    return int(_corpus.unpack_from(key, 1)[0])


def df_delta_of(key: bytes) -> int:
    return int(_delta.unpack_from(key, len(key) - _delta.size)[1])


def corpus_delta_of(key: bytes) -> tuple[int, int]:
    _, n, t = _corpus.unpack_from(key, 1)
    return int(n), int(t)


def ts_bound(prefix: bytes, ts: int) -> bytes:
    """The first statistics key of ``prefix`` with a ts greater than ``ts``."""
    return prefix + _u64.pack(ts + 1)


def suffix_offset(key: bytes) -> int:
    """Where the posting suffix starts in a slot-0 key (after the term)."""
    return term_of(key, 1)[1]


SUFFIX_BYTES = _SUFFIX_BYTES
