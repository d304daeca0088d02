"""The in-process vector index: exact numpy search while small, usearch HNSW above a threshold.

The store is the truth (``memory_vectors``); this index is a cache rebuilt from it at start
and updated after each commit. There is one collection per (tenant, embedding model), so
vectors of different models never meet. Keys are memory row keys (``memories.pk``); each
row also records its namespace, so a query restricted to namespaces never sees others.

Layout: each namespace with more than ``_POOL_MAX`` (256) vectors has a contiguous block of
its own; smaller namespaces share one pool block (rows tagged with a namespace code), so a
tenant with many tiny namespaces still has few blocks.

Search:

- **exact** (allowed rows <= ``hnsw_threshold``, no graph yet, or the graph more than
  ``_MAX_UNSYNCED`` changes behind): one matrix-vector product (cosine = dot product of
  unit vectors) per allowed namespace's block, over a slice, never a gather; pooled
  namespaces are masked out of the pool. Measured on the busy 2-core box: 1.7 ms for 10k,
  3.2 ms for one namespace of 20k inside 100k (masking and gathering it out of one
  tenant-wide matrix cost 13-23 ms). numpy's OpenBLAS is limited to one thread
  (:func:`limit_blas_threads`).
- **HNSW** (usearch, M = 16, inner product): built in a background thread once a
  collection crosses the threshold (~1 ms per vector to insert on one core: searches stay
  exact meanwhile), then kept in step by the same thread (in batches of 256 while far
  behind, of 8 otherwise). Used when the allowed rows exceed the threshold; namespace
  restriction over-fetches by the inverse share of allowed rows and filters, growing the
  fetch until ``k`` results are found, falling back to exact search when too selective.
  A synced row's graph distance is its exact cosine; rows changed since the last sync are
  skipped in the graph's answer and scored exactly from their blocks, so results never
  show a removed or stale vector. 100k real MiniLM vectors: 1.3 ms, recall@50 0.99.

Ordering between commits and this cache: a text change or a forget calls
:meth:`VectorIndex.invalidate` with the hash the memory's vector must now have (or
``None``); :meth:`VectorIndex.add` drops a vector whose hash does not match the latest
expectation. Either arrival order ends with the right vector.

Import note: ``onnxruntime`` must be imported before ``usearch`` on these machines
(the reverse order segfaults in 2.26 with onnxruntime 1.x); this module does so.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["VectorIndex"]

log = logging.getLogger("tether.memory.vectors")

FloatMatrix = npt.NDArray[np.float32]
Hit = tuple[int, float]

_INITIAL_CAPACITY: Final = 64
# A namespace with more vectors than this moves out of the shared pool into a contiguous
# block of its own, so searching it is one matrix-vector product over a slice (no gather:
# gathering 20k scattered rows out of 100k costs more than the product itself). Smaller
# namespaces share the pool (masked by namespace code), so a tenant with many tiny
# namespaces still has few blocks to loop over.
_POOL_MAX: Final = 256
# Vectors inserted into the graph per lock hold: bounds how long a search waits (~1 ms each).
_HNSW_CHUNK: Final = 8
# HNSW graph degree (usearch "connectivity", M in Malkov & Yashunin 2018); 16 measured
# recall@10 1.00 at 100k real MiniLM vectors (shared/DEPENDENCY-FACTS.md).
_HNSW_CONNECTIVITY: Final = 16
# While more rows than this wait for the graph's sync thread (e.g. right after a bulk
# import), searches stay exact: scoring that many unsynced rows one by one is slower.
_MAX_UNSYNCED: Final = 1024

_blas_limited = False


def limit_blas_threads(threads: int = 1) -> bool:
    """Make numpy's OpenBLAS use ``threads`` threads (best effort; once per process).

    A query is one matrix-vector product: OpenBLAS splits it across all cores, and on a
    busy 2-core box the threads wait for each other (measured: 8 ms instead of 1.3 ms for
    10k x 384). Requests already run in parallel, so one thread per product is faster.
    An explicit ``OPENBLAS_NUM_THREADS`` wins. Returns whether the limit was applied.
    """
    global _blas_limited
    if _blas_limited or os.environ.get("OPENBLAS_NUM_THREADS"):
        return _blas_limited
    _blas_limited = True
    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for lib in sorted(libs.glob("*openblas*")):
        try:
            handle = ctypes.CDLL(str(lib))
        except OSError:
            continue
        for symbol in (
            "scipy_openblas_set_num_threads64_",
            "openblas_set_num_threads64_",
            "openblas_set_num_threads",
        ):
            setter = getattr(handle, symbol, None)
            if setter is not None:
                setter(ctypes.c_int(threads))
                return True
    log.debug("numpy's OpenBLAS not found; BLAS threads left as they are")
    return False


def _new_hnsw(dim: int) -> Any:
    import onnxruntime  # noqa: F401  (must precede usearch: see the module docstring)
    from usearch.index import Index

    return Index(ndim=dim, metric="ip", dtype="f32", connectivity=_HNSW_CONNECTIVITY)


def _top(
    keys: npt.NDArray[np.int64], sims: FloatMatrix, k: int
) -> tuple[npt.NDArray[np.int64], FloatMatrix]:
    """The ``k`` best ``(keys, sims)``, best first (ties by key)."""
    if k < len(sims):
        idx = np.argpartition(-sims, k - 1)[:k]
        keys, sims = keys[idx], sims[idx]
    order = np.lexsort((keys, -sims))
    return keys[order], sims[order]


class _Block:
    """Contiguous rows: ``vecs[:n]`` with their keys and namespace codes."""

    __slots__ = ("codes", "keys", "n", "vecs")

    def __init__(self, dim: int, capacity: int = _INITIAL_CAPACITY) -> None:
        self.vecs: FloatMatrix = np.zeros((capacity, dim), dtype=np.float32)
        self.keys = np.zeros(capacity, dtype=np.int64)
        self.codes = np.zeros(capacity, dtype=np.int32)
        self.n = 0

    def append(self, key: int, code: int, vector: FloatMatrix) -> int:
        if self.n == len(self.keys):
            cap = 2 * len(self.keys)
            for name in ("vecs", "keys", "codes"):
                old = getattr(self, name)
                new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        row = self.n
        self.vecs[row] = vector
        self.keys[row] = key
        self.codes[row] = code
        self.n += 1
        return row

    def remove(self, row: int) -> int | None:
        """Swap-remove ``row``; returns the key moved into it (``None``: it was last)."""
        last = self.n - 1
        self.n = last
        if row == last:
            return None
        self.vecs[row] = self.vecs[last]
        self.keys[row] = self.keys[last]
        self.codes[row] = self.codes[last]
        return int(self.keys[row])


class _Collection:
    """Vectors of one (tenant, model): per-namespace blocks, plus an optional HNSW graph."""

    def __init__(self, dim: int, hnsw_threshold: int) -> None:
        self.dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.lock = threading.Lock()  # guards the blocks, maps, dirty, hnsw reference
        self.hnsw_lock = threading.Lock()  # guards graph mutation vs graph search
        self.pool = _Block(dim)  # namespaces with at most _POOL_MAX vectors
        self.blocks: dict[int, _Block] = {}  # namespace code -> its own block
        self.row: dict[int, int] = {}  # key -> row in its namespace's block
        self.code: dict[int, int] = {}  # key -> namespace code
        self.ns_code: dict[str, int] = {}
        self.ns_count: dict[int, int] = {}
        self.hnsw: Any = None
        self.building = False
        self.dirty: dict[int, int] = {}  # key -> change number, changed since the graph saw it
        self.changes = 0
        self.kick = threading.Event()  # wakes the graph's sync thread
        # Set at shutdown: the graph thread must leave between batches, never be cut off
        # inside usearch's C++ code (the process then aborts: "terminate called ...").
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def n(self) -> int:
        return len(self.code)

    def _block(self, code: int) -> _Block:
        return self.blocks.get(code) or self.pool

    def _all_blocks(self) -> list[_Block]:
        return [self.pool, *self.blocks.values()]

    # -- mutation (under self.lock) ------------------------------------------------------
    def _remove(self, key: int) -> None:
        code = self.code.pop(key)
        row = self.row.pop(key)
        moved = self._block(code).remove(row)
        if moved is not None:
            self.row[moved] = row
        self.ns_count[code] -= 1

    def _promote(self, code: int) -> None:
        """Move a namespace's rows out of the pool into a block of its own."""
        rows = np.flatnonzero(self.pool.codes[: self.pool.n] == code)
        keys = self.pool.keys[rows].tolist()
        vecs = self.pool.vecs[rows].copy()
        for key in keys:
            row = self.row[key]
            moved = self.pool.remove(row)
            if moved is not None:
                self.row[moved] = row
        block = _Block(self.dim, max(_INITIAL_CAPACITY, 2 * len(keys)))
        for key, vec in zip(keys, vecs, strict=True):
            self.row[key] = block.append(key, code, vec)
        self.blocks[code] = block

    def put(self, key: int, namespace: str, vector: FloatMatrix) -> None:
        code = self.ns_code.setdefault(namespace, len(self.ns_code))
        old = self.code.get(key)
        if old == code:
            self._block(code).vecs[self.row[key]] = vector
        else:
            if old is not None:
                self._remove(key)
            block = self._block(code)
            self.row[key] = block.append(key, code, vector)
            self.code[key] = code
            count = self.ns_count.get(code, 0) + 1
            self.ns_count[code] = count
            if block is self.pool and count > _POOL_MAX:
                self._promote(code)
        self._touch(key)

    def _touch(self, key: int) -> None:
        self.changes += 1
        self.dirty[key] = self.changes

    def delete(self, key: int) -> None:
        if key in self.code:
            self._remove(key)
            self._touch(key)

    def _vector(self, key: int) -> FloatMatrix:
        vec: FloatMatrix = self._block(self.code[key]).vecs[self.row[key]]
        return vec

    # -- the graph -------------------------------------------------------------------------
    def maybe_build(self) -> None:
        """Start a background HNSW build when the collection first crosses the threshold."""
        with self.lock:
            if self.hnsw is not None or self.building or self.n <= self.hnsw_threshold:
                return
            self.building = True
            blocks = self._all_blocks()
            keys = np.concatenate([b.keys[: b.n] for b in blocks])
            vecs = np.concatenate([b.vecs[: b.n] for b in blocks])
            self.dirty.clear()  # the snapshot covers everything up to now
        self.thread = threading.Thread(
            target=self._build, args=(keys, vecs), name="tether-hnsw-build", daemon=True
        )
        self.thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the graph thread after its current batch and wait for it (s)."""
        self.stopping.set()
        self.kick.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def _build(self, keys: npt.NDArray[np.int64], vecs: FloatMatrix) -> None:
        try:
            graph = _new_hnsw(self.dim)
            for start in range(0, len(keys), 256):
                if self.stopping.is_set():
                    return
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
        # From now on this thread keeps the graph in step with the blocks, off the callers'
        # threads (on 2 cores: beside the embedding thread, not after it).
        while not self.stopping.is_set():
            self.sync()
            self.kick.wait(timeout=1.0)
            self.kick.clear()

    def sync(self) -> None:
        """Apply rows changed since the graph last saw them, a few at a time."""
        while not self.stopping.is_set():
            with self.lock:
                graph = self.hnsw
                if graph is None or not self.dirty:
                    return
                # Far behind (a bulk import, a restart): searches are exact meanwhile and do
                # not wait on the graph, so catch up in big batches.
                chunk = _HNSW_CHUNK if len(self.dirty) <= _MAX_UNSYNCED else 256
                batch = list(itertools.islice(self.dirty.items(), chunk))
                present = [k for k, _ in batch if k in self.code]
                vecs = np.stack([self._vector(k) for k in present]) if present else None
            with self.hnsw_lock:
                stale = [key for key, _ in batch if graph.contains(key)]
                if stale:
                    graph.remove(stale)
                if vecs is not None:
                    graph.add(np.array(present, dtype=np.int64), vecs, threads=1)
            # Clean only now (searches score dirty rows exactly, so a row is never missing
            # from both the graph and the dirty set), and only if unchanged meanwhile.
            with self.lock:
                for key, seq in batch:
                    if self.dirty.get(key) == seq:
                        del self.dirty[key]

    # -- search ------------------------------------------------------------------------------
    def search(self, query: FloatMatrix, k: int, namespaces: Sequence[str] | None) -> list[Hit]:
        with self.lock:
            if self.n == 0:
                return []
            if namespaces is None:
                codes = None
                allowed = self.n
            else:
                codes = sorted({self.ns_code[ns] for ns in namespaces if ns in self.ns_code})
                allowed = sum(self.ns_count.get(c, 0) for c in codes)
            if allowed == 0:
                return []
            use_graph = (
                self.hnsw is not None
                and allowed > self.hnsw_threshold
                and len(self.dirty) <= _MAX_UNSYNCED
            )
            if not use_graph:
                return self._exact(query, k, codes)
            graph = self.hnsw
        return self._graph(graph, query, k, codes, allowed)

    def _exact(self, query: FloatMatrix, k: int, codes: list[int] | None) -> list[Hit]:
        """Exact top ``k`` over the given namespace codes (``None``: all); under the lock."""
        parts: list[tuple[npt.NDArray[np.int64], FloatMatrix]] = []
        if codes is None:
            own = list(self.blocks.values())
            pooled: list[int] | None = None
        else:
            own = [self.blocks[c] for c in codes if c in self.blocks]
            pooled = [c for c in codes if c not in self.blocks]
        for block in own:
            if block.n:
                parts.append(_top(block.keys[: block.n], block.vecs[: block.n] @ query, k))
        pool = self.pool
        if pool.n and (pooled is None or pooled):
            if pooled is None:
                keys, vecs = pool.keys[: pool.n], pool.vecs[: pool.n]
            else:
                wanted = np.zeros(len(self.ns_code), dtype=bool)
                wanted[pooled] = True
                rows = np.flatnonzero(wanted[pool.codes[: pool.n]])
                keys, vecs = pool.keys[rows], pool.vecs[rows]
            if len(keys):
                parts.append(_top(keys, vecs @ query, k))
        if not parts:
            return []
        if len(parts) == 1:
            keys, sims = parts[0]
        else:
            keys, sims = _top(
                np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), k
            )
        return list(zip(keys.tolist(), sims.astype(np.float64).tolist(), strict=True))

    def _graph(
        self,
        graph: Any,
        query: FloatMatrix,
        k: int,
        codes: list[int] | None,
        allowed: int,
    ) -> list[Hit]:
        """Top ``k`` from the graph, over-fetching by the inverse share of allowed rows.

        A synced row's graph vector is its current vector, so the graph's distance gives
        its exact cosine (``ip`` distance = 1 - dot); rows changed since the last sync are
        skipped in the graph's answer and scored exactly from their blocks instead.
        """
        total = self.n
        fetch = min(total, k * max(1, math.ceil(total / allowed)) * 2 + 16)
        allowed_codes = None if codes is None else set(codes)
        while True:
            with self.hnsw_lock:
                found = graph.search(query, fetch, threads=1)
            keys = np.atleast_1d(found.keys).tolist()
            dists = np.atleast_1d(found.distances).tolist()
            with self.lock:
                dirty = self.dirty
                code_of = self.code
                hits: dict[int, float] = {}
                for key, dist in zip(keys, dists, strict=True):
                    if key in dirty:
                        continue
                    code = code_of.get(key)
                    if code is None or (allowed_codes is not None and code not in allowed_codes):
                        continue
                    hits[key] = 1.0 - float(dist)
                for key in dirty:
                    code = code_of.get(key)
                    if code is None or (allowed_codes is not None and code not in allowed_codes):
                        continue
                    hits[key] = float(self._vector(key) @ query)
                if len(hits) < k and fetch < total and fetch * 4 >= total // 2:
                    # The filter is too selective for the graph.
                    return self._exact(query, k, codes)
            if len(hits) >= k or fetch >= total:
                break
            fetch *= 4
        return sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


class VectorIndex:
    """All collections of a process, keyed by (tenant, model). Thread-safe.

    Args:
        hnsw_threshold: A collection with more vectors than this gets an HNSW graph
            (``Settings.hnsw_threshold``).
    """

    def __init__(self, *, hnsw_threshold: int) -> None:
        limit_blas_threads()
        self.hnsw_threshold = hnsw_threshold
        self._lock = threading.Lock()
        self._collections: dict[tuple[str, str], _Collection] = {}
        self._expected: dict[tuple[str, int], str | None] = {}

    def close(self) -> None:
        """Stop every collection's graph thread (between batches) and wait for it."""
        with self._lock:
            collections = list(self._collections.values())
        for collection in collections:
            collection.close()

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
        """Whether wide searches of the (tenant, model) collection use its HNSW graph: it is
        built and has caught up with recent changes (at most ``_MAX_UNSYNCED`` behind)."""
        coll = self._collections.get((tenant_id, model))
        return coll is not None and coll.hnsw is not None and len(coll.dirty) <= _MAX_UNSYNCED
