// Memory: namespace browser (GET /v1/memories), search with each result's score breakdown
// (POST /v1/memories/search), a memory's history (GET /v1/memories/{id}/history).

import { api, pages } from "../api.js";
import { clear, fmtCount, fmtScore, fmtTime, h, jsonBlock, notice } from "../dom.js";

const SCORE_PARTS = [
  "bm25", "vector", "fused", "neighbour", "episode", "subject", "period", "relevance",
  "recency", "importance", "final",
];

function scoreBreakdown(scores) {
  return h("div.scores", SCORE_PARTS.filter((k) => k in (scores || {})).map((k) => {
    const fill = h("span.sfill");
    fill.style.width = `${Math.max(0, Math.min(1, scores[k])) * 100}%`;
    return h("span.score", { title: `${k}: ${scores[k]}` }, h("span.sname", k), h("span.strack", fill), h("span.sval", fmtScore(scores[k])));
  }), "cosine" in (scores || {}) ? h("span.muted.small", `cosine ${fmtScore(scores.cosine)} · bm25 raw ${fmtScore(scores.bm25_raw)}`) : null);
}

function memoryItem(m, extra) {
  return h("li.memory", { dataset: { id: m.id } },
    h("div.memtext", m.text),
    h("div.memmeta.muted.small",
      h("a", { href: `#/memory/${encodeURIComponent(m.id)}` }, "history"), ` · ${m.namespace} · ${m.kind} · v${m.version} · ${fmtTime(m.updated_at)}`,
      m.tags?.length ? ` · ${m.tags.join(", ")}` : ""),
    extra || null);
}

export function mount(main, route) {
  const nsList = h("ul.nslist", { "aria-label": "Namespaces" });
  const nsInput = h("input", { type: "text", placeholder: "namespace (empty: all)", "aria-label": "Namespace", id: "mem-namespace" });
  const q = h("input", { type: "search", placeholder: "Search memories (/)", "aria-label": "Search query", "data-search": true, id: "mem-query" });
  const mode = h("select", { "aria-label": "Search mode" }, ["hybrid", "bm25", "vector"].map((m) => h("option", { value: m }, m)));
  const go = h("button", { type: "submit" }, "Search");
  const form = h("form.filters", { role: "search" }, nsInput, q, mode, go);
  const results = h("div.results", { "aria-live": "polite", id: "mem-results" });
  const stats = h("span.muted", { role: "status" });
  const reindex = h("button.admin-only", { type: "button", id: "reindex", title: "Admin: queue re-embedding of memories without a current vector" }, "Re-embed missing");
  const side = h("div.history", { id: "mem-history" });
  const page = h("section.page.memory", { "aria-labelledby": "memory-title" },
    h("div.pagehead", h("h1#memory-title", "Memory"), stats, reindex),
    form,
    h("div.memgrid", h("nav.nsbox", { "aria-label": "Namespaces" }, h("h2.small", "Namespaces"), nsList), results, side));
  main.append(page);

  api.get("/v1/memory/stats").then((s) => {
    stats.textContent = `${fmtCount(s.count)} memories · ${fmtCount(s.indexed)} indexed · backlog ${fmtCount(s.index_backlog)} · ${s.embedding_model || "no embedder"}`;
  }, () => {});

  // Namespaces with their live memory counts (GET /v1/memory/namespaces, code point order).
  const seen = new Map();
  const showNamespaces = () => {
    clear(nsList);
    nsList.append(h("li", h("button.link", { type: "button", onclick: () => browse("") }, "all")));
    for (const [ns, n] of [...seen.entries()].sort()) {
      nsList.append(h("li", h("button.link", { type: "button", onclick: () => browse(ns) }, ns), h("span.muted.small", ` ${n}`)));
    }
  };
  pages("/v1/memory/namespaces", { limit: 1000 }, {
    cursorParam: "after", nextKey: "next_after", maxPages: 10,
    onPage: (items) => {
      for (const n of items) seen.set(n.namespace, n.count);
      showNamespaces();
    },
  }).catch(() => {});

  let gen = 0;
  async function browse(ns) {
    nsInput.value = ns;
    const mine = ++gen;
    clear(results);
    results.append(notice("loading…"));
    try {
      const d = await api.get("/v1/memories", { namespace: ns || undefined, limit: 50 });
      if (mine !== gen) return;
      clear(results);
      results.append(h("h2.small", `${ns || "All namespaces"}: newest ${d.items.length}`), h("ul.memories", d.items.map((m) => memoryItem(m))));
    } catch (e) {
      clear(results);
      results.append(notice(`Could not list memories: ${e.message}`, "error"));
    }
  }

  async function search() {
    const query = q.value.trim();
    if (!query) return browse(nsInput.value.trim());
    const mine = ++gen;
    clear(results);
    results.append(notice("searching…"));
    const namespace = nsInput.value.trim() || [...seen.keys()].slice(0, 100);
    try {
      const d = await api.post("/v1/memories/search", { namespace, query, limit: 20, mode: mode.value, touch: false });
      if (mine !== gen) return;
      clear(results);
      results.append(h("h2.small", `${d.results.length} results · ${d.mode}${d.degraded ? " (degraded: keyword only)" : ""}`));
      results.append(h("ol.memories.searchresults", d.results.map((r) =>
        memoryItem(r.memory, h("div.scoreline", h("b.total", { title: "final score" }, fmtScore(r.score)), scoreBreakdown(r.scores))))));
    } catch (e) {
      clear(results);
      results.append(notice(`Search failed: ${e.message}`, "error"));
    }
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    search();
  });

  async function history(memId) {
    clear(side);
    if (!memId) return;
    side.append(notice("loading history…"));
    try {
      const d = await api.get(`/v1/memories/${encodeURIComponent(memId)}/history`, { include_deleted: true });
      clear(side);
      side.append(h("div.detailhead", h("h2", "History"), h("a.ghost", { href: "#/memory", "aria-label": "Close history" }, "✕")),
        h("p.muted.small", memId),
        h("ol.history", d.items.map((c) => h("li",
          h("div", h("b", c.op), ` v${c.version ?? c.memory?.version ?? "?"} · lsn ${c.lsn} · ${fmtTime(c.at)}`),
          c.memory ? h("div.memtext", c.memory.text) : null,
          c.memory?.metadata && Object.keys(c.memory.metadata).length ? jsonBlock(c.memory.metadata) : null))));
    } catch (e) {
      clear(side);
      side.append(notice(e.status === 404 ? `No memory ${memId}.` : `Could not load the history: ${e.message}`, "error"));
    }
  }

  reindex.addEventListener("click", async () => {
    reindex.disabled = true;
    try {
      const d = await api.post("/v1/admin/memory/reindex", {});
      reindex.textContent = `Queued ${fmtCount(d.queued ?? 0)}`;
    } catch (e) {
      reindex.textContent = `Failed: ${e.message}`;
    }
  });

  browse("");
  history(route.id);
  return {
    update(r) {
      history(r.id);
      return true;
    },
  };
}
