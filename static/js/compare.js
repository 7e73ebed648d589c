// /compare: rnn, lstm and gru on the same sequence. Every control writes the URL and reruns the
// three simulations (debounced, latest wins); the server's figures are applied with Plotly.react.

import { throttle, openStream } from "./api.js";
import { applyFigures, download, figureToCsv } from "./plots.js";
import { fillControls, readControl, readState, showValue, toQuery, writeState } from "./state.js";

// The names and defaults of app.schemas.SimulationConfig; the cell is not a control here (the
// server runs all three, the rnn being the streamed one).
export const TABLE = {
  nonlinearity: { type: "str", default: "tanh" },
  seq_len: { type: "int", default: 50 },
  hidden_size: { type: "int", default: 32 },
  weight_scale: { type: "float", default: 1.0 },
  init: { type: "str", default: "orthogonal" },
  forget_bias: { type: "float", default: 1.0 },
  loss_at: { type: "str", default: "last" },
  seed: { type: "int", default: 0 },
};
const CELLS = ["rnn", "lstm", "gru"];

const $ = (id) => document.getElementById(id);
const controls = $("controls");
const statusLine = $("status");
const progress = $("progress");
const overflowMarker = $("overflow-marker");
const errorBox = $("error-box");

let state = readState(TABLE);
let lastResult = null;
let run = 0;

fillControls(controls, state);
const rerun = throttle(simulate, 120);
controls.addEventListener("input", (event) => {
  const element = event.target.closest("[data-param]");
  if (!element) return;
  state = { ...state, [element.dataset.param]: readControl(TABLE, element) };
  showValue(element);
  writeState(TABLE, state);
  rerun();
});

function setStatus(text, kind) {
  statusLine.textContent = text;
  statusLine.dataset.state = kind;
}

function simulate() {
  run += 1;
  statusLine.dataset.run = String(run);
  setStatus("Running rnn, lstm and gru…", "computing");
  progress.value = 0;
  const query = toQuery(TABLE, state);
  query.set("view", "compare");
  openStream("/api/simulate/stream", query.toString(), {
    progress(data) { progress.value = Math.max(progress.value, data.fraction * 0.5); },
    backward(data) {
      const earliest = Math.min(...data.steps);
      progress.value = 0.5 + 0.45 * (1 - earliest / Math.max(1, data.seq_len));
      setStatus(`rnn backward sweep: reached t = ${earliest}`, "computing");
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
  for (const button of document.querySelectorAll(".figure-downloads button")) button.disabled = false;
  rendered.then(() => { statusLine.dataset.rendered = statusLine.dataset.run; });
}

const fmt = (value) => (value === null || value === undefined ? "not finite"
  : value === 0 ? "0"
    : Math.abs(value) >= 1e4 || Math.abs(value) < 1e-3
      ? value.toExponential(2) : Number(value.toPrecision(3)).toString());

function showSummary(summary) {
  const cells = summary.cells;
  const best = CELLS.filter((c) => cells[c].retention !== null)
    .sort((a, b) => cells[b].retention - cells[a].retention)[0];
  setStatus(`Done: T = ${summary.seq_len}` +
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
  const step = summary.overflow_step;
  overflowMarker.hidden = step === null || step === undefined;
  overflowMarker.textContent = overflowMarker.hidden ? ""
    : `⚠ Overflow (${summary.overflow_cells.join(", ")}) from t = ${step}: numbers went beyond ` +
      "the float64 range there; the plots leave those points out.";
}

const SYMBOLS = { pass: "✓", fail: "✗", "n/a": "–" };

function showChecks(checks) {
  $("checks").replaceChildren(...checks.map((item) => {
    const li = document.createElement("li");
    li.className = `check ${item.status === "n/a" ? "na" : item.status}`;
    li.dataset.check = item.id;
    const symbol = Object.assign(document.createElement("span"), {
      className: "symbol", textContent: SYMBOLS[item.status] ?? "?" });
    symbol.setAttribute("aria-label", item.status === "n/a" ? "not applicable" : item.status);
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

for (const holder of document.querySelectorAll(".figure-downloads")) {
  const name = holder.dataset.figure;
  for (const format of ["CSV", "JSON"]) {
    const button = Object.assign(document.createElement("button"), {
      type: "button", textContent: format, disabled: true });
    button.setAttribute("aria-label", `Download the data of the ${name.replace("_", " ")} plot as ${format}`);
    button.addEventListener("click", () => {
      const figure = lastResult?.figures[name];
      if (!figure) return;
      if (format === "CSV") download(`compare-${name}.csv`, figureToCsv(figure), "text/csv");
      else {
        const payload = { config: lastResult.config, figure: name, data: figure.data };
        download(`compare-${name}.json`, JSON.stringify(payload, null, 1), "application/json");
      }
    });
    holder.append(button);
  }
}

simulate();
