// /bptt: full against truncated backpropagation through time. Every control writes the URL and
// reruns both simulations (debounced, latest wins). While the stream arrives, the unrolled
// network lights up column by column from the loss backwards; then the server's figures replace
// the animation.

import { throttle } from "./api.js";
import { PLOT_CONFIG, applyFigures, figureToCsv, presentLayout } from "./plots.js";
import { fillControls, loadState, onControlInput, pageFields, writeState } from "./state.js";
import { addDownloadButtons, enableButtons, formatNumber, markRendered, onPresentToggle,
  pageElements, resultArrived, setStatus, showChecks, showError, showOverflow, showProgress,
  saveFigure, startRun, streamSimulation, wireViewDownload } from "./ui.js";

// The page's fields, with its own defaults (a loss at every step, a truncation to compare).
export const TABLE = pageFields();
const FRAME_MS = 45; // one streamed chunk of the sweep per frame: about a second per run
const DIM = 0.15; // opacity of a node the backward sweep has not reached yet

const $ = (id) => document.getElementById(id);
const page = pageElements();
const { controls, statusLine, progress } = page;
const unrolled = $("fig-unrolled");

let state = loadState(TABLE);
let lastResult = null;
let sweep = null;
let run = 0;

// ---- controls -----------------------------------------------------------------------------

function updateEnabled() {
  $("ctl-nonlinearity").disabled = state.cell !== "rnn";
}

fillControls(controls, state);
updateEnabled();
const rerun = throttle(simulate, 120);
onControlInput(controls, TABLE, (name, value) => {
  state = { ...state, [name]: value };
  updateEnabled();
  writeState(TABLE, state);
  rerun();
});

// ---- the backward sweep, played out a chunk per frame -------------------------------------

function nodeTraceIndex(element) {
  return (element.data ?? []).findIndex((trace) => trace.uid === "nodes");
}

// A placeholder grid when the figure on screen has another shape (or there is none yet).
function skeleton(seqLen, layers, columns) {
  const x = [];
  const y = [];
  for (let layer = 0; layer < layers; layer += 1) for (const step of columns) { x.push(step); y.push(layer); }
  const size = Math.min(24, Math.max(8, 520 / columns.length));
  const layout = {
    title: { text: "Unrolled network: backward sweep arriving…", x: 0.01, xanchor: "left" },
    height: 200 + 60 * layers,
    margin: { l: 64, r: 20, t: 44, b: 48 },
    xaxis: { title: { text: "time step t" }, range: [-0.5 - seqLen * 0.01, seqLen - 0.5 + seqLen * 0.01],
             showgrid: false, zeroline: false },
    yaxis: { tickvals: [...Array(layers).keys()], ticktext: [...Array(layers).keys()].map((l) => `layer ${l}`),
             range: [-1.7, layers + 0.7], showgrid: false, zeroline: false },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#FFFFFF",
    meta: { seq_len: seqLen, num_layers: layers, columns },
    uirevision: "keep",
  };
  const data = [{
    type: "scatter", mode: "markers", uid: "nodes", x, y, showlegend: false, hoverinfo: "skip",
    marker: { size, color: x.map(() => null), colorscale: "Viridis", opacity: DIM,
              line: { width: 0.8, color: "#333333" } },
  }];
  // projector mode restyles the placeholder as it does every figure from the server
  if (document.body.classList.contains("present")) presentLayout(layout, data);
  return window.Plotly.react(unrolled, data, layout, PLOT_CONFIG);
}

class Sweep {
  constructor() { this.queue = []; this.timer = null; this.done = null; this.ready = null; this.cancelled = false; }

  // Prepares the unrolled picture: the figure on screen, dimmed, if it has this shape.
  // `columns`: the steps drawn as columns, as the server picks them (meta.unrolled_steps).
  start(seqLen, layers, columns) {
    const meta = unrolled.layout?.meta;
    const same = meta && meta.seq_len === seqLen && meta.num_layers === layers;
    this.ready = (same ? Promise.resolve() : skeleton(seqLen, layers, columns)).then(() => {
      if (this.cancelled) return;
      this.nodes = nodeTraceIndex(unrolled);
      this.columns = new Map(columns.map((step, i) => [step, i]));
      this.count = columns.length;
      // The colours on screen, as Plotly holds them in _fullData.
      const shown = unrolled._fullData?.[this.nodes]?.marker?.color;
      this.colours = Array.from({ length: this.count * layers }, (_, i) => {
        const value = shown?.[i];
        return typeof value === "number" && Number.isFinite(value) ? value : null;
      });
      this.opacity = this.colours.map(() => DIM);
      this.shapes = [...(unrolled.layout.shapes ?? [])].filter((s) => s.name !== "sweep");
      this.seqLen = seqLen;
      return window.Plotly.restyle(unrolled, { "marker.opacity": [this.opacity] }, [this.nodes]);
    });
  }

  push(chunk) {
    this.queue.push(chunk);
    if (!this.timer) this.timer = setTimeout(() => this.tick(), 0);
  }

  // Calls `callback` once every queued chunk has been shown.
  finish(callback) {
    this.done = callback;
    if (!this.timer) this.timer = setTimeout(() => this.tick(), 0);
  }

  cancel() { this.cancelled = true; clearTimeout(this.timer); this.queue = []; this.done = null; }

  async tick() {
    await this.ready;
    if (this.cancelled) return;
    const chunk = this.queue.shift();
    if (!chunk) {
      this.timer = null;
      const callback = this.done;
      this.done = null;
      callback?.();
      return;
    }
    chunk.steps.forEach((step, i) => {
      const column = this.columns.get(step);
      if (column === undefined) return;
      chunk.norms[i].forEach((norm, layer) => {
        const node = layer * this.count + column;
        this.colours[node] = norm > 0 ? Math.log10(norm) : null;
        this.opacity[node] = 1;
      });
    });
    const earliest = Math.min(...chunk.steps);
    progress.value = 0.5 + 0.45 * (1 - earliest / Math.max(1, this.seqLen));
    const line = { type: "line", name: "sweep", xref: "x", yref: "paper", x0: earliest - 0.5,
                   x1: earliest - 0.5, y0: 0, y1: 1, line: { color: "#E69F00", width: 4 } };
    await window.Plotly.update(unrolled,
      { "marker.color": [this.colours], "marker.opacity": [this.opacity] },
      { shapes: [...this.shapes, line] }, [this.nodes]);
    setStatus(statusLine, `Backward sweep (full BPTT): reached t = ${earliest}`, "computing");
    this.timer = setTimeout(() => this.tick(), FRAME_MS);
  }
}

// Plays the full run's sweep again from the last result, without asking the server.
function replay() {
  if (!lastResult) return;
  const norms = lastResult.series.grad_norms_full; // (L, T)
  const layers = norms.length;
  const seqLen = norms[0].length;
  sweep?.cancel();
  sweep = new Sweep();
  sweep.start(seqLen, layers, lastResult.series.unrolled_steps);
  const size = Math.max(1, Math.ceil(seqLen / 24));
  for (let stop = seqLen; stop > 0; stop -= size) {
    const steps = [];
    for (let t = stop - 1; t >= Math.max(stop - size, 0); t -= 1) steps.push(t);
    sweep.push({ steps, norms: steps.map((t) => norms.map((row) => row[t])) });
  }
  const result = lastResult;
  sweep.finish(() => {
    applyFigures({ unrolled: structuredClone(result.figures.unrolled) });
    setStatus(statusLine, doneText(result.summary), "done");
  });
}
$("replay").addEventListener("click", replay);

// ---- stepping through the backward pass: one step per slider notch ---------------------------

const stepSlider = $("step-slider");

// The nodes of the unrolled picture lit from step t to the end (the pass has reached t), a line
// at t on the unrolled picture and on the factor plot, and the factor ‖J‖ of that step.
function showStep(t) {
  const result = lastResult;
  if (!result) return;
  const factors = result.series.step_factors; // (T,), null at t = 0
  const norms = result.series.grad_norms_full; // (L, T)
  const T = factors.length;
  const columns = result.series.unrolled_steps;
  const nodes = nodeTraceIndex(unrolled);
  if (nodes >= 0) {
    const lit = [];
    for (let layer = 0; layer < norms.length; layer += 1) {
      for (const step of columns) lit.push(step >= t ? 1 : DIM);
    }
    const marker = { type: "line", name: "step", xref: "x", yref: "paper", x0: t - 0.5, x1: t - 0.5,
                     y0: 0, y1: 1, line: { color: "#E69F00", width: 4 } };
    const shapes = (unrolled.layout.shapes ?? []).filter((s) => s.name !== "step" && s.name !== "sweep");
    window.Plotly.update(unrolled, { "marker.opacity": [lit] },
      { shapes: t < T - 1 ? [...shapes, marker] : shapes }, [nodes]);
  }
  const factorPlot = $("fig-factors");
  if (factorPlot.layout) {
    const shapes = (factorPlot.layout.shapes ?? []).filter((s) => s.name !== "step");
    shapes.push({ type: "line", name: "step", xref: "x", yref: "paper", x0: t, x1: t, y0: 0, y1: 1,
                  line: { color: "#E69F00", width: 3 } });
    window.Plotly.relayout(factorPlot, { shapes });
  }
  // Going from h_(t+1) back to h_t multiplies by J_(t+1); the product covers J_(t+1) … J_(T−1).
  let logProduct = 0;
  let known = true;
  for (let s = t + 1; s < T; s += 1) {
    if (factors[s] === null || !(factors[s] > 0)) { known = false; break; }
    logProduct += Math.log10(factors[s]);
  }
  const top = norms.length - 1;
  const grad = fmt(norms[top][t]);
  const state = result.summary.factor_state === "h" ? "h" : "(h, c)";
  let text;
  if (t === T - 1) {
    text = `t = ${t}: the backward pass starts here, at the last step (‖∂loss/∂h_t‖ = ${grad}). ` +
      "Press ◀ to go one step back.";
  } else {
    const factor = factors[t + 1];
    const verdict = factor === null ? "" : factor < 1 ? " (shrinks the gradient)" : " (can grow it)";
    const product = known ? fmt(10 ** logProduct) : "not computed this far back";
    text = `t = ${t}: this step back multiplies by at most ‖J_${t + 1}‖ = ‖∂${state}_${t + 1}/∂${state}_${t}‖ = ` +
      `${fmt(factor)}${verdict} · running product from T−1 back to here: ${product} · ` +
      `‖∂loss/∂h_t‖ = ${grad}`;
  }
  $("step-readout").textContent = text;
}

function setStep(t) {
  const max = Number(stepSlider.max);
  stepSlider.value = String(Math.max(0, Math.min(max, t)));
  showStep(Number(stepSlider.value));
}

stepSlider.addEventListener("input", () => showStep(Number(stepSlider.value)));
$("step-earlier").addEventListener("click", () => setStep(Number(stepSlider.value) - 1));
$("step-later").addEventListener("click", () => setStep(Number(stepSlider.value) + 1));

// ---- one simulation -----------------------------------------------------------------------

function simulate() {
  run += 1;
  startRun(page, run, "Running full and truncated BPTT…");
  sweep?.cancel();
  const mine = new Sweep();
  sweep = mine;
  streamSimulation(TABLE, state, "bptt", {
    meta(data) { mine.start(data.seq_len, data.num_layers, data.unrolled_steps); },
    progress(data) { showProgress(page, data); },
    backward(data) { mine.push(data); },
    result(data) { mine.finish(() => showResult(data)); },
    error(message) { mine.cancel(); showError(page, message); },
  });
}

function showResult(result) {
  lastResult = result;
  resultArrived(page);
  // Plotly keeps the trace objects it is given and the sweep restyles them in place: hand it a
  // copy, so the result kept for replays and downloads stays as the server sent it.
  const rendered = applyFigures(structuredClone(result.figures));
  showSummary(result.summary);
  showChecks($("checks"), result.checks);
  enableButtons(".figure-downloads button, #replay, #download-view, #step-earlier, #step-later");
  const T = result.series.step_factors.length;
  stepSlider.max = String(T - 1);
  stepSlider.disabled = false;
  stepSlider.value = String(T - 1);
  markRendered(page, rendered);
  $("step-readout").textContent = `The backward pass starts at the last step, t = ${T - 1}. ` +
    "Press ◀ or drag the slider to take it back one step at a time and see each step's factor.";
}

const fmt = (value) => formatNumber(value, 3, "not finite");

function doneText(summary) {
  if (summary.truncation_off) return `Done: loss ${fmt(summary.loss)} · full BPTT (truncation off)`;
  return `Done: loss ${fmt(summary.loss)} · truncated BPTT with k = ${summary.truncation_k} ` +
    `over ${summary.chunks} chunk${summary.chunks === 1 ? "" : "s"}, against full BPTT`;
}

function showSummary(summary) {
  setStatus(statusLine, doneText(summary), "done");
  const off = summary.truncation_off;
  const items = [
    [off ? "off" : `k = ${summary.truncation_k}`, "truncation (steps per chunk)"],
    ...(off ? [] : [
      [fmt(summary.relative_error), "relative error ‖g_trunc − g_full‖ / ‖g_full‖, all weights"],
      [fmt(summary.relative_error_whh), "the same for W_hh alone"],
      [fmt(summary.cosine), "cosine between truncated and full gradient"],
    ]),
    [fmt(summary.grad_norm_first), "full BPTT ‖∂loss/∂h₀‖ (top layer)"],
    [fmt(summary.grad_norm_last), "full BPTT ‖∂loss/∂h_(T−1)‖ (top layer)"],
  ];
  $("summary").replaceChildren(...items.map(([value, what]) => {
    const li = document.createElement("li");
    li.append(Object.assign(document.createElement("span"), { className: "value", textContent: value }),
      Object.assign(document.createElement("span"), { className: "what", textContent: what }));
    return li;
  }));
  const notes = [summary.comparison_sentence];
  for (const element of document.querySelectorAll("[data-sentence]")) {
    element.textContent = summary[element.dataset.sentence] ?? "";
  }
  if (summary.unrolled_subsampled) {
    notes.push(`The unrolled network shows ${summary.unrolled_columns} evenly spread steps of the sequence.`);
  }
  $("summary-note").textContent = notes.join(" ");
  showOverflow(page.overflowMarker, summary.overflow_step ?? summary.truncated_overflow_step);
}

// ---- downloads ----------------------------------------------------------------------------

// The unrolled picture's values live in marker colours, which a generic CSV would lose: write
// the full run's norms at every step instead.
function csvFor(name) {
  if (name !== "unrolled") return figureToCsv(lastResult.figures[name]);
  const rows = ["layer,t,grad_norm_full,grad_norm_truncated"];
  const full = lastResult.series.grad_norms_full;
  const trunc = lastResult.series.grad_norms_truncated;
  full.forEach((row, layer) => row.forEach((value, t) => {
    rows.push([layer, t, value ?? "", trunc?.[layer][t] ?? ""].join(","));
  }));
  return rows.join("\n");
}

addDownloadButtons((name, format) => {
  if (!lastResult?.figures[name]) return;
  saveFigure(lastResult, name, format, format === "CSV" ? csvFor(name) : null);
});
$("replay").disabled = true;
$("step-earlier").disabled = true;
$("step-later").disabled = true;

// plots.applyFigure reads body.present when it applies a figure, so re-apply on a toggle.
onPresentToggle(() => {
  if (!lastResult) return;
  const result = lastResult;
  applyFigures(structuredClone(result.figures)).then(() => {
    if (lastResult === result) showStep(Number(stepSlider.value));
  });
});

simulate();

wireViewDownload(document.getElementById("download-view"), () => lastResult);
