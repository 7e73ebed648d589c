"""How long from a slider move on /explore to all five plots redrawn, in a real Chromium.

Not collected by pytest (the name does not start with test_). Run:

    python -m tests.benchmark_browser [--runs 30]

Each run sets the weight_scale slider and fires its input event, then waits until every plot
has fired ``plotly_afterplot`` after the stream's ``result`` event arrived (``extendTraces``
during the sweep also fires afterplot; those are before the result and do not count). The
time is split into: throttle (input -> stream opened; the first change goes out at once),
server (stream opened -> result received) and client (result -> last plot drawn). "visible"
is input -> the last of the plots that were on screen drawn: the page draws those first and
the others in the tasks after. "floor" redraws five bare 50-point line plots in the same page,
to show what Plotly.js alone costs in this browser on this machine.

The server is started as the README starts it, in a process of its own.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics

from playwright.sync_api import sync_playwright

from tests.browser import STREAM_TAP, launch_browser, wait_rendered
from tests.load_test import warm_server

FIGURES = ("grad_norms", "layer_heatmap", "hidden_heatmap", "eigenvalues", "contributions")

# Records when each stream opens and when its `result` event arrives (tests.browser.STREAM_TAP
# sees the stream's bytes as they come in, alongside the page's own reader).
INSTRUMENT = STREAM_TAP + """
window.__bench = { openAt: 0, resultAt: 0 };
window.__onStreamOpen = () => { window.__bench.openAt = performance.now(); };
window.__onStreamEvent = (name) => {
  if (name === "result") window.__bench.resultAt = performance.now();
};
"""

ONE_RUN = """
async ([value, figures]) => {
  const bench = window.__bench;
  const drawn = new Map();
  const done = new Promise((resolve) => {
    for (const name of figures) {
      const element = document.getElementById("fig-" + name);
      const onDraw = () => {
        if (!bench.resultAt || performance.now() < bench.resultAt) return;  // sweep, not result
        if (!drawn.has(name)) drawn.set(name, performance.now());
        if (drawn.size === figures.length) resolve();
      };
      element.on("plotly_afterplot", onDraw);
      element.__benchListener = onDraw;
    }
  });
  bench.resultAt = 0;
  const onScreen = figures.filter((name) => {
    const box = document.getElementById("fig-" + name).getBoundingClientRect();
    return box.bottom > 0 && box.top < window.innerHeight;
  });
  const slider = document.getElementById("ctl-weight_scale");
  slider.value = String(value);
  const start = performance.now();
  slider.dispatchEvent(new Event("input", { bubbles: true }));
  await done;
  for (const name of figures) {
    const element = document.getElementById("fig-" + name);
    element.removeListener("plotly_afterplot", element.__benchListener);
  }
  const end = Math.max(...drawn.values());
  const visibleEnd = Math.max(...onScreen.map((name) => drawn.get(name)));
  return { total: end - start, visible: visibleEnd - start, throttle: bench.openAt - start,
           server: bench.resultAt - bench.openAt, client: end - bench.resultAt,
           ...Object.fromEntries([...drawn].map(([name, at]) => ["drawn " + name,
                                                                  at - bench.resultAt]))};
}
"""


# The floor under any page of five Plotly plots here: five 50-point line plots, no title, no
# legend, each redrawn with Plotly.react, until every one has fired plotly_afterplot.
FLOOR_RUN = """
async ([figures, seed]) => {
  const x = Array.from({ length: 50 }, (_, i) => i);
  const start = performance.now();
  await Promise.all(figures.map((name) => Plotly.react(document.getElementById("fig-" + name),
    [{ type: "scatter", x, y: x.map((i) => Math.sin(i + seed)) }], { height: 340 })));
  return performance.now() - start;
}
"""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(url: str, runs: int) -> tuple[list[dict], list[float]]:
    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.add_init_script(INSTRUMENT)
        page.goto(url + "/explore")
        wait_rendered(page, timeout=60_000)
        samples = []
        for run in range(runs + 2):
            value = round(0.5 + 0.05 * (run % 40), 2)
            sample = page.evaluate(ONE_RUN, [value, list(FIGURES)])
            if run >= 2:  # the first moves warm up the JIT and the server's imports
                samples.append(sample)
        floor = [page.evaluate(FLOOR_RUN, [list(FIGURES), run]) for run in range(runs + 2)][2:]
        browser.close()
    return samples, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    # The server runs in a process of its own, started as the README starts it: in this
    # process it would share the GIL with Playwright's client and measure that too.
    with warm_server(workers=1) as server:
        samples, floor = measure(server.url, args.runs)

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, "
          f"load average {os.getloadavg()[0]:.1f}, Python {platform.python_version()}")
    print(f"/explore defaults, {len(samples)} slider moves")
    for key in ("total", "visible", "throttle", "server", "client",
                *(f"drawn {f}" for f in FIGURES)):
        values = [s[key] for s in samples]
        print(f"  {key:20s} median {statistics.median(values):7.1f} ms   "
              f"p95 {percentile(values, 0.95):7.1f} ms")
    print("floor: five 50-point line plots redrawn with Plotly.react (no server, no page code)")
    print(f"  {'total':20s} median {statistics.median(floor):7.1f} ms   "
          f"p95 {percentile(floor, 0.95):7.1f} ms")


if __name__ == "__main__":
    main()
