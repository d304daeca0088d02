// The session page's panels: event detail, state versions with a diff, goals, sub-agents,
// per-component diagnostics.

import { api } from "../api.js";
import { barChart } from "../charts.js";
import { diff } from "../diff.js";
import { badge, clear, fmtCost, fmtCount, fmtDuration, fmtTime, h, json, jsonBlock, notice } from "../dom.js";

/** The detail of one span: its final event (and the running one it replaced). */
export function eventDetail(row, events, onClose) {
  const ev = row.ev;
  const usage = [
    ["model", ev.model],
    ["input tokens", ev.input_tokens],
    ["output tokens", ev.output_tokens],
    ["cache read", ev.cache_read_tokens],
    ["cache write", ev.cache_write_tokens],
    ["reasoning", ev.reasoning_tokens],
    ["cost", ev.cost_usd === null || ev.cost_usd === undefined ? null : fmtCost(ev.cost_usd)],
  ].filter(([, v]) => v !== null && v !== undefined);
  const facts = [
    ["seq", row.seqs.join(", ")],
    ["status", badge(ev.status)],
    ["started", fmtTime(ev.started_at || ev.created_at)],
    ["ended", ev.ended_at ? fmtTime(ev.ended_at) : null],
    ["duration", ev.duration_ms !== null && ev.duration_ms !== undefined ? fmtDuration(ev.duration_ms) : null],
    ["span", ev.span_id],
    ["parent", ev.parent_id],
    ["trace", ev.trace_id],
    ["level", ev.level],
    ["role", ev.role],
    ["event id", ev.id],
    ["correlation", ev.correlation_id],
  ].filter(([, v]) => v !== null && v !== undefined);
  const dl = (pairs) => h("dl.facts", pairs.flatMap(([k, v]) => [h("dt", k), h("dd", v)]));
  const close = h("button.ghost", { type: "button", "aria-label": "Close detail", onclick: onClose }, "✕");
  const earlier = row.seqs.length > 1
    ? h("p.muted.small", `Started as a running event (seq ${row.seqs[0]}); showing seq ${ev.seq}.`) : null;
  void events;
  return h("aside.detail", { "aria-label": "Event detail", tabindex: -1, id: "event-detail" },
    h("div.detailhead", h("h2", h("span.kind", ev.kind), " ", ev.name || ""), close),
    earlier,
    dl(facts),
    h("h3", "Input"), jsonBlock(ev.input),
    h("h3", "Output"), jsonBlock(ev.output),
    h("h3", "Attributes"), jsonBlock(ev.attributes),
    h("h3", "Usage"), usage.length ? dl(usage) : h("p.muted", "No usage recorded."),
  );
}

export function goalsPanel(goals) {
  if (!goals || !goals.length) return h("p.muted", "No goals.");
  return h("ul.goals", goals.map((g) => {
    const bar = h("span.progress-fill");
    bar.style.width = `${Math.round((g.progress || 0) * 100)}%`;
    return h("li", badge(g.status), " ", g.description,
      h("span.progress", { role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round((g.progress || 0) * 100) }, bar));
  }));
}

/** The sub-agent tree: children (from the session detail) and their children. */
export function agentsPanel(detail) {
  const box = h("div.agents");
  const link = (s) => h("a", { href: `#/sessions/${encodeURIComponent(s.id)}` }, s.title || s.id);
  const node = (s, depth) => {
    const li = h("li", badge(s.status), " ", link(s), h("span.muted", ` ${s.agent || ""}`));
    if (depth < 3) {
      api.get("/v1/sessions", { parent_id: s.id, limit: 50 }).then((d) => {
        if (d.items.length) li.append(h("ul", d.items.map((c) => node(c, depth + 1))));
      }, () => {});
    }
    return li;
  };
  if (detail.parent_id) box.append(h("p", "Parent: ", h("a", { href: `#/sessions/${encodeURIComponent(detail.parent_id)}` }, detail.parent_id)));
  const kids = detail.children || [];
  box.append(kids.length ? h("ul.tree", kids.map((c) => node(c, 1))) : h("p.muted", "No sub-agents."));
  return box;
}

/** State: the current document, its versions, and a diff between two of them. */
export function statePanel(sessionId) {
  const box = h("div.state", notice("loading state…"));
  (async () => {
    const current = await api.get(`/v1/sessions/${encodeURIComponent(sessionId)}/state`);
    const versions = [];
    let after = 0;
    for (let i = 0; i < 10; i++) {
      const d = await api.get(`/v1/sessions/${encodeURIComponent(sessionId)}/state/versions`, { after, limit: 500 });
      versions.push(...d.items);
      if (d.next_after === null || d.next_after === undefined || !d.items.length) break;
      after = d.next_after;
    }
    clear(box);
    box.append(h("p", `Version ${current.version}`, versions.length ? ` · ${versions.length} versions kept` : ""));
    if (!versions.length) {
      box.append(h("h3", "Current state"), jsonBlock(current.state));
      return;
    }
    const opt = (v) => h("option", { value: v.version }, `v${v.version} · ${fmtTime(v.at)}`);
    const a = h("select", { "aria-label": "Compare from version" }, h("option", { value: 0 }, "v0 · empty"), versions.map(opt));
    const b = h("select", { "aria-label": "Compare to version" }, versions.map(opt));
    b.value = String(versions.at(-1).version);
    a.value = String(versions.length > 1 ? versions.at(-2).version : 0);
    const out = h("div.diffout");
    const find = (v) => (Number(v) === 0 ? { state: {}, patch: null } : versions.find((x) => x.version === Number(v)));
    const render = () => {
      clear(out);
      const va = find(a.value);
      const vb = find(b.value);
      const changes = diff(va.state, vb.state);
      out.append(h("h3", `Diff v${a.value} → v${b.value}`));
      out.append(changes.length
        ? h("ul.diff", changes.map((c) => h(`li.${c.op}`, h("code", c.path), ` ${c.op} `,
            c.op !== "added" ? h("code.before", json(c.before)) : null,
            c.op === "changed" ? " → " : null,
            c.op !== "removed" ? h("code.after", json(c.after)) : null)))
        : h("p.muted", "No difference."));
      out.append(h("h3", `Patch of v${b.value}`), jsonBlock(vb.patch), h("h3", `State at v${b.value}`), jsonBlock(vb.state));
    };
    a.addEventListener("change", render);
    b.addEventListener("change", render);
    box.append(h("div.filters", h("label", "From ", a), h("label", "to ", b)), out);
    render();
  })().catch((e) => {
    clear(box);
    box.append(notice(`Could not load the state: ${e.message}`, "error"));
  });
  return box;
}

/** Per-component diagnostics (GET /v1/sessions/{id}/diagnostics) as a chart and a table. */
export function diagnosticsPanel(sessionId) {
  const box = h("div.diag", notice("loading diagnostics…"));
  api.get(`/v1/sessions/${encodeURIComponent(sessionId)}/diagnostics`).then((d) => {
    clear(box);
    const comps = d.components || [];
    if (!comps.length) {
      box.append(h("p.muted", "No components yet."));
      return;
    }
    box.append(barChart(comps.map((c) => ({
      label: `${c.kind} ${c.name ?? ""}`,
      value: c.count,
      secondary: c.errors,
      note: c.p95_ms !== null && c.p95_ms !== undefined ? `p95 ${fmtDuration(c.p95_ms)}` : "",
      title: `${c.count} events, ${c.errors} errors`,
    })), { caption: "Events per component (errors in red)", fmt: fmtCount }));
    const timed = comps.filter((c) => c.p95_ms !== null && c.p95_ms !== undefined);
    if (timed.length) {
      box.append(barChart(timed.map((c) => ({
        label: `${c.kind} ${c.name ?? ""}`,
        value: c.p95_ms,
        note: `p50 ${fmtDuration(c.p50_ms)}`,
        title: `p95 ${c.p95_ms} ms, max ${c.max_ms} ms`,
      })), { caption: "p95 latency per component", fmt: fmtDuration }));
    }
    const cols = ["Component", "Count", "Running", "Errors", "p50", "p95", "Max", "Tokens", "Cost"];
    box.append(h("div.tablewrap", h("table.grid",
      h("thead", h("tr", cols.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", comps.map((c) => h("tr",
        h("th", { scope: "row" }, `${c.kind} ${c.name ?? ""}`),
        h("td.num", fmtCount(c.count)), h("td.num", fmtCount(c.running)),
        h(`td.num${c.errors ? ".bad" : ""}`, fmtCount(c.errors)),
        h("td.num", fmtDuration(c.p50_ms)), h("td.num", fmtDuration(c.p95_ms)), h("td.num", fmtDuration(c.max_ms)),
        h("td.num", fmtCount((c.input_tokens || 0) + (c.output_tokens || 0))), h("td.num", fmtCost(c.cost_usd)),
      ))))));
    const errs = comps.flatMap((c) => (c.last_errors || []).map((e) => ({ ...e, comp: `${c.kind} ${c.name ?? ""}` })));
    if (errs.length) {
      box.append(h("h3", "Last errors"), h("ul.errors", errs.map((e) => h("li",
        h("a", { href: `#/sessions/${encodeURIComponent(e.session_id)}/events/${e.seq}` }, `#${e.seq}`),
        ` ${e.comp}: ${e.message}`))));
    }
  }, (e) => {
    clear(box);
    box.append(notice(`Diagnostics unavailable: ${e.message}`, "error"));
  });
  return box;
}
