// One WebSocket for the whole dashboard (WS /v1/ws, docs/live.md): channels are
// subscribed with their cursor and re-subscribed from the last cursor after a reconnect,
// so a page misses nothing and sees nothing twice.

import { askForKey, getKey, onKeyChange, setKey } from "./api.js";

const subs = new Map(); // channel -> {cursor, handler}
const statusListeners = new Set();
let ws = null;
let backoff = 500;
let timer = 0;
let state = "offline";

function setState(s) {
  state = s;
  statusListeners.forEach((fn) => fn(s));
}

export function onStatus(fn) {
  statusListeners.add(fn);
  fn(state);
}

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

function subscribeMsg(channels) {
  const cursor = {};
  for (const ch of channels) {
    const c = subs.get(ch)?.cursor;
    if (c !== null && c !== undefined) cursor[ch] = c;
  }
  return { op: "subscribe", channels, cursor };
}

function connect() {
  clearTimeout(timer);
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const sock = new WebSocket(`${proto}//${location.host}/v1/ws`);
  ws = sock;
  setState("connecting");
  sock.onopen = () => {
    backoff = 500;
    const key = getKey();
    if (key) sock.send(JSON.stringify({ op: "auth", key }));
    setState("live");
    if (subs.size) sock.send(JSON.stringify(subscribeMsg([...subs.keys()])));
  };
  sock.onmessage = (ev) => {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    const sub = msg.channel ? subs.get(msg.channel) : null;
    if (!sub) return;
    if (msg.cursor !== undefined && msg.type !== "subscribed" && msg.type !== "error") sub.cursor = msg.cursor;
    sub.handler(msg);
  };
  sock.onclose = (ev) => {
    if (ws !== sock) return;
    ws = null;
    setState("offline");
    if (ev.code === 4401) {
      if (getKey()) setKey(null);
      askForKey("The live connection needs a key.").then(connect);
      return;
    }
    timer = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 5000);
  };
}

/** Follow a channel; handler(msg) gets every message of it. Returns an unsubscribe function. */
export function subscribe(channel, handler, cursor = null) {
  subs.set(channel, { cursor, handler });
  if (!ws) connect();
  else send(subscribeMsg([channel]));
  return () => {
    if (subs.get(channel)?.handler !== handler) return;
    subs.delete(channel);
    send({ op: "unsubscribe", channels: [channel] });
  };
}

onKeyChange(() => {
  // A new key may see another tenant: start over on a fresh connection.
  if (ws) {
    const old = ws;
    ws = null;
    old.close();
    connect();
  }
});
