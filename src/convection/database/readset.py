"""Read sets: what a transaction (or a query result) depends on.

A read set maps index ids to intervals of encoded keys. Reads are recorded while a
transaction runs (``RangeRead`` handles grow as rows are consumed, so only the consumed part
of a range counts; a miss is recorded too) and frozen into :class:`IntervalSet` s when the
transaction commits or a query result is subscribed.
"""

from __future__ import annotations

from collections.abc import Iterator

from convection.indexing.intervals import Interval, IntervalSet, singleton


class RangeRead:
    """A scan of ``[start, end)`` in one direction; records the consumed part."""

    __slots__ = ("end", "exhausted", "last", "reverse", "start")

    def __init__(self, start: bytes, end: bytes | None, reverse: bool) -> None:
        self.start = start
        self.end = end
        self.reverse = reverse
        self.last: bytes | None = None
        self.exhausted = False

    def interval(self) -> Interval | None:
        if self.exhausted:
            return (self.start, self.end)
        last = self.last
        if last is None:
            return None
        if self.reverse:
            return (last, self.end)
        return (self.start, last + b"\x00")


class ReadSet:
    """Recorded reads of one transaction."""

    __slots__ = ("_points", "_ranges", "count")

    def __init__(self) -> None:
        self._points: dict[int, list[bytes]] = {}
        self._ranges: dict[int, list[RangeRead]] = {}
        self.count = 0

    def record_point(self, index_id: int, key: bytes) -> None:
        self.count += 1
        self._points.setdefault(index_id, []).append(key)

    def record_range(self, index_id: int, start: bytes, end: bytes | None, reverse: bool) -> RangeRead:
        self.count += 1
        rr = RangeRead(start, end, reverse)
        self._ranges.setdefault(index_id, []).append(rr)
        return rr

    def record_interval(self, index_id: int, start: bytes, end: bytes | None) -> None:
        rr = self.record_range(index_id, start, end, False)
        rr.exhausted = True

    def freeze(self) -> FrozenReadSet:
        out: dict[int, IntervalSet] = {}
        for index_id in set(self._points) | set(self._ranges):
            ivs: list[Interval] = [singleton(k) for k in self._points.get(index_id, ())]
            for rr in self._ranges.get(index_id, ()):
                iv = rr.interval()
                if iv is not None:
                    ivs.append(iv)
            s = IntervalSet(ivs)
            if len(s):
                out[index_id] = s
        return FrozenReadSet(out)


class FrozenReadSet:
    """An immutable read set: index id -> IntervalSet."""

    __slots__ = ("by_index",)

    def __init__(self, by_index: dict[int, IntervalSet]) -> None:
        self.by_index = by_index

    def __iter__(self) -> Iterator[tuple[int, IntervalSet]]:
        return iter(self.by_index.items())

    def overlaps_keys(self, index_keys: dict[int, list[bytes]]) -> bool:
        """Whether any of the written keys (index id -> keys) falls inside the read set."""
        by_index = self.by_index
        if len(by_index) <= len(index_keys):
            for index_id, ivs in by_index.items():
                keys = index_keys.get(index_id)
                if keys:
                    contains = ivs.contains
                    for k in keys:
                        if contains(k):
                            return True
        else:
            for index_id, keys in index_keys.items():
                ivs2 = by_index.get(index_id)
                if ivs2 is not None:
                    contains = ivs2.contains
                    for k in keys:
                        if contains(k):
                            return True
        return False


EMPTY_READ_SET = FrozenReadSet({})
