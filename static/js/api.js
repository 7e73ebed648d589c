// Streams a simulation from the server with Server-Sent Events. Latest wins: opening a new
// stream closes the previous one, and events of a superseded stream are ignored, so a stale
// response can never overwrite a newer one.

let generation = 0;
let current = null;

export function openStream(path, query, handlers) {
  const mine = ++generation;
  if (current) current.close();
  const source = new EventSource(`${path}?${query}`);
  current = source;
  const live = () => mine === generation;
  for (const name of ["meta", "progress", "backward", "result"]) {
    source.addEventListener(name, (event) => {
      if (!live()) return;
      const data = JSON.parse(event.data);
      if (name === "result") { source.close(); if (current === source) current = null; }
      handlers[name]?.(data);
    });
  }
  source.onerror = () => {
    if (!live()) return;
    source.close();
    // EventSource hides the HTTP status; ask again with fetch to show the 422 message.
    fetch(`${path}?${query}`).then(async (response) => {
      if (!live()) return;
      let message = `request failed (HTTP ${response.status})`;
      if (response.status === 422) {
        const body = await response.json();
        message = body.detail.map((d) => d.msg).join("; ");
      } else if (response.ok) {
        return; // the stream had simply ended
      }
      handlers.error?.(message);
    }).catch(() => live() && handlers.error?.("the server is not answering"));
  };
  return () => { if (live()) { generation++; source.close(); } };
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
