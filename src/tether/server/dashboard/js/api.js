// The API client of the dashboard: JSON envelopes, the operator's key, 401 -> ask for a key.
// The key lives in sessionStorage (this tab only) and travels in the Authorization header,
// never in a URL.

const KEY_STORE = "tether.key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_STORE);
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
  keyListeners.forEach((fn) => fn(key));
}

const keyListeners = new Set();
export function onKeyChange(fn) {
  keyListeners.add(fn);
}

let pendingKey = null;
/** Show the key dialog once (concurrent 401s share it); resolves when a key is entered. */
export function askForKey(message) {
  if (pendingKey) return pendingKey;
  const dialog = document.getElementById("key-dialog");
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  const error = document.getElementById("key-error");
  error.textContent = message || "";
  pendingKey = new Promise((resolve) => {
    const submit = (ev) => {
      ev.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      form.removeEventListener("submit", submit);
      input.value = "";
      dialog.close();
      pendingKey = null;
      setKey(key);
      resolve(key);
    };
    form.addEventListener("submit", submit);
  });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return pendingKey;
}

function url(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => u.searchParams.append(k, x));
    else u.searchParams.set(k, v);
  }
  return u.pathname + u.search;
}

async function request(method, path, { params, body } = {}, retried = false) {
  const headers = { Accept: "application/json" };
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url(path, params), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  let envelope = null;
  try {
    envelope = await res.json();
  } catch {
    envelope = null;
  }
  if (res.status === 401 && !retried) {
    const why = key ? "That key was refused: " + (envelope?.error?.message || "401") : "";
    if (key) setKey(null);
    await askForKey(why);
    return request(method, path, { params, body }, true);
  }
  if (!res.ok || !envelope || envelope.ok === false) {
    const err = envelope?.error || {};
    throw new ApiError(res.status, err.code || "http_" + res.status, err.message || res.statusText);
  }
  return envelope.data;
}

export const api = {
  get: (path, params) => request("GET", path, { params }),
  post: (path, body, params) => request("POST", path, { body, params }),
};

/** Every page of a cursor list: calls onPage(items) per page; stops after maxPages. */
export async function pages(path, params, { cursorParam, nextKey, onPage, maxPages = Infinity, signal }) {
  let cursor = null;
  for (let n = 0; n < maxPages; n++) {
    if (signal?.aborted) return;
    const data = await api.get(path, { ...params, [cursorParam]: cursor ?? undefined });
    onPage(data.items, data);
    cursor = data[nextKey];
    if (cursor === null || cursor === undefined || data.items.length === 0) return;
  }
}

let roleProbe = null;
/** "admin" when the caller may use admin routes (local mode or an admin key), else "limited". */
export function role() {
  if (!roleProbe) {
    roleProbe = api.get("/v1/admin/keys").then(
      () => "admin",
      (e) => (e instanceof ApiError && e.status === 403 ? "limited" : "unknown"),
    );
  }
  return roleProbe;
}
onKeyChange(() => {
  roleProbe = null;
});
