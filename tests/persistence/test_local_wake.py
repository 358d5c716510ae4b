"""Processes sharing a SQLite file wake each other after a commit (persistence/local_wake.py),
so a process does not have to poll to see another's commit soon. Two handles in one test
process stand for two processes: each has its own socket and registration."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from convection import knobs
from convection.database import Database
from convection.persistence import local_wake
from convection.persistence.base import DocumentRevision
from convection.persistence.local_wake import LocalWake
from convection.persistence.sqlite import SqlitePersistence

pytestmark = pytest.mark.skipif(not local_wake.supported(), reason="abstract Unix sockets are Linux-only")


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite3"


def _revision(ts: int) -> DocumentRevision:
    return DocumentRevision(ts=ts, table=10_001, id=ts.to_bytes(16, "big"), value=b"{}")


def test_a_commit_in_one_process_wakes_the_other(db_file: Path) -> None:
    a, b = SqlitePersistence(db_file), SqlitePersistence(db_file)
    try:
        woken = threading.Event()
        assert a.watch_commits(woken.set)
        b.write([_revision(1)], [])
        assert woken.wait(10), "a was not woken by b's commit"
        assert a.others_may_have_committed()
        # A process is not woken by its own commits.
        woken.clear()
        a.write([_revision(2)], [])
        assert not woken.wait(0.3)
    finally:
        a.close()
        b.close()


def test_every_watching_process_is_woken(db_file: Path) -> None:
    handles = [SqlitePersistence(db_file) for _ in range(3)]
    writer = SqlitePersistence(db_file)
    try:
        events = [threading.Event() for _ in handles]
        for h, e in zip(handles, events, strict=True):
            assert h.watch_commits(e.set)
        with writer.commit_session() as session:
            session.write([_revision(1)], [], [])
        for i, e in enumerate(events):
            assert e.wait(10), f"watcher {i} was not woken"
    finally:
        for h in [*handles, writer]:
            h.close()


def test_a_dead_process_registration_is_removed(db_file: Path) -> None:
    wake_dir = Path(f"{db_file}-wake")
    wake_dir.mkdir()
    (wake_dir / "999999999-deadbeef0000").touch()  # no socket of that name exists
    sender = LocalWake(db_file)
    try:
        sender.notify()
        assert not (wake_dir / "999999999-deadbeef0000").exists()
        assert sender.sent == 0
    finally:
        sender.close()


def test_a_closed_process_unregisters_and_its_thread_ends(db_file: Path) -> None:
    w = LocalWake(db_file)
    assert w.start(lambda: None)
    assert (Path(f"{db_file}-wake") / w.token).exists()
    w.close()
    assert not (Path(f"{db_file}-wake") / w.token).exists()
    assert not any(t.name == "convection-local-wake" and t.is_alive() for t in threading.enumerate() if t is w._thread)


def test_a_removed_registration_is_made_again(db_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    watcher, sender = LocalWake(db_file), LocalWake(db_file)
    try:
        woken = threading.Event()
        assert watcher.start(woken.set)
        (Path(f"{db_file}-wake") / watcher.token).unlink()
        watcher.ensure_registered()
        sender.notify()
        assert woken.wait(10)
    finally:
        watcher.close()
        sender.close()


def test_a_full_queue_does_not_block_the_sender(db_file: Path) -> None:
    # A receiver that stopped reading: the sender's datagrams are dropped, never waited on.
    wake_dir = Path(f"{db_file}-wake")
    wake_dir.mkdir()
    token = f"{os.getpid()}-stuck"
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stuck.bind(b"\0convection-wake-" + token.encode())
    (wake_dir / token).touch()
    sender = LocalWake(db_file)
    try:
        t0 = time.monotonic()
        for _ in range(5000):
            sender.notify()
        assert time.monotonic() - t0 < 30  # generous: only a blocked send would take this long
        assert 0 < sender.sent < 5000
    finally:
        sender.close()
        stuck.close()


@pytest.fixture
def pair(db_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Database, Database]]:
    # With every poll at a minute, only the wake-up can make b see a's commit in time.
    monkeypatch.setattr(knobs, "LOG_TAIL_FALLBACK_POLL_MS", 60_000)
    monkeypatch.setattr(knobs, "LOG_TAIL_POLL_MS", 60_000)
    a = Database(SqlitePersistence(db_file), secret=b"s")
    b = Database(SqlitePersistence(db_file), secret=b"s")
    yield a, b
    b.close()
    a.close()


def test_a_database_publishes_another_process_commit_without_polling(pair: tuple[Database, Database]) -> None:
    a, b = pair
    q = b.begin(read_only=True)
    assert b.query(q, "items").collect() == []
    sub = b.subscribe(q.reads.freeze(), q.begin_ts)
    fired = threading.Event()
    sub.set_callback(fired.set)
    t = a.begin()
    t.insert("items", {"n": 1})
    ts = a.commit(t)
    assert fired.wait(10), "b did not hear of a's commit (the fallback poll is a minute)"
    assert sub.invalidated_at == ts
    sub.close()
