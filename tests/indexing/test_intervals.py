from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from convection.indexing.intervals import IntervalMap, IntervalSet, singleton

keys = st.binary(min_size=0, max_size=3)
intervals = st.tuples(keys, st.one_of(st.none(), keys)).filter(lambda iv: iv[1] is None or iv[0] < iv[1])


def _contains(iv: tuple[bytes, bytes | None], k: bytes) -> bool:
    return iv[0] <= k and (iv[1] is None or k < iv[1])


@settings(max_examples=300)
@given(st.lists(intervals, max_size=12), st.lists(keys, max_size=12))
def test_interval_set_contains_matches_definition(ivs: list[tuple[bytes, bytes | None]], probes: list[bytes]) -> None:
    s = IntervalSet(ivs)
    for k in probes + [iv[0] for iv in ivs]:
        assert s.contains(k) == any(_contains(iv, k) for iv in ivs)
    norm = list(s)
    for (_s1, e1), (s2, _) in itertools.pairwise(norm):
        assert e1 is not None and e1 < s2  # sorted, disjoint, not adjacent


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.integers(0, 6), intervals), max_size=25),
    st.lists(st.integers(0, 6), max_size=4),
    st.lists(keys, max_size=10),
)
def test_interval_map_stab_matches_brute_force(
    entries: list[tuple[int, tuple[bytes, bytes | None]]], removed: list[int], probes: list[bytes]
) -> None:
    m: IntervalMap[int] = IntervalMap()
    for owner, (s, e) in entries:
        m.insert(s, e, owner)
    for owner in removed:
        m.remove_owner(owner)
    live = [(o, iv) for o, iv in entries if o not in removed]
    assert len(m) == len(live)
    for k in probes + [iv[0] for _, iv in entries]:
        out: set[int] = set()
        m.stab(k, out)
        assert out == {o for o, iv in live if _contains(iv, k)}


def test_singletons_use_the_point_map() -> None:
    m: IntervalMap[str] = IntervalMap()
    m.insert(*singleton(b"abc"), "a")
    m.insert(b"ab", b"ac", "b")
    out: set[str] = set()
    m.stab(b"abc", out)
    assert out == {"a", "b"}
    out.clear()
    m.stab(b"abd", out)
    assert out == {"b"}
    m.remove_owner("a")
    out.clear()
    m.stab(b"abc", out)
    assert out == {"b"}


@settings(max_examples=300)
@given(
    st.lists(intervals, min_size=1, max_size=4),
    st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.integers(0, 3)), max_size=40),
    st.lists(keys, max_size=8),
)
def test_shared_ranges_survive_interleaved_inserts_and_removals(
    pool: list[tuple[bytes, bytes | None]], ops: list[tuple[bool, int, int]], probes: list[bytes]
) -> None:
    """Many owners of the same few ranges (they share one tree node), added and removed in
    any order, owners re-added after removal, an owner holding one range twice."""
    m: IntervalMap[int] = IntervalMap()
    live: dict[int, list[tuple[bytes, bytes | None]]] = {}
    for add, owner, which in ops:
        if add:
            iv = pool[which % len(pool)]
            m.insert(iv[0], iv[1], owner)
            live.setdefault(owner, []).append(iv)
        else:
            m.remove_owner(owner)
            live.pop(owner, None)
    assert len(m) == sum(len(v) for v in live.values())
    for k in probes + [iv[0] for iv in pool]:
        out: set[int] = set()
        m.stab(k, out)
        assert out == {o for o, ivs in live.items() if any(_contains(iv, k) for iv in ivs)}
