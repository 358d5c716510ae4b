"""The shared query cache: single-flight, keyed by (path, args, identity if read, journal).

An entry holds a query's outcome at the ts it ran at and the database subscription of its
read set. It can answer any request at a ts >= its own while its subscription is valid at
that ts (no overlapping commit in between). Results of queries that never read the identity
are shared by every caller; the others are keyed by identity too. Errors are never shared.
Entries that become invalid are dropped; the LRU keeps the estimated bytes of its entries
(:attr:`CacheEntry.size_bytes`: arguments, result, encoded result, a fixed cost per entry)
within ``QUERY_CACHE_MAX_BYTES`` (knobs.py), least recently used first. An evicted entry stays
alive only while callers still hold handles on it.

Fan-out: an entry encodes its result for the wire once (:meth:`CacheEntry.shared_body`, the
bytes of :func:`convection.protocol.splice.result_body`); every socket's Transition splices
its own small parts around them. ``QueryCache.encodes`` counts those encodings (/metrics).

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

from convection import knobs
from convection.database.subscriptions import Subscription
from convection.functions.outcome import FunctionOutcome
from convection.protocol.splice import result_body

TIME_READ_MAX_AGE_S = 5.0
ENTRY_OVERHEAD_BYTES = 12 << 10
"""Estimated fixed cost of one entry: the entry, its outcome, its database subscription and
read set, the key (tracemalloc: ~11.5 KB for a query returning a number)."""
VALUE_FACTOR = 4
"""The result counts this many times its encoded size: the bytes, and the Python value
(dicts and strings take about three times their JSON; tracemalloc: ~15.8 KB for a take-10
of 1.2 KB JSON)."""

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


def estimate_size(outcome: FunctionOutcome, args_bytes: int) -> int:
    """Estimated bytes an entry keeps alive: the arguments twice (encoded key and the parsed
    value kept to rerun it), the result :data:`VALUE_FACTOR` times (encoded and as a Python
    value), log lines and error data, plus :data:`ENTRY_OVERHEAD_BYTES`. The shared body adds
    its length once it is encoded."""
    size = ENTRY_OVERHEAD_BYTES + 2 * args_bytes + VALUE_FACTOR * len(outcome.value_json)
    size += len(outcome.error_message) + len(outcome.error_data_json)
    for line in outcome.log_lines:
        size += len(line)
    return size


class CacheEntry:
    __slots__ = (
        "__weakref__", "_body", "_owner", "cached", "callbacks", "created", "fingerprint", "identity_read",
        "key", "lock", "outcome", "refs", "request", "size_bytes", "subscription", "time_read", "ts",
    )

    def __init__(
        self,
        outcome: FunctionOutcome,
        subscription: Subscription,
        identity_read: bool,
        time_read: bool,
        deliver: Callable[[Callable[[], None]], None] | None = None,
        *,
        request: Any = None,
        args_bytes: int = 0,
        on_invalidated: Callable[[CacheEntry], None] | None = None,
    ) -> None:
        self.outcome = outcome
        self.request = request
        """What the application needs to rerun the query (opaque here)."""
        self.size_bytes = estimate_size(outcome, args_bytes)
        self._body: bytes | None = None
        self._owner: QueryCache | None = None
        self.key: CacheKey | None = None
        """The key it is (or was last) cached under."""
        self.ts = outcome.ts or 0
        self.subscription = subscription
        self.identity_read = identity_read
        self.time_read = time_read
        self.fingerprint = fingerprint(outcome)
        self.created = time.monotonic()
        self.callbacks: dict[CacheHandle, Callable[[], None]] = {}
        """The subscribers' invalidation callbacks by handle (a handle closing removes its
        own in O(1): an entry can have thousands of subscribers)."""
        self.refs = 0
        self.cached = False
        self.lock = threading.Lock()
        # One hop to the event loop per invalidated entry (not per subscriber): the
        # subscribers' callbacks then run on the loop, after ``on_invalidated`` (which may
        # first rerun the query once for all of them) calls :meth:`fire`.
        fire = self.fire if on_invalidated is None else (lambda: on_invalidated(self))
        subscription.set_callback(fire if deliver is None else (lambda: deliver(fire)))

    def shared_body(self) -> bytes:
        """The wire encoding of the result shared by every socket (encoded on first use)."""
        body = self._body
        if body is None:
            body = self._body = result_body(self.outcome)
            owner = self._owner
            if owner is not None:
                owner._encoded(self, len(body))
        return body

    @property
    def has_subscribers(self) -> bool:
        return bool(self.callbacks)

    def valid_at(self, ts: int) -> bool:
        if ts < self.ts or self.subscription.closed:
            return False
        inv = self.subscription.invalidated_at
        if inv is not None and inv <= ts:
            return False
        return not (self.time_read and time.monotonic() - self.created > TIME_READ_MAX_AGE_S)

    def fire(self) -> None:
        """Call (once) every subscriber's invalidation callback."""
        with self.lock:
            cbs, self.callbacks = self.callbacks, {}
        for cb in cbs.values():
            cb()


class CacheHandle:
    """One caller's view of a cache entry (implements ``QuerySubscription``)."""

    __slots__ = ("_cache", "_closed", "_entry")

    def __init__(self, cache: QueryCache, entry: CacheEntry) -> None:
        self._cache = cache
        self._entry = entry
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
                entry.callbacks[self] = callback
        if fire:
            callback()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        entry = self._entry
        with entry.lock:
            entry.callbacks.pop(self, None)
            entry.refs -= 1
            unused = entry.refs <= 0
        if unused:
            self._cache._maybe_release(entry)


class QueryCache:
    def __init__(self, max_bytes: int | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, CacheEntry] = OrderedDict()
        self.live: weakref.WeakSet[CacheEntry] = weakref.WeakSet()
        self.max_bytes = knobs.QUERY_CACHE_MAX_BYTES if max_bytes is None else max_bytes
        self.bytes = 0
        # Bumped by invalidate_all: a run that started before it may have read what it
        # invalidated outside any read set (os.environ, code) and must not be cached.
        self.generation = 0
        """Estimated bytes of the entries in the LRU (see :func:`estimate_size`)."""
        self.hits = 0
        self.misses = 0
        self.encodes = 0
        """Results encoded for the wire (one per entry that was sent, whatever the fan-out)."""
        self.evictions = 0

    def _encoded(self, entry: CacheEntry, size: int) -> None:
        with self._lock:
            self.encodes += 1
            entry.size_bytes += size
            if entry.cached:
                self.bytes += size
                self._evict_locked()

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
                self._remove_locked(key, entry)
            return None

    def discard(self, entry: CacheEntry) -> None:
        """Drop ``entry`` from the LRU if it is there (it became invalid)."""
        with self._lock:
            key = entry.key
            if entry.cached and key is not None and self._entries.get(key) is entry:
                self._remove_locked(key, entry)

    def _remove_locked(self, key: CacheKey, entry: CacheEntry) -> None:
        del self._entries[key]
        entry.cached = False
        self.bytes -= entry.size_bytes
        self._release_locked(entry)

    def track(self, entry: CacheEntry) -> None:
        with self._lock:
            entry._owner = self
            self.live.add(entry)

    def invalidate_all(self, ts: int) -> None:
        """Invalidate every live entry at ``ts`` (new code was pushed) and empty the cache."""
        with self._lock:
            self.generation += 1
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
                self._remove_locked(key, old)
            if entry.size_bytes > self.max_bytes:
                return  # larger than the whole budget: never cached (callers still share it)
            self._entries[key] = entry
            entry.key = key
            entry.cached = True
            self.bytes += entry.size_bytes
            self._evict_locked()

    def _evict_locked(self) -> None:
        while self.bytes > self.max_bytes and self._entries:
            key, victim = next(iter(self._entries.items()))
            self._remove_locked(key, victim)
            self.evictions += 1

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
            self.bytes = 0
            for e in entries:
                e.cached = False
        for e in entries:
            if e.refs <= 0:
                e.subscription.close()

    def __len__(self) -> int:
        return len(self._entries)
