// The activations page: two sliders (depth n, start x0) kept in the URL, a debounced fetch of
// GET /api/activations where the latest request wins, and one Plotly.react per figure.

import { throttle } from "./api.js";
import { applyFigure } from "./plots.js";
import { fillControls, onControlInput, pageFields, readControl, readState, toQuery,
  writeState } from "./state.js";
import { formatNumber, saveFigure, wireViewDownload } from "./ui.js";

// One table drives the URL, the controls and the API query: the specs of ActivationsQuery.
const TABLE = pageFields();
const FIGURE_NAMES = ["curves", "iterates", "chain", "spread"];

const root = document.getElementById("activations");
const controls = document.getElementById("act-controls");
const statusLine = document.getElementById("act-status");
const errorBox = document.getElementById("act-error");

let state = readState(TABLE);
let latestRequest = 0; // incremented per request; a response for an older id is ignored
let figures = {};

function readControls() {
  const next = {};
  for (const element of controls.querySelectorAll("[data-param]")) {
    next[element.dataset.param] = readControl(TABLE, element);
  }
  return next;
}

// Sliders clamp and snap what the URL asked for (a depth beyond the maximum becomes the maximum): keep the state equal to
// what the controls show, so the API is never asked for a value the page does not display.
fillControls(controls, state);
state = readControls();
writeState(TABLE, state);

async function refresh() {
  const requestId = ++latestRequest;
  root.setAttribute("aria-busy", "true");
  statusLine.textContent = "Computing…";
  try {
    const response = await fetch(`/api/activations?${toQuery(TABLE, state)}`);
    const body = await response.json();
    if (requestId !== latestRequest) return; // a newer request is on its way
    if (!response.ok) {
      const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : "";
      showError(detail || `request failed (HTTP ${response.status})`);
      return;
    }
    figures = body.figures;
    await applyAll();
    if (requestId !== latestRequest) return;
    hideError();
    showSummary(body.summary, body.nonfinite);
    root.dataset.renderedDepth = String(body.summary.depth);
    root.dataset.renderedX0 = String(body.summary.x0);
    document.getElementById("download-view").disabled = false;
  } catch (error) {
    if (requestId === latestRequest) showError(`the server is not answering (${error.message})`);
  } finally {
    if (requestId === latestRequest) root.removeAttribute("aria-busy");
  }
}

function applyAll() {
  return Promise.all(FIGURE_NAMES.map((name) => {
    const element = document.getElementById(`fig-${name}`);
    const figure = figures[name];
    // Plotly's responsive resize (window resize, projector mode, a full-page screenshot) sizes
    // the plot to its container: give the container the figure's height, or it collapses.
    if (element && figure?.layout?.height) element.style.height = `${figure.layout.height}px`;
    return applyFigure(element, figure);
  }));
}

const scheduleRefresh = throttle(refresh, 80);

onControlInput(controls, TABLE, (name, value) => {
  state = { ...state, [name]: value };
  writeState(TABLE, state);
  scheduleRefresh();
});

// Projector mode changes fonts and line widths in plots.applyFigure: re-apply the figures.
// (present.js registers its click handler first, so the body class is already toggled here.)
document.getElementById("present-toggle")?.addEventListener("click", () => {
  if (Object.keys(figures).length) applyAll();
});

root.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-download]");
  if (!button) return;
  const name = button.dataset.figure;
  const figure = figures[name];
  if (!figure) return;
  saveFigure({ config: { ...state }, figures }, name,
    button.dataset.download === "csv" ? "CSV" : "JSON");
});

wireViewDownload(document.getElementById("download-view"), () => Object.keys(figures).length && {
  config: { ...state }, figures, caption: statusLine.textContent,
});

const format = (value) => formatNumber(value, 4, "overflow");

function showSummary(summary, nonfinite) {
  document.getElementById("act-summary-caption").textContent =
    `After n = ${summary.depth} steps from x₀ = ${summary.x0}`;
  const maxima = { sigmoid: summary.sigmoid_grad_max, tanh: summary.tanh_grad_max };
  for (const row of document.querySelectorAll("#act-summary tbody tr")) {
    const name = row.dataset.function;
    const chain = summary.chains[name];
    const cells = {
      grad_max: maxima[name], value: chain.value,
      grad_product: chain.grad_product, best_case: chain.best_case,
    };
    for (const [field, value] of Object.entries(cells)) {
      row.querySelector(`[data-field="${field}"]`).textContent = format(value);
    }
  }
  const overflowed = Object.keys(nonfinite || {});
  // The sentence is built on the server from the numbers (app/views/activations.py).
  statusLine.textContent = overflowed.length
    ? `Some numbers overflowed and are shown as gaps: ${overflowed.join(", ")}.`
    : summary.status;
}

function showError(message) {
  errorBox.textContent = `Could not update the plots: ${message}`;
  errorBox.hidden = false;
  statusLine.textContent = "";
}

function hideError() {
  errorBox.hidden = true;
  errorBox.textContent = "";
}

refresh();
