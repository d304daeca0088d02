"""The in-process vector index: exact numpy search while small, usearch HNSW above a threshold.

The store is the truth (``memory_vectors``); this index is a cache rebuilt from it at start
and updated after each commit. There is one collection per (tenant, embedding model), so
vectors of different models never meet. Keys are memory row keys (``memories.pk``); each
row also records its namespace, so a query restricted to namespaces never sees others.

Search:

- **exact** (collection size <= ``hnsw_threshold``, or while the HNSW graph is being
  built): one matrix-vector product over unit vectors (cosine = dot product), masked to the
  allowed namespaces. ~9 ms per query at 100k x 384 on the reference box
  (shared/DEPENDENCY-FACTS.md), ~2 ms at 20k.
- **HNSW** (usearch, M = 16, inner product): built in a background thread once a
  collection crosses the threshold (~1 ms per vector to insert on one core, so ~90 s for
  100k: searches stay exact meanwhile), then maintained incrementally. Namespace
  restriction over-fetches by the inverse share of allowed rows and filters, growing the
  fetch until ``k`` results are found; when the allowed rows are few, exact search over
  just those rows is used instead. Scores are always recomputed exactly from the matrix,
  and rows changed since the graph last synced are scored exactly too, so results never
  show a removed or stale vector.

Ordering between commits and this cache: a text change or a forget calls
:meth:`VectorIndex.invalidate` with the hash the memory's vector must now have (or
``None``); :meth:`VectorIndex.add` drops a vector whose hash does not match the latest
expectation. Either arrival order ends with the right vector.

Import note: ``onnxruntime`` must be imported before ``usearch`` on these machines
(the reverse order segfaults in 2.26 with onnxruntime 1.x); this module does so.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["VectorIndex"]

log = logging.getLogger("tether.memory.vectors")

FloatMatrix = npt.NDArray[np.float32]
Hit = tuple[int, float]

_INITIAL_CAPACITY: Final = 1024
# Vectors inserted into the graph per lock hold: bounds how long a search waits (~1 ms each).
_HNSW_CHUNK: Final = 8
# HNSW graph degree (usearch "connectivity", M in Malkov & Yashunin 2018); 16 measured
# recall@10 1.00 at 100k real MiniLM vectors (shared/DEPENDENCY-FACTS.md).
_HNSW_CONNECTIVITY: Final = 16


def _new_hnsw(dim: int) -> Any:
    import onnxruntime  # noqa: F401  (must precede usearch: see the module docstring)
    from usearch.index import Index

    return Index(ndim=dim, metric="ip", dtype="f32", connectivity=_HNSW_CONNECTIVITY)


class _Collection:
    """Vectors of one (tenant, model): a growable matrix, plus an optional HNSW graph."""

    def __init__(self, dim: int, hnsw_threshold: int) -> None:
        self.dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.lock = threading.Lock()  # guards the arrays, pos, dirty, hnsw reference
        self.hnsw_lock = threading.Lock()  # guards graph mutation vs graph search
        self.vecs: FloatMatrix = np.zeros((_INITIAL_CAPACITY, dim), dtype=np.float32)
        self.keys = np.zeros(_INITIAL_CAPACITY, dtype=np.int64)
        self.codes = np.zeros(_INITIAL_CAPACITY, dtype=np.int32)
        self.n = 0
        self.pos: dict[int, int] = {}
        self.ns_code: dict[str, int] = {}
        self.ns_count: dict[int, int] = {}
        self.hnsw: Any = None
        self.building = False
        self.dirty: dict[int, None] = {}  # keys changed since the graph last saw them
        self.kick = threading.Event()  # wakes the graph's sync thread

    # -- mutation (under self.lock) ------------------------------------------------------
    def _grow(self) -> None:
        cap = self.vecs.shape[0] * 2
        for name in ("vecs", "keys", "codes"):
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def put(self, key: int, namespace: str, vector: FloatMatrix) -> None:
        code = self.ns_code.setdefault(namespace, len(self.ns_code))
        row = self.pos.get(key)
        if row is None:
            if self.n == self.vecs.shape[0]:
                self._grow()
            row = self.n
            self.n += 1
            self.pos[key] = row
            self.keys[row] = key
        else:
            self.ns_count[int(self.codes[row])] -= 1
        self.vecs[row] = vector
        self.codes[row] = code
        self.ns_count[code] = self.ns_count.get(code, 0) + 1
        self.dirty[key] = None

    def delete(self, key: int) -> None:
        row = self.pos.pop(key, None)
        if row is None:
            return
        self.ns_count[int(self.codes[row])] -= 1
        last = self.n - 1
        if row != last:
            moved = int(self.keys[last])
            self.vecs[row] = self.vecs[last]
            self.keys[row] = moved
            self.codes[row] = self.codes[last]
            self.pos[moved] = row
        self.n = last
        self.dirty[key] = None

    # -- the graph -------------------------------------------------------------------------
    def maybe_build(self) -> None:
        """Start a background HNSW build when the collection first crosses the threshold."""
        with self.lock:
            if self.hnsw is not None or self.building or self.n <= self.hnsw_threshold:
                return
            self.building = True
            keys = self.keys[: self.n].copy()
            vecs = self.vecs[: self.n].copy()
            self.dirty.clear()  # the snapshot covers everything up to now
        threading.Thread(
            target=self._build, args=(keys, vecs), name="tether-hnsw-build", daemon=True
        ).start()

    def _build(self, keys: npt.NDArray[np.int64], vecs: FloatMatrix) -> None:
        try:
            graph = _new_hnsw(self.dim)
            for start in range(0, len(keys), 256):
                graph.add(keys[start : start + 256], vecs[start : start + 256], threads=1)
            with self.lock:
                self.hnsw = graph
            log.info("HNSW index built: %d vectors", len(keys))
        except Exception:
            log.exception("HNSW build failed; searches stay exact")
            with self.lock:
                self.building = False
            return
        with self.lock:
            self.building = False
        # From now on this thread keeps the graph in step with the matrix, off the callers'
        # threads (on 2 cores: beside the embedding thread, not after it).
        while True:
            self.sync()
            self.kick.wait(timeout=1.0)
            self.kick.clear()

    def sync(self) -> None:
        """Apply rows changed since the graph last saw them, a few at a time."""
        while True:
            with self.lock:
                graph = self.hnsw
                if graph is None or not self.dirty:
                    return
                batch = list(self.dirty)[:_HNSW_CHUNK]
                for key in batch:
                    del self.dirty[key]
                present = [(k, self.vecs[self.pos[k]].copy()) for k in batch if k in self.pos]
            with self.hnsw_lock:
                for key in batch:
                    if graph.contains(key):
                        graph.remove(key)
                for key, vec in present:
                    graph.add(key, vec, threads=1)

    # -- search ------------------------------------------------------------------------------
    def search(self, query: FloatMatrix, k: int, namespaces: Sequence[str] | None) -> list[Hit]:
        with self.lock:
            n = self.n
            if n == 0:
                return []
            if namespaces is None:
                codes = None
                allowed = n
            else:
                codes = np.array(
                    [self.ns_code[ns] for ns in namespaces if ns in self.ns_code], dtype=np.int32
                )
                allowed = sum(self.ns_count.get(int(c), 0) for c in codes)
            if allowed == 0:
                return []
            use_graph = self.hnsw is not None and allowed > self.hnsw_threshold
            if not use_graph:
                return self._exact(query, k, codes)
            graph = self.hnsw
            extra = [key for key in self.dirty if key in self.pos]
        return self._graph(graph, query, k, codes, allowed, extra)

    def _exact(self, query: FloatMatrix, k: int, codes: npt.NDArray[np.int32] | None) -> list[Hit]:
        n = self.n
        if codes is None:
            rows = None
            sims = self.vecs[:n] @ query
        else:
            mask = np.isin(self.codes[:n], codes)
            rows = np.flatnonzero(mask)
            sims = self.vecs[rows] @ query if len(rows) < n // 2 else (self.vecs[:n] @ query)[rows]
        k = min(k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        top = top[np.argsort(-sims[top], kind="stable")]
        idx = top if rows is None else rows[top]
        return [(int(self.keys[i]), float(s)) for i, s in zip(idx, sims[top], strict=True)]

    def _graph(
        self,
        graph: Any,
        query: FloatMatrix,
        k: int,
        codes: npt.NDArray[np.int32] | None,
        allowed: int,
        extra: list[int],
    ) -> list[Hit]:
        total = self.n
        fetch = min(total, k * max(1, math.ceil(total / allowed)) * 2 + 16)
        allowed_codes = None if codes is None else set(codes.tolist())
        while True:
            with self.hnsw_lock:
                found = graph.search(query, fetch)
            keys = [int(x) for x in np.atleast_1d(found.keys)]
            with self.lock:
                hits: dict[int, float] = {}
                for key in [*keys, *extra]:
                    row = self.pos.get(key)
                    if row is None or key in hits:
                        continue
                    if allowed_codes is not None and int(self.codes[row]) not in allowed_codes:
                        continue
                    hits[key] = float(self.vecs[row] @ query)
            if len(hits) >= k or fetch >= total:
                break
            if fetch * 4 >= total // 2:  # the filter is too selective for the graph
                with self.lock:
                    return self._exact(query, k, codes)
            fetch *= 4
        return sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


class VectorIndex:
    """All collections of a process, keyed by (tenant, model). Thread-safe.

    Args:
        hnsw_threshold: A collection with more vectors than this gets an HNSW graph
            (``Settings.hnsw_threshold``).
    """

    def __init__(self, *, hnsw_threshold: int) -> None:
        self.hnsw_threshold = hnsw_threshold
        self._lock = threading.Lock()
        self._collections: dict[tuple[str, str], _Collection] = {}
        self._expected: dict[tuple[str, int], str | None] = {}

    def add(
        self,
        tenant_id: str,
        model: str,
        entries: Sequence[tuple[int, str, str]],
        vectors: FloatMatrix,
    ) -> int:
        """Add or replace vectors.

        Args:
            entries: ``(memory_pk, namespace, content_hash)`` per row of ``vectors``.
            vectors: float32 ``[len(entries), dim]``, unit rows.

        Returns:
            How many were added (a vector for a text that has since changed, or for a
            forgotten memory, is dropped).
        """
        if len(entries) == 0:
            return 0
        with self._lock:
            keep: list[int] = []
            for i, (key, _ns, digest) in enumerate(entries):
                token = (tenant_id, key)
                if token in self._expected:
                    if self._expected[token] != digest:
                        continue
                    del self._expected[token]
                keep.append(i)
            coll = self._collections.get((tenant_id, model))
            if coll is None:
                coll = _Collection(int(vectors.shape[1]), self.hnsw_threshold)
                self._collections[(tenant_id, model)] = coll
            with coll.lock:
                for i in keep:
                    coll.put(entries[i][0], entries[i][1], vectors[i])
        coll.maybe_build()
        coll.kick.set()
        return len(keep)

    def invalidate(self, tenant_id: str, memory_pk: int, content_hash: str | None) -> None:
        """Drop the memory's vectors; accept only a vector of ``content_hash`` from now on
        (``None``: the memory is gone, accept none)."""
        with self._lock:
            self._expected[(tenant_id, memory_pk)] = content_hash
            colls = [c for (t, _m), c in self._collections.items() if t == tenant_id]
        for coll in colls:  # the graph catches up on the next add; searches skip the key
            with coll.lock:
                coll.delete(memory_pk)

    def search(
        self,
        tenant_id: str,
        model: str,
        query: FloatMatrix,
        k: int,
        *,
        namespaces: Sequence[str] | None = None,
    ) -> list[Hit]:
        """The ``k`` nearest vectors by cosine: ``[(memory_pk, cosine)]``, best first.

        Args:
            query: Unit float32 vector ``[dim]`` of the same model.
            namespaces: Only memories in these namespaces (``None``: all).
        """
        coll = self._collections.get((tenant_id, model))
        if coll is None or k <= 0:
            return []
        return coll.search(np.asarray(query, dtype=np.float32), k, namespaces)

    def count(self, tenant_id: str, model: str) -> int:
        """Vectors held for (tenant, model)."""
        coll = self._collections.get((tenant_id, model))
        return 0 if coll is None else coll.n

    def uses_hnsw(self, tenant_id: str, model: str) -> bool:
        """Whether the (tenant, model) collection has its HNSW graph ready."""
        coll = self._collections.get((tenant_id, model))
        return coll is not None and coll.hnsw is not None
