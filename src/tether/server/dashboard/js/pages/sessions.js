// Sessions: the live list (GET /v1/sessions, WS channel "sessions"), filters and search.

import { api } from "../api.js";
import { badge, debounce, fmtCost, fmtCount, fmtDuration, fmtTime, h, ms, notice, tokensOf } from "../dom.js";
import { subscribe } from "../live.js";
import { VList } from "../vlist.js";

const PAGE = 200;
const ROW_H = 36;

function duration(s, now) {
  const start = ms(s.created_at);
  const end = s.ended_at ? ms(s.ended_at) : s.status === "active" ? now : ms(s.updated_at);
  return end - start;
}

function matches(s, f, q) {
  if (f.status && s.status !== f.status) return false;
  if (f.agent && s.agent !== f.agent) return false;
  if (f.user_id && s.user_id !== f.user_id) return false;
  if (f.tag && !(s.tags || []).includes(f.tag)) return false;
  if (!q) return true;
  // The server's rule for ?q= (live updates are matched here the same way).
  const hay = [s.id, s.title, s.agent, s.user_id].join(" ").toLowerCase();
  return q.split(/\s+/).every((w) => hay.includes(w));
}

export function mount(main) {
  // q: words the server matches in id, title, agent or user (GET /v1/sessions?q=).
  const filters = { status: "", agent: "", user_id: "", tag: "", q: "" };
  let query = "";
  let all = []; // loaded sessions, newest first
  let cursor = null;
  let loading = false;
  let done = false;
  let gen = 0;

  const search = h("input", { type: "search", placeholder: "Search sessions (/)", "aria-label": "Search sessions", "data-search": true });
  const status = h("select", { "aria-label": "Status" },
    ["", "active", "completed", "failed", "abandoned"].map((v) => h("option", { value: v }, v || "any status")));
  const agent = h("input", { type: "text", placeholder: "agent", "aria-label": "Agent" });
  const user = h("input", { type: "text", placeholder: "user", "aria-label": "User" });
  const tag = h("input", { type: "text", placeholder: "tag", "aria-label": "Tag" });
  const info = h("span.muted", { role: "status", id: "sessions-info" }, "loading…");
  const header = h("div.srow.shead", { role: "row" },
    ["Status", "Session", "Agent", "User", "Started", "Duration", "Events", "Errors", "Tokens", "Cost"].map((t, i) =>
      h(`span.c${i}`, { role: "columnheader" }, t)));
  const page = h("section.page.sessions", { "aria-labelledby": "sessions-title" },
    h("div.pagehead", h("h1#sessions-title", "Sessions"), info),
    h("div.filters", search, status, agent, user, tag),
  );
  main.append(page);

  const list = new VList(page, {
    rowHeight: ROW_H,
    label: "Sessions",
    header,
    empty: "No sessions match.",
    render: (s) => {
      const c = s.counters || {};
      const link = h("a", { href: `#/sessions/${encodeURIComponent(s.id)}`, tabindex: -1 }, s.title || s.id);
      return h(`div.srow${s.status === "active" ? ".live" : ""}`, { dataset: { id: s.id } },
        h("span.c0", { role: "cell" }, badge(s.status)),
        h("span.c1", { role: "cell", title: s.id }, link, s.title ? h("span.muted.small", ` ${s.id}`) : null),
        h("span.c2", { role: "cell" }, s.agent || "–"),
        h("span.c3", { role: "cell" }, s.user_id || "–"),
        h("span.c4", { role: "cell" }, fmtTime(s.created_at)),
        h("span.c5", { role: "cell" }, fmtDuration(duration(s, Date.now()))),
        h("span.c6.num", { role: "cell" }, fmtCount(c.event_count)),
        h(`span.c7.num${c.error_count ? ".bad" : ""}`, { role: "cell" }, fmtCount(c.error_count)),
        h("span.c8.num", { role: "cell" }, fmtCount(tokensOf(c))),
        h("span.c9.num", { role: "cell" }, fmtCost(c.cost_usd)),
      );
    },
    onOpen: (s) => {
      location.hash = `#/sessions/${encodeURIComponent(s.id)}`;
    },
  });

  const show = () => {
    const q = query.trim().toLowerCase();
    const rows = q ? all.filter((s) => matches(s, filters, q)) : all;
    list.setItems(rows);
    info.textContent = `${fmtCount(rows.length)} shown${done ? "" : " · more on scroll"}`;
  };

  async function loadMore() {
    if (loading || done) return;
    loading = true;
    const mine = gen;
    try {
      const data = await api.get("/v1/sessions", { ...filters, limit: PAGE, cursor: cursor ?? undefined });
      if (mine !== gen) return;
      const known = new Set(all.map((s) => s.id));
      all = all.concat(data.items.filter((s) => !known.has(s.id)));
      cursor = data.next_cursor;
      done = cursor === null || data.items.length === 0;
      show();
    } catch (e) {
      info.textContent = "";
      page.append(notice(`Could not load sessions: ${e.message}`, "error"));
      done = true;
    } finally {
      loading = false;
    }
  }

  function reload() {
    gen += 1;
    all = [];
    cursor = null;
    done = false;
    loading = false;
    list.scroller.scrollTop = 0;
    loadMore();
  }

  list.scroller.addEventListener("scroll", () => {
    const el = list.scroller;
    if (el.scrollTop + el.clientHeight > el.scrollHeight - ROW_H * 20) loadMore();
  }, { passive: true });

  const refilter = debounce(() => {
    filters.status = status.value;
    filters.agent = agent.value.trim();
    filters.user_id = user.value.trim();
    filters.tag = tag.value.trim();
    reload();
  }, 250);
  [status, agent, user, tag].forEach((el) => el.addEventListener("input", refilter));
  search.addEventListener("input", debounce(() => {
    query = search.value;
    filters.q = query.trim();
    reload();
  }, 250));

  // Live: created sessions go on top, updates replace in place, deletions leave.
  const since = Date.now() - 1000;
  const unsubscribe = subscribe("sessions", (msg) => {
    if (msg.type !== "sessions") return;
    let changed = false;
    for (const item of msg.data) {
      const idx = all.findIndex((s) => s.id === (item.session?.id ?? item.id));
      if (item.change === "deleted") {
        if (idx >= 0) all.splice(idx, 1);
        changed = idx >= 0 || changed;
        continue;
      }
      const s = item.session;
      if (!s) continue;
      if (idx >= 0) all[idx] = s;
      else if (matches(s, filters, "")) all.unshift(s);
      else continue;
      changed = true;
    }
    if (changed) show();
  }, since);

  // Durations of active sessions grow.
  const tick = setInterval(() => {
    if (all.some((s) => s.status === "active")) list.render();
  }, 1000);

  loadMore();
  setTimeout(() => list.scroller.focus({ preventScroll: true }), 0);

  return {
    unmount() {
      clearInterval(tick);
      unsubscribe();
      list.destroy();
    },
  };
}
