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
  const layout = { ...figure.layout };
  let data = figure.data;
  if (document.body.classList.contains("present")) {
    data = data.map((trace) => ({ ...trace })); // leave the server's figure as it was
    presentLayout(layout, data);
  }
  // With `responsive`, Plotly sizes the plot to its div: give the div the figure's height, or
  // a resize (projector mode, the window) squeezes the plot into the div's CSS height.
  if (layout.height) element.style.height = `${layout.height}px`;
  return window.Plotly.react(element, data, layout, PLOT_CONFIG);
}

// Applies every figure of a result to the element with id `fig-<name>`, if the page has one.
export function applyFigures(figures, root = document) {
  return Promise.all(Object.entries(figures).map(([name, figure]) =>
    applyFigure(root.getElementById ? root.getElementById(`fig-${name}`) : null, figure)));
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
  if (layout.legend) layout.legend = { ...layout.legend, y: -0.3 };
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
      (trace.x ?? []).forEach((x, i) => rows.push([name, x, trace.y?.[i] ?? "", ""].join(",")));
    }
  }
  return rows.join("\n");
}
