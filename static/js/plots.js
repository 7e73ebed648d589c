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
    presentLayout(layout, data, element.clientWidth);
  }
  if (layout.height && element.classList.contains("main-figure")) {
    element.gflFitFrom = layout.height; // refitMainFigures fits it again when the room changes
    layout.height = fitMainHeight(element, layout.height);
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

// The height of a page's main plot: what is left of the first screen below the plot's top (so
// the plot and the controls beside it are seen together without scrolling), between a floor
// that keeps it readable on a small window and 1.6 times the figure's own height.
export const MIN_MAIN_HEIGHT = 260;
export function fitMainHeight(element, height) {
  const top = element.getBoundingClientRect().top + window.scrollY;
  const room = Math.floor(window.innerHeight - top - 6);
  return Math.max(MIN_MAIN_HEIGHT, Math.min(room, Math.round(height * 1.6)));
}

// Fits every drawn main plot again to the room left on the first screen: the status line, a
// banner or a note above it grew or shrank (a longer sequence, a warning, the model's notes), or
// the window changed size. Only a change of 2 pixels or more redraws.
export function refitMainFigures() {
  for (const element of document.querySelectorAll(".main-figure")) {
    if (!element.data || !element.layout || !element.gflFitFrom) continue;
    const height = fitMainHeight(element, element.gflFitFrom);
    if (Math.abs(height - (element.layout.height ?? 0)) < 2) continue;
    element.style.height = `${height}px`;
    window.Plotly.relayout(element, { height });
  }
}

// The control panel beside the plots (.explore-layout > .controls, sticky) ends at the bottom
// of the window wherever it starts: each of its controls then scrolls into view inside the
// panel while the page, and so the main plot beside it, stays where it is. (Its CSS bound,
// 100vh, would let the panel's last controls hang below the first screen.)
export function fitPanels() {
  for (const panel of document.querySelectorAll(".explore-layout > .controls")) {
    if (getComputedStyle(panel).position !== "sticky") {
      panel.style.maxHeight = "";
      continue;
    }
    const top = Math.max(panel.getBoundingClientRect().top, 0);
    panel.style.maxHeight = `${Math.max(200, Math.floor(window.innerHeight - top - 6))}px`;
  }
}

function fitFirstScreen() {
  fitPanels();
  refitMainFigures();
}

let fitPending = false;
function fitSoon() {
  if (fitPending) return;
  fitPending = true;
  window.requestAnimationFrame(() => {
    fitPending = false;
    fitFirstScreen();
  });
}

if (document.querySelector(".explore-layout")) {
  fitPanels();
  window.addEventListener("resize", fitSoon);
  window.addEventListener("scroll", fitSoon, { passive: true });
  document.addEventListener("toggle", fitSoon, true); // "About this page" opened or closed
  // Anything above the plots or the panel that changes height (the status line, a banner)
  // changes main's height too.
  const main = document.querySelector("main");
  if (main && window.ResizeObserver) new ResizeObserver(fitSoon).observe(main);
  new MutationObserver(fitSoon).observe(document.body, { attributes: true,
                                                          attributeFilter: ["class"] });
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

// Projector mode: bigger fonts and thicker lines, without touching the server's figure: the
// default text, headings, axis titles, legends, annotations (subplot titles and notes included),
// colour bars and hover labels all grow; a thin line (a band's edge, a guide) stays thinner
// than a main line. The plot grows with its type so labels stay inside the figure.
export const PRESENT_FONT = 20;
const CHAR_WIDTH = 0.55; // a character's width in ems, on average, in the plots' sans-serif
const grow = (font, size) => ({ ...(font || {}), size: Math.max(size, Math.min(26, Math.round((font?.size ?? 13) * 1.5))) });

export function presentLayout(layout, data, width = 0) {
  layout.font = { ...(layout.font || {}), size: PRESENT_FONT };
  const title = typeof layout.title === "string" ? { text: layout.title } : layout.title;
  let titleLines = 1;
  if (title) {
    // a long heading grows less, and one still wider than the plot goes on two lines
    let font = grow(title.font, (title.text ?? "").length > 48 ? 19 : 24);
    let text = title.text ?? "";
    const plain = text.replace(/<[^>]*>/g, "");
    const room = width - 40; // pixels across the plot for the heading
    if (width && plain.length * font.size * CHAR_WIDTH > room) {
      font = { ...font, size: Math.max(17, Math.floor(room / (plain.length * CHAR_WIDTH))) };
      if (!text.includes("<br") && plain.length * font.size * CHAR_WIDTH > room) {
        const middle = text.indexOf(" ", Math.floor(text.length / 2));
        const before = text.lastIndexOf(" ", Math.floor(text.length / 2));
        const cut = middle < 0 || (before > 0 && text.length / 2 - before < middle - text.length / 2)
          ? before : middle;
        if (cut > 0) { text = `${text.slice(0, cut)}<br>${text.slice(cut + 1)}`; titleLines = 2; }
      }
    }
    layout.title = { ...title, text, font };
  }
  if (layout.height) layout.height = Math.round(layout.height * 1.45);
  const margin = layout.margin || {};
  layout.margin = { ...margin, t: Math.max(margin.t ?? 0, 64 + 26 * (titleLines - 1)),
    b: Math.max(margin.b ?? 0, 72) };
  layout.legend = { ...(layout.legend || {}), font: grow(layout.legend?.font, PRESENT_FONT) };
  layout.hoverlabel = { ...(layout.hoverlabel || {}), font: grow(layout.hoverlabel?.font, 18) };
  for (const key of Object.keys(layout)) {
    if (!/^[xy]axis\d*$/.test(key) || typeof layout[key] !== "object") continue;
    const axis = { ...layout[key], automargin: true };
    axis.tickfont = grow(axis.tickfont, 18);
    if (axis.title) {
      const t = typeof axis.title === "string" ? { text: axis.title } : axis.title;
      axis.title = { ...t, font: grow(t.font, PRESENT_FONT) };
    }
    layout[key] = axis;
  }
  if (Array.isArray(layout.annotations)) {
    layout.annotations = layout.annotations.map((note) => ({ ...note, font: grow(note.font, 18) }));
  }
  for (const trace of data) {
    if (trace.line && trace.mode !== "markers") {
      const width = trace.line.width ?? 2;
      // main lines at least 4 px; thin ones (band edges, guides) at most 2 px
      trace.line = { ...trace.line, width: width < 1.5 ? Math.min(2, width * 1.5) : Math.max(4, Math.min(6, width * 2)) };
    }
    if (trace.marker?.size && String(trace.mode).includes("markers")) {
      trace.marker = { ...trace.marker, size: trace.marker.size * 1.6 };
    }
    if (trace.colorbar) {
      const bar = trace.colorbar;
      const barTitle = typeof bar.title === "string" ? { text: bar.title } : bar.title;
      trace.colorbar = { ...bar, tickfont: grow(bar.tickfont, 18),
        ...(barTitle ? { title: { ...barTitle, font: grow(barTitle.font, PRESENT_FONT) } } : {}) };
    }
    if (trace.textfont || trace.texttemplate) trace.textfont = grow(trace.textfont, 18);
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
  // Not revoked at once: the browser reads the blob after click() returns, and revoking it
  // straight away lost a large download now and then (the 5 MB offline view under load).
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
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
