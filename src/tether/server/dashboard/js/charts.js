// Charts drawn as SVG and plain elements: no library, no canvas (readable by a screen
// reader through their captions and tables).

import { h, svg } from "./dom.js";

/**
 * Horizontal bars: rows [{label, value, secondary?, note?, title?}], value scaled to the max.
 * secondary (e.g. errors) is drawn over the bar in the error colour.
 */
export function barChart(rows, { caption, fmt = String } = {}) {
  const max = Math.max(1, ...rows.map((r) => r.value || 0));
  const list = h("div.bars", { role: "list", "aria-label": caption });
  for (const r of rows) {
    const bar = h("span.bar");
    bar.style.width = `${(100 * (r.value || 0)) / max}%`;
    const err = h("span.bar.err");
    err.style.width = `${(100 * (r.secondary || 0)) / max}%`;
    list.append(
      h("div.barrow", { role: "listitem", title: r.title || "" },
        h("span.barlabel", r.label),
        h("span.bartrack", bar, r.secondary ? err : null),
        h("span.barvalue", fmt(r.value), r.note ? h("span.muted", ` ${r.note}`) : null)),
    );
  }
  return h("figure.chart", caption ? h("figcaption", caption) : null, list);
}

/** A line chart of points [{at, value|null}] with the min/max labelled. */
export function lineChart(points, { caption, fmt = String, height = 120, flag = null } = {}) {
  const W = 600;
  const H = height;
  const vals = points.map((p) => p.value).filter((v) => v !== null && v !== undefined);
  const max = vals.length ? Math.max(...vals) : 0;
  const n = Math.max(1, points.length - 1);
  const x = (i) => (i / n) * (W - 8) + 4;
  const y = (v) => H - 16 - (max > 0 ? (v / max) * (H - 28) : 0);
  let d = "";
  let pen = false;
  points.forEach((p, i) => {
    if (p.value === null || p.value === undefined) {
      pen = false;
      return;
    }
    d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(p.value).toFixed(1)}`;
    pen = true;
  });
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "line", role: "img", "aria-label": caption || "chart" },
    svg("line", { x1: 4, x2: W - 4, y1: H - 16, y2: H - 16, class: "axis" }),
    svg("path", { d, class: "stroke" }),
  );
  points.forEach((p, i) => {
    if (p.value === null || p.value === undefined) return;
    const dot = svg("circle", { cx: x(i), cy: y(p.value), r: flag && flag(p) ? 4 : 2, class: flag && flag(p) ? "dot flag" : "dot" },
      svg("title", {}, `${new Date(p.at).toLocaleString("en-GB", { hour12: false })}: ${fmt(p.value)}`));
    chart.append(dot);
  });
  const first = points[0]?.at ? new Date(points[0].at).toLocaleString("en-GB", { hour12: false, month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit" }) : "";
  const last = points.at(-1)?.at ? new Date(points.at(-1).at).toLocaleString("en-GB", { hour12: false, month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit" }) : "";
  chart.append(svg("text", { x: 4, y: 10, class: "lbl" }, `max ${fmt(max)}`));
  chart.append(svg("text", { x: 4, y: H - 3, class: "lbl" }, first));
  chart.append(svg("text", { x: W - 4, y: H - 3, class: "lbl end" }, last));
  return h("figure.chart", caption ? h("figcaption", caption) : null, chart,
    vals.length ? null : h("p.muted.small", "No samples in this window."));
}

/** Fill an <svg viewBox="0 0 120 20"> with a sparkline of values. */
export function sparkline(el, values) {
  while (el.firstChild) el.firstChild.remove();
  if (values.length < 2) return;
  const max = Math.max(1e-9, ...values);
  const step = 120 / (values.length - 1);
  const d = values.map((v, i) => `${i ? "L" : "M"}${(i * step).toFixed(1)},${(19 - (v / max) * 18).toFixed(1)}`).join("");
  el.append(svg("path", { d, class: "stroke" }));
}
