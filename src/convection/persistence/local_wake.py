"""Waking the other processes that share a SQLite file on this host, right after a commit.

Processes sharing one SQLite store (``serve --workers N``) learn of each other's commits by
reading the commit log; this module only tells them *when* to look, so an idle process does
not have to poll ``PRAGMA data_version`` every few milliseconds (latency up to the poll
interval, and CPU while idle).

Each process that watches binds one datagram socket in Linux's abstract namespace (no file,
gone when the process dies, no path-length limit) named ``convection-wake-<token>``, and
registers it by creating the empty file ``<db>-wake/<token>`` beside the database. After a
commit, :meth:`LocalWake.notify` sends one byte to every other registered socket: a few
microseconds per peer, nothing when the process is alone. The receiver thread calls ``wake``
once per burst of datagrams.

The register is re-read when the directory changes (its mtime; re-read on every notify for
a while after a change, since directory timestamps are coarse). A peer whose socket is gone
(its process died, e.g. kill -9) refuses the datagram, and its file is removed. A process
whose own file was removed (a peer in another network namespace cannot reach it) registers
again at its next fallback poll. A lost wake-up is never lost data: the reader still polls
the log every ``LOG_TAIL_FALLBACK_POLL_MS``, and reads the whole log since its last ts when
it does. Platforms without abstract sockets (macOS) keep polling (``start`` returns False).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

log = logging.getLogger("convection.persistence")

_PREFIX: Final = b"\0convection-wake-"
# How long after a change of the register every notify re-reads it (directory mtimes are
# as coarse as the kernel's tick, so two registrations can share one mtime).
_RECENT_S: Final = 0.25


def supported() -> bool:
    return sys.platform.startswith("linux")


class LocalWake:
    """The wake-up channel of one process for one SQLite database file (see module doc).
    ``notify`` works without ``start`` (a process that commits but does not watch)."""

    def __init__(self, db_path: Path) -> None:
        self._dir = Path(f"{db_path}-wake")
        self._token = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._lock = threading.Lock()  # the register cache and the sending socket
        self._sender: socket.socket | None = None
        self._peers: dict[str, bytes] = {}  # token -> address, everyone but this process
        self._seen_mtime = -1
        self._receiver: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._next_check = 0.0
        self.sent = 0  # datagrams sent, for tests and diagnostics
        self.received = 0

    @property
    def token(self) -> str:
        return self._token

    # --- receiving ---------------------------------------------------------------------
    def start(self, wake: Callable[[], None]) -> bool:
        """Bind this process's socket, register it and call ``wake`` (from a thread of its
        own) whenever another process notifies. False when this platform cannot."""
        if not supported() or self._closed:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(_PREFIX + self._token.encode())
            self._register()
        except OSError as exc:
            sock.close()
            log.warning("commit wake-ups between local processes are off (%s); polling instead", exc)
            return False
        self._receiver = sock
        self._thread = threading.Thread(
            target=self._receive, args=(sock, wake), name="convection-local-wake", daemon=True
        )
        self._thread.start()
        return True

    def _register(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        (self._dir / self._token).touch()

    def ensure_registered(self) -> None:
        """Register again if this process's file was removed (checked at most once a
        second; called by the reader's polls)."""
        if self._receiver is not None and not self._closed and time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + 1.0
            with contextlib.suppress(OSError):
                if not (self._dir / self._token).exists():
                    self._register()

    def _receive(self, sock: socket.socket, wake: Callable[[], None]) -> None:
        while not self._closed:
            try:
                sock.recv(16)
                # Coalesce a burst: one wake for every datagram already queued.
                while True:
                    self.received += 1
                    sock.recv(16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
            except OSError:
                return
            if self._closed:
                return
            try:
                wake()
            except Exception:  # pragma: no cover - wake only sets a flag
                log.exception("commit wake-up failed")

    # --- sending -----------------------------------------------------------------------
    def notify(self) -> None:
        """Tell every other registered process that this one committed. Never raises."""
        with self._lock:
            if self._closed:
                return
            try:
                self._refresh()
                if not self._peers:
                    return
                if self._sender is None:
                    self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sender.setblocking(False)
                for token, address in list(self._peers.items()):
                    try:
                        self._sender.sendto(b"c", address)
                        self.sent += 1
                    except BlockingIOError:
                        pass  # its queue is full: it has wake-ups pending already
                    except (ConnectionRefusedError, FileNotFoundError):
                        del self._peers[token]  # its process is gone
                        with contextlib.suppress(OSError):
                            (self._dir / token).unlink()
            except OSError as exc:  # pragma: no cover - the readers' poll covers a lost wake
                log.debug("commit wake-up not sent: %s", exc)

    def _refresh(self) -> None:
        try:
            mtime = self._dir.stat().st_mtime_ns
        except FileNotFoundError:
            self._peers = {}
            return
        if mtime == self._seen_mtime and time.time_ns() - mtime > _RECENT_S * 1e9:
            return
        self._seen_mtime = mtime
        with os.scandir(self._dir) as entries:
            self._peers = {
                e.name: _PREFIX + e.name.encode() for e in entries if e.name != self._token
            }

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._sender is not None:
                self._sender.close()
        receiver = self._receiver
        if receiver is not None:
            with contextlib.suppress(OSError):
                (self._dir / self._token).unlink()
            # Wake the receiver thread so it sees _closed, then close its socket.
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(b"x", _PREFIX + self._token.encode())
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout=2)
            receiver.close()
