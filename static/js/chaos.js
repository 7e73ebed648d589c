// /chaos: every control writes the URL and reruns the view (throttled, latest wins). The phase
// diagram is drawn row by row as the stream's `partial` events arrive; the result's figures then
// replace every plot.

import { throttle } from "./api.js";
import { applyFigure, applyFigures, download, figureToCsv } from "./plots.js";
import { fillControls, loadState, onControlInput, pageFields, writeState } from "./state.js";
import { addDownloadButtons, enableButtons, formatNumber, markRendered, onPresentToggle,
  pageElements, resultArrived, setStatus, showChecks, showError, showOverflow, showProgress,
  startRun, streamSimulation, wireViewDownload } from "./ui.js";

export const TABLE = pageFields();

const $ = (id) => document.getElementById(id);
const page = pageElements();
const { controls, statusLine, progress } = page;
const checksList = $("checks");
const verdict = $("verdict");
const forgetBlock = $("block-phase_forget_bias");

let state = loadState(TABLE);
let lastResult = null;
let run = 0;

function updateEnabled() {
  $("ctl-nonlinearity").disabled = state.cell !== "rnn";
  $("ctl-forget_bias").disabled = state.cell !== "lstm";
}

const scheduleRun = throttle(simulate, 60);

onControlInput(controls, TABLE, (name, value) => {
  state[name] = value;
  writeState(TABLE, state);
  updateEnabled();
  scheduleRun();
});

// ---- one run ------------------------------------------------------------------------------

function simulate() {
  run += 1;
  startRun(page, run, "computing…");
  const thisRun = run;
  streamSimulation(TABLE, state, "chaos", {
    progress(data) { showProgress(page, data, 0.95); },
    partial(data) { if (data.name === "phase") drawPhaseRow(data.data, thisRun); },
    result(data) { showResult(data); },
    error(message) { showError(page, message); },
  });
}

// A row of the phase diagram is done: the server sent the whole panel as drawn so far.
function drawPhaseRow(row, thisRun) {
  const element = $(`fig-phase_${row.panel}`);
  if (!element) return;
  if (row.panel === "forget_bias") forgetBlock.hidden = false;
  // Which rows each run has drawn, in order (the tests read it to see the diagram fill in).
  element.gflRows = element.gflRun === thisRun ? element.gflRows : [];
  element.gflRun = thisRun;
  element.gflRows.push(row.row + 1);
  applyFigure(element, row.figure);
}

function showResult(result) {
  lastResult = result;
  resultArrived(page);
  forgetBlock.hidden = !result.figures.phase_forget_bias;
  // The verdict first: the main plot is fitted to the room left under it.
  showSummary(result.summary);
  const rendered = applyFigures(result.figures);
  showChecks(checksList, result.checks);
  enableButtons(".figure-downloads button, #download-view");
  markRendered(page, rendered);
}

const fmt = (value) => formatNumber(value, 3, "not a number");

// λ₁ as the page writes it: "−∞" when the server's flag says so (JSON has no −∞).
export function largestText(summary) {
  if (summary.lyapunov_minus_infinity) return "−∞";
  return fmt(summary.lyapunov_largest).replace("-", "−");
}

function showSummary(summary) {
  const parts = [`λ₁ = ${largestText(summary)} nats/step`];
  if (summary.lyapunov_factor_per_step !== null) {
    parts.push(`×${fmt(summary.lyapunov_factor_per_step)} per step`);
  }
  parts.push(`top ${summary.lyapunov_k} of ${summary.state_size} exponents after a warm-up of ` +
             `${summary.warmup} steps`);
  parts.push(`phase diagram: runs of ${summary.phase_steps} steps`);
  setStatus(statusLine, `Done: ${parts.join(" · ")}`, "done");
  verdict.textContent = summary.lyapunov_prediction;
  verdict.dataset.sign = summary.lyapunov_minus_infinity ? "negative"
    : summary.lyapunov_largest === null ? "unknown"
      : summary.lyapunov_largest < 0 ? "negative" : "positive";
  showOverflow(page.overflowMarker, summary.overflow_step);
}

// ---- downloads ----------------------------------------------------------------------------

addDownloadButtons((name, format) => {
  const figure = lastResult?.figures[name];
  if (!figure) return;
  if (format === "CSV") download(`${name}.csv`, figureToCsv(figure), "text/csv");
  else download(`${name}.json`, JSON.stringify(figure.data), "application/json");
});

wireViewDownload($("download-view"), () => lastResult, "gradient-flow-chaos.html");

// ---- projector mode -----------------------------------------------------------------------

onPresentToggle(() => { if (lastResult) applyFigures(lastResult.figures); });

// ---- start --------------------------------------------------------------------------------

fillControls(controls, state);
updateEnabled();
simulate();
