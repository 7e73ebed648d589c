// Streams a simulation from the server (Server-Sent Events read with fetch, static/js/sse.js).
// Latest wins: opening a new stream aborts the previous one, and events of a superseded stream
// are ignored, so a stale response can never overwrite a newer one.
import { StreamError, readStream } from "./sse.js";

let current = null; // the AbortController of the stream in flight

// This page load's id, sent with every stream (X-GFL-Page): the server stops the work of this
// page's older stream when a newer one arrives (app/supersede.py), even before it notices that
// the browser dropped the older request.
export const PAGE_ID = Array.from(crypto.getRandomValues(new Uint8Array(12)),
  (byte) => byte.toString(16).padStart(2, "0")).join("");

// A result sends each array once: later copies arrive as {"$ref": "/json/pointer"} to the first,
// and a decade axis's customdata as its two columns, {"$pairs": [texts, values]} (app/lean.py).
// Returns the document with every reference replaced by a copy of its array and every pair of
// columns zipped back, so the page's scripts, downloads and saved views see whole arrays.
export function expandRefs(document) {
  const at = (pointer) => pointer.split("/").slice(1)
    .map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"))
    .reduce((value, part) => value[part], document);
  // References point into the document as sent: build a new one, never edit it on the way.
  const walk = (value) => {
    if (Array.isArray(value)) return value.map(walk);
    if (value === null || typeof value !== "object") return value;
    const keys = Object.keys(value);
    if (keys.length === 1 && typeof value.$ref === "string") return at(value.$ref).slice();
    if (keys.length === 1 && Array.isArray(value.$pairs)) {
      const [texts, values] = value.$pairs.map(walk);
      return texts.map((text, i) => [text, values[i]]);
    }
    return Object.fromEntries(keys.map((key) => [key, walk(value[key])]));
  };
  return walk(document);
}

// Calls handlers.<event>(data) for meta, progress, backward and result; handlers.error(message)
// once if the server refuses the request (its 422 message), sends an `error` event, stops
// before the result, or cannot be reached. Returns a function that cancels the stream.
export function openStream(path, query, handlers) {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const live = () => current === controller;
  let finished = false;
  const onEvent = (name, text) => {
    if (!live() || finished) return;
    const data = name === "result" ? expandRefs(JSON.parse(text)) : JSON.parse(text);
    if (name === "error" || name === "result") finished = true;
    try {
      if (name === "error") handlers.error?.(data.message ?? "the server stopped this run");
      else handlers[name]?.(data);
    } catch (error) {
      window.reportError(error); // a bug in the page, not in the stream: keep reading
    }
  };
  readStream(`${path}?${query}`, onEvent,
    { signal: controller.signal, headers: { "X-GFL-Page": PAGE_ID } })
    .then(() => {
      if (live() && !finished) handlers.error?.("the stream ended before the result arrived");
    })
    .catch((error) => {
      if (!live() || error.name === "AbortError") return;
      handlers.error?.(error instanceof StreamError ? error.message
        : "the server is not answering");
    })
    .finally(() => { if (current === controller) current = null; });
  return () => { if (live()) { current = null; controller.abort(); } };
}

// Leading and trailing throttle: the first change runs at once, so a single slider move adds
// no delay; changes during the next `wait` ms collapse into one trailing run with the latest
// arguments, so dragging a slider sends a few requests a second, not one per pixel.
export function throttle(fn, wait = 60) {
  let timer = null;
  let pending = null;
  const tick = () => {
    if (pending) {
      const args = pending;
      pending = null;
      fn(...args);
      timer = setTimeout(tick, wait);
    } else {
      timer = null;
    }
  };
  return (...args) => {
    if (timer === null) {
      fn(...args);
      timer = setTimeout(tick, wait);
    } else {
      pending = args;
    }
  };
}
