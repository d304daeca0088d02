"""The in-process vector index: exact numpy search per namespace, usearch HNSW for large ones.

The store is the truth (the memories' vectors); this index is a derived view, rebuilt from
a snapshot at start and kept current by the memory feed. There is one collection per
(tenant, embedding model), so vectors of different models never meet. Keys are memory
row keys (``memories.pk``); each row also records its namespace, so a query restricted to
namespaces never sees others.

Layout: each namespace with more than ``_POOL_MAX`` (256) vectors has a contiguous block of
its own; smaller namespaces share one pool block (rows tagged with a namespace code), so a
tenant with many tiny namespaces still has few blocks.

Search (every search names its namespaces, so namespaces are the unit of indexing):

- **exact** for a namespace of at most ``hnsw_threshold`` vectors (or whose graph is not
  built yet, or more than ``_MAX_UNSYNCED`` changes behind): one matrix-vector product
  (cosine = dot product of unit vectors) over its block, a slice, never a gather; pooled
  namespaces are masked out of the pool. Memory-bound: 3.2 ms for a 19,919-vector
  namespace in ``benchmarks/memory_latency.py``, so roughly half that at the default 10k.
  numpy's OpenBLAS is limited to one thread (:func:`limit_blas_threads`).
- **HNSW** (usearch, M = 16, inner product) for each namespace above the threshold: its
  own graph, built by one background thread per collection (~1 ms per vector inserted on
  one core; that namespace stays exact meanwhile) and then kept in step by the same
  thread (batches of 256 while far behind, of 8 otherwise). A graph holds one namespace
  only, so no over-fetch or filtering is needed: 0.66 ms for k = 58 in that 19,919-vector
  namespace (a tenant-wide graph filtered to a namespace holding a fifth of it needs
  k ~ 600: ~3 ms in a one-off measurement). Graph vectors are bfloat16 (half the memory,
  faster): the graph picks candidates, their cosines are recomputed exactly from the
  float32 block. Rows changed since the last sync are skipped in the graph's answer and
  scored exactly from their block, so results never show a removed or stale vector. A search
  over several namespaces merges each namespace's top k.
- **The wide graph**: once two namespaces have graphs, one more graph holds every vector
  of the collection. A search that would walk two or more namespace graphs and whose
  namespaces hold at least half the collection walks it instead, asking for
  k / share candidates and keeping those of its namespaces (growing x4 while too few):
  0.58 ms p50 warm, 0.92 ms with cold caches, against 2.3 / 2.9 ms for the five
  namespace graphs of the 100k benchmark (one interleaved one-off run). Costs the
  memory of one more bfloat16 graph over the collection and its build and upkeep on the
  graph thread; built after the namespace graphs, searches use those meanwhile.

Ordering between commits and this cache: the index only ever changes through
:meth:`VectorIndex.apply`, fed in commit (``lsn``) order by
:class:`~tether.memory.follower.IndexFollower` with each memory as it is *now* (its vector
of the current text, or none), so every replica ends with the same vectors.

Import note: ``onnxruntime`` must be imported before ``usearch`` on these machines
(the reverse order segfaults in 2.26 with onnxruntime 1.x); this module does so.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from tether.store.base import IndexRow

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
# Vectors in a graph are stored as bfloat16: half the memory of float32 and 2.4x faster
# to search (0.16 vs 0.38 ms p50 for k = 58 in a 19,919-vector namespace of the latency
# benchmark, recall@50 against exact 0.992 vs 0.994, one-off measurement); the graph only
# chooses candidates, their scores are recomputed exactly from the float32 block.
_HNSW_DTYPE: Final = "bf16"
# A search whose namespaces hold at least 1/_WIDE_SHARE of the collection's vectors, and
# that would otherwise walk two or more namespace graphs, walks the wide graph instead
# (asking for k / share candidates): one 100k graph takes 0.89 ms p50 for k = 58 against
# 3.1 ms for five 20k graphs, cold caches, one-off measurement on the latency benchmark's
# vectors.
_WIDE_SHARE: Final = 2
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

    return Index(ndim=dim, metric="ip", dtype=_HNSW_DTYPE, connectivity=_HNSW_CONNECTIVITY)


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


class _Graph:
    """One namespace block's HNSW graph, and the keys changed since the graph saw them."""

    __slots__ = ("dirty", "index")

    def __init__(self) -> None:
        self.index: Any = None  # usearch Index once built
        self.dirty: dict[int, int] = {}  # key -> change number

    def ready(self) -> bool:
        """Built, and at most ``_MAX_UNSYNCED`` changes behind."""
        return self.index is not None and len(self.dirty) <= _MAX_UNSYNCED


class _Collection:
    """Vectors of one (tenant, model): per-namespace blocks, and an HNSW graph for each
    namespace with more than ``hnsw_threshold`` vectors."""

    def __init__(self, dim: int, hnsw_threshold: int) -> None:
        self.dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.lock = threading.Lock()  # guards the blocks, maps, graphs and their dirty sets
        self.hnsw_lock = threading.Lock()  # guards graph mutation vs graph search
        self.pool = _Block(dim)  # namespaces with at most _POOL_MAX vectors
        self.blocks: dict[int, _Block] = {}  # namespace code -> its own block
        self.row: dict[int, int] = {}  # key -> row in its namespace's block
        self.code: dict[int, int] = {}  # key -> namespace code
        self.hash: dict[int, str | None] = {}  # key -> content hash of the text it embeds
        self.ns_code: dict[str, int] = {}
        self.ns_count: dict[int, int] = {}
        self.graphs: dict[int, _Graph] = {}  # namespace code -> its graph (index None: to build)
        # Every vector of the collection, once two namespaces have graphs: a search over
        # most of the collection walks one graph instead of one per namespace.
        self.wide: _Graph | None = None
        self.changes = 0
        self.kick = threading.Event()  # wakes the graph thread
        # Set at shutdown: the graph thread must leave between batches, never be cut off
        # inside usearch's C++ code (the process then aborts: "terminate called ...").
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def n(self) -> int:
        return len(self.code)

    def _block(self, code: int) -> _Block:
        return self.blocks.get(code) or self.pool

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

    def put(
        self, key: int, namespace: str, vector: FloatMatrix, content_hash: str | None = None
    ) -> None:
        self.hash[key] = content_hash
        code = self.ns_code.setdefault(namespace, len(self.ns_code))
        old = self.code.get(key)
        if old == code:
            self._block(code).vecs[self.row[key]] = vector
        else:
            if old is not None:
                self._remove(key)
                self._touch(key, old)
            block = self._block(code)
            self.row[key] = block.append(key, code, vector)
            self.code[key] = code
            count = self.ns_count.get(code, 0) + 1
            self.ns_count[code] = count
            if block is self.pool and count > _POOL_MAX:
                self._promote(code)
            if count > self.hnsw_threshold and code in self.blocks and code not in self.graphs:
                self.graphs[code] = _Graph()  # built by the graph thread
                if len(self.graphs) >= 2 and self.wide is None:
                    self.wide = _Graph()
        self._touch(key, code)

    def _touch(self, key: int, code: int) -> None:
        graph = self.graphs.get(code)
        if graph is not None:
            self.changes += 1
            graph.dirty[key] = self.changes
        if self.wide is not None:
            self.changes += 1
            self.wide.dirty[key] = self.changes

    def _all_graphs(self) -> list[tuple[int | None, _Graph]]:
        """Every graph with its namespace code (``None``: the wide graph); under the lock."""
        pairs: list[tuple[int | None, _Graph]] = list(self.graphs.items())
        if self.wide is not None:
            pairs.append((None, self.wide))
        return pairs

    def delete(self, key: int) -> None:
        self.hash.pop(key, None)
        code = self.code.get(key)
        if code is not None:
            self._remove(key)
            self._touch(key, code)

    def _vector(self, key: int) -> FloatMatrix:
        vec: FloatMatrix = self._block(self.code[key]).vecs[self.row[key]]
        return vec

    # -- the graphs ------------------------------------------------------------------------
    def maybe_build(self) -> None:
        """Start the graph thread when a namespace first crosses the threshold."""
        with self.lock:
            if self.thread is not None or not self.graphs:
                return
            self.thread = threading.Thread(target=self._run, name="tether-hnsw", daemon=True)
        self.thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the graph thread after its current batch and wait for it (s)."""
        self.stopping.set()
        self.kick.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        """Build new graphs, then keep every graph in step with its block, off the callers'
        threads (on 2 cores: beside the embedding thread, not after it)."""
        while not self.stopping.is_set():
            try:
                self._build_pending()
                self.sync()
            except Exception:
                log.exception("HNSW maintenance failed; searches of those namespaces stay exact")
                return
            self.kick.wait(timeout=1.0)
            self.kick.clear()

    def _build_pending(self) -> None:
        with self.lock:
            pending = [(c, g) for c, g in self._all_graphs() if g.index is None]
        for code, graph in pending:
            with self.lock:
                if code is None:  # the wide graph: every block and the pool
                    parts = [self.pool, *self.blocks.values()]
                    keys = np.concatenate([b.keys[: b.n] for b in parts])
                    vecs = np.concatenate([b.vecs[: b.n] for b in parts])
                else:
                    block = self.blocks[code]
                    keys = block.keys[: block.n].copy()
                    vecs = block.vecs[: block.n].copy()
                graph.dirty.clear()  # the snapshot covers everything up to now
            index = _new_hnsw(self.dim)
            for start in range(0, len(keys), 256):
                if self.stopping.is_set():
                    return
                index.add(keys[start : start + 256], vecs[start : start + 256], threads=1)
            with self.lock:
                graph.index = index
            log.info(
                "HNSW graph built for %s of %d vectors",
                "a namespace" if code is not None else "the whole collection",
                len(keys),
            )

    def sync(self) -> None:
        """Apply rows changed since each graph last saw them, a few at a time."""
        while not self.stopping.is_set():
            progressed = False
            with self.lock:
                every = self._all_graphs()
            for code, graph in every:
                with self.lock:
                    index = graph.index
                    if index is None or not graph.dirty:
                        continue
                    # Far behind (a bulk import): searches of this namespace are exact
                    # meanwhile and do not wait on the graph, so catch up in big batches.
                    chunk = _HNSW_CHUNK if len(graph.dirty) <= _MAX_UNSYNCED else 256
                    batch = list(itertools.islice(graph.dirty.items(), chunk))
                    present = [
                        k
                        for k, _ in batch
                        if (k in self.code if code is None else self.code.get(k) == code)
                    ]
                    vecs = np.stack([self._vector(k) for k in present]) if present else None
                with self.hnsw_lock:
                    stale = [key for key, _ in batch if index.contains(key)]
                    if stale:
                        index.remove(stale)
                    if vecs is not None:
                        index.add(np.array(present, dtype=np.int64), vecs, threads=1)
                # Clean only now (searches score dirty rows exactly, so a row is never
                # missing from both the graph and the dirty set), and only if unchanged.
                with self.lock:
                    for key, seq in batch:
                        if graph.dirty.get(key) == seq:
                            del graph.dirty[key]
                progressed = True
            if not progressed:
                return

    # -- search ------------------------------------------------------------------------------
    def search(self, query: FloatMatrix, k: int, namespaces: Sequence[str] | None) -> list[Hit]:
        use_wide = False
        with self.lock:
            if self.n == 0:
                return []
            if namespaces is None:
                codes = sorted(self.ns_code.values())
            else:
                codes = sorted({self.ns_code[ns] for ns in namespaces if ns in self.ns_code})
            graphs = [(c, g) for c in codes if (g := self.graphs.get(c)) is not None and g.ready()]
            wide = self.wide
            if len(graphs) >= 2 and wide is not None and wide.ready():
                searched = sum(self.ns_count.get(c, 0) for c in codes)
                if searched * _WIDE_SHARE >= self.n:
                    use_wide = True
            in_graph = {c for c, _ in graphs}
            exact_codes = [c for c in codes if c not in in_graph]
            if use_wide:
                exact_codes = []
            parts = [self._exact(query, k, exact_codes)] if exact_codes else []
        if use_wide:
            assert wide is not None
            return self._graph(set(codes), wide, query, k)
        parts.extend(self._graph({code}, graph, query, k) for code, graph in graphs)
        if len(parts) == 1:
            return parts[0]
        merged = [hit for part in parts for hit in part]
        return sorted(merged, key=lambda kv: (-kv[1], kv[0]))[:k]

    def _exact(self, query: FloatMatrix, k: int, codes: list[int]) -> list[Hit]:
        """Exact top ``k`` over the given namespace codes; under the lock."""
        parts: list[tuple[npt.NDArray[np.int64], FloatMatrix]] = []
        for code in codes:
            block = self.blocks.get(code)
            if block is not None and block.n:
                parts.append(_top(block.keys[: block.n], block.vecs[: block.n] @ query, k))
        pooled = [c for c in codes if c not in self.blocks]
        pool = self.pool
        if pool.n and pooled:
            wanted = np.zeros(len(self.ns_code), dtype=bool)
            wanted[pooled] = True
            rows = np.flatnonzero(wanted[pool.codes[: pool.n]])
            if len(rows):
                parts.append(_top(pool.keys[rows], pool.vecs[rows] @ query, k))
        if not parts:
            return []
        if len(parts) == 1:
            keys, sims = parts[0]
        else:
            keys, sims = _top(
                np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), k
            )
        return list(zip(keys.tolist(), sims.astype(np.float64).tolist(), strict=True))

    def _graph(self, codes: set[int], graph: _Graph, query: FloatMatrix, k: int) -> list[Hit]:
        """Top ``k`` of the namespaces ``codes`` from one graph: a namespace's own graph
        (``codes`` is that namespace) or the wide graph (any namespaces).

        The graph (bfloat16 vectors) only chooses the candidates: each one's cosine is
        recomputed from its float32 row, so scores are exact and equal the exact search's.
        Rows changed since the last sync are skipped in the graph's answer and scored
        exactly from their block instead.
        """
        with self.lock:
            searched = sum(self.ns_count.get(c, 0) for c in codes)
            held = self.n if graph is self.wide else searched  # vectors the graph answers for
        # The wide graph answers for every namespace: ask for k / share of the searched
        # ones. Rows changed since the last sync are skipped in the graph's answer: ask
        # for that many more (up to 16). Grow x4 while too few remain.
        fetch = -(-k * held // max(searched, 1)) + min(16, len(graph.dirty))
        while True:
            with self.hnsw_lock:
                found = graph.index.search(query, fetch, threads=1)
            keys = np.atleast_1d(found.keys).tolist()
            with self.lock:
                dirty = graph.dirty
                code_of = self.code
                synced = [key for key in keys if key not in dirty and code_of.get(key) in codes]
                changed = [key for key in dirty if code_of.get(key) in codes]
                picked = synced + changed
                if not picked:
                    sims: list[float] = []
                elif len(codes) == 1 and (block := self.blocks.get(next(iter(codes)))):
                    sims = (block.vecs[[self.row[key] for key in picked]] @ query).tolist()
                else:
                    sims = (np.stack([self._vector(key) for key in picked]) @ query).tolist()
                pending = len(dirty)
            if len(picked) >= k or fetch >= held + pending:
                break
            fetch *= 4
        return sorted(zip(picked, sims, strict=True), key=lambda kv: (-kv[1], kv[0]))[:k]


class VectorIndex:
    """All collections of a process, keyed by (tenant, model). Thread-safe.

    Args:
        hnsw_threshold: A namespace with more vectors than this gets an HNSW graph
            (``Settings.hnsw_threshold``).
    """

    def __init__(self, *, hnsw_threshold: int) -> None:
        limit_blas_threads()
        self.hnsw_threshold = hnsw_threshold
        self._lock = threading.Lock()
        self._collections: dict[tuple[str, str], _Collection] = {}

    def close(self) -> None:
        """Stop every collection's graph thread (between batches) and wait for it."""
        with self._lock:
            collections = list(self._collections.values())
        for collection in collections:
            collection.close()

    def apply(self, model: str, rows: Sequence[IndexRow]) -> int:
        """Apply memories as they are now, in feed order (every tenant): a row with a
        vector puts it (unless that text's vector is held already), a row without one
        drops the memory's vector (its text changed and is not embedded yet, or it is
        gone).

        Args:
            model: The model of the rows' vectors (one collection per tenant and model).
            rows: Feed or snapshot rows (``vector``: little-endian float32 bytes of unit
                length, as stored).

        Returns:
            How many vectors were put.
        """
        put = 0
        touched: list[_Collection] = []
        for tenant_id, group in itertools.groupby(rows, key=lambda r: r.tenant_id):
            batch = list(group)
            with self._lock:
                coll = self._collections.get((tenant_id, model))
                if coll is None:
                    first = next((r.vector for r in batch if r.vector is not None), None)
                    if first is None:
                        continue  # nothing to drop either: no vector was ever put
                    coll = _Collection(len(first) // 4, self.hnsw_threshold)
                    self._collections[(tenant_id, model)] = coll
            with coll.lock:
                for row in batch:
                    if row.vector is None:
                        coll.delete(row.pk)
                    elif coll.hash.get(row.pk) != row.content_hash:
                        vector = np.frombuffer(row.vector, dtype="<f4")
                        coll.put(row.pk, row.namespace, vector, row.content_hash)
                        put += 1
            touched.append(coll)
        for coll in touched:
            coll.maybe_build()
            coll.kick.set()
        return put

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
        """Whether the (tenant, model) collection has namespace graphs and every one of its
        graphs (the wide one too, once there is one) is built and caught up with recent
        changes (at most ``_MAX_UNSYNCED`` behind), so searches use graphs."""
        coll = self._collections.get((tenant_id, model))
        if coll is None:
            return False
        with coll.lock:
            return bool(coll.graphs) and all(g.ready() for _, g in coll._all_graphs())
