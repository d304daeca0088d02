"""Tether's keyword retriever: exact Okapi BM25 top-k over in-process postings.

It replaced SQLite FTS5 for ranked recall (migration 0006 dropped the FTS5 table): FTS5
scores *every* document matching any OR'ed query term before ``ORDER BY bm25() LIMIT``
(~3 µs per match; a question with one common word matched 28k of 100k memories, 80 ms),
and its ``bm25()`` takes document frequencies from the whole table, every tenant and
namespace at once. The same index runs on every store backend, so ranking is the same
on SQLite and PostgreSQL.

:class:`KeywordIndex` keeps, per tenant, the postings of every live memory's analyzer
terms (see :func:`tether.domain.text.analyze`) as numpy arrays, and scores
a query exhaustively with vectorised Okapi BM25 (Robertson & Zaragoza, "The Probabilistic
Relevance Framework: BM25 and Beyond", 2009) over the *searched namespaces' own*
statistics (documents, average length, document frequency per term): no pruning, no
preselection. With FTS5's constants (k1 1.2, b 0.75) and one namespace in the table its
scores equal FTS5's ``bm25()``; a test checks it.

It is a derived view, like the vector index: built from the store at start and brought up
to date from the memory feed (global ``lsn``, commit order) before every search by
:class:`~tether.memory.follower.IndexFollower`. So an acknowledged write is
keyword-searchable by the next search (read-your-writes), and a write through another
replica is followed too. A change is applied as the memory is *now* (live: index its
terms; tombstoned or purged: drop it), so applying one twice is harmless.

Memory (one-off, tracemalloc): 51 MB for the 100k memories of ``memory_latency.py``
(3.6M postings, ~14 bytes each including the per-term and per-memory maps), plus ~8 MB
for each memory's first term (:meth:`KeywordIndex.leading`, the ranking's subject match).
"""

from __future__ import annotations

import math
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tether.store.base import IndexRow

__all__ = ["K1", "B", "KeywordIndex"]

# Okapi BM25 constants: Anserini's defaults for passage retrieval (MS MARCO passages; Lin et
# al., "Anserini", SIGIR 2017 and its regressions), not FTS5's document-length 1.2 / 0.75.
# Memories are passage-sized; on the LoCoMo dev set these gave R@5 0.608 vs 0.604 (BM25
# alone 0.555 vs 0.544) and R@1 0.354 vs 0.330, taken as published, not tuned.
K1 = 0.9
B = 0.4
# FTS5 floors idf at 1e-6 so a term in more than half the documents still counts a little.
_IDF_FLOOR = 1e-6
# Compact a tenant's arrays when dead slots (tombstoned, purged, superseded) pass this share.
_COMPACT_SHARE = 0.25
_COMPACT_MIN = 1024

# Integer columns: int32 slots, term frequencies, lengths, namespace codes; int64 keys.
Ints = npt.NDArray[Any]


class _Grow:
    """A growable integer column: appends go to a Python list, merged on the next read."""

    __slots__ = ("array", "dtype", "pending")

    def __init__(self, dtype: type[np.int32] | type[np.int64] = np.int32) -> None:
        self.dtype = dtype
        self.array: Ints = np.empty(0, dtype=dtype)
        self.pending: list[int] = []

    def view(self) -> Ints:
        if self.pending:
            merged = np.array(self.pending, dtype=self.dtype)
            self.array = np.concatenate([self.array, merged]) if len(self.array) else merged
            self.pending = []
        return self.array


@dataclass(slots=True)
class _Postings:
    """One term's postings: slots and term frequencies, in slot order."""

    slots: _Grow = field(default_factory=_Grow)
    tf: _Grow = field(default_factory=_Grow)


class _Tenant:
    """One tenant's documents (slots) and postings.

    A slot is one indexed version of one memory: a patch retires the old slot and takes a
    new one, so postings only ever grow until :meth:`compact` drops dead slots.
    """

    def __init__(self) -> None:
        self.slot_of: dict[str, tuple[int, int]] = {}  # memory id -> (live slot, version)
        self.pk = _Grow(np.int64)
        self.ns = _Grow()
        self.length = _Grow()
        self.alive = bytearray()
        self.terms: dict[str, _Postings] = {}
        self.ns_code: dict[str, int] = {}
        self.ns_docs: list[int] = []
        self.ns_tokens: list[int] = []
        self.dead = 0
        # pk -> the memory's first term, interned (subject matching in ranking; ~85 bytes
        # per memory: 8.4 MB for 100k in a one-off tracemalloc run, 13.9 MB not interned).
        self.lead: dict[int, str] = {}

    def _code(self, namespace: str) -> int:
        code = self.ns_code.get(namespace)
        if code is None:
            code = self.ns_code[namespace] = len(self.ns_docs)
            self.ns_docs.append(0)
            self.ns_tokens.append(0)
        return code

    def put(self, memory_id: str, pk: int, namespace: str, terms: str, version: int) -> None:
        live = self.slot_of.get(memory_id)
        if live is not None and live[1] == version:
            return
        self.drop(memory_id)
        words = terms.split()
        code = self._code(namespace)
        slot = len(self.alive)
        self.slot_of[memory_id] = (slot, version)
        self.pk.pending.append(pk)
        self.ns.pending.append(code)
        self.length.pending.append(len(words))
        self.alive.append(1)
        if words:
            self.lead[pk] = sys.intern(words[0])
        self.ns_docs[code] += 1
        self.ns_tokens[code] += len(words)
        for term, tf in Counter(words).items():
            postings = self.terms.get(term)
            if postings is None:
                postings = self.terms[term] = _Postings()
            postings.slots.pending.append(slot)
            postings.tf.pending.append(tf)

    def drop(self, memory_id: str) -> None:
        live = self.slot_of.pop(memory_id, None)
        if live is None:
            return
        slot = live[0]
        self.alive[slot] = 0
        self.dead += 1
        self.lead.pop(int(self.pk.view()[slot]), None)
        code = int(self.ns.view()[slot])
        self.ns_docs[code] -= 1
        self.ns_tokens[code] -= int(self.length.view()[slot])

    def compact(self) -> None:
        """Drop dead slots from every array and renumber the live ones."""
        alive = np.frombuffer(bytes(self.alive), dtype=np.uint8).astype(bool)
        new_slot = np.cumsum(alive, dtype=np.int64) - 1
        for term in list(self.terms):
            postings = self.terms[term]
            slots = postings.slots.view()
            keep = alive[slots]
            if not keep.any():
                del self.terms[term]
                continue
            postings.slots.array = new_slot[slots[keep]].astype(np.int32)
            postings.tf.array = postings.tf.view()[keep]
        self.pk.array = self.pk.view()[alive]
        self.ns.array = self.ns.view()[alive]
        self.length.array = self.length.view()[alive]
        self.alive = bytearray(int(alive.sum()) * b"\x01")
        self.slot_of = {mid: (int(new_slot[s]), v) for mid, (s, v) in self.slot_of.items()}
        self.dead = 0

    def search(
        self, namespaces: Sequence[str], stems: Sequence[str], k: int, k1: float, b: float
    ) -> list[tuple[int, float]]:
        if namespaces:
            codes = [self.ns_code[n] for n in namespaces if n in self.ns_code]
        else:
            codes = list(range(len(self.ns_docs)))
        n_docs = sum(self.ns_docs[c] for c in codes)
        if n_docs == 0:
            return []
        avgdl = max(sum(self.ns_tokens[c] for c in codes) / n_docs, 1.0)
        # Masks only where they can reject something: a search over all of a tenant's
        # namespaces needs no namespace mask, and a tenant without dead slots no liveness
        # mask (each mask is a gather over every posting of the term).
        in_scope: npt.NDArray[np.bool_] | None = None
        if len(codes) < sum(1 for docs in self.ns_docs if docs):
            in_scope = np.zeros(len(self.ns_docs), dtype=bool)
            in_scope[codes] = True
        alive = np.frombuffer(self.alive, dtype=np.bool_) if self.dead else None
        ns = self.ns.view()
        length = self.length.view()
        all_slots: list[Ints] = []
        all_weights: list[npt.NDArray[np.float64]] = []
        for stem in stems:
            postings = self.terms.get(stem)
            if postings is None:
                continue
            slots = postings.slots.view()
            tf_all = postings.tf.view()
            keep = None if alive is None else alive[slots]
            if in_scope is not None:
                scoped = in_scope[ns[slots]]
                keep = scoped if keep is None else keep & scoped
            if keep is not None:
                slots = slots[keep]
                tf_all = tf_all[keep]
            df = len(slots)
            if df == 0:
                continue
            tf = tf_all.astype(np.float64)
            idf = max(math.log((n_docs - df + 0.5) / (df + 0.5)), _IDF_FLOOR)
            norm = k1 * (1.0 - b + b * length[slots] / avgdl)
            all_slots.append(slots)
            all_weights.append(idf * tf * (k1 + 1.0) / (tf + norm))
        if not all_slots:
            return []
        scores = np.bincount(np.concatenate(all_slots), weights=np.concatenate(all_weights))
        hits = np.flatnonzero(scores)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        # Best first; ties by slot (older first), as a stable sort of FTS5's order would.
        hits = hits[np.lexsort((hits, -scores[hits]))]
        pks = self.pk.view()[hits]
        return [(int(p), -float(s)) for p, s in zip(pks, scores[hits], strict=True)]


class KeywordIndex:
    """Per-tenant BM25 postings over live memories, kept current by the memory feed.

    Thread-safe: :class:`~tether.memory.follower.IndexFollower` applies feed rows and
    searches score under one lock (a search takes a few ms at 100k memories, see
    ``docs/benchmarks.md``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, _Tenant] = {}

    def count(self, tenant_id: str) -> int:
        """Live memories indexed for a tenant."""
        with self._lock:
            tenant = self._tenants.get(tenant_id)
            return 0 if tenant is None else len(tenant.slot_of)

    def _tenant(self, tenant_id: str) -> _Tenant:
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            tenant = self._tenants[tenant_id] = _Tenant()
        return tenant

    def apply(self, rows: Sequence[IndexRow]) -> None:
        """Apply memories as they are now, in feed order: index a live one's terms (a
        version already indexed is a no-op), drop a gone one (``terms is None``)."""
        touched: set[str] = set()
        with self._lock:
            for row in rows:
                tenant = self._tenant(row.tenant_id)
                if row.terms is None:
                    tenant.drop(row.memory_id)
                else:
                    tenant.put(row.memory_id, row.pk, row.namespace, row.terms, row.version)
                touched.add(row.tenant_id)
            for tenant_id in touched:
                tenant = self._tenants[tenant_id]
                if tenant.dead >= _COMPACT_MIN and tenant.dead > _COMPACT_SHARE * len(tenant.alive):
                    tenant.compact()

    def leading(self, tenant_id: str, pks: Sequence[int], stems: Sequence[str]) -> set[int]:
        """The memories among ``pks`` whose first index term is one of ``stems`` (the
        speaker of a ``"Name: text"`` memory, else usually its subject)."""
        wanted = set(stems)
        with self._lock:
            tenant = self._tenants.get(tenant_id)
            if tenant is None or not wanted:
                return set()
            lead = tenant.lead
            return {pk for pk in pks if lead.get(pk) in wanted}

    def search(
        self,
        tenant_id: str,
        namespaces: Sequence[str],
        stems: Sequence[str],
        k: int,
        *,
        k1: float = K1,
        b: float = B,
    ) -> list[tuple[int, float]]:
        """The ``k`` best memories of a tenant by Okapi BM25 (as of the feed applied).

        Args:
            namespaces: Namespaces searched, whose statistics weight the terms; empty: all
                of the tenant's.
            stems: The query's analyzer terms (:func:`tether.domain.text.query_stems`);
                each counts once.
            k: How many to return at most.

        Returns:
            ``(pk, -score)`` best first, only memories sharing at least one term with the
            query: the score negated like FTS5's ``bm25()`` (lower is better), as
            :func:`tether.memory.ranking.rank` expects.
        """
        with self._lock:
            tenant = self._tenants.get(tenant_id)
            if tenant is None or not stems or k <= 0:
                return []
            return tenant.search(namespaces, stems, k, k1, b)
