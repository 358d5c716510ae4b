"""Commit notifications of the PostgreSQL store: how a node hears, within a millisecond or
two, that another node committed (``PostgresPersistence.watch_commits``).

Every commit session that writes commit-log rows also runs ``pg_notify(channel, ts)`` in the
same transaction (``postgres_sql._INSERT_COMMITS``), so PostgreSQL delivers the notification
when, and only if, the commit is durable. :class:`CommitListener` holds one dedicated
autocommit connection that ``LISTEN`` s on the channel and calls ``wake()`` for every
notification sent by another backend (this process's own writer connection is skipped by its
backend pid); the committer then reads the commit log as it would after a poll.

The channel is per store: ``convection_commits_<schema>`` (the schema the tables live in),
so several deployments in one database (``?schema=``) do not wake each other; PostgreSQL
scopes channels to a database already. A name over PostgreSQL's 63-byte identifier limit is
shortened with a digest.

Invariants: a notification is only a hint, never the data (the committer reads the log);
while the LISTEN connection is down the listener reconnects every
``STORAGE_RETRY_INTERVAL_MS`` and calls ``wake()`` once it is back (notifications sent
meanwhile are lost), and the committer's fallback poll (``LOG_TAIL_FALLBACK_POLL_MS``) covers
the gap. One warning when the connection is lost, one info line when it is back.
"""

from __future__ import annotations

import hashlib
import logging
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from convection import knobs

log = logging.getLogger("convection.persistence.postgres")

_Connection = psycopg.Connection[tuple[Any, ...]]


def channel_name(schema: str) -> str:
    """The notification channel of the store whose tables are in ``schema``."""
    name = f"convection_commits_{schema}"
    if len(name.encode()) <= 63:
        return name
    return "convection_commits_" + hashlib.sha256(schema.encode()).hexdigest()[:32]


class CommitListener:
    """A thread listening for other processes' commit notifications (module docstring).

    ``connect`` opens a new autocommit connection; ``own_pid`` is the backend pid of this
    process's writer connection (its notifications are not news); ``where`` names the store
    in log lines."""

    def __init__(
        self,
        connect: Callable[[], _Connection],
        channel: str,
        wake: Callable[[], None],
        own_pid: Callable[[], int | None],
        where: str,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._wake = wake
        self._own_pid = own_pid
        self._where = where
        self._closed = threading.Event()
        # close() writes to this pair to end the listener's wait at once.
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread = threading.Thread(
            target=self._run, name="convection-commit-listener", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        try:
            self._stop_w.send(b"x")
        except OSError:
            pass
        self._thread.join(timeout=5)
        self._stop_w.close()
        self._stop_r.close()

    def _run(self) -> None:
        retry_s = max(knobs.STORAGE_RETRY_INTERVAL_MS, 1) / 1000
        lost = False
        while not self._closed.is_set():
            conn: _Connection | None = None
            try:
                conn = self._connect()
                conn.execute(f'LISTEN "{self._channel}"')
                if lost:
                    log.info("commit notifications from %s are back", self._where)
                    lost = False
                    self._wake()  # what was committed while nobody listened
                while not self._closed.is_set():
                    # Sleep until the server sends something (a notification, or EOF when
                    # the connection drops: notifies() then raises) or close() is called.
                    stop = self._stop_r.fileno()
                    ready, _, _ = select.select([conn.fileno(), stop], [], [])
                    if stop in ready:
                        break
                    own = self._own_pid()
                    if any(n.pid != own for n in list(conn.notifies(timeout=0))):
                        self._wake()
            except psycopg.Error as exc:
                if not self._closed.is_set() and not lost:
                    log.warning(
                        "lost the LISTEN connection for commit notifications from %s (%s); "
                        "other nodes' commits are picked up every LOG_TAIL_FALLBACK_POLL_MS "
                        "(%d ms) until it is back (reconnecting every %d ms)",
                        self._where, exc, knobs.LOG_TAIL_FALLBACK_POLL_MS,
                        knobs.STORAGE_RETRY_INTERVAL_MS,
                    )
                lost = True
            finally:
                if conn is not None:
                    conn.close()
            self._closed.wait(retry_s)
