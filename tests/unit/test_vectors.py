"""The in-process vector index: exact and HNSW search agree, namespaces never leak,
feed rows put, replace and drop vectors, removal and replacement."""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from tether.memory.vectors import VectorIndex
from tether.store.base import IndexRow


def _add(
    index: VectorIndex,
    tenant: str,
    model: str,
    entries: list[tuple[int, str, str]],
    vecs: npt.NDArray[np.float32],
) -> int:
    """Apply feed rows carrying these vectors: ``entries`` are (pk, namespace, hash),
    ``vecs`` has a row for each (more are ignored). The namespace is part of the hash the
    index compares, so moving a key to another namespace puts it again."""
    rows = [
        IndexRow(0, tenant, f"m{pk}", pk, ns, 1, "", f"{digest}@{ns}", vec.astype("<f4").tobytes())
        for (pk, ns, digest), vec in zip(entries, vecs, strict=False)
    ]
    return index.apply(model, rows)


def _drop(index: VectorIndex, tenant: str, pk: int, model: str = "m") -> None:
    """Apply a feed row of a memory without a vector (new text, or forgotten)."""
    index.apply(model, [IndexRow(0, tenant, f"m{pk}", pk, "n", 0, None, None, None)])


def _unit(rng: np.random.Generator, n: int, dim: int = 32) -> npt.NDArray[np.float32]:
    # Clustered vectors (HNSW recall collapses on structureless noise; see DEPENDENCY-FACTS).
    centres = rng.standard_normal((8, dim))
    x = centres[rng.integers(0, 8, n)] + 0.3 * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def _brute(
    vecs: npt.NDArray[np.float32], keys: list[int], q: npt.NDArray[np.float32], k: int
) -> list[int]:
    sims = vecs @ q
    return [keys[i] for i in np.argsort(-sims, kind="stable")[:k]]


def _until_graphs_serve(index: VectorIndex, timeout_s: float = 30.0) -> None:
    """Wait until tenant "t", model "m" searches use their graphs (built off-thread)."""
    deadline = time.monotonic() + timeout_s
    while not index.uses_hnsw("t", "m"):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_exact_search_matches_brute_force_and_filters_namespaces() -> None:
    rng = np.random.default_rng(1)
    vecs = _unit(rng, 300)
    index = VectorIndex(hnsw_threshold=10_000)
    entries = [(i + 1, "a" if i % 3 else "b", f"h{i}") for i in range(300)]
    assert _add(index, "t", "m", entries, vecs) == 300
    q = vecs[7]
    got = [k for k, _ in index.search("t", "m", q, 10)]
    assert got == _brute(vecs, [e[0] for e in entries], q, 10)
    only_b = index.search("t", "m", q, 10, namespaces=["b"])
    assert {k for k, _ in only_b} <= {e[0] for e in entries if e[1] == "b"}
    assert len(only_b) == 10
    assert index.search("t", "m", q, 5, namespaces=["missing"]) == []
    assert index.search("other-tenant", "m", q, 5) == []
    assert index.search("t", "other-model", q, 5) == []


def test_hnsw_results_agree_with_exact_search_and_respect_namespaces() -> None:
    rng = np.random.default_rng(2)
    vecs = _unit(rng, 600)
    index = VectorIndex(hnsw_threshold=100)
    entries = [(i + 1, "x" if i < 500 else "y", f"h{i}") for i in range(600)]
    _add(index, "t", "m", entries, vecs)
    _until_graphs_serve(index)
    keys = [e[0] for e in entries]
    agree = 0
    for qi in range(0, 600, 30):
        got = [k for k, _ in index.search("t", "m", vecs[qi], 10)]
        agree += len(set(got) & set(_brute(vecs, keys, vecs[qi], 10)))
    assert agree / (20 * 10) >= 0.95
    # A selective namespace (100 of 600 rows) still returns only, and enough of, its rows.
    only_y = index.search("t", "m", vecs[0], 10, namespaces=["y"])
    assert len(only_y) == 10
    assert all(k > 500 for k, _ in only_y)
    # Rows added after the graph was built are found at once (scored exactly until synced).
    extra = _unit(np.random.default_rng(3), 1)
    _add(index, "t", "m", [(9999, "x", "new")], extra)
    assert index.search("t", "m", extra[0], 1)[0][0] == 9999


def test_feed_rows_put_replace_and_drop_and_a_known_text_is_a_no_op() -> None:
    rng = np.random.default_rng(4)
    v = _unit(rng, 2)
    index = VectorIndex(hnsw_threshold=1000)
    assert _add(index, "t", "m", [(1, "n", "old")], v[:1]) == 1
    # The same text's vector again (a metadata-only change in the feed): nothing to do.
    assert _add(index, "t", "m", [(1, "n", "old")], v[:1]) == 0
    # The text changed and is not embedded yet: the feed row has no vector.
    _drop(index, "t", 1)
    assert index.search("t", "m", v[0], 5) == []
    # Its new vector arrives with a later change.
    assert _add(index, "t", "m", [(1, "n", "new")], v[1:]) == 1
    assert index.search("t", "m", v[1], 5)[0][0] == 1
    assert index.count("t", "m") == 1
    _drop(index, "t", 1)
    assert index.count("t", "m") == 0


def test_replacing_and_removing_keep_rows_consistent() -> None:
    rng = np.random.default_rng(5)
    vecs = _unit(rng, 50)
    index = VectorIndex(hnsw_threshold=1000)
    _add(index, "t", "m", [(i, "n", "h") for i in range(50)], vecs)
    for key in range(0, 50, 2):
        _drop(index, "t", key)
    assert index.count("t", "m") == 25
    for key in range(1, 50, 2):
        top = index.search("t", "m", vecs[key], 1)
        assert top[0][0] == key
        assert abs(top[0][1] - 1.0) < 1e-5


def test_namespace_blocks_match_brute_force_through_growth_moves_and_deletes() -> None:
    # Namespaces start in the shared pool and move to blocks of their own as they grow;
    # every search must still equal brute force over exactly the allowed rows.
    rng = np.random.default_rng(6)
    vecs = _unit(rng, 1500)
    index = VectorIndex(hnsw_threshold=100_000)
    ns_of = {i: f"ns{int(rng.integers(0, 12)) if i % 4 else 0}" for i in range(1500)}
    for start in range(0, 1500, 100):
        _add(index, "t", "m", [(i, ns_of[i], "h") for i in range(start, start + 100)], vecs[start:])
    for key in range(0, 1500, 7):  # forget some
        _drop(index, "t", key)
        del ns_of[key]
    for key in range(3, 1500, 11):  # move some to another namespace (re-added)
        if key in ns_of:
            ns_of[key] = "moved"
            _add(index, "t", "m", [(key, "moved", "h")], vecs[key : key + 1])
    assert index.count("t", "m") == len(ns_of)
    for selection in (None, ["ns0"], ["ns3", "ns5"], ["moved", "ns1"], ["ns7", "nope"]):
        keys = sorted(k for k, ns in ns_of.items() if selection is None or ns in selection)
        for qi in (1, 500, 999):
            got = [k for k, _ in index.search("t", "m", vecs[qi], 10, namespaces=selection)]
            assert got == _brute(vecs[keys], keys, vecs[qi], 10)


def test_close_stops_the_graph_thread_between_batches() -> None:
    rng = np.random.default_rng(3)
    index = VectorIndex(hnsw_threshold=100)
    _add(index, "t", "m", [(i + 1, "x", f"h{i}") for i in range(400)], _unit(rng, 400))
    _until_graphs_serve(index)
    threads = [c.thread for c in index._collections.values() if c.thread is not None]
    assert threads
    assert all(t.is_alive() for t in threads)  # the graph keeps syncing until closed
    index.close()
    assert not any(t.is_alive() for t in threads)


def test_each_large_namespace_gets_its_own_graph_and_moves_between_them_are_seen() -> None:
    rng = np.random.default_rng(8)
    vecs = _unit(rng, 1200)
    index = VectorIndex(hnsw_threshold=300)
    ns_of = {i: ("p" if i < 500 else "q" if i < 1000 else "small") for i in range(1200)}
    _add(index, "t", "m", [(i, ns_of[i], "h") for i in range(1200)], vecs)
    _until_graphs_serve(index)
    coll = index._collections[("t", "m")]
    assert len(coll.graphs) == 2  # p and q; "small" (200) is searched exactly
    # Move 20 keys from p to q after the graphs exist: found in q at once, never in p.
    for key in range(0, 40, 2):
        ns_of[key] = "q"
        _add(index, "t", "m", [(key, "q", "h")], vecs[key : key + 1])
    for selection in (["p"], ["q"], ["p", "small"], None):
        keys = sorted(k for k, ns in ns_of.items() if selection is None or ns in selection)
        agree = 0
        for qi in range(0, 1200, 60):
            got = [k for k, _ in index.search("t", "m", vecs[qi], 10, namespaces=selection)]
            assert set(got) <= set(keys)
            agree += len(set(got) & set(_brute(vecs[keys], keys, vecs[qi], 10)))
        assert agree / (20 * 10) >= 0.95
    moved = index.search("t", "m", vecs[4], 1, namespaces=["q"])
    assert moved[0][0] == 4
    assert all(k != 4 for k, _ in index.search("t", "m", vecs[4], 50, namespaces=["p"]))
    index.close()


def test_wide_graph_serves_searches_over_most_of_the_collection() -> None:
    """Once two namespaces have graphs, a graph over every vector serves searches whose
    namespaces hold at least half the collection (one graph walk instead of one per
    namespace); it filters to the searched namespaces, follows moves and deletes made
    after it was built, and returns exact cosines."""
    rng = np.random.default_rng(9)
    vecs = _unit(rng, 1400)
    index = VectorIndex(hnsw_threshold=300)
    ns_of = {i: ("p", "q", "r")[i // 400] if i < 1200 else "small" for i in range(1400)}
    _add(index, "t", "m", [(i, ns_of[i], "h") for i in range(1400)], vecs)
    _until_graphs_serve(index)
    coll = index._collections[("t", "m")]
    assert len(coll.graphs) == 3
    assert coll.wide is not None
    assert coll.wide.index is not None
    walked: list[object] = []
    graph_search = coll._graph

    def spy(codes, graph, query, k):  # type: ignore[no-untyped-def]
        walked.append(graph)
        return graph_search(codes, graph, query, k)

    coll._graph = spy  # type: ignore[method-assign]
    # Move 10 keys from p to r and delete 10 of q after the wide graph was built.
    for key in range(0, 20, 2):
        ns_of[key] = "r"
        _add(index, "t", "m", [(key, "r", "h")], vecs[key : key + 1])
    for key in range(400, 410):
        del ns_of[key]
        _drop(index, "t", key)
    for selection in (["p", "q"], ["q", "r", "small"], None):
        walked.clear()
        keys = sorted(k for k, ns in ns_of.items() if selection is None or ns in selection)
        agree = 0
        for qi in range(0, 1400, 70):
            got = index.search("t", "m", vecs[qi], 10, namespaces=selection)
            assert {k for k, _ in got} <= set(keys)
            for key, score in got:
                assert abs(score - float(vecs[key] @ vecs[qi])) < 1e-5
            agree += len({k for k, _ in got} & set(_brute(vecs[keys], keys, vecs[qi], 10)))
        assert agree / (20 * 10) >= 0.95
        assert walked
        assert all(g is coll.wide for g in walked)
    assert index.search("t", "m", vecs[4], 1, namespaces=["r", "q"])[0][0] == 4
    assert all(k != 4 for k, _ in index.search("t", "m", vecs[4], 50, namespaces=["p", "q"]))
    # A search over one namespace, or over less than half the collection, does not use it.
    walked.clear()
    index.search("t", "m", vecs[500], 10, namespaces=["q"])
    index.search("t", "m", vecs[500], 10, namespaces=["q", "small"])
    assert walked == [coll.graphs[coll.ns_code["q"]]] * 2
    index.close()
