// Applies figures built by the server (plotly.py) with Plotly.react: never newPlot on every
// change, and the figures carry a fixed uirevision so the user's zoom survives updates.

const CONFIG = {
  responsive: true,
  displaylogo: false,
  toImageButtonOptions: { format: "png", scale: 2 },
  modeBarButtonsToAdd: ["toImage"],
};

export function applyFigure(element, figure) {
  if (!element || !figure) return Promise.resolve();
  const layout = { ...figure.layout };
  if (document.body.classList.contains("present")) presentLayout(layout, figure.data);
  return window.Plotly.react(element, figure.data, layout, CONFIG);
}

// Applies every figure of a result to the element with id `fig-<name>`, if the page has one.
export function applyFigures(figures, root = document) {
  return Promise.all(Object.entries(figures).map(([name, figure]) =>
    applyFigure(root.getElementById ? root.getElementById(`fig-${name}`) : null, figure)));
}

// Projector mode: bigger fonts and thicker lines, without touching the server's figure.
function presentLayout(layout, data) {
  layout.font = { ...(layout.font || {}), size: 20 };
  if (layout.title) layout.title = { ...layout.title, font: { size: 24 } };
  for (const trace of data) if (trace.line) trace.line = { ...trace.line, width: 5 };
}

// Appends streamed points to traces (the backward sweep arriving during a run).
export function extend(element, update, indices) {
  if (!element || !element.data) return Promise.resolve();
  return window.Plotly.extendTraces(element, update, indices);
}

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
