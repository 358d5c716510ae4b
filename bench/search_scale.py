"""X1: search at scale (shared/BENCHMARKS.md). Runs on its own::

    .venv/bin/python bench/search_scale.py                       # 10k and 100k documents
    .venv/bin/python bench/search_scale.py --docs 10000 --vectors 10000 --dims 768
    .venv/bin/python bench/search_scale.py --docs 1000000 --vectors 100000 --dims 768

For each size it loads, into a fresh SQLite data directory, N documents of 12 Zipf-distributed
words (a 50,000-word vocabulary) with a filter field (100 channels) in a table with a search
index, and V vectors of D dimensions (unit Gaussian, 10 kinds as filter field) in a table with
a vector index, in commits of 1,000 documents. Then it closes the database and, in a *fresh
process*, opens it again (catalog, search kind, vector kind: what a server does at start) and
measures the time until the first search answer, RSS, and p50/p99 of:

* a rare term (document frequency about 1-10), a common term (the most frequent word), a
  prefix (the first 3 letters of a frequent word, with a rare word before it), a filter (a
  common term with ``eq(channel)``): ``take(10)`` in a read-only transaction;
* vector search (limit 10), unfiltered and filtered, with recall@10 against exact search
  computed here with numpy.

Writes the table to stdout and appends it to bench/RESULTS-search.md. The machine is shared
and loaded: absolute numbers drift; compare within a run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

VOCAB = 50_000
WORDS_PER_DOC = 12
CHANNELS = 100
KINDS = 10


def vocabulary(seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < VOCAB:
        w = "".join(rng.choice(letters) for _ in range(rng.randint(3, 9)))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def schema_of(dims: int) -> Any:
    from convection import define_schema, define_table, v

    return define_schema({
        "posts": define_table({"body": v.string(), "channel": v.string()}).search_index(
            "search_body", search_field="body", filter_fields=["channel"]),
        "items": define_table({"embedding": v.array(v.float64()), "kind": v.string()}).vector_index(
            "by_embedding", vector_field="embedding", dimensions=dims, filter_fields=["kind"]),
    })


def open_db(data: Path, dims: int) -> tuple[Any, Any, Any]:
    from convection.database.database import Database
    from convection.persistence.sqlite import SqlitePersistence
    from convection.search import SearchKind
    from convection.vector import VectorKind

    db = Database(SqlitePersistence(str(data / "db.sqlite3")))
    db.set_schema(schema_of(dims))
    search = SearchKind.attach(db)
    vectors = VectorKind.attach(db, data / "indexes")
    return db, search, vectors


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(data: Path, docs: int, nvec: int, dims: int, clustered: bool) -> dict[str, Any]:
    import numpy as np

    words = vocabulary()
    weights = [1.0 / (i + 1) for i in range(VOCAB)]
    cum: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    rng = random.Random(2)
    db, _, vk = open_db(data, dims)
    t0 = time.perf_counter()
    batch = 1000
    for start in range(0, docs, batch):
        txn = db.begin()
        for _ in range(min(batch, docs - start)):
            body = " ".join(rng.choices(words, cum_weights=cum, k=WORDS_PER_DOC))
            txn.insert("posts", {"body": body, "channel": f"c{rng.randrange(CHANNELS)}"})
        db.commit(txn)
    text_s = time.perf_counter() - t0
    gen = np.random.default_rng(3)
    # Clustered vectors look like real embeddings (topics); i.i.d. Gaussian ones have no
    # structure at all and are the worst case of every graph index.
    centers = gen.standard_normal((100, dims))
    t0 = time.perf_counter()
    vbatch = 200
    for start in range(0, nvec, vbatch):
        txn = db.begin()
        block = gen.standard_normal((min(vbatch, nvec - start), dims))
        if clustered:
            block = centers[gen.integers(100, size=len(block))] + 0.5 * block
        for row in block:
            txn.insert("items", {"embedding": [float(x) for x in row], "kind": f"k{gen.integers(KINDS)}"})
        db.commit(txn)
    vk.save()  # apply everything queued and persist the graph
    vec_s = time.perf_counter() - t0
    db.close()
    return {"load_docs_per_s": docs / text_s if text_s else 0.0, "load_vectors_per_s": nvec / vec_s if vec_s else 0.0}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] * 1000


def measure(data: Path, dims: int, runs: int, clustered: bool) -> dict[str, Any]:
    """In a fresh process: open, first answer, RSS, latencies."""
    import numpy as np

    from convection.database.query import Query
    from convection.search import postings
    from convection.vector import ann

    words = vocabulary()
    t0 = time.perf_counter()
    db, _, vk = open_db(data, dims)
    opened = time.perf_counter() - t0
    txn = db.begin(read_only=True)
    first = Query(txn, "posts").with_search_index("search_body", lambda q: q.search("body", words[0])).take(10)
    first_s = time.perf_counter() - t0
    assert first, "no result"
    tokenized_at_start = postings.TOKENIZED[0]
    applied_at_start = ann.APPLIED[0]
    out: dict[str, Any] = {"open_s": opened, "first_answer_s": first_s, "rss_after_first_mb": rss_mb(),
                           "docs_tokenized_at_start": tokenized_at_start, "vectors_applied_at_start": applied_at_start}
    rng = random.Random(5)
    info = db.catalog.index("posts", "search_body")
    stats = db.text_search.statistics(info)
    ts = db.latest_ts()
    rare = [w for w in words[20000:20400] if 1 <= stats.df(w, ts) <= 10][:50] or words[-50:]

    def timed(build: Any) -> float:
        t = time.perf_counter()
        txn = db.begin(read_only=True)
        Query(txn, "posts").with_search_index("search_body", build).take(10)
        return time.perf_counter() - t

    cases = {
        "rare term": lambda: (lambda q, w=rng.choice(rare): q.search("body", w)),
        "common term": lambda: (lambda q: q.search("body", words[0])),
        "two common terms": lambda: (lambda q, w=words[rng.randrange(1, 5)]: q.search("body", f"{words[0]} {w}")),
        "prefix": lambda: (lambda q, r=rng.choice(rare), w=words[rng.randrange(1, 50)][:3]: q.search("body", f"{r} {w}")),
        "filter": lambda: (lambda q, c=f"c{rng.randrange(CHANNELS)}": q.search("body", words[0]).eq("channel", c)),
    }
    for name, make in cases.items():
        times = [timed(make()) for _ in range(runs)]
        out[f"{name} p50 ms"] = pct(times, 50)
        out[f"{name} p99 ms"] = pct(times, 99)
    # Vectors: exact reference over everything, with numpy.
    number = db.catalog.table_number("items")
    ids: list[bytes] = []
    mat: list[list[float]] = []
    kinds: list[str] = []
    from convection.values.json import loads_stored

    for rev in db.persistence.table_documents(number, db.latest_ts()):
        if rev.value is not None:
            d = loads_stored(rev.value)
            ids.append(d["_id"])
            mat.append(d["embedding"])
            kinds.append(d["kind"])
    m = np.asarray(mat, dtype=np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    del mat
    karr = np.asarray(kinds)
    gen = np.random.default_rng(9)
    for label, filt in (("vector", None), ("vector filtered", "k3")):
        times = []
        hits = 0
        for _ in range(runs):
            q = gen.standard_normal(dims)
            if clustered:
                q = m[gen.integers(len(ids))] + 0.02 * q  # near a stored vector, as real queries are
            t = time.perf_counter()
            kw: dict[str, Any] = {"vector": [float(x) for x in q], "limit": 10}
            if filt is not None:
                kw["filter"] = lambda b, f=filt: b.eq("kind", f)
            found = vk.search("items", "by_embedding", **kw)
            times.append(time.perf_counter() - t)
            qn = (q / np.linalg.norm(q)).astype(np.float32)
            scores = m @ qn
            if filt is not None:
                scores = np.where(karr == filt, scores, -np.inf)
            best = {ids[i] for i in np.argsort(-scores)[:10]}
            hits += len(best & {r["_id"] for r in found})
        out[f"{label} p50 ms"] = pct(times, 50)
        out[f"{label} p99 ms"] = pct(times, 99)
        out[f"{label} recall@10"] = hits / (10 * runs)
    out["rss_end_mb"] = rss_mb()
    db.close()
    return out


def knobs_exact() -> int:
    from convection import knobs

    return knobs.VECTOR_EXACT_MAX_COUNT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, action="append", help="document counts (repeatable)")
    ap.add_argument("--vectors", type=int, default=0, help="vectors per run (default: docs / 10)")
    ap.add_argument("--dims", type=int, default=768)
    ap.add_argument("--runs", type=int, default=100, help="queries per measured case")
    ap.add_argument("--phase", choices=["all", "measure"], default="all")
    ap.add_argument("--gaussian", action="store_true", help="i.i.d. Gaussian vectors (default: clustered)")
    ap.add_argument("--data", type=Path)
    args = ap.parse_args()
    if args.phase == "measure":
        print(json.dumps(measure(args.data, args.dims, args.runs, not args.gaussian)))
        return
    rows = []
    for docs in args.docs or [10_000, 100_000]:
        nvec = args.vectors or max(docs // 10, 1000)
        with tempfile.TemporaryDirectory(prefix="convection-x1-") as tmp:
            data = Path(tmp)
            print(f"== {docs} documents, {nvec} x {args.dims} vectors: loading", flush=True)
            loaded = load(data, docs, nvec, args.dims, not args.gaussian)
            print(f"   loaded: {loaded}", flush=True)
            proc = subprocess.run(
                [sys.executable, __file__, "--phase", "measure", "--data", str(data), "--dims", str(args.dims),
                 "--runs", str(args.runs), *(["--gaussian"] if args.gaussian else [])],
                capture_output=True, text=True, check=True,
            )
            measured = json.loads(proc.stdout.strip().splitlines()[-1])
            shape = "gaussian" if args.gaussian else "clustered"
            rows.append({"documents": docs, "vectors": f"{nvec} x {args.dims} {shape}", **loaded, **measured,
                         "exact below (VECTOR_EXACT_MAX_COUNT)": knobs_exact()})
            print(f"   measured: {measured}", flush=True)
    keys = list(rows[0])
    lines = [
        f"## X1 search at scale — {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        "shared with other jobs and loaded while this ran (absolute numbers drift). "
        "Queries are take(10) in read-only transactions, in-process; SQLite store.",
        "",
        "| figure | " + " | ".join(f"{r['documents']:,} docs" for r in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for k in keys[1:]:
        cells = []
        for r in rows:
            val = r.get(k)
            cells.append(f"{val:,.2f}" if isinstance(val, float) else f"{val}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(ROOT / "bench" / "RESULTS-search.md", "a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
