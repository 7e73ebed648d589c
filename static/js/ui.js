// The pieces every simulation page shares: its status line, progress bar, error box, overflow
// marker, paper-checks list, number format, download buttons and projector-mode re-apply.
// Functions take the elements they change, so a page keeps its own state.

import { openStream } from "./api.js";
import { modelId } from "./modellock.js";
import { download, figureToCsv } from "./plots.js";
import { toQuery } from "./state.js";

// The symbol shown for each check status (also in explore's saved offline view).
export const CHECK_SYMBOLS = { pass: "✓", fail: "✗", "n/a": "–" };

// The elements a simulation page has by id: #controls, #status, #progress, #overflow-marker, #error-box.
export function pageElements() {
  const byId = (id) => document.getElementById(id);
  return { controls: byId("controls"), statusLine: byId("status"), progress: byId("progress"),
           overflowMarker: byId("overflow-marker"), errorBox: byId("error-box") };
}

// Sets the status line's text and its data-state ("computing", "done" or "error").
export function setStatus(statusLine, text, kind) {
  statusLine.textContent = text;
  statusLine.dataset.state = kind;
}

// Marks run number `run` as started: data-run on the status line, `text`, an empty progress bar.
export function startRun({ statusLine, progress }, run, text) {
  statusLine.dataset.run = String(run);
  setStatus(statusLine, text, "computing");
  progress.value = 0;
}

// A `progress` event of the stream: the stage under way in the status line, and the bar moved
// to `fraction` of `share` (the part of the bar the computation takes before the sweep).
export function showProgress({ statusLine, progress }, data, share = 0.5) {
  progress.value = Math.max(progress.value, data.fraction * share);
  if (data.stage !== "starting") setStatus(statusLine, `computing: ${data.stage}…`, "computing");
}

// Streams the simulation of `state` for page `view` from /api/simulate/stream (latest wins).
export function streamSimulation(table, state, view, handlers) {
  const query = toQuery(table, state);
  query.set("view", view);
  if (modelId()) query.set("model", modelId()); // an uploaded model's weights (?model=)
  return openStream("/api/simulate/stream", query.toString(), handlers);
}

// A result has arrived: hides the error box and fills the progress bar.
export function resultArrived({ errorBox, progress }) {
  errorBox.hidden = true;
  progress.value = 1;
}

// Once `rendered` (the promise of applyFigures) resolves, sets data-rendered on the status line
// to the run that was current when the result was shown, unless a newer run has started since:
// tests and the benchmark wait for data-rendered to equal data-run.
export function markRendered({ statusLine }, rendered) {
  const shown = statusLine.dataset.run;
  return rendered.then(() => {
    if (statusLine.dataset.run === shown) statusLine.dataset.rendered = shown;
  });
}

// Shows that the server could not run the configuration, with its message in the error box.
export function showError({ statusLine, progress, errorBox }, message) {
  setStatus(statusLine, "The server could not run this configuration.", "error");
  progress.value = 0;
  errorBox.hidden = false;
  errorBox.textContent = `Error: ${message}`;
}

// Enables every button matching `selector` (the downloads, once there is a result).
export function enableButtons(selector) {
  for (const button of document.querySelectorAll(selector)) button.disabled = false;
}

// The overflow marker's usual text for an overflow at step `step`.
export const overflowText = (step) =>
  `⚠ Overflowed at t = ${step}: numbers went beyond the float64 range there; ` +
  "the plots leave those points out.";

// Shows the overflow marker with text(step) when `step` is set; hides and empties it otherwise.
export function showOverflow(marker, step, text = overflowText) {
  marker.hidden = step === null || step === undefined;
  marker.textContent = marker.hidden ? "" : text(step);
}

// Fills `list` with one <li class="check pass|fail|na" data-check=id> per check. With `spoken`
// ({status: words}) the symbol is role="img" named by those words and the <li> gets data-status.
export function showChecks(list, checks, spoken = null) {
  list.replaceChildren(...checks.map((item) => {
    const li = document.createElement("li");
    li.className = `check ${item.status === "n/a" ? "na" : item.status}`;
    li.dataset.check = item.id;
    if (spoken) li.dataset.status = item.status;
    const symbol = Object.assign(document.createElement("span"), {
      className: "symbol", textContent: CHECK_SYMBOLS[item.status] ?? "?" });
    if (spoken) symbol.setAttribute("role", "img");
    symbol.setAttribute("aria-label", spoken ? spoken[item.status] ?? item.status
      : item.status === "n/a" ? "not applicable" : item.status);
    const label = Object.assign(document.createElement("strong"), { textContent: item.label });
    const detail = Object.assign(document.createElement("span"), {
      className: "detail", textContent: item.detail });
    li.append(symbol, " ", label, " ", detail);
    return li;
  }));
}

// A summary number: `digits` significant digits, or 2.5e-7 style when tiny or huge; `missing`
// for null (a non-finite value sent as null).
export function formatNumber(value, digits = 3, missing = "overflow") {
  if (value === null || value === undefined) return missing;
  if (value === 0) return "0";
  const size = Math.abs(value);
  return size >= 1e4 || size < 1e-3 ? value.toExponential(2)
    : Number(value.toPrecision(digits)).toString();
}

// Adds disabled CSV and JSON buttons to every .figure-downloads holder; a click calls
// onClick(name, format), name being the holder's data-figure and format "CSV" or "JSON".
// Holders that already have their buttons are left alone, so a page that adds plots later
// (the training lab's heatmaps) calls it again.
export function addDownloadButtons(onClick) {
  for (const holder of document.querySelectorAll(".figure-downloads:not([data-wired])")) {
    holder.dataset.wired = "";
    const name = holder.dataset.figure;
    for (const format of ["CSV", "JSON"]) {
      const button = Object.assign(document.createElement("button"), {
        type: "button", textContent: format, disabled: true });
      button.setAttribute("aria-label",
        `Download the data of the ${name.replace("_", " ")} plot as ${format}`);
      button.addEventListener("click", () => onClick(name, format));
      holder.append(button);
    }
  }
}

// JSON of one figure of a result for download: {page, figure, config, data}; the config holds
// every setting the figure was made with, the random seed included.
export function figurePayload(result, name, pageName = pageSlug()) {
  return JSON.stringify({ page: pageName, figure: name, saved: new Date().toISOString(),
    config: result.config, data: result.figures[name].data }, null, 1);
}

// The page's name for file names: "explore" for /explore, "home" for /.
export function pageSlug() {
  return window.location.pathname.replace(/^\/+|\/+$/g, "").replace(/\//g, "-") || "home";
}

// The settings that tell one download from another, as a file-name part: "rnn-T100-scale0.9-seed0".
const NAME_PARTS = [["cell", ""], ["cells", ""], ["nonlinearity", ""], ["task", ""],
  ["lag", "lag"], ["seq_len", "T"], ["num_layers", "L"], ["weight_scale", "scale"],
  ["forget_bias", "bf"], ["truncation", "k"], ["depth", "n"], ["x0", "x0_"], ["seed", "seed"]];

export function settingsSlug(config) {
  const parts = [];
  for (const [key, prefix] of NAME_PARTS) {
    const value = config?.[key];
    if (value === undefined || value === null || value === "") continue;
    if (key === "nonlinearity" && config.cell && config.cell !== "rnn") continue;
    if (key === "forget_bias" && config.cell && config.cell !== "lstm") continue;
    if (key === "truncation" && !value) continue; // 0 = full BPTT, the usual case
    parts.push(`${prefix}${String(value).replace(/,/g, "+")}`);
  }
  return parts.join("-").replace(/[^A-Za-z0-9_.+-]/g, "");
}

// The file name of a download: page, plot and key settings ("explore-grad_norms-rnn-T50-….csv").
export function downloadName(name, config, extension, pageName = pageSlug()) {
  const settings = settingsSlug(config);
  return `${pageName}-${name}${settings ? `-${settings}` : ""}.${extension}`;
}

// CSV that describes itself: `# key=value` lines (page, plot, time, every setting with the seed)
// and then the data, so a file found later says how it was made.
export function csvWithSettings(csv, config, name, pageName = pageSlug()) {
  const lines = [`# page=${pageName}`, `# figure=${name}`, `# saved=${new Date().toISOString()}`];
  for (const [key, value] of Object.entries(config ?? {})) {
    lines.push(`# ${key}=${typeof value === "object" ? JSON.stringify(value) : value}`);
  }
  return `${lines.join("\n")}\n${csv}`;
}

// Saves figure `name` of `result` ({config, figures}) as CSV or JSON with a describing name.
// `csv` (optional) is the CSV body when the generic one would lose the plot's values.
export function saveFigure(result, name, format, csv = null) {
  const figure = result?.figures?.[name];
  if (!figure) return;
  const config = result.config ?? {};
  if (format === "CSV") {
    download(downloadName(name, config, "csv"),
      csvWithSettings(csv ?? figureToCsv(figure), config, name), "text/csv");
  } else {
    download(downloadName(name, config, "json"), figurePayload(result, name), "application/json");
  }
}

// Calls `reapply` whenever projector mode (body.present) is switched on or off.
export function onPresentToggle(reapply) {
  let presenting = document.body.classList.contains("present");
  new MutationObserver(() => {
    const now = document.body.classList.contains("present");
    if (now === presenting) return;
    presenting = now;
    reapply();
  }).observe(document.body, { attributes: true, attributeFilter: ["class"] });
}

// Text placed inside <script> must not close it early.
const scriptSafe = (text) => text.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "<\\!--");
const escapeHtml = (text) => String(text).replace(/[&<>]/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]);

// One self-contained HTML file of the current view, which opens offline: plotly.js inlined, the
// figures, the settings, and the caption and checks when the result has them.
export function offlineHtml(result, plotlySource) {
  const checks = (result.checks ?? []).map((c) =>
    `<li>${CHECK_SYMBOLS[c.status] ?? "?"} ${escapeHtml(c.label)}: ${escapeHtml(c.detail)}</li>`).join("");
  const divs = Object.keys(result.figures).map((name) => `<div id="fig-${name}"></div>`)
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gradient Flow Lab: saved view</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}
pre{background:#f5f6f8;padding:.5rem;overflow:auto}</style>
<script>${scriptSafe(plotlySource)}</script></head><body>
<h1>Gradient Flow Lab: saved view</h1>
<p>Saved ${escapeHtml(new Date().toISOString())} from ${escapeHtml(window.location.href)}</p>
${result.caption ? `<p>${escapeHtml(result.caption)}</p>` : ""}
<h2>Settings</h2><pre>${escapeHtml(JSON.stringify(result.config ?? result.query, null, 1))}</pre>
${checks ? `<h2>Checks</h2><ul>${checks}</ul>` : ""}
${divs}
<script>
const FIGURES = ${scriptSafe(JSON.stringify(result.figures))};
for (const [name, figure] of Object.entries(FIGURES)) {
  const element = document.getElementById("fig-" + name);
  if (element) Plotly.newPlot(element, figure.data, figure.layout,
    {displaylogo: false, showSendToCloud: false, modeBarButtonsToRemove: ["sendChartToCloud"]});
}
</script></body></html>
`;
}

// The figures as drawn now, {name: {data, layout}} for every #fig-<name> that holds a plot:
// for pages whose plots grow in the browser (the training lab extends its curves step by step).
export function drawnFigures(root = document) {
  const figures = {};
  for (const element of root.querySelectorAll("[id^='fig-']")) {
    if (element.data) figures[element.id.slice(4)] = { data: element.data, layout: element.layout };
  }
  return figures;
}

// Wires a "Download this view" button: it saves offlineHtml of the page's latest result, named
// like the figure downloads ("explore-view-rnn-T50-…-seed0.html"); `filename` (a string or a
// function) overrides that.
export function wireViewDownload(button, latestResult, filename = null) {
  if (!button) return;
  button.addEventListener("click", async () => {
    const result = latestResult();
    if (!result) return;
    button.disabled = true;
    try {
      const plotly = await (await fetch("/vendor/plotly.min.js")).text();
      const name = typeof filename === "function" ? filename()
        : filename ?? downloadName("view", result.config, "html");
      download(name, offlineHtml(result, plotly), "text/html");
    } finally {
      button.disabled = false;
    }
  });
}
