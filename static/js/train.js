// Training lab: start a stream, extend the curves step by step, stop on demand.
// Closing the tab or pressing Stop aborts the stream's one request, and the server stops
// training. A refused request (a 422, or 503 when every training slot is busy) is known from
// that same request: nothing is sent twice, so no second run can start unseen.
import { StreamError, readStream } from "./sse.js";
import { fillControls, loadState, pageFields, readControl, showValue, toQuery,
  writeState } from "./state.js";
import { applyFigure, download, figureToCsv } from "./plots.js";
import { addDownloadButtons, drawnFigures, enableButtons, figurePayload,
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

function setUp(meta) {
  const figures = meta.figures;
  document.getElementById("accuracy-block").hidden = !figures.accuracy;
  const heatmaps = document.getElementById("heatmaps");
  heatmaps.replaceChildren();
  divs = { loss: document.getElementById("fig-loss"),
    accuracy: document.getElementById("fig-accuracy"),
    grad_norm: document.getElementById("fig-grad_norm") };
  for (const cell of meta.cells) {
    const div = document.createElement("div");
    div.id = `fig-heatmap_${cell}`;
    div.className = "figure";
    const holder = Object.assign(document.createElement("div"), { className: "figure-downloads" });
    holder.dataset.figure = `heatmap_${cell}`;
    heatmaps.append(div, holder);
    divs[`heatmap_${cell}`] = div;
  }
  for (const [name, figure] of Object.entries(figures)) applyFigure(divs[name], figure);
  addDownloadButtons(downloadFigure);
  enableButtons(".figure-downloads button, #download-view");
  divs.cells = meta.cells;
  statusLine.textContent = `Training ${meta.cells.join(", ")} on ${meta.config.task.replace("_", " ")}`
    + ` (sequence length ${meta.seq_len})…`;
}

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
    lossX[k].push(step.step); lossY[k].push(step.loss);
    if ("accuracy" in step) accY[k].push(step.accuracy);
    gradX[2 * k].push(step.step); gradY[2 * k].push(step.grad_norm);
    gradX[2 * k + 1].push(step.step); gradY[2 * k + 1].push(step.grad_norm_clipped);
    rows[step.cell].z.push(step.grad_norms.map((v) => (v > 0 ? Math.log10(v) : null)));
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
  if (latest) {
    const acc = "accuracy" in latest ? `, accuracy ${(100 * latest.accuracy).toFixed(0)}%` : "";
    statusLine.textContent = `Step ${latest.step}: ${latest.cell} loss ${latest.loss.toFixed(3)}${acc}`;
  }
}

// ---- downloads: the curves as drawn so far --------------------------------------------------

function downloadFigure(name, format) {
  const figures = drawnFigures();
  if (!figures[name]) return;
  if (format === "CSV") download(`train-${name}.csv`, figureToCsv(figures[name]), "text/csv");
  else download(`train-${name}.json`, figurePayload({ config: state, figures }, name),
    "application/json");
}

addDownloadButtons(downloadFigure);
wireViewDownload(document.getElementById("download-view"), () => {
  const figures = drawnFigures();
  return Object.keys(figures).length && { config: state, figures,
    caption: statusLine.textContent };
}, "training-lab-view.html");

fillControls(form, state);
syncCells();
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
  statusLine.after(box);
}
