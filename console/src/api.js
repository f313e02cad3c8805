// The console's only way in: the service's HTTP API with an API key, sent in the
// Authorization header. The key is kept for this browser tab only (sessionStorage) and
// never put in a URL.

const KEY = "flowhost.apiKey";

/** An answer other than 2xx, with the problem's `detail`. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail ? `${status}: ${detail}` : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

let onRefused = () => {};

/** What to do when the service refuses the key (401). */
export function whenRefused(f) {
  onRefused = f;
}

export function key() {
  return sessionStorage.getItem(KEY);
}

export function setKey(k) {
  if (k) sessionStorage.setItem(KEY, k);
  else sessionStorage.removeItem(KEY);
}

/** `GET path` (or another `method` with a JSON `body`), answering its JSON. */
export async function api(path, { method = "GET", body, withKey = key() } = {}) {
  const headers = { Accept: "application/json" };
  if (withKey) headers.Authorization = `Bearer ${withKey}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data?.detail ?? data?.title);
    if (res.status === 401 && withKey === key()) onRefused(err);
    throw err;
  }
  return data;
}

/** `/v1/...` with each `{name}` of `path` replaced by its encoded value. */
export function path(template, values = {}) {
  return template.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(values[k]));
}
