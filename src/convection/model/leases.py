"""The ``_leases`` system table: named, time-limited leases that pick one process (of all the
processes and nodes sharing a store) to do a singleton's work, such as running the scheduler.

One document per lease::

    {name: string, holder: string, expiresAt: ms, epoch: number}

* ``holder`` names a process (:func:`new_holder_id`: host, pid and a random part, so a
  restarted process is a new holder); ``expiresAt`` is wall-clock milliseconds of the
  database's clock of the process that last took or renewed it; ``epoch`` counts changes of
  holder (a fencing number for logs and tests).
* Leases are taken, renewed and released by **ordinary OCC transactions** (:meth:`Leases.take`):
  the transaction reads the lease document and writes it. Two processes contending both read
  it, so the second to commit conflicts, retries, and then sees the first one's lease. Nothing
  here depends on the persistence: the same code works on SQLite and PostgreSQL, and another
  process learns of a change by reading the log like any other commit.
* A lease is free when it is missing, released (``holder`` empty) or expired
  (``expiresAt <= now``). The holder may renew at any time, even after expiry, as long as
  nobody else took it.

Invariant: every write to ``_leases`` goes through :meth:`Leases._write`, the one place that
writes through the system view (:class:`SystemView`) its owner handed over.

The fencing rule the user of a lease follows (application/scheduler.py) is by time: it counts
itself the holder only until ``start of the renewing transaction + period * 2/3``, a third of
a period before any other process may take the lease over; the work it fences must also be
safe to repeat by its own transactional state (the scheduler's job rows).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from convection.database.database import Database
from convection.database.query import Query
from convection.database.transaction import SystemView, Transaction

LEASES_TABLE = "_leases"
BY_NAME = "by_name"


def ensure_tables(db: Database) -> None:
    """Create the table and its index (idempotent; called at application start)."""
    db.ensure_system_table(LEASES_TABLE, {BY_NAME: ("name",)})


def new_holder_id() -> str:
    """A name for this process as a lease holder, unique across hosts and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


@dataclass(frozen=True)
class Lease:
    """One row of ``_leases``, typed."""

    id: str
    name: str
    holder: str
    expires_at: float
    epoch: int

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Lease:
        return cls(
            id=doc["_id"],
            name=doc["name"],
            holder=doc.get("holder", ""),
            expires_at=float(doc.get("expiresAt", 0.0)),
            epoch=int(doc.get("epoch", 0)),
        )

    def held_by_other(self, holder: str, now_ms: float) -> bool:
        """Whether someone other than ``holder`` holds it at ``now_ms``."""
        return bool(self.holder) and self.holder != holder and self.expires_at > now_ms


class Leases:
    """Typed access to ``_leases`` inside one transaction, through the system view its owner
    hands over (database/transaction.py)."""

    def __init__(self, system: SystemView) -> None:
        self.system = system
        self.txn: Transaction = system.txn

    def get(self, name: str) -> Lease | None:
        doc = Query(self.txn, LEASES_TABLE).with_index(BY_NAME, lambda r: r.eq("name", name)).first()
        return None if doc is None else Lease.from_doc(doc)

    def take(self, name: str, holder: str, now_ms: float, period_ms: float) -> Lease:
        """Take or renew the lease ``name`` for ``holder`` until ``now_ms + period_ms``, unless
        another holder has it. Returns the lease as it stands after the call: ``holder`` is
        the caller's exactly when it was taken or renewed (nothing is written otherwise)."""
        cur = self.get(name)
        expires = float(now_ms + period_ms)
        if cur is None:
            fields = {"name": name, "holder": holder, "expiresAt": expires, "epoch": 1.0}
            lease_id = self._write(None, fields)
            return Lease(id=lease_id, name=name, holder=holder, expires_at=expires, epoch=1)
        if cur.held_by_other(holder, now_ms):
            return cur
        epoch = cur.epoch if cur.holder == holder else cur.epoch + 1
        self._write(cur.id, {"holder": holder, "expiresAt": expires, "epoch": float(epoch)})
        return Lease(id=cur.id, name=name, holder=holder, expires_at=expires, epoch=epoch)

    def release(self, name: str, holder: str) -> bool:
        """Give the lease up (another process may take it at once). Returns whether
        ``holder`` held it."""
        cur = self.get(name)
        if cur is None or cur.holder != holder:
            return False
        self._write(cur.id, {"holder": "", "expiresAt": 0.0})
        return True

    def _write(self, lease_id: str | None, fields: dict[str, Any]) -> str:
        """The one place that writes ``_leases`` (insert when ``lease_id`` is None); returns
        the document's id."""
        if lease_id is None:
            return self.system.insert(LEASES_TABLE, fields)
        self.system.patch(lease_id, fields)
        return lease_id
