// Small helpers for building the page: elements from data, never from HTML strings, so
// nothing a flow, a plugin or a customer wrote is ever parsed as markup.

/** An element `tag` with attributes (`on*` functions become listeners) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element, like `h`. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything inside `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** `2026-11-30 17:45:03` in the browser's time zone. */
export function time(ms) {
  if (ms === undefined || ms === null) return "";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A duration in microseconds as `850 µs`, `12.4 ms` or `3.2 s`. */
export function micros(us) {
  if (us < 1000) return `${us} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(1)} ms`;
  return `${(us / 1_000_000).toFixed(1)} s`;
}

/** A count with thousands separated. */
export function count(n) {
  return (n ?? 0).toLocaleString("en-US");
}

/** A JSON value as compact text. */
export function json(v) {
  return typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v ?? null);
}

/** The query parameters of the page's hash route (`#/journeys?contact=...`). */
export function routeParams() {
  const hash = location.hash.replace(/^#/, "");
  const q = hash.indexOf("?");
  return new URLSearchParams(q < 0 ? "" : hash.slice(q + 1));
}

/** Runs `tick` now and every `ms` until the returned function is called. */
export function every(ms, tick) {
  let stopped = false;
  let timer;
  const run = async () => {
    if (stopped) return;
    try {
      await tick();
    } catch (e) {
      report(e);
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Shows `e` (an ApiError or any error) in the status line. */
export function report(e) {
  const line = document.getElementById("status");
  if (line) {
    line.textContent = e ? String(e.message ?? e) : "";
    line.className = e ? "error" : "";
  }
}
