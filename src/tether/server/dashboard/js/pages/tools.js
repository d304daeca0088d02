// Tools: the analytics table (GET /v1/analytics/tools), latency and failure-rate charts
// (GET /v1/analytics/timeseries), anomalies flagged (GET /v1/analytics/anomalies).

import { api } from "../api.js";
import { lineChart } from "../charts.js";
import { clear, fmtCount, fmtDuration, fmtTime, h, notice } from "../dom.js";

const WINDOWS = { "1h": [3600e3, "1m"], "24h": [86400e3, "1h"], "7d": [7 * 86400e3, "1d"] };
const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);

export function mount(main) {
  const win = h("select", { "aria-label": "Time window", id: "tools-window" }, Object.keys(WINDOWS).map((k) => h("option", { value: k }, `last ${k}`)));
  win.value = "24h";
  const table = h("div.tablewrap");
  const charts = h("div.charts");
  const anomalies = h("div.anomalies", { "aria-live": "polite" });
  let selected = "";
  const page = h("section.page.tools", { "aria-labelledby": "tools-title" },
    h("div.pagehead", h("h1#tools-title", "Tools"), win),
    h("h2.small", "Anomalies"), anomalies,
    table,
    charts);
  main.append(page);

  let flagged = new Set();
  async function loadAnomalies() {
    clear(anomalies);
    try {
      const d = await api.get("/v1/analytics/anomalies");
      flagged = new Set(d.anomalies.map((a) => a.name));
      anomalies.append(d.anomalies.length
        ? h("ul.flags", d.anomalies.map((a) => h("li.flag", { role: "alert" },
            h("b", `${a.kind} ${a.name}`), ` ${a.metric} ${a.metric === "error_rate" ? pct(a.value) : fmtDuration(a.value)}`,
            ` (baseline ${a.metric === "error_rate" ? pct(a.baseline_mean) : fmtDuration(a.baseline_mean)}, z = ${Number(a.z).toFixed(1)}, ${a.samples} samples, window from ${fmtTime(a.window_start)})`)))
        : h("p.muted", `No anomaly in the last ${Math.round(d.window_s / 60)} min against ${d.baseline_windows} baseline windows.`));
    } catch (e) {
      anomalies.append(notice(`Anomalies unavailable: ${e.message}`, "error"));
    }
  }

  async function loadTable() {
    const [span] = WINDOWS[win.value];
    const since = new Date(Date.now() - span).toISOString();
    clear(table);
    try {
      const d = await api.get("/v1/analytics/tools", { since });
      if (!d.tools.length) {
        table.append(h("p.muted", "No tool calls in this window."));
        return;
      }
      const cols = ["Tool", "Calls", "OK", "Errors", "Success", "p50", "p95", "Max", "Last call", "Last error"];
      table.append(h("table.grid#tools-table",
        h("caption.sr", "Tool calls in the window"),
        h("thead", h("tr", cols.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", d.tools.map((t) => h(`tr${flagged.has(t.name) ? ".flagged" : ""}${t.name === selected ? ".sel" : ""}`,
          h("th", { scope: "row" }, h("button.link", { type: "button", onclick: () => select(t.name) }, t.name), flagged.has(t.name) ? h("span.badge.s-failed", { title: "anomaly" }, "anomaly") : null),
          h("td.num", fmtCount(t.invocations)), h("td.num", fmtCount(t.ok)),
          h(`td.num${t.errors ? ".bad" : ""}`, fmtCount(t.errors)), h("td.num", pct(t.success_rate)),
          h("td.num", fmtDuration(t.p50_ms)), h("td.num", fmtDuration(t.p95_ms)), h("td.num", fmtDuration(t.max_ms)),
          h("td", fmtTime(t.last_at)),
          h("td.small", t.last_error ? h("a", { href: `#/sessions/${encodeURIComponent(t.last_error.session_id)}/events/${t.last_error.seq}` }, t.last_error.message || "error") : "–"))))));
    } catch (e) {
      table.append(notice(`Tool analytics unavailable: ${e.message}`, "error"));
    }
  }

  async function loadCharts() {
    const [span, bucket] = WINDOWS[win.value];
    const since = new Date(Date.now() - span).toISOString();
    const who = selected ? { kind: "tool", name: selected } : { kind: "tool" };
    clear(charts);
    charts.append(h("h2.small", selected ? `Tool ${selected}` : "All tools"));
    try {
      const [lat, err] = await Promise.all([
        api.get("/v1/analytics/timeseries", { metric: "latency_p95", bucket, since, ...who }),
        api.get("/v1/analytics/timeseries", { metric: "error_rate", bucket, since, ...who }),
      ]);
      charts.append(h("div.chartrow",
        lineChart(lat.points, { caption: `p95 latency per ${bucket}`, fmt: fmtDuration }),
        lineChart(err.points, { caption: `Failure rate per ${bucket}`, fmt: pct, flag: (p) => p.value > 0 })));
    } catch (e) {
      charts.append(notice(`Charts unavailable: ${e.message}`, "error"));
    }
  }

  function select(name) {
    selected = selected === name ? "" : name;
    loadTable();
    loadCharts();
  }

  const reload = async () => {
    await loadAnomalies();
    await Promise.all([loadTable(), loadCharts()]);
  };
  win.addEventListener("change", reload);
  reload();
  return {};
}
