// Applies figures built by the server (plotly.py) with Plotly.react: never newPlot on every
// change, and the figures carry a fixed uirevision so the user's zoom survives updates.

// The toolbar's camera saves a PNG; this second button saves the same plot as SVG (slides,
// handouts, papers).
const SVG_BUTTON = {
  name: "svg",
  title: "Download plot as SVG",
  icon: window.Plotly.Icons.disk,
  click: (plot) => window.Plotly.downloadImage(plot, { format: "svg", filename: plot.id || "plot" }),
};

export const PLOT_CONFIG = {
  responsive: true,
  displaylogo: false,
  toImageButtonOptions: { format: "png", scale: 2 },
  modeBarButtonsToAdd: [SVG_BUTTON],
  // "Share chart..." would upload the data to Plotly's cloud: never from a lecture hall's tool
  modeBarButtonsToRemove: ["sendChartToCloud", "sendDataToCloud"],
  showSendToCloud: false,
};

export function applyFigure(element, figure) {
  if (!element || !figure) return Promise.resolve();
  element.gflDrawn = (element.gflDrawn ?? 0) + 1; // a deferred draw of an older figure yields to this
  const layout = { ...figure.layout };
  let data = figure.data;
  if (document.body.classList.contains("present")) {
    data = data.map((trace) => ({ ...trace })); // leave the server's figure as it was
    presentLayout(layout, data);
  }
  // With `responsive`, Plotly sizes the plot to its div: give the div the figure's height, or
  // a resize (projector mode, the window) squeezes the plot into the div's CSS height.
  if (layout.height) element.style.height = `${layout.height}px`;
  // The config goes with the first draw only: given again, Plotly deep-copies and compares it
  // on every update.
  return window.Plotly.react(element, data, layout, element.data ? undefined : PLOT_CONFIG);
}

// Applies every figure of a result to the element with id `fig-<name>`, if the page has one.
// Plots on screen are redrawn at once; the others follow one per task, so the browser can
// handle a slider's next input between them, and a plot given a newer figure in the meantime
// skips the older one (latest wins). Resolves when every plot shows its figure.
export function applyFigures(figures, root = document) {
  const targets = Object.entries(figures)
    .map(([name, figure]) => [root.getElementById?.(`fig-${name}`), figure])
    .filter(([element, figure]) => element && figure);
  // Measured once per plot, before any draw changes the layout.
  const seen = targets.map(([element]) => isOnScreen(element));
  const drawn = targets.filter((_, i) => seen[i])
    .map(([element, figure]) => applyFigure(element, figure));
  for (const [element, figure] of targets.filter((_, i) => !seen[i])) {
    const ticket = (element.gflDrawn ?? 0) + 1;
    element.gflDrawn = ticket;
    drawn.push(nextTask().then(() => {
      if (element.gflDrawn !== ticket) return undefined; // a newer figure came first
      return applyFigure(element, figure);
    }));
  }
  return Promise.all(drawn);
}

function isOnScreen(element) {
  const box = element.getBoundingClientRect();
  return box.bottom > 0 && box.top < window.innerHeight && box.right > 0
    && box.left < window.innerWidth;
}

// Resolves in a later task (after pending input events), unlike a microtask.
function nextTask() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

// Projector mode: bigger fonts and thicker lines, without touching the server's figure.
// The plot grows with its type so tick labels and the legend stay inside the figure.
function presentLayout(layout, data) {
  layout.font = { ...(layout.font || {}), size: 20 };
  if (layout.title) layout.title = { ...layout.title, font: { size: 24 } };
  if (layout.height) layout.height = Math.round(layout.height * 1.45);
  const margin = layout.margin || {};
  layout.margin = { ...margin, t: Math.max(margin.t ?? 0, 64), b: Math.max(margin.b ?? 0, 72) };
  for (const axis of ["xaxis", "yaxis"]) layout[axis] = { ...(layout[axis] || {}), automargin: true };
  for (const trace of data) {
    if (trace.line) trace.line = { ...trace.line, width: 5 };
    if (trace.marker?.size && String(trace.mode).includes("markers")) {
      trace.marker = { ...trace.marker, size: trace.marker.size * 1.6 };
    }
  }
}

// Appends streamed points to traces (the backward sweep arriving during a run).
export function extend(element, update, indices) {
  if (!element || !element.data) return Promise.resolve();
  return window.Plotly.extendTraces(element, update, indices);
}

// Saves `text` as a file called `filename` through a temporary link.
export function download(filename, text, type = "text/plain") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  URL.revokeObjectURL(url);
}

// CSV of a figure's traces: one row per point, columns trace, x, y (and z for heatmaps).
export function figureToCsv(figure) {
  const rows = ["trace,x,y,z"];
  for (const trace of figure.data) {
    const name = JSON.stringify(trace.name ?? trace.type);
    if (trace.z) {
      trace.z.forEach((row, i) => row.forEach((z, j) => {
        rows.push([name, trace.x?.[j] ?? j, trace.y?.[i] ?? i, z ?? ""].join(","));
      }));
    } else {
      // On a decade axis y is log10; the true value (even beyond float64, as text) is in
      // customdata[i][1].
      const value = trace.meta?.decades ? (i) => trace.customdata?.[i]?.[1] : (i) => trace.y?.[i];
      (trace.x ?? []).forEach((x, i) => rows.push([name, x, value(i) ?? "", ""].join(",")));
    }
  }
  return rows.join("\n");
}
