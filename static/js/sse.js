// Server-Sent Events read with fetch. Unlike EventSource, the page sees the HTTP status and an
// error's JSON body (a 422 names the field and its range) from the one request it sent, nothing
// reconnects behind its back, and an AbortSignal ends the stream.

// An HTTP error answer to a stream request: `message` from its JSON body, `status` its code.
export class StreamError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "StreamError";
    this.status = status;
  }
}

// The message of an error response: FastAPI's `detail` (a list of validation errors, each with
// its own `msg`, or one string), or the bare status when the body says nothing.
export async function errorMessage(response) {
  const body = await response.json().catch(() => null);
  const detail = body?.detail;
  if (Array.isArray(detail) && detail.length) return detail.map((d) => d.msg).join("; ");
  if (typeof detail === "string" && detail) return detail;
  return `request failed (HTTP ${response.status})`;
}

// Fetches `url` and calls onEvent(name, data) for every event of the stream, in order: `name`
// is its `event:` field ("message" without one), `data` its data lines joined by "\n". Resolves
// when the server ends the stream; rejects with a StreamError when the answer is not 2xx, and
// with an AbortError when `signal` aborts. `headers` are sent with the request.
export async function readStream(url, onEvent, { signal, headers = {} } = {}) {
  const response = await fetch(url, {
    signal, cache: "no-store", headers: { ...headers, Accept: "text/event-stream" } });
  if (!response.ok) throw new StreamError(await errorMessage(response), response.status);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = eventParser(onEvent);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.push(value);
  }
}

// An incremental parser of the text/event-stream format: push() takes text as it arrives, in
// chunks cut anywhere. Lines end in \n, \r\n or \r; a blank line ends an event; lines starting
// with ":" are comments (keep-alives); "field: value" loses one space after the colon. `id` and
// `retry` only matter for reconnecting, which this reader never does. An event the stream
// ends in the middle of is dropped, as the standard says.
export function eventParser(onEvent) {
  let buffer = "";
  let started = false;
  let name = "";
  let data = [];

  function dispatch() {
    if (data.length) onEvent(name || "message", data.join("\n"));
    name = "";
    data = [];
  }

  function line(text) {
    if (text === "") { dispatch(); return; }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }

  return {
    push(chunk) {
      buffer += chunk;
      if (!started && buffer) {
        started = true;
        if (buffer.startsWith("\uFEFF")) buffer = buffer.slice(1);
      }
      const ends = /\r\n|\r|\n/g;
      let from = 0;
      let match;
      while ((match = ends.exec(buffer)) !== null) {
        // A \r last in the buffer may be half of a \r\n split across chunks: wait for more.
        if (match[0] === "\r" && match.index === buffer.length - 1) break;
        line(buffer.slice(from, match.index));
        from = match.index + match[0].length;
      }
      buffer = buffer.slice(from);
    },
  };
}
