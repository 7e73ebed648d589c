// /cells: gates, the carried state and the carry path of an LSTM or GRU. Every control writes
// the URL and reruns the simulation (debounced, latest wins); the server's figures are applied
// with Plotly.react.

import { throttle } from "./api.js";
import { applyFigures } from "./plots.js";
import { fillControls, loadState, onControlInput, pageFields, readState,
  writeState } from "./state.js";
import { addDownloadButtons, enableButtons, formatNumber, markRendered,
  onPresentToggle, pageElements, resultArrived, setStatus, showChecks, showError, showOverflow,
  showProgress, saveFigure, startRun, streamSimulation, wireViewDownload } from "./ui.js";

// Every simulation field; the page's own default cell (the LSTM) comes with the specs.
export const TABLE = pageFields();

const $ = (id) => document.getElementById(id);
const page = pageElements();
const { controls, statusLine, progress } = page;
const noteBox = $("note-box");
const checksList = $("checks");
const summaryList = $("cell-summary");
const presetButtons = [...document.querySelectorAll("[data-preset]")];

const GATED = ["lstm", "gru"];
let state = loadState(TABLE);
let pageNote = "";
if (!GATED.includes(state.cell)) {
  pageNote = `cell=${state.cell} has no gates, so this page shows the LSTM instead`;
  state.cell = "lstm";
  writeState(TABLE, state);
}
let lastResult = null;
let run = 0; // simulations started; tests wait on data-run / data-rendered

// ---- controls -----------------------------------------------------------------------------

function updateCellDependent() {
  // Disabled, not hidden: the layout stays put when the cell changes.
  $("ctl-forget_bias").disabled = state.cell !== "lstm";
  for (const element of document.querySelectorAll("[data-for-cell]")) {
    element.hidden = element.dataset.forCell !== state.cell;
  }
  for (const button of presetButtons) {
    const wanted = readState(TABLE, `?${button.dataset.preset}`);
    const same = Object.keys(TABLE).every((name) => wanted[name] === state[name]);
    button.setAttribute("aria-pressed", String(same));
  }
}

const scheduleRun = throttle(simulate, 60);

onControlInput(controls, TABLE, (name, value) => {
  state[name] = value;
  pageNote = "";
  writeState(TABLE, state);
  updateCellDependent();
  scheduleRun();
});

for (const button of presetButtons) {
  button.addEventListener("click", () => {
    state = readState(TABLE, `?${button.dataset.preset}`); // unspecified fields: defaults
    pageNote = "";
    fillControls(controls, state);
    writeState(TABLE, state);
    updateCellDependent();
    simulate();
  });
}

// ---- one simulation -----------------------------------------------------------------------

function simulate() {
  run += 1;
  startRun(page, run, "computing…");
  streamSimulation(TABLE, state, "cells", {
    progress(data) { showProgress(page, data, 0.3); },
    backward(data) {
      const reached = Math.min(...data.steps);
      progress.value = Math.max(progress.value, 0.3 + 0.6 * (1 - reached / data.seq_len));
      setStatus(statusLine, `backward sweep: reached t = ${reached} of ${data.seq_len - 1}…`, "computing");
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
  showChecks(checksList, result.checks, SPOKEN);
  enableButtons(".figure-downloads button");
  markRendered(page, rendered);
}

const fmt = (value) => formatNumber(value, 4, "overflow");

// Gate values near 1 are the whole story (0.99995 is not 1), so they keep their digits.
const fmtGate = (value) => (value > 0.999 && value < 1 ? value.toFixed(6) : fmt(value));

// A number given by its log10, shown without underflow: 0.991 or 5.56e-103.
function fromLog10(log10) {
  if (log10 === null || log10 === undefined) return "0";
  if (log10 > -3) return fmt(10 ** log10);
  const exponent = Math.floor(log10);
  return `${(10 ** (log10 - exponent)).toFixed(2)}e${exponent}`;
}

function ratio(first, last) {
  if (first === null || last === null || last === 0) return "–";
  return fmt(first / last);
}

function showSummary(summary) {
  const lstm = summary.cell === "lstm";
  const gate = summary.carry_gate;
  const state = lstm ? "c" : "h";
  const items = [
    ["cell (layer shown)", `${summary.cell} (layer ${summary.layer_shown})`],
    [`mean ${gate} (${lstm ? "forget" : "carry"} gate)`, fmtGate(summary.mean_carry_gate)],
    ["carry gain t = 0 → T−1", fromLog10(summary.carry_gain_total_log10)],
    [lstm ? "σ(b_f)^(T−1)" : "σ(0)^(T−1)", summary.carry_gain_reference === null
      ? "– (random biases)" : fmt(summary.carry_gain_reference)],
    [`‖∂L/∂${state}₀‖ ÷ ‖∂L/∂${state}_T−1‖`,
      ratio(summary.grad_state_first, summary.grad_state_last)],
    ["same, carry path only", ratio(summary.carry_path_first, summary.carry_path_last)],
    ["loss", fmt(summary.loss)],
  ];
  summaryList.replaceChildren(...items.map(([term, value]) => {
    const wrapper = document.createElement("div");
    const dt = Object.assign(document.createElement("dt"), { textContent: term });
    const dd = Object.assign(document.createElement("dd"), { textContent: value });
    wrapper.append(dt, dd);
    return wrapper;
  }));
  setStatus(statusLine, `Done: ${summary.cell}, mean ${gate} = ${fmtGate(summary.mean_carry_gate)}, ` +
    `carry gain over the sequence ${fromLog10(summary.carry_gain_total_log10)}`, "done");
  const note = summary.note || pageNote;
  noteBox.hidden = !note;
  noteBox.textContent = note ? `Note: ${note}.` : "";
  showOverflow(page.overflowMarker, summary.overflow_step);
}

// How a screen reader names each check status.
const SPOKEN = { pass: "holds", fail: "fails", "n/a": "not applicable" };

// ---- downloads ----------------------------------------------------------------------------

// The result last shown (tests read its figures).
export const latestResult = () => lastResult;

addDownloadButtons((name, format) => saveFigure(lastResult, name, format));

// ---- projector mode -----------------------------------------------------------------------

// plots.applyFigure reads body.present when it applies a figure, so re-apply on a toggle.
onPresentToggle(() => { if (lastResult) applyFigures(lastResult.figures); });

// ---- start --------------------------------------------------------------------------------

fillControls(controls, state);
updateCellDependent();
simulate();

wireViewDownload(document.getElementById("download-view"), () => lastResult);
