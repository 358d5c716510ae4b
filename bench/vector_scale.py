"""X1 (vectors): vector search at scale on embedding-like data. Runs on its own::

    .venv/bin/python bench/vector_scale.py --n 100000            # 100k x 768
    .venv/bin/python bench/vector_scale.py --n 20000 --n 50000    # several sizes

**Data.** i.i.d. Gaussian vectors have no neighbourhood structure and say nothing about ANN
recall on real embeddings, so the vectors here come from a Gaussian mixture shaped like
sentence embeddings: ``CLUSTERS`` (300) topics with Zipf-like weights; a vector is
``mean + center[k] + scale[k] * (basis[k] @ g) + 0.15 * noise``, normalized to unit length,
where ``mean`` is a direction shared by every vector (real embeddings are anisotropic:
unrelated texts have cosine ~0.2), ``center[k]`` a random unit direction, ``scale[k]`` the
topic's own spread (0.5-1.2), ``basis[k]`` a random 24-dimensional subspace of the topic
(embeddings have a low intrinsic dimension), ``g`` and ``noise`` standard Gaussian (noise per
dimension, scaled to norm ~0.15). Nearest neighbours then have cosine ~0.8-0.9 and unrelated
vectors ~0.2, as with real text embeddings. Queries are *fresh* draws from the same mixture
(not stored vectors). Each document also has a filter field ``kind`` (5 values, uniform).

**Load.** N documents ``{"embedding": [768 floats], "kind": "k3"}`` are inserted in-process
through the engine (Database + schema validation + SQLite store + the vector kind's durable
hook), in commits of 500, into a table with a vector index (filter field ``kind``); then the
graph is saved, as at close.

**Measure, in a fresh process** (what a server does at start): open the data directory
(Database, schema, ``VectorKind.attach``: load the saved graph, catch up from the log) and
answer the first vector search: the time to that answer and RSS after it. Then ``--runs``
searches (limit 10) unfiltered and filtered (``eq("kind", "k2")``, ~20% of the documents,
above ``VECTOR_EXACT_MAX_COUNT`` from 50k documents, so through the graph): p50/p99, and
recall@10 against exact search (numpy brute force over the same vectors, filtered the same
way; the stored vectors are read from a side file the loader wrote, after RSS is taken).

Writes the table to stdout and appends it to bench/RESULTS-search.md (``--no-append``: do
not). The machine is shared and loaded: absolute numbers drift; compare within a run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CLUSTERS = 300
SUBSPACE = 24
KINDS = 5
BATCH = 500
FILTER_KIND = "k2"


class Mixture:
    """The embedding-like Gaussian mixture of the module docstring (deterministic by seed)."""

    def __init__(self, dims: int, seed: int = 7) -> None:
        import numpy as np

        g = np.random.default_rng(seed)
        self.dims = dims
        mean = g.standard_normal(dims)
        self.mean = 0.5 * mean / np.linalg.norm(mean)
        centers = g.standard_normal((CLUSTERS, dims))
        self.centers = centers / np.linalg.norm(centers, axis=1, keepdims=True)
        self.scales = g.uniform(0.5, 1.2, CLUSTERS)
        bases = g.standard_normal((CLUSTERS, dims, SUBSPACE))
        self.bases, _ = np.linalg.qr(bases)  # orthonormal columns, per cluster
        weights = 1.0 / (np.arange(CLUSTERS) + 1.0) ** 0.8
        self.weights = weights / weights.sum()

    def sample(self, n: int, rng: Any) -> Any:
        import numpy as np

        k = rng.choice(CLUSTERS, size=n, p=self.weights)
        coef = rng.standard_normal((n, SUBSPACE)) / np.sqrt(SUBSPACE)
        inner = np.einsum("ndr,nr->nd", self.bases[k], coef)
        noise = rng.standard_normal((n, self.dims)) * (0.15 / np.sqrt(self.dims))
        x = self.mean + self.centers[k] + self.scales[k, None] * inner + noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x


def schema_of(dims: int) -> Any:
    from convection import define_schema, define_table, v

    return define_schema({
        "items": define_table({"embedding": v.array(v.float64()), "kind": v.string()}).vector_index(
            "by_embedding", vector_field="embedding", dimensions=dims, filter_fields=["kind"]),
    })


def open_db(data: Path, dims: int) -> tuple[Any, Any]:
    from convection.database.database import Database
    from convection.persistence.sqlite import SqlitePersistence
    from convection.vector import VectorKind

    db = Database(SqlitePersistence(str(data / "db.sqlite3")))
    db.set_schema(schema_of(dims))
    return db, VectorKind.attach(db, data / "indexes")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def load(data: Path, n: int, dims: int) -> dict[str, Any]:
    import numpy as np

    mix = Mixture(dims)
    rng = np.random.default_rng(11)
    db, vk = open_db(data, dims)
    stored = np.empty((n, dims), dtype=np.float32)
    kinds: list[str] = []
    ids: list[str] = []
    gen_s = 0.0
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        g0 = time.perf_counter()
        block = mix.sample(min(BATCH, n - start), rng)
        rows = block.tolist()
        block_kinds = [f"k{int(x)}" for x in rng.integers(KINDS, size=len(rows))]
        gen_s += time.perf_counter() - g0
        txn = db.begin()
        for row, kind in zip(rows, block_kinds, strict=True):
            ids.append(txn.insert("items", {"embedding": row, "kind": kind}))
        db.commit(txn)
        stored[start:start + len(rows)] = block
        kinds.extend(block_kinds)
        if (start // BATCH) % 20 == 0:
            done = start + len(rows)
            el = time.perf_counter() - t0 - gen_s
            print(f"   {done:,} / {n:,} committed, {done / el:,.0f} vectors/s", flush=True)
    committed = time.perf_counter() - t0 - gen_s
    vk.save()  # apply everything queued to the graph and persist it
    total = time.perf_counter() - t0 - gen_s
    db.close()
    np.save(data / "reference.npy", stored)
    (data / "reference.json").write_text(json.dumps({"ids": ids, "kinds": kinds}))
    return {"load_vectors_per_s": n / total, "commits_vectors_per_s": n / committed,
            "load_s": total}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] * 1000


def measure(data: Path, dims: int, runs: int) -> dict[str, Any]:
    """In a fresh process: open, first answer, RSS, latencies, recall."""
    import numpy as np

    mix = Mixture(dims)
    qrng = np.random.default_rng(99)
    queries = mix.sample(2 * runs + 1, qrng).astype(np.float32)
    t0 = time.perf_counter()
    db, vk = open_db(data, dims)
    opened = time.perf_counter() - t0
    first = vk.search("items", "by_embedding", vector=queries[-1].tolist(), limit=10)
    first_s = time.perf_counter() - t0
    assert len(first) == 10, first
    out: dict[str, Any] = {"open_s": opened, "first_answer_s": first_s, "rss_after_first_mb": rss_mb()}
    ref = np.load(data / "reference.npy")
    meta = json.loads((data / "reference.json").read_text())
    ids = np.asarray(meta["ids"])
    allowed = np.asarray(meta["kinds"]) == FILTER_KIND
    for j, (label, filt) in enumerate((("vector", None), ("vector filtered", FILTER_KIND))):
        times: list[float] = []
        hits = 0
        for q in queries[j * runs:(j + 1) * runs]:
            kw: dict[str, Any] = {"vector": q.tolist(), "limit": 10}
            if filt is not None:
                kw["filter"] = lambda b, f=filt: b.eq("kind", f)
            t = time.perf_counter()
            found = vk.search("items", "by_embedding", **kw)
            times.append(time.perf_counter() - t)
            scores = ref @ q
            if filt is not None:
                scores = np.where(allowed, scores, -np.inf)
            best = set(ids[np.argpartition(-scores, 10)[:10]].tolist())
            hits += len(best & {r["_id"] for r in found})
        out[f"{label} p50 ms"] = pct(times, 50)
        out[f"{label} p99 ms"] = pct(times, 99)
        out[f"{label} recall@10"] = hits / (10 * runs)
    out["filtered candidates"] = int(allowed.sum())
    db.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, action="append", help="vector counts (repeatable; default 100000)")
    ap.add_argument("--dims", type=int, default=768)
    ap.add_argument("--runs", type=int, default=200, help="queries per measured case")
    ap.add_argument("--phase", choices=["all", "measure"], default="all")
    ap.add_argument("--data", type=Path)
    ap.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS-search.md")
    args = ap.parse_args()
    if args.phase == "measure":
        print(json.dumps(measure(args.data, args.dims, args.runs)))
        return
    from convection import knobs
    from convection.vector import ann

    rows = []
    for n in args.n or [100_000]:
        with tempfile.TemporaryDirectory(prefix="convection-x1v-") as tmp:
            data = Path(tmp)
            print(f"== {n:,} x {args.dims} vectors: loading", flush=True)
            loaded = load(data, n, args.dims)
            print(f"   loaded: {loaded}", flush=True)
            proc = subprocess.run(
                [sys.executable, __file__, "--phase", "measure", "--data", str(data), "--dims", str(args.dims),
                 "--runs", str(args.runs)],
                capture_output=True, text=True, check=True,
            )
            measured = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"   measured: {measured}", flush=True)
            rows.append({"n": n, **loaded, **measured})
    cmd = "bench/vector_scale.py " + " ".join(a for a in sys.argv[1:] if a != "--no-append")
    lines = [
        f"## X1 vectors at scale (bench/vector_scale.py) — {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`.venv/bin/python {cmd.strip()}`. Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; shared with other jobs (absolute numbers drift). "
        f"{args.dims}-dimension unit vectors from a {CLUSTERS}-cluster Gaussian mixture (see the "
        f"script's docstring); {args.runs} fresh queries per case, limit 10, in-process; SQLite "
        f"store; HNSW m={ann.CONNECTIVITY}, expansion_add={ann.EXPANSION_ADD}, "
        f"VECTOR_EXPANSION_SEARCH_COUNT={knobs.VECTOR_EXPANSION_SEARCH_COUNT}, "
        f"VECTOR_EXACT_MAX_COUNT={knobs.VECTOR_EXACT_MAX_COUNT}.",
        "",
        "| figure | " + " | ".join(f"{r['n']:,} x {args.dims}" for r in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for k in list(rows[0])[1:]:
        digits = 4 if "recall" in k else 2
        cells = [f"{r[k]:,.{digits}f}" if isinstance(r[k], float) else f"{r[k]:,}" for r in rows]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_append:
        with open(ROOT / "bench" / "RESULTS-search.md", "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
