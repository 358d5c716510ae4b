"""Vector search (SEMANTICS.md §5): ``ctx.vector_search`` in the actions of
tests/search/app/convex (table ``docs``, index ``by_embedding``: 3 dimensions, filter fields
``kind`` and ``userId``), run by ``TestBackend``."""

from __future__ import annotations

import asyncio
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from convection import knobs
from convection.functions.context import MutationCtx
from convection.functions.identity import Identity
from convection.server.app import open_deployment
from convection.testing import FunctionError, TestBackend

APP = Path(__file__).parents[1] / "search" / "app" / "convex"


@pytest.fixture
def backend(convection_backend: TestBackend) -> TestBackend:
    return convection_backend


def add(backend: TestBackend, embedding: Any, kind: str = "a", userId: str | None = None) -> str:
    args: dict[str, Any] = {"embedding": embedding, "kind": kind}
    if userId is not None:
        args["userId"] = userId
    doc_id: str = backend.mutation("docs:add", args)
    return doc_id


def search(backend: TestBackend, vector: list[float], **kw: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = backend.action("docs:search", {"vector": vector, **kw})
    return result


def error_code(backend: TestBackend, path: str, args: dict[str, Any]) -> str | None:
    outcome = backend.run_async(backend.app.run_action(path, args, backend.identity))
    assert not outcome.success
    return outcome.error_code


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_results_are_cosine_similarities_best_first(backend: TestBackend) -> None:
    vectors = {
        "x": [1.0, 0.0, 0.0],
        "xy": [1.0, 1.0, 0.0],
        "y": [0.0, 2.0, 0.0],
        "minus_x": [-3.0, 0.0, 0.0],
    }
    ids = {name: add(backend, v) for name, v in vectors.items()}
    query = [2.0, 1.0, 0.0]
    found = search(backend, query)
    assert [r["_id"] for r in found] == [ids["xy"], ids["x"], ids["y"], ids["minus_x"]]
    for r in found:
        name = next(n for n, i in ids.items() if i == r["_id"])
        assert r["_score"] == pytest.approx(cosine(query, vectors[name]), abs=1e-6)
        assert set(r) == {"_id", "_score"}
    assert found[-1]["_score"] == pytest.approx(-cosine([1.0, 0.5, 0.0], [1.0, 0.0, 0.0]), abs=1e-6)


def test_ties_are_ordered_by_id(backend: TestBackend) -> None:
    ids = [add(backend, [1.0, 1.0, 1.0]) for _ in range(5)]
    found = search(backend, [1.0, 1.0, 1.0], limit=3)
    assert [r["_id"] for r in found] == sorted(ids)[:3]
    assert all(r["_score"] == pytest.approx(1.0) for r in found)


def test_limit_defaults_to_10_and_is_at_most_256(backend: TestBackend) -> None:
    backend.run(lambda ctx: [ctx.db.insert("docs", {"embedding": [1.0, float(i), 0.0], "kind": "a"}) for i in range(300)])
    assert len(search(backend, [1.0, 0.0, 0.0])) == 10
    assert len(search(backend, [1.0, 0.0, 0.0], limit=3)) == 3
    assert knobs.MAX_VECTOR_RESULTS_COUNT == 256
    assert len(search(backend, [1.0, 0.0, 0.0], limit=256)) == 256
    assert len(search(backend, [1.0, 0.0, 0.0], limit=4.0)) == 4  # JS clients send floats
    for bad in (257, 0, -1, 2.5, "10", True):
        assert error_code(backend, "docs:search", {"vector": [1.0, 0.0, 0.0], "limit": bad}) == "InvalidVectorQuery"


def test_filters_are_ors_of_equalities_on_filter_fields(backend: TestBackend) -> None:
    a1 = add(backend, [1.0, 0.0, 0.0], "a", "u1")
    a2 = add(backend, [0.9, 0.1, 0.0], "a", "u2")
    b1 = add(backend, [0.8, 0.2, 0.0], "b", "u1")
    c0 = add(backend, [0.7, 0.3, 0.0], "c")
    q = [1.0, 0.0, 0.0]
    assert [r["_id"] for r in search(backend, q, filter=[["kind", "a"]])] == [a1, a2]
    assert [r["_id"] for r in search(backend, q, filter=[["userId", "u1"]])] == [a1, b1]
    assert [r["_id"] for r in search(backend, q, filter=[["kind", "b"], ["userId", "u2"]])] == [a2, b1]
    assert [r["_id"] for r in search(backend, q, filter=[["kind", "c"], ["kind", "b"]])] == [b1, c0]
    assert search(backend, q, filter=[["kind", "zzz"]]) == []
    assert len(search(backend, q)) == 4


def test_filter_errors(backend: TestBackend) -> None:
    add(backend, [1.0, 0.0, 0.0])
    q = [1.0, 0.0, 0.0]
    assert error_code(backend, "docs:search", {"vector": q, "filter": [["embedding", "x"]]}) == "InvalidVectorQuery"
    assert error_code(backend, "docs:search", {"vector": q, "filter": "not-eq"}) == "InvalidVectorQuery"
    assert knobs.MAX_VECTOR_FILTER_TERMS_COUNT == 64
    many = [["kind", f"k{i}"] for i in range(65)]
    assert error_code(backend, "docs:search", {"vector": q, "filter": many}) == "InvalidVectorQuery"
    assert search(backend, q, filter=many[:64]) == []


def test_query_validation_errors(backend: TestBackend) -> None:
    add(backend, [1.0, 0.0, 0.0])
    assert error_code(backend, "docs:search", {"vector": [1.0, 0.0]}) == "InvalidVectorQuery"
    assert error_code(backend, "docs:search", {"vector": [1.0, 0.0, 0.0, 0.0]}) == "InvalidVectorQuery"
    assert error_code(backend, "docs:search", {"vector": ["a", "b", "c"]}) == "InvalidVectorQuery"
    assert error_code(backend, "docs:search", {"vector": [1.0, 0.0, 0.0], "index": "nope"}) == "IndexNotFound"
    assert error_code(backend, "docs:search", {"vector": [1.0, 0.0, 0.0], "table": "messages"}) == "IndexNotFound"


def test_documents_without_a_valid_vector_are_not_indexed(backend: TestBackend) -> None:
    good = add(backend, [0.0, 1.0, 0.0])
    short = add(backend, [1.0, 0.0])
    long = add(backend, [1.0, 0.0, 0.0, 0.0])
    add(backend, "not an array")
    add(backend, None)
    found = search(backend, [1.0, 0.0, 0.0])
    assert [r["_id"] for r in found] == [good]
    # Fixing a document's vector indexes it; breaking it removes it; deleting removes it.
    backend.mutation("docs:set_embedding", {"id": short, "embedding": [1.0, 0.0, 0.0]})
    assert [r["_id"] for r in search(backend, [1.0, 0.0, 0.0])] == [short, good]
    backend.mutation("docs:set_embedding", {"id": good, "embedding": [1.0]})
    assert [r["_id"] for r in search(backend, [1.0, 0.0, 0.0])] == [short]
    backend.mutation("docs:remove", {"id": short})
    assert search(backend, [1.0, 0.0, 0.0]) == []
    assert long  # never indexed


def test_committed_writes_are_searchable_immediately(backend: TestBackend) -> None:
    assert search(backend, [0.0, 0.0, 1.0]) == []
    doc = add(backend, [0.0, 0.0, 1.0], "z")
    assert search(backend, [0.0, 0.0, 1.0]) == [{"_id": doc, "_score": pytest.approx(1.0)}]
    assert backend.action("docs:search_and_load", {"vector": [0.0, 0.0, 1.0]}) == ["z"]
    assert [r["_id"] for r in backend.action("docs:search_options", {"vector": [0.0, 0.0, 1.0], "limit": 1})] == [doc]


def test_vector_search_exists_only_in_actions(backend: TestBackend) -> None:
    def probe(ctx: MutationCtx) -> bool:
        return hasattr(ctx, "vector_search")

    assert backend.run(probe) is False


def test_brute_force_matches_a_reference_on_random_vectors(backend: TestBackend) -> None:
    rng = random.Random(7)
    vectors = [[rng.uniform(-1, 1) for _ in range(3)] for _ in range(500)]
    kinds = [rng.choice("ab") for _ in vectors]
    ids = backend.run(
        lambda ctx: [ctx.db.insert("docs", {"embedding": v, "kind": k}) for v, k in zip(vectors, kinds, strict=True)]
    )
    for _ in range(5):
        q = [rng.uniform(-1, 1) for _ in range(3)]
        ref = sorted(
            ((cosine(q, v), i) for v, i, k in zip(vectors, ids, kinds, strict=True) if k == "b"),
            key=lambda t: -t[0],
        )[:20]
        found = search(backend, q, limit=20, filter=[["kind", "b"]])
        assert [r["_id"] for r in found] == [i for _, i in ref]
        assert np.allclose([r["_score"] for r in found], [s for s, _ in ref], atol=1e-5)


def test_the_approximate_index_finds_the_exact_neighbours(backend: TestBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every search going through the HNSW graph (no exact fallback), recall@10 against
    exact search is high, also with a filter keeping a fraction of the documents."""
    monkeypatch.setattr(knobs, "VECTOR_EXACT_MAX_COUNT", 0)
    rng = random.Random(11)
    vectors = [[rng.gauss(0, 1) for _ in range(3)] for _ in range(2000)]
    kinds = [rng.choice("aaab") for _ in vectors]
    ids: list[str] = []
    for k in range(0, len(vectors), 500):
        ids += backend.run(lambda ctx, k=k: [
            ctx.db.insert("docs", {"embedding": v, "kind": kd})
            for v, kd in zip(vectors[k : k + 500], kinds[k : k + 500], strict=True)
        ])
    hits = total = 0
    for _ in range(10):
        q = [rng.gauss(0, 1) for _ in range(3)]
        for kind in (None, "b"):
            ref = sorted(
                ((cosine(q, v), i) for v, i, kd in zip(vectors, ids, kinds, strict=True) if kind in (None, kd)),
                key=lambda t: -t[0],
            )[:10]
            kw: dict[str, Any] = {"limit": 10} if kind is None else {"limit": 10, "filter": [["kind", kind]]}
            found = search(backend, q, **kw)
            assert len(found) == 10
            assert all(r["_id"] in ids for r in found)
            hits += len({r["_id"] for r in found} & {i for _, i in ref})
            total += 10
    assert hits / total >= 0.95


def _call(dep: Any, kind: str, path: str, args: dict[str, Any]) -> Any:
    admin = Identity(kind="admin")
    fn = dep.app.run_action if kind == "action" else dep.app.run_mutation
    outcome = asyncio.run(fn(path, args, admin))
    assert outcome.success, outcome.error_message
    return outcome.value


def test_a_restart_loads_the_saved_index_and_applies_only_the_log_after_it(tmp_path: Path) -> None:
    from convection.vector import ann

    dep = open_deployment(APP, tmp_path, dev=True)
    try:
        kept = _call(dep, "mutation", "docs:add", {"embedding": [1.0, 0.0, 0.0], "kind": "a"})
        gone = _call(dep, "mutation", "docs:add", {"embedding": [1.0, 0.1, 0.0], "kind": "a"})
        _call(dep, "mutation", "docs:remove", {"id": gone})
        _call(dep, "mutation", "docs:add_many", {"n": 300})
    finally:
        dep.close()  # saves the graph with the ts it covers
        dep.app.loaded.unload()
    assert list((tmp_path / "indexes").glob("vector-*.usearch"))
    before = ann.APPLIED[0]
    dep = open_deployment(APP, tmp_path, dev=True)
    try:
        assert ann.APPLIED[0] == before  # loaded, not rebuilt
        found = _call(dep, "action", "docs:search", {"vector": [1.0, 0.0, 0.0], "limit": 1})
        assert [r["_id"] for r in found] == [kept]
        # A commit after the save, then a crash (no save at close): only it is applied.
        late = _call(dep, "mutation", "docs:add", {"embedding": [1.0, 0.0, 0.0001], "kind": "b"})
        dep.app.vector_search.save = lambda: None  # type: ignore[method-assign]
        dep.app.vector_search._stop = True
    finally:
        dep.close()
        dep.app.loaded.unload()
    before = ann.APPLIED[0]
    dep = open_deployment(APP, tmp_path, dev=True)
    try:
        assert ann.APPLIED[0] - before == 1  # the one commit after the saved ts
        found = _call(dep, "action", "docs:search", {"vector": [1.0, 0.0, 0.0], "limit": 2})
        assert {r["_id"] for r in found} == {kept, late}
    finally:
        dep.close()
        dep.app.loaded.unload()


def test_function_errors_surface_to_callers(backend: TestBackend) -> None:
    with pytest.raises(FunctionError) as info:
        backend.action("docs:search", {"vector": [1.0]})
    assert "dimensions" in info.value.message


def test_updates_and_deletes_of_vectors_not_yet_in_the_graph(backend: TestBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """New vectors reach the graph in batches: a document replaced or deleted before its
    first vector was added (commits applied by one drain) leaves only its latest state."""
    monkeypatch.setattr(knobs, "VECTOR_EXACT_MAX_COUNT", 0)  # through the graph
    for _ in range(3):  # the applier thread may or may not drain between the commits
        a = backend.run(lambda ctx: ctx.db.insert("docs", {"embedding": [1.0, 0.0, 0.0], "kind": "a"}))
        b = backend.run(lambda ctx: ctx.db.insert("docs", {"embedding": [0.0, 1.0, 0.0], "kind": "a"}))
        backend.run(lambda ctx, a=a: ctx.db.replace(a, {"embedding": [0.0, 0.0, 1.0], "kind": "b"}))
        backend.run(lambda ctx, b=b: ctx.db.delete(b))
        assert [r["_id"] for r in search(backend, [0.0, 1.0, 0.0], limit=10)
                if r["_score"] > 0.5] == []
        found = search(backend, [0.0, 0.0, 1.0], limit=10, filter=[["kind", "b"]])
        assert found[0] == {"_id": a, "_score": pytest.approx(1.0)}
        assert [r["_id"] for r in search(backend, [1.0, 0.0, 0.0], limit=10)].count(a) == 1
        backend.run(lambda ctx, a=a: ctx.db.delete(a))
    assert search(backend, [0.0, 0.0, 1.0], limit=10) == []
