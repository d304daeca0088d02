// The dashboard's entry point: hash router, theme, live metrics strip, keyboard, key.

import { getKey, onKeyChange, role, setKey } from "./api.js";
import { clear, fmtCount, notice } from "./dom.js";
import { onStatus, subscribe } from "./live.js";
import { sparkline } from "./charts.js";
import * as sessionsPage from "./pages/sessions.js";
import * as sessionPage from "./pages/session.js";
import * as memoryPage from "./pages/memory.js";
import * as toolsPage from "./pages/tools.js";

const PAGES = { sessions: sessionsPage, session: sessionPage, memory: memoryPage, tools: toolsPage };

/** "#/sessions/ID/events/SEQ" -> {page, id, seq}; unknown -> sessions. */
export function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const [head, id, sub, seq] = parts;
  if (head === "sessions" && id) return { page: "session", id, seq: sub === "events" && seq ? Number(seq) : null };
  if (head === "memory") return { page: "memory", id: id || null };
  if (head === "tools") return { page: "tools" };
  return { page: "sessions" };
}

let current = null; // {name, view}

function route() {
  const r = parseRoute(location.hash);
  const main = document.getElementById("main");
  document.querySelectorAll("[data-nav]").forEach((a) => {
    const on = a.dataset.nav === (r.page === "session" ? "sessions" : r.page);
    a.classList.toggle("on", on);
    if (on) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  if (current && current.name === r.page && current.view.update && current.view.update(r)) return;
  if (current) current.view.unmount?.();
  clear(main);
  try {
    current = { name: r.page, view: PAGES[r.page].mount(main, r) };
  } catch (e) {
    main.append(notice(String(e), "error"));
  }
}

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("tether.theme", theme);
}

function initTheme() {
  const saved = localStorage.getItem("tether.theme");
  const prefers = matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark";
  document.documentElement.dataset.theme = saved || prefers;
  document.getElementById("theme").addEventListener("click", toggleTheme);
}

function toggleTheme() {
  setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
}

function initMetrics() {
  const spark = document.getElementById("m-spark");
  const history = [];
  const set = (id, v) => {
    document.getElementById(id).textContent = v;
  };
  const conn = document.getElementById("conn");
  onStatus((s) => {
    conn.textContent = s;
    conn.dataset.state = s;
  });
  subscribe("metrics", (msg) => {
    if (msg.type !== "snapshot") return;
    const d = msg.data;
    set("m-eps", d.events_per_s.toFixed(1));
    set("m-errs", d.errors_per_s.toFixed(1));
    set("m-active", fmtCount(d.active_sessions));
    set("m-backlog", fmtCount(d.index_backlog));
    set("m-ws", fmtCount(d.ws_connections));
    set("m-replicas", fmtCount(d.replicas));
    history.push(d.events_per_s);
    if (history.length > 60) history.shift();
    sparkline(spark, history);
    document.getElementById("metrics").dataset.at = d.at;
  });
}

async function initIdentity() {
  const who = document.getElementById("whoami");
  const out = document.getElementById("signout");
  const show = async () => {
    out.hidden = !getKey();
    const r = await role();
    document.body.dataset.role = r;
    who.textContent = getKey() ? (r === "admin" ? "admin key" : "key") : r === "admin" ? "local mode" : "";
  };
  out.addEventListener("click", () => {
    setKey(null);
    location.reload();
  });
  onKeyChange(show);
  await show();
}

let pendingG = 0;
function initKeys() {
  const help = document.getElementById("help");
  document.getElementById("help-open").addEventListener("click", () => help.showModal());
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    const typing = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement || t?.isContentEditable;
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey || document.querySelector("dialog[open]")) return;
    if (pendingG && Date.now() - pendingG < 1500) {
      const to = { s: "#/sessions", m: "#/memory", t: "#/tools" }[ev.key];
      pendingG = 0;
      if (to) {
        location.hash = to;
        ev.preventDefault();
        return;
      }
    }
    if (ev.key === "g") pendingG = Date.now();
    else if (ev.key === "?") help.showModal();
    else if (ev.key === "t") toggleTheme();
    else if (ev.key === "/") {
      const search = document.querySelector("[data-search]");
      if (search) {
        ev.preventDefault();
        search.focus();
      }
    } else return;
  });
}

initTheme();
initKeys();
window.addEventListener("hashchange", route);
route();
initIdentity();
initMetrics();
