"""Real-browser test support: a live uvicorn server on a free loopback port and Debian's Chromium
driven by Python Playwright (never `playwright install`: it downloads a browser)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until

__all__ = ["CHROMIUM", "LiveServer", "PageWatch", "free_port", "launch_browser", "screenshot",
           "wait_rendered"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"


class LiveServer:
    """The app served by uvicorn in a thread of this process (tests may look at its state, such
    as the training slots); for a process of its own, see tests.helpers.running_server."""

    def __init__(self) -> None:
        import uvicorn

        from gradient_flow_lab.app.main import app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 20, "the in-process test server did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class PageWatch:
    """Collects what a person would not want to see: console errors, page errors, and any
    request leaving 127.0.0.1 (the app must work offline)."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        self.foreign_requests: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", self._request)

    def _request(self, request) -> None:
        url = request.url
        if not (url.startswith("http://127.0.0.1:") or url.startswith("data:")
                or url.startswith("blob:") or url.startswith("about:")):
            self.foreign_requests.append(url)


def launch_browser(playwright):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does it)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# An init script that lets a test see the Server-Sent Events the page receives: it wraps
# window.fetch, and for every request to a `/stream` URL it tees the response body and records
# {url, openedAt, status, events: [{name, data, at}], ended} in window.__streams, calling
# window.__onStreamOpen(url) as the request leaves and window.__onStreamEvent(name, data) for
# each event as it arrives. The page reads its own copy
# of the stream untouched.
STREAM_TAP = """
window.__streams = [];
const __originalFetch = window.fetch;
window.fetch = async function (input, init) {
  const url = String(input instanceof Request ? input.url : input);
  if (!url.includes('/stream')) return __originalFetch.call(this, input, init);
  const record = { url, openedAt: performance.now(), status: 0, events: [] };
  window.__streams.push(record);
  window.__onStreamOpen?.(url);
  const response = await __originalFetch.call(this, input, init);
  record.status = response.status;
  if (!response.ok || !response.body) return response;
  const [mine, theirs] = response.body.tee();
  (async () => {
    const reader = mine.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\\r\\n?/g, '\\n');
        let end;
        while ((end = buffer.indexOf('\\n\\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = 'message';
          const data = [];
          for (const line of block.split('\\n')) {
            if (line.startsWith('event:')) name = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (!data.length) continue;
          record.events.push({ name, data: data.join('\\n'), at: performance.now() });
          window.__onStreamEvent?.(name, data.join('\\n'));
        }
      }
    } catch (error) { /* the page aborted the stream */ }
    record.ended = true;  // read to its end, or aborted by the page
  })();
  return new Response(theirs, { status: response.status, statusText: response.statusText,
                                headers: response.headers });
};
"""


# Every simulation page marks its status line: data-run is the latest run started, data-rendered
# the run whose figures are all drawn (static/js/ui.js), data-state "computing", "done" or "error".
RENDERED = """([after]) => {
  const s = document.getElementById('status');
  return s.dataset.state === 'done' && s.dataset.rendered !== undefined
    && s.dataset.rendered === s.dataset.run
    && (after === null || Number(s.dataset.rendered) > Number(after));
}"""


def wait_rendered(page, after: int | str | None = None, timeout: float = 30_000) -> int:
    """Waits until the latest run's figures are all drawn (and, given ``after``, until that run
    is newer than run ``after``); returns the run's number."""
    page.wait_for_function(RENDERED, arg=[after], timeout=timeout)
    return int(page.locator("#status").get_attribute("data-rendered"))


def drawn(page, name: str) -> None:
    """Waits until the page ``/name`` shows its figures (the activations and training pages
    draw without a simulation stream)."""
    if name == "activations":
        page.wait_for_function("() => document.getElementById('activations').dataset.renderedDepth")
    elif name == "train":
        page.wait_for_function("() => document.getElementById('fig-accuracy').data")
    else:
        wait_rendered(page)
