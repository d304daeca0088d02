// Small DOM and formatting helpers. Text always goes in as text nodes (never innerHTML),
// so nothing the API returns can inject markup.

/** h("div.cls#id", {attr: value, onclick: fn}, ...children) -> Element */
export function h(tag, attrs, ...children) {
  const [name, ...rest] = tag.split(/(?=[.#])/);
  const el = document.createElement(name || "div");
  for (const part of rest) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "text") el.textContent = v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An SVG element with attributes. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export const ms = (iso) => (iso ? Date.parse(iso) : NaN);

/** 1234 -> "1.2 s", 61000 -> "1m 01s", 0.4 -> "0.4 ms" */
export function fmtDuration(msValue) {
  if (msValue === null || msValue === undefined || Number.isNaN(msValue)) return "–";
  if (msValue === 0) return "0 ms";
  if (msValue < 1) return `${msValue.toFixed(2)} ms`;
  if (msValue < 1000) return `${Math.round(msValue)} ms`;
  const s = msValue / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
export function fmtCount(n) {
  if (n === null || n === undefined) return "–";
  return n >= 10000 ? compact.format(n) : n.toLocaleString("en");
}

export function fmtCost(usd) {
  if (usd === null || usd === undefined) return "–";
  if (usd === 0) return "$0";
  if (usd < 0.01) return `$${usd.toFixed(4)}`;
  return `$${usd.toFixed(2)}`;
}

export function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString("en-GB", { hour12: false })
    : d.toLocaleString("en-GB", { hour12: false, year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

export function fmtScore(x) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(3);
}

export function tokensOf(c) {
  return (c.input_tokens || 0) + (c.output_tokens || 0);
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

/** A <pre> block of JSON, or a muted dash for null. */
export function jsonBlock(value) {
  if (value === null || value === undefined) return h("span.muted", "–");
  return h("pre.json", json(value));
}

export function badge(status) {
  return h(`span.badge.s-${status || "none"}`, status || "–");
}

/** Debounce fn by wait ms. */
export function debounce(fn, wait) {
  let t = 0;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), wait);
  };
}

/** The status text region of a page: loading / error messages. */
export function notice(text, kind = "muted") {
  return h(`p.notice.${kind}`, { role: kind === "error" ? "alert" : "status" }, text);
}
