// /compare: rnn, lstm and gru on the same sequence. Every control writes the URL and reruns the
// three simulations (debounced, latest wins); the server's figures are applied with Plotly.react.

import { throttle } from "./api.js";
import { applyFigures } from "./plots.js";
import { fillControls, loadState, onControlInput, pageFields, writeState } from "./state.js";
import { addDownloadButtons, enableButtons, onPresentToggle, formatNumber, markRendered,
  pageElements, resultArrived, setStatus, showChecks, showError, showOverflow, showProgress,
  saveFigure, startRun, streamSimulation, wireViewDownload } from "./ui.js";

export const TABLE = pageFields(); // the fields this page sets; the others take their defaults
const CELLS = ["rnn", "lstm", "gru"];

const $ = (id) => document.getElementById(id);
const page = pageElements();
const { controls, statusLine, progress } = page;

let state = loadState(TABLE);
let lastResult = null;
let run = 0;

fillControls(controls, state);
const rerun = throttle(simulate, 120);
onControlInput(controls, TABLE, (name, value) => {
  state = { ...state, [name]: value };
  writeState(TABLE, state);
  rerun();
});

function simulate() {
  run += 1;
  startRun(page, run, "Running rnn, lstm and gru…");
  streamSimulation(TABLE, state, "compare", {
    progress(data) { showProgress(page, data); },
    backward(data) {
      const earliest = Math.min(...data.steps);
      progress.value = 0.5 + 0.45 * (1 - earliest / Math.max(1, data.seq_len));
      setStatus(statusLine, `rnn backward sweep: reached t = ${earliest}`, "computing");
    },
    result: showResult,
    error: (message) => showError(page, message),
  });
}

function showResult(result) {
  lastResult = result;
  resultArrived(page);
  const rendered = applyFigures(result.figures);
  showSummary(result.summary);
  showChecks($("checks"), result.checks);
  enableButtons(".figure-downloads button");
  markRendered(page, rendered);
}

const fmt = (value) => formatNumber(value, 3, "not finite");

function showSummary(summary) {
  const cells = summary.cells;
  const best = CELLS.filter((c) => cells[c].retention !== null)
    .sort((a, b) => cells[b].retention - cells[a].retention)[0];
  setStatus(statusLine, `Done: T = ${summary.seq_len}` +
    (best ? ` · most gradient left at t = 0: ${best}` : ""), "done");
  $("cell-table").tBodies[0].replaceChildren(...CELLS.map((cell) => {
    const s = cells[cell];
    const row = document.createElement("tr");
    row.dataset.cell = cell;
    const values = [cell, fmt(s.loss), fmt(s.grad_norm_last), fmt(s.grad_norm_first),
      fmt(s.retention), s.overflow_step === null ? "none" : `t = ${s.overflow_step}`];
    row.append(...values.map((text) => Object.assign(document.createElement("td"), { textContent: text })));
    return row;
  }));
  showOverflow(page.overflowMarker, summary.overflow_step, (step) =>
    `⚠ Overflow (${summary.overflow_cells.join(", ")}) from t = ${step}: numbers went beyond ` +
    "the float64 range there; the plots leave those points out.");
}

addDownloadButtons((name, format) => saveFigure(lastResult, name, format));

// plots.applyFigure reads body.present when it applies a figure, so re-apply on a toggle.
onPresentToggle(() => { if (lastResult) applyFigures(lastResult.figures); });

simulate();

wireViewDownload(document.getElementById("download-view"), () => lastResult);
