"""The shared query cache: single-flight, keyed by (path, args, identity if read, journal).

An entry holds a query's outcome at the ts it ran at and the database subscription of its
read set. It can answer any request at a ts >= its own while its subscription is valid at
that ts (no overlapping commit in between). Results of queries that never read the identity
are shared by every caller; the others are keyed by identity too. Errors are never shared.
Entries that become invalid are dropped; the LRU keeps at most ``QUERY_CACHE_MAX_ENTRIES``.

Every caller gets its own :class:`CacheHandle` (the ``QuerySubscription`` of the seam), so a
socket closing its handle never affects other sockets sharing the entry.
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from convection.database.subscriptions import Subscription
from convection.functions.outcome import FunctionOutcome

MAX_ENTRIES = 10_000
TIME_READ_MAX_AGE_S = 5.0

CacheKey = tuple[str, bytes, str | None, str | None]


def fingerprint(outcome: FunctionOutcome) -> bytes:
    h = hashlib.sha256()
    if outcome.success:
        h.update(b"ok\x00")
        h.update(outcome.value_json)
    else:
        h.update(b"err\x00")
        h.update(outcome.error_message.encode())
        h.update(b"\x00")
        if outcome.has_error_data:
            h.update(outcome.error_data_json)
    for line in outcome.log_lines:
        h.update(b"\x00")
        h.update(line.encode())
    return h.digest()


class CacheEntry:
    __slots__ = ("__weakref__", "cached", "callbacks", "created", "fingerprint", "identity_read", "lock", "outcome", "refs", "subscription", "time_read", "ts")

    def __init__(
        self,
        outcome: FunctionOutcome,
        subscription: Subscription,
        identity_read: bool,
        time_read: bool,
        deliver: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.outcome = outcome
        self.ts = outcome.ts or 0
        self.subscription = subscription
        self.identity_read = identity_read
        self.time_read = time_read
        self.fingerprint = fingerprint(outcome)
        self.created = time.monotonic()
        self.callbacks: list[Callable[[], None]] = []
        self.refs = 0
        self.cached = False
        self.lock = threading.Lock()
        # One hop to the event loop per invalidated entry (not per subscriber): the
        # subscribers' callbacks then run on the loop.
        subscription.set_callback(self._fire if deliver is None else (lambda: deliver(self._fire)))

    def valid_at(self, ts: int) -> bool:
        if ts < self.ts or self.subscription.closed:
            return False
        inv = self.subscription.invalidated_at
        if inv is not None and inv <= ts:
            return False
        return not (self.time_read and time.monotonic() - self.created > TIME_READ_MAX_AGE_S)

    def _fire(self) -> None:
        with self.lock:
            cbs, self.callbacks = self.callbacks, []
        for cb in cbs:
            cb()


class CacheHandle:
    """One caller's view of a cache entry (implements ``QuerySubscription``)."""

    __slots__ = ("_cache", "_callback", "_closed", "_entry")

    def __init__(self, cache: QueryCache, entry: CacheEntry) -> None:
        self._cache = cache
        self._entry = entry
        self._callback: Callable[[], None] | None = None
        self._closed = False
        with entry.lock:
            entry.refs += 1

    @property
    def invalidated_at(self) -> int | None:
        return self._entry.subscription.invalidated_at

    def set_callback(self, callback: Callable[[], None]) -> None:
        entry = self._entry
        fire = False
        with entry.lock:
            if entry.subscription.invalidated_at is not None:
                fire = True
            else:
                self._callback = callback
                entry.callbacks.append(callback)
        if fire:
            callback()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        entry = self._entry
        with entry.lock:
            if self._callback is not None:
                try:
                    entry.callbacks.remove(self._callback)
                except ValueError:
                    pass
            entry.refs -= 1
            unused = entry.refs <= 0
        if unused:
            self._cache._maybe_release(entry)


class QueryCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, CacheEntry] = OrderedDict()
        self._inflight: dict[tuple[CacheKey, int], Any] = {}
        self.live: weakref.WeakSet[CacheEntry] = weakref.WeakSet()
        self.hits = 0
        self.misses = 0

    def lookup(self, key: CacheKey, ts: int) -> CacheEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.valid_at(ts):
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
            if entry.subscription.invalidated_at is not None:
                del self._entries[key]
                entry.cached = False
                self._release_locked(entry)
            return None

    def track(self, entry: CacheEntry) -> None:
        with self._lock:
            self.live.add(entry)

    def invalidate_all(self, ts: int) -> None:
        """Invalidate every live entry at ``ts`` (new code was pushed) and empty the cache."""
        with self._lock:
            entries = list(self.live)
        self.clear()
        for e in entries:
            e.subscription.force_invalidate(ts)

    def store(self, key: CacheKey, entry: CacheEntry) -> None:
        with self._lock:
            old = self._entries.get(key)
            if old is not None and old is not entry:
                if old.ts > entry.ts and old.subscription.invalidated_at is None:
                    return
                del self._entries[key]
                old.cached = False
                self._release_locked(old)
            self._entries[key] = entry
            entry.cached = True
            while len(self._entries) > MAX_ENTRIES:
                _, victim = self._entries.popitem(last=False)
                victim.cached = False
                self._release_locked(victim)

    def _release_locked(self, entry: CacheEntry) -> None:
        if entry.refs <= 0:
            entry.subscription.close()

    def _maybe_release(self, entry: CacheEntry) -> None:
        with self._lock:
            if not entry.cached and entry.refs <= 0:
                entry.subscription.close()

    def clear(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
            for e in entries:
                e.cached = False
        for e in entries:
            if e.refs <= 0:
                e.subscription.close()

    def __len__(self) -> int:
        return len(self._entries)
