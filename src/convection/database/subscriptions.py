"""Database-level subscriptions: a (read set, ts) that is invalidated when, and only when, a
later commit writes a key inside the read set.

Invariant: :meth:`SubscriptionManager.publish` is called for every commit, in ts order,
under the database's publish lock, *before* the database's latest ts moves to that commit. So
a reader that takes ``latest_ts()`` and then reads ``invalidated_at`` sees every
invalidation up to that ts.

Cost per commit: for every written key, one stab of the index's :class:`IntervalMap`
(O(log n + matches)); idle subscriptions cost nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from convection.database.readset import FrozenReadSet
from convection.indexing.intervals import IntervalMap


class Subscription:
    """Owned by the caller of :meth:`SubscriptionManager.subscribe`; ``close()`` when done."""

    __slots__ = ("__weakref__", "_callback", "_manager", "closed", "invalidated_at", "read_set", "ts")

    def __init__(self, manager: SubscriptionManager, read_set: FrozenReadSet, ts: int) -> None:
        self._manager = manager
        self.read_set = read_set
        self.ts = ts
        self.invalidated_at: int | None = None
        self._callback: Callable[[], None] | None = None
        self.closed = False
        """Released: no longer watched, so ``invalidated_at`` says nothing any more."""

    @property
    def valid(self) -> bool:
        return self.invalidated_at is None

    def set_callback(self, callback: Callable[[], None]) -> None:
        """``callback`` runs once, in the committer's thread, when invalidated (or right away
        if already invalid). Keep it tiny (e.g. ``loop.call_soon_threadsafe``)."""
        fire = False
        with self._manager._lock:
            if self.invalidated_at is not None:
                fire = True
            else:
                self._callback = callback
        if fire:
            callback()

    def close(self) -> None:
        self.closed = True
        self._manager._remove(self)

    def force_invalidate(self, ts: int) -> None:
        """Invalidate now (e.g. the code changed): the callback runs in this thread."""
        with self._manager._lock:
            cb = self._invalidate(ts)
            self._manager._remove_locked(self)
        if cb is not None:
            cb()

    def _invalidate(self, ts: int) -> Callable[[], None] | None:
        if self.invalidated_at is not None:
            return None
        self.invalidated_at = ts
        cb, self._callback = self._callback, None
        return cb


class SubscriptionManager:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._maps: dict[int, IntervalMap[Subscription]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def subscribe(
        self,
        read_set: FrozenReadSet,
        ts: int,
        catch_up: Callable[[int, FrozenReadSet], int | None],
    ) -> Subscription:
        """Subscribe ``read_set`` as of ``ts``. ``catch_up(ts, read_set)`` returns the ts of the
        first already-published commit after ``ts`` that overlaps (or None); it is called
        under the manager lock so no commit slips between the check and the registration."""
        sub = Subscription(self, read_set, ts)
        with self._lock:
            first = catch_up(ts, read_set)
            if first is not None:
                sub.invalidated_at = first
                return sub
            for index_id, ivs in read_set:
                m = self._maps.get(index_id)
                if m is None:
                    m = self._maps[index_id] = IntervalMap()
                for start, end in ivs:
                    m.insert(start, end, sub)
            if read_set.by_index:
                self._count += 1
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._remove_locked(sub)

    def _remove_locked(self, sub: Subscription) -> None:
        if sub.invalidated_at is None and sub._callback is None and not sub.read_set.by_index:
            return
        removed = False
        for index_id, _ in sub.read_set:
            m = self._maps.get(index_id)
            if m is not None:
                before = len(m)
                m.remove_owner(sub)
                removed = removed or len(m) != before
                if not len(m):
                    del self._maps[index_id]
        if removed:
            self._count -= 1
        sub._callback = None

    def publish(self, ts: int, index_keys: dict[int, list[bytes]]) -> list[Callable[[], None]]:
        """Invalidate every subscription a commit at ``ts`` overlaps. Returns the callbacks
        to run (the caller runs them after releasing its locks)."""
        hit: set[Subscription] = set()
        with self._lock:
            maps = self._maps
            if not maps:
                return []
            for index_id, keys in index_keys.items():
                m = maps.get(index_id)
                if m is None:
                    continue
                for k in keys:
                    m.stab(k, hit)
            callbacks = []
            for sub in hit:
                cb = sub._invalidate(ts)
                self._remove_locked(sub)
                if cb is not None:
                    callbacks.append(cb)
        return callbacks
