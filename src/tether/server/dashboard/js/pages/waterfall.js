// The waterfall of a session's spans: events merged by span_id (a running event, then the
// final one with the same span_id, make one row that grows until it ends), nested by
// parent_id, drawn on one time axis. Virtualised (vlist.js): 10,000 events stay fluid.

import { fmtDuration, h, ms } from "../dom.js";
import { VList } from "../vlist.js";

export const ROW_H = 28;

const startOf = (ev) => ms(ev.started_at) || ms(ev.created_at);

function endOf(ev, now) {
  if (ev.status === "running") return now;
  const end = ms(ev.ended_at);
  if (!Number.isNaN(end)) return end;
  if (ev.duration_ms !== null && ev.duration_ms !== undefined) return startOf(ev) + ev.duration_ms;
  return startOf(ev);
}

/**
 * Rows in tree order from events (seq order): [{key, ev, first, depth, seqs: [...]}].
 * `ev` is the latest event of the span (the final one once it has ended).
 */
export function buildRows(events) {
  const byKey = new Map();
  const rows = [];
  for (const ev of events) {
    const key = ev.span_id ? `s:${ev.span_id}` : `q:${ev.seq}`;
    const row = byKey.get(key);
    if (row) {
      row.ev = ev;
      row.seqs.push(ev.seq);
    } else {
      const r = { key, ev, first: ev, depth: 0, seqs: [ev.seq], kids: [] };
      byKey.set(key, r);
      rows.push(r);
    }
  }
  const roots = [];
  for (const r of rows) {
    const parent = r.ev.parent_id ? byKey.get(`s:${r.ev.parent_id}`) : null;
    if (parent && parent !== r) parent.kids.push(r);
    else roots.push(r);
  }
  const out = [];
  const seen = new Set();
  const stack = roots.slice().reverse().map((r) => [r, 0]);
  while (stack.length) {
    const [r, depth] = stack.pop();
    if (seen.has(r)) continue; // a parent_id cycle: show each span once
    seen.add(r);
    r.depth = depth;
    out.push(r);
    for (let i = r.kids.length - 1; i >= 0; i--) stack.push([r.kids[i], depth + 1]);
  }
  for (const r of rows) if (!seen.has(r)) out.push(r);
  return out;
}

const KIND_ICON = {
  llm: "◆", tool: "⚙", agent: "◈", message: "✉", retrieval: "⌕", embedding: "∿", error: "✖",
  goal: "◎", state: "≡", memory: "▣", action: "▶", response: "↩", log: "·",
};

export class Waterfall {
  constructor(host, { onOpen }) {
    this.rows = [];
    this.t0 = 0;
    this.t1 = 1;
    this.now = Date.now();
    this.header = h("div.wrow.whead", { role: "row" },
      h("span.wseq", { role: "columnheader" }, "#"),
      h("span.wname", { role: "columnheader" }, "Span"),
      h("span.wbar", { role: "columnheader" }, h("span.axis0", ""), h("span.axis1", "")),
      h("span.wdur", { role: "columnheader" }, "Duration"));
    this.list = new VList(host, {
      rowHeight: ROW_H,
      label: "Waterfall of spans",
      header: this.header,
      empty: "No events yet.",
      render: (r) => this.renderRow(r),
      onOpen: (r, i) => onOpen(r, i),
    });
  }

  setRows(rows, now = Date.now()) {
    this.rows = rows;
    this.now = now;
    this.scale();
    this.list.setItems(rows);
  }

  scale() {
    let t0 = Infinity;
    let t1 = -Infinity;
    for (const r of this.rows) {
      const s = startOf(r.first);
      if (s < t0) t0 = s;
      const e = Math.max(endOf(r.ev, this.now), s);
      if (e > t1) t1 = e;
    }
    if (!Number.isFinite(t0)) t0 = t1 = this.now;
    this.t0 = t0;
    this.t1 = Math.max(t1, t0 + 1);
    this.header.querySelector(".axis1").textContent = fmtDuration(this.t1 - this.t0);
  }

  /** Running spans grow: move the clock and redraw what is in view. */
  tick(now = Date.now()) {
    this.now = now;
    this.scale();
    this.list.render();
  }

  hasRunning() {
    return this.rows.some((r) => r.ev.status === "running");
  }

  renderRow(r) {
    const ev = r.ev;
    const s = startOf(r.first);
    const e = Math.max(endOf(ev, this.now), s);
    const span = this.t1 - this.t0;
    const bar = h(`span.b.k-${ev.kind}.st-${ev.status}`);
    bar.style.left = `${(100 * (s - this.t0)) / span}%`;
    bar.style.width = `max(3px, ${(100 * (e - s)) / span}%)`;
    const name = h("span.wname", { role: "cell", title: `${ev.kind} ${ev.name || ""}` },
      h("span.icon", { "aria-hidden": "true" }, KIND_ICON[ev.kind] || "•"),
      h("span.kind", ev.kind), " ", ev.name || ev.role || "");
    name.style.paddingLeft = `${Math.min(r.depth, 12) * 14 + 4}px`;
    const dur = ev.status === "running" ? `${fmtDuration(this.now - s)} …` : fmtDuration(ev.duration_ms ?? (e > s ? e - s : null));
    return h(`div.wrow.st-${ev.status}`, { dataset: { seq: ev.seq, key: r.key } },
      h("span.wseq", { role: "cell" }, String(r.seqs[0])),
      name,
      h("span.wbar", { role: "cell", "aria-label": ev.status === "running" ? "running" : ev.status }, bar),
      h("span.wdur", { role: "cell" }, dur));
  }

  indexOfSeq(seq) {
    return this.rows.findIndex((r) => r.seqs.includes(seq));
  }

  destroy() {
    this.list.destroy();
  }
}
