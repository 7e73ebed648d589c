// /cells: gates, the carried state and the carry path of an LSTM or GRU. Every control writes
// the URL and reruns the simulation (debounced, latest wins); the server's figures are applied
// with Plotly.react.

import { throttle, openStream } from "./api.js";
import { applyFigures, download, figureToCsv } from "./plots.js";
import { fillControls, readControl, readState, showValue, toQuery, writeState } from "./state.js";

// The same names and defaults as app.schemas.SimulationConfig, except the page's own default
// cell: this page is about gated cells, so it opens on the LSTM.
export const TABLE = {
  cell: { type: "str", default: "lstm" },
  nonlinearity: { type: "str", default: "tanh" },
  seq_len: { type: "int", default: 50 },
  num_layers: { type: "int", default: 1 },
  hidden_size: { type: "int", default: 32 },
  input_size: { type: "int", default: 4 },
  batch_size: { type: "int", default: 1 },
  weight_scale: { type: "float", default: 1.0 },
  input_scale: { type: "float", default: 1.0 },
  init: { type: "str", default: "orthogonal" },
  forget_bias: { type: "float", default: 1.0 },
  loss_at: { type: "str", default: "last" },
  truncation: { type: "int", default: 0 },
  clip: { type: "float", default: 0.0 },
  seed: { type: "int", default: 0 },
};

const $ = (id) => document.getElementById(id);
const controls = $("controls");
const statusLine = $("status");
const progress = $("progress");
const noteBox = $("note-box");
const overflowMarker = $("overflow-marker");
const errorBox = $("error-box");
const checksList = $("checks");
const summaryList = $("cell-summary");
const presetButtons = [...document.querySelectorAll("[data-preset]")];

const GATED = ["lstm", "gru"];
let state = readState(TABLE);
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

controls.addEventListener("input", (event) => {
  const element = event.target;
  if (!element.dataset?.param) return;
  state[element.dataset.param] = readControl(TABLE, element);
  pageNote = "";
  showValue(element);
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

function setStatus(text, kind) {
  statusLine.textContent = text;
  statusLine.dataset.state = kind;
}

function simulate() {
  run += 1;
  statusLine.dataset.run = String(run);
  setStatus("computing…", "computing");
  progress.value = 0;
  const query = toQuery(TABLE, state);
  query.set("view", "cells");
  openStream("/api/simulate/stream", query.toString(), {
    progress(data) { progress.value = Math.max(progress.value, data.fraction); },
    backward(data) {
      const reached = Math.min(...data.steps);
      progress.value = Math.max(progress.value, 0.3 + 0.6 * (1 - reached / data.seq_len));
      setStatus(`backward sweep: reached t = ${reached} of ${data.seq_len - 1}…`, "computing");
    },
    result: showResult,
    error: showError,
  });
}

function showResult(result) {
  lastResult = result;
  errorBox.hidden = true;
  progress.value = 1;
  const rendered = applyFigures(result.figures);
  showSummary(result.summary);
  showChecks(result.checks);
  for (const button of document.querySelectorAll(".figure-downloads button")) {
    button.disabled = false;
  }
  const mine = statusLine.dataset.run;
  rendered.then(() => { statusLine.dataset.rendered = mine; });
}

const fmt = (value) => (value === null || value === undefined ? "overflow"
  : Math.abs(value) >= 1e4 || (Math.abs(value) < 1e-3 && value !== 0)
    ? value.toExponential(2) : Number(value.toPrecision(4)).toString());

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
  setStatus(`Done: ${summary.cell}, mean ${gate} = ${fmtGate(summary.mean_carry_gate)}, ` +
    `carry gain over the sequence ${fromLog10(summary.carry_gain_total_log10)}`, "done");
  const note = summary.note || pageNote;
  noteBox.hidden = !note;
  noteBox.textContent = note ? `Note: ${note}.` : "";
  const step = summary.overflow_step;
  overflowMarker.hidden = step === null || step === undefined;
  overflowMarker.textContent = overflowMarker.hidden ? ""
    : `⚠ Overflowed at t = ${step}: numbers went beyond the float64 range there; ` +
      "the plots leave those points out.";
}

const SYMBOLS = { pass: "✓", fail: "✗", "n/a": "–" };
const SPOKEN = { pass: "holds", fail: "fails", "n/a": "not applicable" };

function showChecks(checks) {
  checksList.replaceChildren(...checks.map((item) => {
    const li = document.createElement("li");
    li.className = `check ${item.status === "n/a" ? "na" : item.status}`;
    li.dataset.check = item.id;
    li.dataset.status = item.status;
    const symbol = Object.assign(document.createElement("span"), {
      className: "symbol", textContent: SYMBOLS[item.status] ?? "?" });
    symbol.setAttribute("role", "img");
    symbol.setAttribute("aria-label", SPOKEN[item.status] ?? item.status);
    const label = Object.assign(document.createElement("strong"), { textContent: item.label });
    const detail = Object.assign(document.createElement("span"), {
      className: "detail", textContent: item.detail });
    li.append(symbol, " ", label, " ", detail);
    return li;
  }));
}

function showError(message) {
  setStatus("The server could not run this configuration.", "error");
  progress.value = 0;
  errorBox.hidden = false;
  errorBox.textContent = `Error: ${message}`;
}

// ---- downloads ----------------------------------------------------------------------------

// plotly.py sends NumPy arrays base64-packed ({dtype, bdata, shape}); Plotly.js unpacks them
// itself, but the CSV / JSON downloads want plain numbers (NaN, a gap on a log axis, -> null).
const TYPED = { f8: Float64Array, f4: Float32Array, i1: Int8Array, u1: Uint8Array,
  i2: Int16Array, u2: Uint16Array, i4: Int32Array, u4: Uint32Array };

export function decodeArray(value) {
  if (!value || typeof value !== "object" || !("bdata" in value)) return value;
  const bytes = Uint8Array.from(atob(value.bdata), (c) => c.charCodeAt(0));
  const flat = Array.from(new TYPED[value.dtype](bytes.buffer),
    (x) => (Number.isFinite(x) ? x : null));
  if (!value.shape) return flat;
  const [rows, cols] = String(value.shape).split(",").map(Number);
  return Array.from({ length: rows }, (_, r) => flat.slice(r * cols, (r + 1) * cols));
}

export function plainFigure(figure) {
  const data = figure.data.map((trace) => {
    const out = { ...trace };
    for (const key of ["x", "y", "z"]) if (key in out) out[key] = decodeArray(out[key]);
    return out;
  });
  return { ...figure, data };
}

export const latestResult = () => lastResult;

for (const holder of document.querySelectorAll(".figure-downloads")) {
  const name = holder.dataset.figure;
  for (const format of ["CSV", "JSON"]) {
    const button = Object.assign(document.createElement("button"), {
      type: "button", textContent: format, disabled: true });
    button.setAttribute("aria-label", `Download the data of the ${name} plot as ${format}`);
    button.addEventListener("click", () => {
      if (!lastResult?.figures[name]) return;
      const figure = plainFigure(lastResult.figures[name]);
      if (format === "CSV") download(`cells-${name}.csv`, figureToCsv(figure), "text/csv");
      else {
        const payload = { config: lastResult.config, figure: name, data: figure.data };
        download(`cells-${name}.json`, JSON.stringify(payload, null, 1), "application/json");
      }
    });
    holder.append(button);
  }
}

// ---- projector mode -----------------------------------------------------------------------

// plots.applyFigure reads body.present when it applies a figure, so re-apply on a toggle.
let presenting = document.body.classList.contains("present");
new MutationObserver(() => {
  const now = document.body.classList.contains("present");
  if (now === presenting) return;
  presenting = now;
  if (lastResult) applyFigures(lastResult.figures);
}).observe(document.body, { attributes: true, attributeFilter: ["class"] });

// ---- start --------------------------------------------------------------------------------

fillControls(controls, state);
updateCellDependent();
simulate();
