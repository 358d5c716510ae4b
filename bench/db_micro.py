"""Single-process database micro-benchmarks (issue: transactional database).

Reports, side by side in one run:
* inserts/s through convection transactions (one insert per transaction; sequential, and from
  8 threads so group commit batches them) vs raw SQLite inserts/s in the same process with the
  same durability settings (WAL, synchronous=NORMAL, one transaction per insert, a document
  table plus one secondary index);
* index point-read latency (``db.get`` and a unique ``with_index`` eq lookup) at 10k and at a
  larger size (default 1M documents; ``--big N`` to change).

Usage: ``.venv/bin/python bench/db_micro.py [--n 5000] [--big 1000000]``
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

from convection.database import Database
from convection.persistence.sqlite import SqlitePersistence
from convection.schema.schema import define_schema, define_table
from convection.schema.validators import v

SCHEMA = define_schema({"docs": define_table({"n": v.number(), "body": v.string()}).index("by_n", ["n"])})


def raw_sqlite_inserts(path: Path, n: int) -> float:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE docs (id BLOB PRIMARY KEY, ts INTEGER, json TEXT) WITHOUT ROWID")
    con.execute("CREATE TABLE idx (k BLOB, ts INTEGER, id BLOB, PRIMARY KEY (k, ts)) WITHOUT ROWID")
    t0 = time.perf_counter()
    for i in range(n):
        doc_id = os.urandom(16)
        con.execute("BEGIN")
        con.execute("INSERT INTO docs VALUES (?, ?, ?)", (doc_id, i, f'{{"n": {i}.0, "body": "hello world"}}'))
        con.execute("INSERT INTO idx VALUES (?, ?, ?)", (i.to_bytes(8, "big") + doc_id, i, doc_id))
        con.execute("COMMIT")
    dt = time.perf_counter() - t0
    con.close()
    return n / dt


def open_db(path: Path) -> Database:
    db = Database(SqlitePersistence(path), secret=b"bench")
    db.set_schema(SCHEMA)
    return db


def convection_inserts(path: Path, n: int, threads: int) -> float:
    db = open_db(path)
    per = n // threads

    def work() -> None:
        for i in range(per):
            t = db.begin()
            t.insert("docs", {"n": i, "body": "hello world"})
            db.commit(t)

    t0 = time.perf_counter()
    ths = [threading.Thread(target=work) for _ in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    dt = time.perf_counter() - t0
    db.close()
    return per * threads / dt


def fill(db: Database, n: int) -> list[str]:
    ids: list[str] = []
    batch = 5000
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        t = db.begin()
        for i in range(start, min(n, start + batch)):
            ids.append(t.insert("docs", {"n": i, "body": "hello world"}))
        db.commit(t)
        if start and start % 100_000 == 0:
            print(f"  filled {start} docs ({time.perf_counter() - t0:.0f}s)", flush=True)
    return ids


def point_reads(db: Database, ids: list[str], samples: int = 2000) -> tuple[float, float]:
    import random

    rng = random.Random(1)
    get_lat = []
    idx_lat = []
    for _ in range(samples):
        i = rng.randrange(len(ids))
        t = db.begin(read_only=True)
        t0 = time.perf_counter()
        t.get(ids[i])
        get_lat.append(time.perf_counter() - t0)
        t = db.begin(read_only=True)
        t0 = time.perf_counter()
        db.query(t, "docs").with_index("by_n", lambda q, i=i: q.eq("n", i)).unique()
        idx_lat.append(time.perf_counter() - t0)
    return statistics.median(get_lat) * 1e6, statistics.median(idx_lat) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--big", type=int, default=1_000_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        raw = raw_sqlite_inserts(base / "raw.sqlite3", a.n)
        seq = convection_inserts(base / "c1.sqlite3", a.n, 1)
        par = convection_inserts(base / "c8.sqlite3", a.n, 8)
        print(f"raw SQLite inserts/s (1 per txn):         {raw:10.0f}")
        print(f"convection inserts/s, sequential:         {seq:10.0f}  ratio {seq / raw:.2f}")
        print(f"convection inserts/s, 8 threads:          {par:10.0f}  ratio {par / raw:.2f}")
        for size in (10_000, a.big):
            db = open_db(base / f"reads{size}.sqlite3")
            t0 = time.perf_counter()
            ids = fill(db, size)
            fill_s = time.perf_counter() - t0
            g, ix = point_reads(db, ids)
            print(f"{size:>9} docs: fill {fill_s:.1f}s ({size / fill_s:.0f}/s in 5000-doc txns); "
                  f"db.get p50 {g:.0f} µs; index eq unique() p50 {ix:.0f} µs")
            db.close()


if __name__ == "__main__":
    main()
