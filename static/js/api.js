// Streams a simulation from the server (Server-Sent Events read with fetch, static/js/sse.js).
// Latest wins: opening a new stream aborts the previous one, and events of a superseded stream
// are ignored, so a stale response can never overwrite a newer one.
import { StreamError, readStream } from "./sse.js";

let current = null; // the AbortController of the stream in flight

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
    const data = JSON.parse(text);
    if (name === "error" || name === "result") finished = true;
    try {
      if (name === "error") handlers.error?.(data.message ?? "the server stopped this run");
      else handlers[name]?.(data);
    } catch (error) {
      window.reportError(error); // a bug in the page, not in the stream: keep reading
    }
  };
  readStream(`${path}?${query}`, onEvent, { signal: controller.signal })
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
