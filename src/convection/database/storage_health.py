"""The write health the committer reports (``GET /health``), with one log line per change.

States (never a traceback per request):

* ``ok``: writes work.
* ``unavailable``: the last batch was not applied (the store refused it or rolled it back: a
  full disk, the database down or restarting). Its commits failed with
  :class:`StorageUnavailable` (HTTP 503, sync close 1013); later commits are still attempted
  (each is a probe) and the idle writer probes by itself every ``STORAGE_RETRY_INTERVAL_MS``,
  so writes resume by themselves.
* ``resolving``: a batch's write failed after it was sent (the connection may have been lost
  during COMMIT: the outcome is unknown). The writer takes the store's commit lock again in a
  new session (which waits for the lost connection's transaction to end) and reads the commit
  log: if the batch's first ts is there, the batch is durable and published, else it failed.
  Meanwhile new commits are refused with StorageUnavailable.

The policy itself lives in the committer's writer (``Committer._storage_fault``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from convection.errors import StorageFailure
from convection.persistence.base import Persistence

log = logging.getLogger("convection.storage")

OK = "ok"
UNAVAILABLE = "unavailable"
RESOLVING = "resolving"


@dataclass
class WriteHealth:
    """The writer's view of the store, read by ``/health`` and the committer."""

    state: str = OK
    reason: str = ""
    since: float = 0.0
    """time.time() of the last state change."""
    logged: str = OK
    """The last state logged (``resolving`` is brief and not logged by itself)."""

    @property
    def writable(self) -> bool:
        return self.state == OK

    def to_json(self) -> dict[str, object]:
        return {"writes": self.writable, "state": self.state, "reason": self.reason, "since": self.since}


def set_state(health: WriteHealth, state: str, reason: str = "") -> None:
    """Change state, logging one line when ``ok`` or ``unavailable`` differs from the last
    one logged (a brief ``resolving`` between two failures is not a line of its own)."""
    if health.state == state:
        return
    health.state, health.reason, health.since = state, reason, time.time()
    if state == RESOLVING or state == health.logged:
        log.debug("storage: %s: %s", state, reason)
        return
    previous, health.logged = health.logged, state
    if state == OK:
        log.warning("storage: writes work again (after %s)", previous)
    else:
        log.warning("storage: writes failing, commits answer StorageUnavailable until it recovers: %s", reason)


def probe(persistence: Persistence, health: WriteHealth) -> None:
    """While ``unavailable``: try a tiny durable write; back to ``ok`` when it works."""
    try:
        persistence.set_global("storage_probe", time.time_ns())
    except StorageFailure:
        return
    except Exception:  # a store bug: stay unavailable, the next probe tries again
        return
    set_state(health, OK)
