// /bptt: full against truncated backpropagation through time. Every control writes the URL and
// reruns both simulations (debounced, latest wins). While the stream arrives, the unrolled
// network lights up column by column from the loss backwards; then the server's figures replace
// the animation.

import { throttle } from "./api.js";
import { PLOT_CONFIG, applyFigures, download, figureToCsv } from "./plots.js";
import { fillControls, loadState, onControlInput, pageFields, writeState } from "./state.js";
import { addDownloadButtons, enableButtons, figurePayload, formatNumber, markRendered,
  pageElements, resultArrived, setStatus, showChecks, showError, showOverflow, showProgress,
  startRun, streamSimulation, wireViewDownload } from "./ui.js";

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
  enableButtons(".figure-downloads button, #replay");
  markRendered(page, rendered);
}

const fmt = (value) => formatNumber(value, 3, "not finite");

function doneText(summary) {
  return `Done: loss ${fmt(summary.loss)} · truncated BPTT with k = ${summary.truncation_k} ` +
    `over ${summary.chunks} chunk${summary.chunks === 1 ? "" : "s"}`;
}

function showSummary(summary) {
  setStatus(statusLine, doneText(summary), "done");
  const items = [
    [`k = ${summary.truncation_k}`, "truncation used (steps per chunk)"],
    [fmt(summary.relative_error), "relative error ‖g_trunc − g_full‖ / ‖g_full‖, all weights"],
    [fmt(summary.relative_error_whh), "the same for W_hh alone"],
    [fmt(summary.cosine), "cosine between truncated and full gradient"],
    [fmt(summary.grad_norm_first), "full ‖∂loss/∂h₀‖ (top layer)"],
    [fmt(summary.grad_norm_last), "full ‖∂loss/∂h_T−1‖ (top layer)"],
  ];
  $("summary").replaceChildren(...items.map(([value, what]) => {
    const li = document.createElement("li");
    li.append(Object.assign(document.createElement("span"), { className: "value", textContent: value }),
      Object.assign(document.createElement("span"), { className: "what", textContent: what }));
    return li;
  }));
  const notes = [];
  if (summary.truncation_defaulted) {
    notes.push(`Truncation was 0 (off), so the comparison uses k = ${summary.truncation_k}.`);
  }
  if (summary.truncation_is_exact) {
    notes.push(`k ≥ T: one chunk holds the whole sequence, so truncated BPTT is exactly full BPTT here.`);
  } else {
    notes.push(`A relative error of ${fmt(summary.relative_error)} means the truncated update points ` +
      `${summary.cosine > 0.99 ? "almost the same way as" : "noticeably away from"} the exact one ` +
      `(cosine ${fmt(summary.cosine)}).`);
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
    rows.push([layer, t, value ?? "", trunc[layer][t] ?? ""].join(","));
  }));
  return rows.join("\n");
}

addDownloadButtons((name, format) => {
  if (!lastResult?.figures[name]) return;
  if (format === "CSV") download(`bptt-${name}.csv`, csvFor(name), "text/csv");
  else download(`bptt-${name}.json`, figurePayload(lastResult, name), "application/json");
});
$("replay").disabled = true;

simulate();

wireViewDownload(document.getElementById("download-view"), () => lastResult,
  "gradient-flow-bptt.html");
