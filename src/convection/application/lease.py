"""Holding a lease of ``_leases`` (model/leases.py) from one process: when to renew, and until
when this process may count itself the holder.

Timing, with ``P`` the lease period and ``t`` the database clock's time when a renewing
transaction *started* (so a slow commit only shortens what the holder believes it has):

* a successful take or renewal writes ``expiresAt = t + P``; this process then counts itself
  the holder until ``t + 2P/3`` (:meth:`LeaseKeeper.holds`) and tries to renew from ``t + P/3``.
  So it renews every third of a period, may miss one renewal, and stops counting itself the
  holder a third of a period before any other process may take the lease;
* a process that does not hold the lease tries again every ``P/3``, and at the moment the
  other holder's lease expires (``expiresAt``): after a holder dies, another process takes
  over within one lease period of its last renewal;
* a failed renewal (storage error) changes nothing: the lease runs out on its own schedule.

Blocking methods (:meth:`refresh`, :meth:`release`, :meth:`watch`) run transactions; call them
off the event loop. Thread-safe enough for one caller at a time plus readers of :meth:`holds`.
"""

from __future__ import annotations

import logging
import math

from convection.database.database import Database
from convection.database.readset import FrozenReadSet
from convection.database.transaction import SystemView
from convection.errors import StorageFailure
from convection.model.leases import Lease, Leases, new_holder_id

log = logging.getLogger("convection.lease")


class LeaseKeeper:
    """Takes and renews the lease ``name`` for this process (``holder``)."""

    def __init__(self, db: Database, name: str, *, period_ms: float, holder: str | None = None) -> None:
        if period_ms <= 0:
            raise ValueError(f"a lease period must be positive, not {period_ms!r} ms")
        self.db = db
        self.name = name
        self.period_ms = float(period_ms)
        self.holder = holder or new_holder_id()
        self._valid_until = -math.inf
        self._next_try = -math.inf
        self._held = False
        self._error_backoff_until = -math.inf
        self.last_seen: Lease | None = None

    # --- state --------------------------------------------------------------------------
    def holds(self) -> bool:
        """Whether this process may act as the holder now (the fencing rule)."""
        return self.db.clock.now_ms() < self._valid_until

    def renewal_due(self) -> bool:
        return self.db.clock.now_ms() >= self._next_try

    def seen_free(self) -> bool:
        """Whether the last read of the lease (:meth:`watch`, :meth:`refresh`) found it free
        for this process to take: released, expired, or this process's own."""
        seen, now = self.last_seen, self.db.clock.now_ms()
        if seen is None or now < self._error_backoff_until or self.holds():
            return False
        return not seen.held_by_other(self.holder, now)

    @property
    def next_attempt_ms(self) -> float:
        """When :meth:`refresh` should run next (database clock, ms)."""
        return self._next_try

    # --- transactions (blocking) --------------------------------------------------------
    def refresh(self) -> bool:
        """Take or renew the lease if nobody else holds it; returns :meth:`holds`."""
        started = self.db.clock.now_ms()
        third = self.period_ms / 3.0
        try:
            lease, _ = self.db.run_system(
                lambda txn: Leases(SystemView(txn)).take(self.name, self.holder, started, self.period_ms)
            )
        except StorageFailure as exc:
            # The store is down or restarting: storage health logs that once; no traceback.
            log.warning("renewing the %r lease failed (%s); retrying in %.1f s", self.name, exc, third / 1000)
            self._next_try = self._error_backoff_until = started + third
            self._note(self.holds())
            return self.holds()
        except Exception:
            log.exception("renewing the %r lease failed; retrying in %.1f s", self.name, third / 1000)
            self._next_try = self._error_backoff_until = started + third
            self._note(self.holds())
            return self.holds()
        self.last_seen = lease
        if lease.holder == self.holder:
            self._valid_until = started + 2.0 * third
            self._next_try = started + third
        else:
            self._valid_until = -math.inf
            self._next_try = min(started + third, max(lease.expires_at, started))
        self._note(self.holds())
        return self.holds()

    def release(self) -> bool:
        """Give the lease up so another process can take it at once (graceful stop)."""
        was = self._valid_until > -math.inf
        self._valid_until = -math.inf
        self._next_try = -math.inf
        self._note(False)
        if not was:
            return False
        released, _ = self.db.run_system(lambda txn: Leases(SystemView(txn)).release(self.name, self.holder))
        return released

    def watch(self) -> tuple[FrozenReadSet, int]:
        """A read of the lease document (read set and snapshot ts), to subscribe to: a commit
        releasing or taking the lease invalidates it."""
        txn = self.db.begin(read_only=True)
        self.last_seen = Leases(SystemView(txn)).get(self.name)
        return txn.reads.freeze(), txn.begin_ts

    def _note(self, held: bool) -> None:
        if held != self._held:
            self._held = held
            if held:
                log.info("this process (%s) holds the %r lease now", self.holder, self.name)
            else:
                log.info("this process (%s) does not hold the %r lease any more", self.holder, self.name)
