// Session: header (counters, goals), waterfall with live events and running spans, event
// detail, replay, state versions with a diff, sub-agents, diagnostics. Deep links:
// #/sessions/ID and #/sessions/ID/events/SEQ.

import { api } from "../api.js";
import { badge, clear, debounce, fmtCost, fmtCount, fmtDuration, fmtTime, h, ms, notice, tokensOf } from "../dom.js";
import { subscribe } from "../live.js";
import { agentsPanel, diagnosticsPanel, eventDetail, goalsPanel, statePanel } from "./session_parts.js";
import { Waterfall, buildRows } from "./waterfall.js";

const PAGE = 1000; // the API's largest events page

function summary(s) {
  const c = s.counters || {};
  const end = s.ended_at ? ms(s.ended_at) : s.status === "active" ? Date.now() : ms(s.updated_at);
  const fact = (k, v) => h("div.fact", h("span.muted", k), h("b", v));
  return h("div.facts-row",
    fact("status", badge(s.status)),
    fact("agent", s.agent || "–"),
    fact("user", s.user_id || "–"),
    fact("started", fmtTime(s.created_at)),
    fact("duration", fmtDuration(end - ms(s.created_at))),
    fact("events", fmtCount(c.event_count)),
    fact("errors", fmtCount(c.error_count)),
    fact("tokens", fmtCount(tokensOf(c))),
    fact("cost", fmtCost(c.cost_usd)),
    s.phase ? fact("phase", s.phase) : null,
    s.current_step ? fact("step", s.current_step) : null,
  );
}

export function mount(main, route) {
  const id = route.id;
  const enc = encodeURIComponent(id);
  let events = [];
  let lastSeq = 0;
  let loadedAll = false;
  let wantSeq = route.seq;
  let selectedKey = null;
  let unsubscribe = () => {};
  let alive = true;

  const title = h("h1#session-title", id);
  const head = h("div.summary", notice("loading…"));
  const goals = h("div.goalsbox");
  const status = h("span.muted", { role: "status", id: "events-info" });

  // Tabs
  const tabNames = ["Timeline", "State", "Agents", "Diagnostics"];
  const tabs = tabNames.map((name, i) => h("button.tab", {
    type: "button", role: "tab", id: `tab-${name.toLowerCase()}`, "aria-selected": i === 0 ? "true" : "false",
    "aria-controls": `panel-${name.toLowerCase()}`, tabindex: i === 0 ? 0 : -1,
  }, name));
  const panels = tabNames.map((name, i) => h("div.tabpanel", { role: "tabpanel", id: `panel-${name.toLowerCase()}`, "aria-labelledby": `tab-${name.toLowerCase()}`, hidden: i !== 0 }));
  const loadedPanel = new Set([0]);
  const showTab = (i) => {
    tabs.forEach((t, j) => {
      t.setAttribute("aria-selected", String(i === j));
      t.tabIndex = i === j ? 0 : -1;
      panels[j].hidden = i !== j;
    });
    if (!loadedPanel.has(i)) {
      loadedPanel.add(i);
      if (i === 1) panels[1].append(statePanel(id));
      if (i === 2) detailPromise.then((d) => panels[2].append(agentsPanel(d)));
      if (i === 3) panels[3].append(diagnosticsPanel(id));
    }
  };
  tabs.forEach((t, i) => {
    t.addEventListener("click", () => showTab(i));
    t.addEventListener("keydown", (ev) => {
      const d = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
      if (!d) return;
      const j = (i + d + tabs.length) % tabs.length;
      showTab(j);
      tabs[j].focus();
      ev.preventDefault();
    });
  });

  // Replay controls
  const play = h("button", { type: "button", id: "replay-play", "aria-pressed": "false", title: "Play the timeline (Space)" }, "▶ Replay");
  const speed = h("select", { "aria-label": "Replay speed", id: "replay-speed" },
    [1, 10, 100, 1000].map((x) => h("option", { value: x }, `${x}×`)));
  speed.value = "10";
  const pos = h("input", { type: "range", min: 0, max: 0, value: 0, "aria-label": "Replay position (events)", id: "replay-pos" });
  const posLabel = h("span.muted.small", { "aria-live": "off" }, "live");
  const liveBtn = h("button.ghost", { type: "button", title: "Back to live" }, "Live");
  const follow = h("input", { type: "checkbox", checked: true, id: "follow" });
  const toolbar = h("div.toolbar", play, speed, pos, posLabel, liveBtn, h("label.small", follow, " follow new events"));

  const split = h("div.split");
  const wfHost = h("div.wfhost");
  const detailHost = h("div.detailhost", { hidden: true });
  split.append(wfHost, detailHost);
  panels[0].append(toolbar, split);

  const page = h("section.page.session", { "aria-labelledby": "session-title" },
    h("div.pagehead", h("a.back", { href: "#/sessions" }, "← Sessions"), title, status),
    head, goals,
    h("div.tabs", { role: "tablist", "aria-label": "Session views" }, tabs),
    panels);
  main.append(page);

  const closeDetail = () => {
    selectedKey = null;
    detailHost.hidden = true;
    clear(detailHost);
    history.replaceState(null, "", `#/sessions/${enc}`);
    wf.list.scroller.focus({ preventScroll: true });
  };
  const openRow = (row, index, { updateUrl = true } = {}) => {
    selectedKey = row.key;
    wf.list.select(index);
    clear(detailHost);
    detailHost.append(eventDetail(row, events, closeDetail));
    detailHost.hidden = false;
    if (updateUrl) history.replaceState(null, "", `#/sessions/${enc}/events/${row.ev.seq}`);
    // On a narrow screen the detail sits under the waterfall: bring it into view.
    if (matchMedia("(max-width: 760px)").matches) detailHost.scrollIntoView({ block: "start" });
  };
  const wf = new Waterfall(wfHost, { onOpen: (row, i) => openRow(row, i) });

  // Replay state: null when live; otherwise how many events are shown.
  let replay = null;
  let playTimer = 0;
  let liveArrived = false; // follow (scroll to the end) only for events that arrive live
  const visibleEvents = () => (replay === null ? events : events.slice(0, replay));

  const rebuild = () => {
    const evs = visibleEvents();
    const now = replay === null ? Date.now() : (ms(evs.at(-1)?.created_at) || Date.now());
    const rows = buildRows(evs);
    const atBottom = wf.list.scroller.scrollTop + wf.list.scroller.clientHeight >= wf.list.scroller.scrollHeight - 40;
    wf.setRows(rows, now);
    if (selectedKey) {
      const i = rows.findIndex((r) => r.key === selectedKey);
      if (i >= 0) {
        wf.list.selected = i;
        clear(detailHost);
        detailHost.append(eventDetail(rows[i], events, closeDetail));
      }
    }
    pos.max = String(events.length);
    pos.value = String(replay === null ? events.length : replay);
    posLabel.textContent = replay === null ? "live" : `${replay} / ${events.length}`;
    status.textContent = `${fmtCount(events.length)} events${loadedAll ? "" : " (loading…)"} · ${fmtCount(rows.length)} spans`;
    if (replay !== null || (follow.checked && atBottom && liveArrived)) wf.list.scroller.scrollTop = wf.list.scroller.scrollHeight;
    liveArrived = false;
    if (wantSeq !== null && (wantSeq <= lastSeq || loadedAll)) {
      const want = wantSeq;
      const i = wf.indexOfSeq(want);
      wantSeq = null;
      if (i >= 0) {
        openRow(rows[i], i, { updateUrl: false });
        wf.list.scroller.focus({ preventScroll: true });
      } else {
        wfHost.prepend(notice(`No event ${want} in this session.`, "error"));
      }
    }
  };
  let frame = 0;
  const scheduleRebuild = () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      if (alive) rebuild();
    });
  };

  const addEvents = (items) => {
    for (const ev of items) {
      if (ev.seq <= lastSeq) continue;
      events.push(ev);
      lastSeq = ev.seq;
    }
  };

  // Header: the session, its goals; refreshed (debounced) while events arrive.
  const showDetail = (d) => {
    title.textContent = d.title || d.id;
    clear(head);
    head.append(summary(d), d.title ? h("p.muted.small", d.id) : null);
    clear(goals);
    if (d.goals && d.goals.length) goals.append(h("h2.small", "Goals"), goalsPanel(d.goals));
  };
  const detailPromise = api.get(`/v1/sessions/${enc}`);
  detailPromise.then(showDetail, (e) => {
    clear(head);
    head.append(notice(e.status === 404 ? `No session ${id}.` : `Could not load the session: ${e.message}`, "error"));
  });
  const refreshDetail = debounce(() => api.get(`/v1/sessions/${enc}`).then((d) => alive && showDetail(d), () => {}), 500);

  async function load() {
    try {
      let after = 0;
      for (;;) {
        const data = await api.get(`/v1/sessions/${enc}/events`, { after_seq: after, limit: PAGE });
        if (!alive) return;
        addEvents(data.items);
        loadedAll = data.next_cursor === null || !data.items.length;
        rebuild();
        if (after === 0 && document.activeElement === document.body) wf.list.scroller.focus({ preventScroll: true });
        if (loadedAll) break;
        after = data.next_cursor;
      }
    } catch (e) {
      if (alive) wfHost.prepend(notice(e.status === 404 ? "" : `Could not load events: ${e.message}`, "error"));
      return;
    }
    unsubscribe = subscribe(`session:${id}`, (msg) => {
      if (msg.type === "events") {
        addEvents(msg.data);
        liveArrived = true;
        scheduleRebuild();
        refreshDetail();
      } else if (msg.type === "deleted") {
        page.prepend(notice("This session was deleted.", "error"));
      } else if (msg.type === "error") {
        status.textContent = `live: ${msg.message || msg.code}`;
      }
    }, lastSeq);
  }

  // Replay
  const stopPlaying = () => {
    clearTimeout(playTimer);
    playTimer = 0;
    play.textContent = "▶ Replay";
    play.setAttribute("aria-pressed", "false");
  };
  const step = () => {
    if (replay === null || replay >= events.length) {
      stopPlaying();
      return;
    }
    replay += 1;
    rebuild();
    const a = ms(events[replay - 1]?.started_at) || ms(events[replay - 1]?.created_at);
    const b = ms(events[replay]?.started_at) || ms(events[replay]?.created_at);
    const gap = Number.isFinite(b - a) ? Math.max(0, b - a) : 0;
    playTimer = setTimeout(step, Math.min(1000, gap / Number(speed.value)) || 16);
  };
  const togglePlay = () => {
    if (playTimer) {
      stopPlaying();
      return;
    }
    if (replay === null || replay >= events.length) replay = 0;
    play.textContent = "❚❚ Pause";
    play.setAttribute("aria-pressed", "true");
    step();
  };
  play.addEventListener("click", togglePlay);
  pos.addEventListener("input", () => {
    stopPlaying();
    const v = Number(pos.value);
    replay = v >= events.length ? null : v;
    rebuild();
  });
  liveBtn.addEventListener("click", () => {
    stopPlaying();
    replay = null;
    rebuild();
  });
  const onKey = (ev) => {
    if (ev.key === "Escape" && !detailHost.hidden && !document.querySelector("dialog[open]")) {
      closeDetail();
      return;
    }
    if (ev.key !== " " || ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement || ev.target instanceof HTMLButtonElement || panels[0].hidden) return;
    ev.preventDefault();
    togglePlay();
  };
  document.addEventListener("keydown", onKey);

  // Running spans grow while they run.
  const ticker = setInterval(() => {
    if (replay === null && wf.hasRunning()) wf.tick();
  }, 250);

  load();

  return {
    update(r) {
      if (r.id !== id) return false;
      if (r.seq !== null) {
        showTab(0);
        wantSeq = r.seq;
        rebuild();
      }
      return true;
    },
    unmount() {
      alive = false;
      stopPlaying();
      clearInterval(ticker);
      document.removeEventListener("keydown", onKey);
      unsubscribe();
      wf.destroy();
    },
  };
}
