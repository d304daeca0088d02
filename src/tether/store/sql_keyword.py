"""The keyword index: FTS5 rows plus per-namespace BM25 statistics, and BM25 rescoring.

FTS5's ``bm25()`` takes its document frequencies and average length from the whole table,
which here holds every namespace of every tenant. Namespaces are separate collections
(one user's memories, one agent's), so a term common in one namespace but rare in the one
searched is under-weighted. Measured on the LoCoMo dev set, three conversations in one
index: R@5 0.592 with FTS5's statistics, 0.604 with each conversation's own.

So Tether keeps its own statistics per ``(tenant, namespace)``: documents, total length
(``memory_ns_stats``) and document frequency per term (``memory_term_df``), updated in the
same transaction as the FTS5 row. Recall lets FTS5 find and preselect candidates by its
global ``bm25()``, then rescores them with Okapi BM25 over the searched namespaces'
statistics (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and
Beyond", 2009, with FTS5's idf and its floor of 1e-6; with FTS5's k1 = 1.2, b = 0.75 the
scores equal ``bm25()`` exactly when one namespace fills the table, which a test checks).
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Sequence

from tether.memory.analyzer import analyze, query_stems, term_stems
from tether.memory.fts import query_terms

# Okapi BM25 constants: Anserini's defaults for passage retrieval (MS MARCO passages; Lin et
# al., "Anserini", SIGIR 2017 and its regressions), not FTS5's document-length 1.2 / 0.75.
# Memories are passage-sized; on the LoCoMo dev set these gave R@5 0.608 vs 0.604 (BM25
# alone 0.555 vs 0.544) and R@1 0.354 vs 0.330, taken as published, not tuned.
K1 = 0.9
B = 0.4
# FTS5 floors idf at 1e-6 so a term in more than half the documents still counts a little.
_IDF_FLOOR = 1e-6
# FTS5 computes bm25() for every document matching any OR'ed term before it can sort and
# LIMIT: ~3 us per match here. A question with one common word ("go", a speaker's name)
# matched 28k of 100k memories (80 ms). So the MATCH keeps the query's rarest terms while
# their summed document frequency (the postings FTS5 must score) stays within this budget,
# and at least the rarest term: MaxScore-style pruning (Turtle & Flood 1995). Dropped terms
# have the lowest idf and still count in the rescoring of what the kept terms find. On
# stores of a few thousand memories nothing is dropped. Measured at 100k memories: keyword
# stage p50/p95 50.6/115.7 ms -> 6.6/13.4 ms; LoCoMo dev R@5 unchanged (0.608).
POSTINGS_BUDGET = 2000


def _count(
    conn: sqlite3.Connection, tenant_id: str, namespace: str, terms: list[str], sign: int
) -> None:
    conn.execute(
        "INSERT INTO memory_ns_stats (tenant_id, namespace, docs, tokens) VALUES (?,?,?,?) "
        "ON CONFLICT (tenant_id, namespace) DO UPDATE SET docs = docs + excluded.docs, "
        "tokens = tokens + excluded.tokens",
        (tenant_id, namespace, sign, sign * len(terms)),
    )
    conn.executemany(
        "INSERT INTO memory_term_df (tenant_id, namespace, term, df) VALUES (?,?,?,?) "
        "ON CONFLICT (tenant_id, namespace, term) DO UPDATE SET df = df + excluded.df",
        [(tenant_id, namespace, term, sign) for term in set(terms)],
    )


def index(conn: sqlite3.Connection, pk: int, tenant_id: str, namespace: str, text: str) -> None:
    """Add memory ``pk``'s text to the FTS5 index and to its namespace's statistics."""
    terms = analyze(text)
    conn.execute("INSERT INTO memories_fts (rowid, text) VALUES (?,?)", (pk, text))
    conn.execute("UPDATE memories SET terms=? WHERE pk=?", (" ".join(terms), pk))
    _count(conn, tenant_id, namespace, terms, +1)


def unindex(conn: sqlite3.Connection, pk: int, tenant_id: str, namespace: str, text: str) -> None:
    """Remove memory ``pk`` (whose indexed text is ``text``) from both."""
    conn.execute(
        "INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', ?, ?)", (pk, text)
    )
    _count(conn, tenant_id, namespace, analyze(text), -1)


def match_terms(conn: sqlite3.Connection, tenant_id: str, query: str) -> list[str]:
    """The query's keyword terms to hand to FTS5 ``MATCH``, rarest first, pruned so their
    summed document frequency over the tenant stays within :data:`POSTINGS_BUDGET`.

    Returns:
        Unstemmed terms as :func:`tether.memory.fts.query_terms` makes them (FTS5 stems
        them itself); empty when the query has no searchable word.
    """
    terms = query_terms(query)
    if not terms:
        return []
    stems = {t: term_stems(t) for t in terms}
    wanted = sorted({s for ss in stems.values() for s in ss})
    df: dict[str, int] = {}
    if wanted:
        df = dict(
            conn.execute(
                "SELECT term, sum(df) FROM memory_term_df WHERE tenant_id=? "
                f"AND term IN ({','.join('?' * len(wanted))}) GROUP BY term",
                (tenant_id, *wanted),
            ).fetchall()
        )
    # A phrase term ("e-mail" -> e, mail) matches at most as often as its rarest word.
    cost = {t: min((int(df.get(s, 0)) for s in stems[t]), default=0) for t in terms}
    kept: list[str] = []
    total = 0
    for term in sorted(terms, key=lambda t: cost[t]):
        if kept and total + cost[term] > POSTINGS_BUDGET:
            break
        kept.append(term)
        total += cost[term]
    return kept


def rescore(
    conn: sqlite3.Connection,
    tenant_id: str,
    namespaces: Sequence[str],
    query: str,
    candidates: Sequence[tuple[int, str]],
    *,
    k1: float = K1,
    b: float = B,
) -> list[tuple[int, float]]:
    """Okapi BM25 of each ``(pk, terms)`` candidate over the namespaces' statistics.

    Args:
        candidates: ``(pk, terms)`` with ``terms`` the memory's stored analyzer terms,
            space-separated (``memories.terms``).

    Returns:
        ``(pk, -score)`` best first: negated like FTS5's ``bm25()`` (lower is better), as
        :func:`tether.memory.ranking.rank` expects. Candidates sharing no stemmed term
        with the query score 0 and keep their input order at the end.
    """
    stems = query_stems(query)
    if not candidates or not stems:
        return [(pk, 0.0) for pk, _ in candidates]
    # No namespace given: the statistics of all the tenant's namespaces.
    scope = f" AND namespace IN ({','.join('?' * len(namespaces))})" if namespaces else ""
    docs, tokens = conn.execute(
        "SELECT coalesce(sum(docs), 0), coalesce(sum(tokens), 0) FROM memory_ns_stats "
        f"WHERE tenant_id=?{scope}",
        (tenant_id, *namespaces),
    ).fetchone()
    n_docs = max(int(docs), 1)
    avgdl = max(float(tokens) / n_docs, 1.0)
    df = dict(
        conn.execute(
            f"SELECT term, sum(df) FROM memory_term_df WHERE tenant_id=?{scope} "
            f"AND term IN ({','.join('?' * len(stems))}) GROUP BY term",
            (tenant_id, *namespaces, *stems),
        ).fetchall()
    )
    idf = {
        t: max(math.log((n_docs - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5)), _IDF_FLOOR)
        for t in stems
    }
    scored: list[tuple[int, float]] = []
    for pk, stored in candidates:
        terms = stored.split()
        tf = Counter(terms)
        norm = k1 * (1 - b + b * len(terms) / avgdl)
        score = sum(idf[t] * tf[t] * (k1 + 1) / (tf[t] + norm) for t in stems if t in tf)
        scored.append((pk, -score))
    scored.sort(key=lambda item: item[1])  # stable: ties keep FTS5's order
    return scored
