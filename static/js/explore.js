// /explore: every control writes the URL and reruns the simulation (debounced, latest wins);
// the backward sweep is drawn as it arrives, then the server's figures replace it.

import { throttle } from "./api.js";
import { PLOT_CONFIG, applyFigure, applyFigures, extend } from "./plots.js";
import { fillControls, loadState, onControlInput, pageFields, writeState } from "./state.js";
import { addDownloadButtons, enableButtons, markRendered, onPresentToggle,
  pageElements, resultArrived, setStatus, showChecks, showError, showOverflow, showProgress,
  saveFigure, startRun, streamSimulation, wireViewDownload } from "./ui.js";

// The simulation's fields, plus the layer the hidden-state heatmap shows: a view setting, kept
// in the URL but never sent (its spec says api: false; the server sends every layer).
export const TABLE = pageFields();
const SIMULATION_NAMES = Object.keys(TABLE).filter((name) => TABLE[name].api !== false);
const SWEEP_AFTER_MS = 250; // runs slower than this draw the backward sweep as it arrives
const FIGURES = ["grad_norms", "layer_heatmap", "hidden_heatmap", "eigenvalues", "contributions"];

const $ = (id) => document.getElementById(id);
const page = pageElements();
const { controls, statusLine, progress } = page;
const checksList = $("checks");
const presetSelect = $("preset-select");
const layerSelect = $("ctl-hidden_layer");

let state = loadState(TABLE);
let lastResult = null;
let currentSweep = null; // the backward sweep being drawn, if any
let run = 0; // counts simulations started, for tests and the benchmark

// ---- controls -----------------------------------------------------------------------------

// Options that mean nothing for the chosen cell are disabled, not hidden, so the layout is stable.
function updateEnabled() {
  $("ctl-nonlinearity").disabled = state.cell !== "rnn";
  $("ctl-forget_bias").disabled = state.cell !== "lstm";
  // The hidden-state caption speaks of saturation only where the activation saturates.
  const relu = state.cell === "rnn" && state.nonlinearity === "relu";
  for (const span of document.querySelectorAll("[data-for-nonlinearity]")) {
    span.hidden = (span.dataset.forNonlinearity === "relu") !== relu;
  }
}

function matchPreset() {
  if (!presetSelect) return;
  presetSelect.value = "";
  for (const option of presetSelect.options) {
    if (!option.dataset.query) continue;
    const wanted = { ...defaults(), ...JSON.parse(option.dataset.query) };
    if (SIMULATION_NAMES.every((name) => wanted[name] === state[name])) {
      presetSelect.value = option.value;
    }
  }
}

function defaults() {
  return Object.fromEntries(Object.entries(TABLE).map(([name, spec]) => [name, spec.default]));
}

const scheduleRun = throttle(simulate, 60);

onControlInput(controls, TABLE, (name, value) => {
  state[name] = value;
  writeState(TABLE, state);
  updateEnabled();
  matchPreset();
  scheduleRun();
});

// The hidden-state layer: the figure already holds every layer, so no new run.
layerSelect.addEventListener("change", () => {
  state.hidden_layer = Number(layerSelect.value);
  writeState(TABLE, state);
  if (lastResult) applyFigure($("fig-hidden_heatmap"), shownFigures(lastResult).hidden_heatmap);
});

// The result's figures as this page shows them: the hidden-state heatmap of the chosen layer
// (the last one if the network has fewer layers than the URL asked for).
function shownFigures(result) {
  const hidden = result.figures.hidden_heatmap;
  if (!hidden) return result.figures;
  const layer = Math.min(state.hidden_layer, hidden.data.length - 1);
  const title = hidden.layout.meta?.titles?.[layer];
  return { ...result.figures, hidden_heatmap: {
    data: hidden.data.map((trace, k) => ({ ...trace, visible: k === layer })),
    layout: title ? { ...hidden.layout, title: { ...hidden.layout.title, text: title } }
      : hidden.layout,
  } };
}

function fillLayerOptions(layers) {
  if (layerSelect.options.length !== layers) {
    layerSelect.replaceChildren(...Array.from({ length: layers }, (_, k) =>
      new Option(`layer ${k}`, String(k))));
  }
  layerSelect.value = String(Math.min(state.hidden_layer, layers - 1));
}

presetSelect?.addEventListener("change", () => {
  const option = presetSelect.selectedOptions[0];
  if (!option?.dataset.query) return;
  state = { ...defaults(), ...JSON.parse(option.dataset.query) };
  fillControls(controls, state);
  writeState(TABLE, state);
  updateEnabled();
  simulate();
});

// ---- one simulation -----------------------------------------------------------------------

function simulate() {
  run += 1;
  startRun(page, run, "computing…");
  if (currentSweep) { clearTimeout(currentSweep.frame); currentSweep.frame = -1; }
  const sweep = { layers: 0, pending: [], frame: 0, drawn: false, seen: 0,
                  started: performance.now() };
  currentSweep = sweep;
  streamSimulation(TABLE, state, "explore", {
    meta(data) { sweep.layers = data.num_layers; },
    progress(data) { showProgress(page, data); },
    backward(data) {
      sweep.seen += data.steps.length;
      progress.value = 0.5 + 0.4 * (sweep.seen / data.seq_len);
      sweep.pending.push(data);
      // Only a slow run shows its sweep: a quick one goes straight to the final figures, so
      // nothing is drawn twice and the plot does not flicker.
      if (!sweep.frame) {
        const wait = Math.max(0, sweep.started + SWEEP_AFTER_MS - performance.now());
        sweep.frame = setTimeout(() => requestAnimationFrame(() => drawSweep(sweep)), wait);
      }
    },
    result(data) {
      clearTimeout(sweep.frame);
      sweep.frame = -1;
      showResult(data);
    },
    error(message) {
      clearTimeout(sweep.frame);
      sweep.frame = -1;
      showError(page, message);
    },
  });
}

// The backward sweep as it arrives: one trace per layer, points appended in time order (t from
// T-1 down to 0). Zero norms (beyond a truncation boundary) are left out of the log plot.
function drawSweep(sweep) {
  if (sweep.frame === -1) return;
  sweep.frame = 0;
  const element = $("fig-grad_norms");
  const xs = Array.from({ length: sweep.layers }, () => []);
  const ys = Array.from({ length: sweep.layers }, () => []);
  for (const chunk of sweep.pending.splice(0)) {
    chunk.steps.forEach((step, i) => chunk.norms[i].forEach((norm, layer) => {
      if (norm > 0) { xs[layer].push(step); ys[layer].push(norm); }
    }));
  }
  const indices = xs.map((_, layer) => layer);
  if (!sweep.drawn) {
    sweep.drawn = true;
    const layout = { ...(lastResult?.figures.grad_norms.layout ?? {}) };
    layout.title = { text: "Backward sweep arriving…", x: 0.01, xanchor: "left" };
    layout.yaxis = { ...(layout.yaxis ?? {}), type: "log", exponentformat: "power" };
    layout.xaxis = { ...(layout.xaxis ?? {}), range: [0, Math.max(1, state.seq_len - 1)],
                     autorange: false };
    const data = indices.map((layer) => ({
      x: xs[layer], y: ys[layer], mode: "lines+markers", name: `layer ${layer}`,
      marker: { size: 4 },
    }));
    window.Plotly.react(element, data, layout, PLOT_CONFIG);
  } else {
    extend(element, { x: xs, y: ys }, indices);
  }
}

function showResult(result) {
  lastResult = result;
  resultArrived(page);
  fillLayerOptions(result.config.num_layers);
  // The status first: the main plot is fitted to the room left under it.
  showSummary(result.summary);
  const rendered = applyFigures(shownFigures(result));
  showChecks(checksList, result.checks);
  enableButtons(".figure-downloads button, #download-view");
  const shown = run;
  markRendered(page, rendered).then(() => {
    document.dispatchEvent(new CustomEvent("explore:rendered", { detail: { run: shown } }));
  });
}

// The status line and the bound's caption are sentences the server built from the numbers
// (app/views/explore.py), every norm named by what it is a norm of.
function showSummary(summary) {
  setStatus(statusLine, `Done: ${summary.status.join(" · ")}`, "done");
  const note = $("bound-note");
  if (note) note.textContent = summary.bound_sentence;
  showOverflow(page.overflowMarker, summary.overflow_step);
}

// ---- downloads ----------------------------------------------------------------------------

addDownloadButtons((name, format) => {
  if (lastResult) saveFigure({ ...lastResult, figures: shownFigures(lastResult) }, name, format);
});

wireViewDownload($("download-view"), () => lastResult && { ...lastResult,
  figures: shownFigures(lastResult) });

// ---- projector mode -----------------------------------------------------------------------

// plots.applyFigure reads body.present when it applies a figure, so re-apply on a toggle.
onPresentToggle(() => { if (lastResult) applyFigures(shownFigures(lastResult)); });

// ---- start --------------------------------------------------------------------------------

fillControls(controls, state);
updateEnabled();
matchPreset();
simulate();
