"""Intervals of encoded index keys: read sets and the subscription stabbing structure.

An interval is ``[start, end)`` over byte strings; ``end`` None means unbounded above. Since
keys are compared as bytes and every byte string ``s`` has the immediate successor
``s + b"\\x00"``, the singleton ``{k}`` is ``[k, k + b"\\x00")``.

* :class:`IntervalSet` — a normalized (sorted, disjoint, non-adjacent) set of intervals with
  O(log n) membership. Built once from a transaction's recorded reads.
* :class:`IntervalMap` — intervals tagged with owners, supporting insert, remove-by-owner and
  the stabbing query "which owners have an interval containing key k" in
  O(log n + matches). Singletons (the common ``db.get`` and equality reads) live in a hash
  map; ranges live in a treap keyed by start and augmented with the maximum end of each
  subtree (the classic interval tree), so the cost of a stab does not grow with the number of
  intervals that do not contain the key. Equal ranges share one tree node holding all their
  owners (many subscriptions read the same range: the same query with other arguments, or
  the same page), so adding or removing an owner of a range already present is a dict
  operation, not a treap split and merge.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Iterator
from typing import Generic, TypeVar

Interval = tuple[bytes, bytes | None]

_MAX = b"\xff" * 64  # never used as a real bound; see _end_lt


def singleton(key: bytes) -> Interval:
    return (key, key + b"\x00")


def _end_ge(a: bytes | None, b: bytes | None) -> bool:
    """a >= b where None is +infinity."""
    if a is None:
        return True
    if b is None:
        return False
    return a >= b


class IntervalSet:
    """Sorted, disjoint intervals. ``contains(k)`` is a binary search."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        merged: list[list[bytes | None]] = []
        for start, end in sorted(intervals, key=lambda iv: iv[0]):
            if end is not None and end <= start:
                continue
            if merged:
                last = merged[-1]
                last_end = last[1]
                if last_end is None or start <= last_end:
                    if not _end_ge(last_end, end):
                        last[1] = end
                    continue
            merged.append([start, end])
        self._starts: list[bytes] = [m[0] for m in merged]  # type: ignore[misc]
        self._ends: list[bytes | None] = [m[1] for m in merged]

    def __len__(self) -> int:
        return len(self._starts)

    def __iter__(self) -> Iterator[Interval]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __repr__(self) -> str:
        return f"IntervalSet({list(self)!r})"

    def contains(self, key: bytes) -> bool:
        i = bisect_right(self._starts, key) - 1
        if i < 0:
            return False
        end = self._ends[i]
        return end is None or key < end


T = TypeVar("T", bound=Hashable)


class _Node(Generic[T]):
    __slots__ = ("end", "left", "max_end", "owners", "prio", "right", "start")

    def __init__(self, start: bytes, end: bytes | None, owner: T) -> None:
        self.start = start
        self.end = end
        self.owners: set[T] = {owner}
        self.prio = random.random()
        self.left: _Node[T] | None = None
        self.right: _Node[T] | None = None
        self.max_end: bytes | None = end

    def fix(self) -> None:
        m = self.end
        left, right = self.left, self.right
        if m is not None and left is not None:
            lm = left.max_end
            if lm is None or lm > m:
                m = lm
        if m is not None and right is not None:
            rm = right.max_end
            if rm is None or rm > m:
                m = rm
        self.max_end = m


def _order(n: _Node[T]) -> tuple[bytes, int]:
    return (n.start, id(n))


def _split(node: _Node[T] | None, key: tuple[bytes, int]) -> tuple[_Node[T] | None, _Node[T] | None]:
    """Split into (< key, >= key)."""
    if node is None:
        return None, None
    if _order(node) < key:
        left, right = _split(node.right, key)
        node.right = left
        node.fix()
        return node, right
    left, right = _split(node.left, key)
    node.left = right
    node.fix()
    return left, node


def _merge(a: _Node[T] | None, b: _Node[T] | None) -> _Node[T] | None:
    if a is None:
        return b
    if b is None:
        return a
    if a.prio > b.prio:
        a.right = _merge(a.right, b)
        a.fix()
        return a
    b.left = _merge(a, b.left)
    b.fix()
    return b


class IntervalMap(Generic[T]):
    """Owner-tagged intervals with stabbing queries (see the module docstring)."""

    def __init__(self) -> None:
        self._points: dict[bytes, set[T]] = {}
        self._root: _Node[T] | None = None
        self._ranges: dict[Interval, _Node[T]] = {}  # the tree's nodes by their interval
        self._by_owner: dict[T, list[_Node[T] | bytes]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def insert(self, start: bytes, end: bytes | None, owner: T) -> None:
        entries = self._by_owner.setdefault(owner, [])
        self._size += 1
        if end is not None and len(end) == len(start) + 1 and end[-1] == 0 and end.startswith(start):
            self._points.setdefault(start, set()).add(owner)
            entries.append(start)
            return
        node = self._ranges.get((start, end))
        if node is not None:
            node.owners.add(owner)
            entries.append(node)
            return
        node = _Node(start, end, owner)
        self._ranges[(start, end)] = node
        entries.append(node)
        left, right = _split(self._root, _order(node))
        self._root = _merge(_merge(left, node), right)

    def remove_owner(self, owner: T) -> None:
        entries = self._by_owner.pop(owner, None)
        if not entries:
            return
        for e in entries:
            self._size -= 1
            if isinstance(e, bytes):
                owners = self._points.get(e)
                if owners is not None:
                    owners.discard(owner)
                    if not owners:
                        del self._points[e]
            else:
                e.owners.discard(owner)
                if not e.owners and self._ranges.get((e.start, e.end)) is e:
                    del self._ranges[(e.start, e.end)]
                    self._remove_node(e)

    def _remove_node(self, node: _Node[T]) -> None:
        key = _order(node)
        left, rest = _split(self._root, key)
        # rest's smallest element is `node` (orders are unique through id()).
        mid, right = _split(rest, (key[0], key[1] + 1))
        assert mid is node or mid is None
        self._root = _merge(left, right)

    def stab(self, key: bytes, out: set[T]) -> None:
        """Add to ``out`` every owner with an interval containing ``key``."""
        owners = self._points.get(key)
        if owners:
            out.update(owners)
        node = self._root
        if node is None:
            return
        stack = [node]
        while stack:
            n = stack.pop()
            me = n.max_end
            if me is not None and me <= key:
                continue  # every interval below ends at or before key
            if n.left is not None:
                stack.append(n.left)
            if n.start <= key:
                e = n.end
                if e is None or key < e:
                    out.update(n.owners)
                if n.right is not None:
                    stack.append(n.right)

    def owners(self) -> Iterator[T]:
        return iter(self._by_owner)
