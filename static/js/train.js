// Training lab: start a stream, extend the curves step by step, stop on demand.
// Closing the tab or pressing Stop aborts the stream's one request, and the server stops
// training. A refused request (a 422, or 503 when every training slot is busy) is known from
// that same request: nothing is sent twice, so no second run can start unseen.
import { StreamError, readStream } from "./sse.js";
import { fillControls, loadState, pageFields, readControl, showValue, toQuery,
  writeState } from "./state.js";
import { applyFigure } from "./plots.js";
import { addDownloadButtons, enableButtons, onPresentToggle, saveFigure,
  wireViewDownload } from "./ui.js";

// The specs of TrainingConfig (app/fieldspecs.py): types, bounds and defaults, written once.
const TABLE = pageFields();

const form = document.getElementById("controls");
const statusLine = document.getElementById("status");
const errorBox = document.getElementById("error-box");
const notes = document.getElementById("cell-notes");
const startButton = document.getElementById("start");
const stopButton = document.getElementById("stop");
let state = loadState(TABLE);
let controller = null; // aborts the running stream
let pending = [];  // step events waiting for the next animation frame
let divs = {};
let meta = null; // the run's meta event: its figures as the server built them (empty)
let store = {}; // per cell, everything measured so far (raw): the plots are drawn from it
let started = 0; // performance.now() when the run's meta arrived
const modelStatus = document.getElementById("model-status");
const smoothingSelect = document.getElementById("view-smoothing");
const rowScaleBox = document.getElementById("view-row-scale");
// "learned": accuracy over the last WINDOW steps at least LEARNED (engine/train.py; each run's
// meta event carries the engine's values, which replace these)
let LEARNED = 0.95;
let WINDOW = 10;
const NAMES = { rnn: "RNN", lstm: "LSTM", gru: "GRU" };

// Exponential moving average over about `span` steps (0 = off), as the smoothing option says.
function smoother(span) {
  const alpha = span > 0 ? 2 / (span + 1) : 1;
  let value = null;
  return (x) => {
    if (x === null || x === undefined || !Number.isFinite(x)) return x;
    value = value === null ? x : value + alpha * (x - value);
    return value;
  };
}

function newStore() {
  const span = Number(smoothingSelect.value);
  return { steps: [], loss: [], accuracy: [], grad: [], gradClipped: [], rows: [], rowSteps: [],
           smooth: { loss: smoother(span), accuracy: smoother(span) }, learnedAt: null };
}

// A heatmap row: log10 of each norm, or relative to the row's largest when scaling per row.
function heatRow(norms) {
  const logs = norms.map((v) => (v > 0 ? Math.log10(v) : null));
  if (!rowScaleBox.checked) return logs;
  const top = Math.max(...logs.filter((v) => v !== null));
  return Number.isFinite(top) ? logs.map((v) => (v === null ? null : v - top)) : logs;
}

// The gate biases each chosen model starts with, in the words of app/jobs.py's bias_sentence
// (a run's meta event brings the server's own sentence; a test checks the two agree).
function gateValue(bias) {
  const value = 1 / (1 + Math.exp(-bias));
  const distance = Math.min(value, 1 - value);
  const decimals = distance <= 0 ? 2 : Math.max(2, Math.ceil(-Math.log10(distance)));
  return value.toFixed(decimals).replace(/0+$/, "").replace(/\.$/, "");
}

function biasSentence(config) {
  return config.cells.split(",").map((cell) => {
    if (cell === "lstm") {
      return `LSTM: forget-gate bias ${String(config.forget_bias)} (f ≈ ${gateValue(config.forget_bias)})`;
    }
    if (cell === "gru") {
      return `GRU: update-gate bias ${String(config.update_bias)} (z ≈ ${gateValue(config.update_bias)})`;
    }
    return "RNN: none";
  }).join("; ");
}

const biasNote = document.getElementById("bias-note");
function showBiases(sentence) {
  biasNote.textContent = `Starting gate biases: ${sentence}.`;
}

function syncCells() {
  const chosen = new Set(state.cells.split(","));
  for (const box of document.querySelectorAll(".cell-box")) box.checked = chosen.has(box.value);
}

function onControl(event) {
  const element = event.target;
  if (element.classList.contains("cell-box")) {
    const chosen = [...document.querySelectorAll(".cell-box")].filter((b) => b.checked);
    if (chosen.length === 0) { element.checked = true; return; }  // at least one model
    state.cells = chosen.map((b) => b.value).join(",");
  } else if (element.dataset.param) {
    state[element.dataset.param] = readControl(TABLE, element);
    showValue(element);
  }
  writeState(TABLE, state);
  showBiases(biasSentence(state));
}

function setRunning(running) {
  startButton.disabled = running;
  stopButton.disabled = !running;
  statusLine.dataset.state = running ? "computing" : "done";
}

function stop(message) {
  flush();  // draw what has arrived, then nothing more: the stream is closed below
  if (controller) { controller.abort(); controller = null; }
  setRunning(false);
  if (message) statusLine.textContent = message;
}

function start() {
  stop();
  errorBox.hidden = true;
  notes.replaceChildren();
  pending = [];
  const query = toQuery(TABLE, state);
  const url = `/api/train/stream?${query}`;
  const mine = new AbortController();
  controller = mine;
  const live = () => controller === mine;
  setRunning(true);
  statusLine.textContent = "Starting…";
  const handlers = {
    meta: setUp,
    step(data) {
      pending.push(data);
      if (pending.length === 1) requestAnimationFrame(flush);
    },
    diverged(data) { addNote("fail", "✗", data.message); },
    done(data) {
      flush();
      stop(`Done (${data.reason}) after ${data.seconds.toFixed(1)} s.`);
      showTrainedDownloads(data.downloads ?? {});
      showModelStatus(true);
    },
    error(data) {
      stop();
      showError(data.message ?? "the server stopped the run", "Stopped.");
    },
  };
  readStream(url, (name, text) => {
    if (live()) handlers[name]?.(JSON.parse(text));
  }, { signal: mine.signal }).then(() => {
    if (!live()) return;
    stop();
    showError("the training stream ended before it was done", "Stopped.");
  }).catch((error) => {
    if (!live() || error.name === "AbortError") return;
    stop();
    showError(error instanceof StreamError ? `${error.message} (HTTP ${error.status})`
      : "The server is not answering.");
  });
}

function showError(message, status = "Not started.") {
  errorBox.textContent = message;
  errorBox.hidden = false;
  statusLine.textContent = status;
}

function addNote(kind, symbol, text) {
  const item = document.createElement("li");
  item.className = `check ${kind}`;
  item.innerHTML = `<span class="symbol" aria-hidden="true">${symbol}</span> `;
  item.append(text);
  notes.append(item);
}

function setUp(data) {
  meta = data;
  if (data.learned) ({ accuracy: LEARNED, window: WINDOW } = data.learned);
  showBiases(data.biases);
  started = performance.now();
  store = Object.fromEntries(data.cells.map((cell) => [cell, newStore()]));
  const figures = data.figures;
  const accuracyBlock = document.getElementById("accuracy-block");
  const lossBlock = document.getElementById("loss-block");
  accuracyBlock.hidden = !figures.accuracy;
  // The main plot (sized to the first screen) is accuracy, or the loss for a regression task.
  divs.mainIsLoss = !figures.accuracy;
  document.getElementById("fig-accuracy").classList.toggle("main-figure", !!figures.accuracy);
  document.getElementById("fig-loss").classList.toggle("main-figure", !figures.accuracy);
  lossBlock.classList.toggle("main-block", !figures.accuracy);
  if (!figures.accuracy) accuracyBlock.before(lossBlock);
  else lossBlock.before(accuracyBlock);
  showModelStatus();
  const heatmaps = document.getElementById("heatmaps");
  heatmaps.replaceChildren();
  divs = { loss: document.getElementById("fig-loss"),
    accuracy: document.getElementById("fig-accuracy"),
    grad_norm: document.getElementById("fig-grad_norm") };
  for (const cell of data.cells) {
    const div = document.createElement("div");
    div.id = `fig-heatmap_${cell}`;
    div.className = "figure";
    const holder = Object.assign(document.createElement("div"), { className: "figure-downloads" });
    holder.dataset.figure = `heatmap_${cell}`;
    heatmaps.append(div, holder);
    divs[`heatmap_${cell}`] = div;
  }
  for (const [name, figure] of Object.entries(figures)) applyFigure(divs[name], figure);
  divs.loss.gflTicks = divs.grad_norm.gflTicks = null; // a new run: its own tick labels
  addDownloadButtons(downloadFigure);
  enableButtons(".figure-downloads button, #download-view");
  divs.cells = data.cells;
  statusLine.textContent = `Training ${data.cells.join(", ")} on ${data.config.task.replace("_", " ")}`
    + ` (sequence length ${data.seq_len})…`;
}

// One line per model: "LSTM learned at step 300, 10 s" or "RNN: 31% after 2000 steps, 60 s".
function showModelStatus(finished = false) {
  if (!meta) return;
  const elapsed = (performance.now() - started) / 1000;
  const seconds = elapsed.toFixed(elapsed < 10 ? 1 : 0); // a short run reads 0.4 s, not 0 s
  modelStatus.replaceChildren(...meta.cells.map((cell) => {
    const run = store[cell];
    const item = document.createElement("li");
    item.dataset.cell = cell;
    const name = NAMES[cell] ?? cell;
    const n = run.steps.length;
    const recent = run.accuracy.slice(-WINDOW);
    const mean = recent.reduce((a, b) => a + b, 0) / (recent.length || 1);
    if (run.learnedAt) {
      item.textContent = `${name} learned at step ${run.learnedAt.step}, ${run.learnedAt.seconds} s`;
      // a model can lose what it learned (a plain RNN often does): say so, with the number
      if (mean < LEARNED) item.textContent += `; now ${(100 * mean).toFixed(0)}%`;
      else item.dataset.learned = "";
    } else if (!n) {
      item.textContent = `${name}: waiting…`;
    } else if (run.accuracy.length) {
      item.textContent = `${name}: ${(100 * mean).toFixed(0)}% ` + (finished
        ? `after ${run.steps[n - 1]} steps, ${seconds} s` : `at step ${run.steps[n - 1]}, ${seconds} s`);
    } else {
      item.textContent = `${name}: loss ${run.loss[n - 1].toPrecision(3)} at step ` +
        `${run.steps[n - 1]}, ${seconds} s`;
    }
    return item;
  }));
}

// Every plot drawn again from the store (the smoothing or scaling changed, or projector mode).
function redraw() {
  if (!meta) return;
  const cells = meta.cells;
  const span = Number(smoothingSelect.value);
  const smoothAll = (values) => { const f = smoother(span); return values.map((v) => f(v)); };
  const figures = structuredClone(meta.figures);
  figures.loss.data.forEach((trace, k) => {
    trace.x = store[cells[k]].steps; trace.y = smoothAll(store[cells[k]].loss);
  });
  figures.accuracy?.data.forEach((trace, k) => {
    trace.x = store[cells[k]].steps; trace.y = smoothAll(store[cells[k]].accuracy);
  });
  figures.grad_norm.data.forEach((trace, k) => {
    const run = store[cells[Math.floor(k / 2)]];
    trace.x = run.steps; trace.y = k % 2 ? run.gradClipped : run.grad;
  });
  for (const cell of cells) {
    const trace = figures[`heatmap_${cell}`].data[0];
    trace.z = store[cell].rows.map(heatRow);
    trace.y = store[cell].rowSteps;
  }
  for (const cell of cells) {
    const run = store[cell];
    run.smooth = { loss: smoother(span), accuracy: smoother(span) };
    run.loss.forEach((v) => run.smooth.loss(v));
    run.accuracy.forEach((v) => run.smooth.accuracy(v));
  }
  Promise.all(Object.entries(figures).map(([name, figure]) => applyFigure(divs[name], figure)))
    .then(() => updateLogTicks(true));
}

// Plotly's own log axis labels 1 to 3 decades with bare minor digits ("9 8 7 … 2" under "1").
// These axes get their ticks set here instead: 1, 2 and 5 of each decade over a short span,
// powers of ten over a long one, every label a whole value ("0.2", "5", "10⁻⁴").
const SUPERSCRIPT = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷",
  8: "⁸", 9: "⁹" };
const power = (d) => `10${String(d).replace(/./g, (c) => SUPERSCRIPT[c] ?? c)}`;
export function logTicks(low, high) {
  const values = [];
  const texts = [];
  const span = high - low;
  const step = span <= 2 ? 1 : Math.ceil(span / 6);
  for (let d = low; d <= high; d += step) {
    for (const m of span <= 2 ? [1, 2, 5] : [1]) {
      const value = m * 10 ** d;
      values.push(value);
      texts.push(d >= -3 && d <= 3 ? String(Number(value.toPrecision(3))) : m === 1 ? power(d)
        : `${m}·${power(d)}`);
    }
  }
  return { values, texts };
}

function updateLogTicks(force = false) {
  for (const name of ["loss", "grad_norm"]) {
    const div = divs[name];
    if (!div?.data) continue;
    const ys = div.data.flatMap((trace) => trace.y ?? []).filter((v) => v > 0 && Number.isFinite(v));
    if (!ys.length) continue;
    const low = Math.floor(Math.log10(Math.min(...ys)));
    const high = Math.ceil(Math.log10(Math.max(...ys)));
    const key = `${low}:${high}`;
    if (!force && div.gflTicks === key) continue;
    div.gflTicks = key;
    const { values, texts } = logTicks(low, high);
    window.Plotly.relayout(div, { "yaxis.tickmode": "array", "yaxis.tickvals": values,
                                  "yaxis.ticktext": texts });
  }
}

smoothingSelect.addEventListener("change", redraw);
rowScaleBox.addEventListener("change", redraw);
onPresentToggle(() => { if (meta) redraw(); else drawPlaceholders(); });

// Appends every step that arrived since the last frame: one extendTraces per plot.
function flush() {
  if (!pending.length || !divs.cells) return;
  const batch = pending;
  pending = [];
  const cells = divs.cells;
  const lossX = cells.map(() => []), lossY = cells.map(() => []);
  const accY = cells.map(() => []);
  const gradX = [], gradY = [];
  cells.forEach(() => { gradX.push([], []); gradY.push([], []); });
  const rows = Object.fromEntries(cells.map((c) => [c, { z: [], y: [] }]));
  let latest = null;
  for (const step of batch) {
    const k = cells.indexOf(step.cell);
    const run = store[step.cell];
    run.steps.push(step.step); run.loss.push(step.loss);
    run.grad.push(step.grad_norm); run.gradClipped.push(step.grad_norm_clipped);
    run.rows.push(step.grad_norms); run.rowSteps.push(step.step);
    lossX[k].push(step.step); lossY[k].push(run.smooth.loss(step.loss));
    if ("accuracy" in step) {
      run.accuracy.push(step.accuracy);
      accY[k].push(run.smooth.accuracy(step.accuracy));
      const recent = run.accuracy.slice(-WINDOW);
      if (!run.learnedAt && recent.length === WINDOW
          && recent.reduce((a, b) => a + b, 0) / WINDOW >= LEARNED) {
        run.learnedAt = { step: step.step,
                          seconds: ((performance.now() - started) / 1000).toFixed(0) };
      }
    }
    gradX[2 * k].push(step.step); gradY[2 * k].push(step.grad_norm);
    gradX[2 * k + 1].push(step.step); gradY[2 * k + 1].push(step.grad_norm_clipped);
    rows[step.cell].z.push(heatRow(step.grad_norms));
    rows[step.cell].y.push(step.step);
    latest = step;
  }
  const indices = cells.map((_, k) => k);
  Plotly.extendTraces(divs.loss, { x: lossX, y: lossY }, indices);
  if (!document.getElementById("accuracy-block").hidden) {
    Plotly.extendTraces(divs.accuracy, { x: lossX, y: accY }, indices);
  }
  Plotly.extendTraces(divs.grad_norm, { x: gradX, y: gradY }, gradX.map((_, k) => k));
  for (const cell of cells) {
    if (rows[cell].z.length) {
      Plotly.extendTraces(divs[`heatmap_${cell}`], { z: [rows[cell].z], y: [rows[cell].y] }, [0]);
    }
  }
  showModelStatus();
  updateLogTicks();
  if (latest) {
    const acc = "accuracy" in latest ? `, accuracy ${(100 * latest.accuracy).toFixed(0)}%` : "";
    statusLine.textContent = `Step ${latest.step}: ${latest.cell} loss ${latest.loss.toFixed(3)}${acc}`;
  }
}

// ---- downloads: the curves as drawn so far --------------------------------------------------

// The raw values (not the smoothed curves), with the settings and seed of the run.
function rawFigures() {
  if (!meta) return {};
  const cells = meta.cells;
  const figures = structuredClone(meta.figures);
  figures.loss.data.forEach((t, k) => { t.x = store[cells[k]].steps; t.y = store[cells[k]].loss; });
  figures.accuracy?.data.forEach((t, k) => {
    t.x = store[cells[k]].steps; t.y = store[cells[k]].accuracy;
  });
  figures.grad_norm.data.forEach((t, k) => {
    const run = store[cells[Math.floor(k / 2)]];
    t.x = run.steps; t.y = k % 2 ? run.gradClipped : run.grad;
  });
  for (const cell of cells) {
    const t = figures[`heatmap_${cell}`].data[0];
    t.z = store[cell].rows.map((row) => row.map((v) => (v > 0 ? Math.log10(v) : null)));
    t.y = store[cell].rowSteps;
  }
  return figures;
}

function downloadFigure(name, format) {
  saveFigure({ config: meta?.config ?? state, figures: rawFigures() }, name, format);
}

addDownloadButtons(downloadFigure);
wireViewDownload(document.getElementById("download-view"), () => {
  const figures = rawFigures();
  return Object.keys(figures).length && { config: meta?.config ?? state, figures,
    caption: `${statusLine.textContent} ${modelStatus.textContent} Starting gate biases: `
      + `${meta?.biases ?? biasSentence(state)}.` };
});

// Before the first run: empty frames, so the page shows where the curves will appear.
function drawPlaceholders() {
  const frame = (title, yTitle, range) => ({
    data: [{ type: "scatter", x: [], y: [], mode: "lines" }],
    layout: { title: { text: title, x: 0.01, xanchor: "left", font: { size: 15 } }, height: 340,
      xaxis: { title: { text: "training step" }, range: [0, state.steps] },
      yaxis: { title: { text: yTitle }, range }, margin: { l: 64, r: 20, t: 44, b: 48 },
      font: { size: 13 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#FFFFFF",
      annotations: [{ text: "Press “Start training” to fill this plot", xref: "paper", yref: "paper",
        x: 0.5, y: 0.5, showarrow: false, font: { size: 15, color: "#444444" } }] },
  });
  applyFigure(document.getElementById("fig-accuracy"), frame("Accuracy at the answer step", "accuracy", [0, 1.02]));
  applyFigure(document.getElementById("fig-loss"), frame("Training loss", "loss", [0, 1]));
}

fillControls(form, state);
syncCells();
showBiases(biasSentence(state));
form.addEventListener("input", onControl);
form.addEventListener("change", onControl);
startButton.addEventListener("click", start);
stopButton.addEventListener("click", () => stop("Stopped."));
window.addEventListener("beforeunload", () => stop());

// ---- the trained models, as .safetensors (kept on the server for 15 minutes) ------------------

function showTrainedDownloads(downloads) {
  document.getElementById("trained-models")?.remove();
  const names = Object.keys(downloads);
  if (!names.length) return;
  const box = Object.assign(document.createElement("p"), { id: "trained-models" });
  box.append("Download the trained weights (.safetensors, PyTorch state_dict keys): ");
  names.forEach((cell, index) => {
    const link = Object.assign(document.createElement("a"), {
      href: downloads[cell], textContent: cell.toUpperCase() });
    link.setAttribute("download", `trained-${cell}.safetensors`);
    box.append(index ? " · " : "", link);
  });
  box.append(" (kept 15 minutes; upload one at ", Object.assign(document.createElement("a"),
    { href: "/models", textContent: "Your model" }), " for its health report).");
  // Under the main plot, not above it: on a projector the paragraph pushed the plot off screen.
  document.getElementById("accuracy-block").after(box);
}

drawPlaceholders();
