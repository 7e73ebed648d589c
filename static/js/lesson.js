// Lesson mode (/lesson, /lesson/{n}): one step at a time, each with its live figure.
//
// The steps are data (templates/lesson.toml, rendered into #lesson-data and the page by the
// server). This file only shows a step, runs its page's API with the step's state, draws the
// step's figures and its one paper check, and handles the keys a presentation clicker sends.
// With ?print=1 every step is shown and drawn once, for the printed handout.

import { throttle } from "./api.js";
import { PLOT_CONFIG } from "./plots.js";
import { readStream } from "./sse.js";
import { fillControls, onControlInput, toQuery } from "./state.js";
import { onPresentToggle, showChecks, streamSimulation } from "./ui.js";

const $ = (id) => document.getElementById(id);
const DATA = JSON.parse($("lesson-data").textContent);
const root = $("lesson");
const printing = root.classList.contains("printing");
const count = DATA.steps.length;

const steps = DATA.steps.map((data, i) => {
  const section = $(`step-${i + 1}`);
  return {
    ...data,
    n: i + 1,
    state: { ...data.state },
    preset: { ...data.state }, // the step's own settings: the address holds only changes
    revealed: false,
    table: DATA.tables[data.page],
    section,
    form: section.querySelector(".step-controls"),
    status: section.querySelector(".step-status"),
    checkList: section.querySelector(".step-check"),
    link: section.querySelector(".open-link"),
    run: 0,
    result: null, // {figures, check, config} of the latest run
    pending: false, // a run has started and not finished: result may not match the state
  };
});
let current = Number(root.dataset.current);

// ---- running a step -----------------------------------------------------------------------

function setStatus(step, text, kind) {
  step.status.textContent = text;
  step.status.dataset.state = kind;
}

// Runs the step's page with its state; resolves once its figures are drawn (or it failed).
function run(step) {
  step.run += 1;
  const ticket = step.run;
  step.section.dataset.run = String(ticket);
  step.pending = true;
  setStatus(step, "computing…", "computing");
  const live = () => step.run === ticket;
  return new Promise((resolve) => {
    const fail = (message) => {
      if (live()) {
        step.pending = false;
        setStatus(step, `The server could not run this step: ${message}`, "error");
      }
      resolve();
    };
    const arrived = (result) => {
      if (!live()) { resolve(); return; }
      step.pending = false;
      step.result = result;
      show(step).then(() => {
        if (live()) {
          step.section.dataset.rendered = String(ticket);
          setStatus(step, "", "done");
        }
        resolve();
      });
    };
    if (step.page === "activations") {
      fetch(`/api/activations?${toQuery(step.table, step.state)}`)
        .then(async (response) => {
          const body = await response.json();
          if (!response.ok) { fail(`HTTP ${response.status}`); return; }
          arrived({ figures: body.figures, config: body.query,
                    check: body.checks.find((item) => item.id === step.check) });
        })
        .catch(() => fail("the server is not answering"));
      return;
    }
    streamSimulation(step.table, step.state, step.page, {
      result: (data) => arrived({ figures: data.figures, config: data.config,
                                  check: data.checks.find((item) => item.id === step.check) }),
      error: fail,
    });
  });
}

// Draws the step's figures at a size that fits beside the text, and its one check.
function show(step) {
  const { figures, check, config } = step.result;
  step.section.dataset.config = JSON.stringify(config);
  showChecks(step.checkList, check ? [check] : [{ id: step.check, status: "n/a",
    label: step.check, detail: "this run did not compute the check" }]);
  const height = figureHeight(step);
  const drawn = step.figures.map((name) => {
    const element = $(`fig-s${step.n}-${name}`);
    const figure = figures[name];
    if (!element || !figure) return Promise.resolve();
    if (printing) return drawForPrint(element, figure, step.figures.length);
    return drawFigure(element, figure, height);
  });
  if (!printing) sizePanels(step, height);
  return Promise.all(drawn);
}

// The panels of a step (figures, diagram, race) share the height below the figure area's top.
function panelCount(step) {
  return step.figures.length + (step.diagram ? 1 : 0) + (step.race ? 1 : 0);
}

function figureHeight(step) {
  const box = step.section.querySelector(".step-figures").getBoundingClientRect();
  const free = window.innerHeight - Math.max(box.top + window.scrollY, 0) - 10;
  return Math.round(Math.max(180, free / panelCount(step) - 6));
}

// The diagram and the race's plot take the same height as a figure.
function sizePanels(step, height) {
  const diagram = step.section.querySelector(".step-diagram");
  if (diagram) diagram.style.height = `${height}px`;
  const race = step.section.querySelector(".step-race");
  if (race) {
    race.style.height = `${height}px`;
    const plot = race.querySelector(".race-figure");
    if (plot.data) drawRace(step);
  }
}

// Projector mode for a lesson figure: every text at least 16 px (the plots share a 720-pixel
// screen with the text, so they grow less than elsewhere), a title wider than the plot set on
// two lines, the legend in one row above the plot, and thicker lines.
const MIN_FONT = 16;
const CHAR_WIDTH = 0.58; // a character's width in ems, on average, in the plots' sans-serif
const atLeast = (font, size) => ({ ...(font || {}), size: Math.max(size, font?.size ?? 0) });

function fitTitle(title, width) {
  const text = String(title.text ?? "");
  const plain = text.replace(/<[^>]*>/g, "");
  const room = width - 30;
  const size = 17;
  if (!width || plain.length * size * CHAR_WIDTH <= room || text.includes("<br")) {
    return { title: { ...title, font: atLeast(title.font, size) },
             lines: (text.match(/<br/g) || []).length + 1 };
  }
  const words = text.split(" ");
  let first = "";
  while (words.length && (first + " " + words[0]).replace(/<[^>]*>/g, "").length * size * CHAR_WIDTH < room) {
    first = first ? `${first} ${words.shift()}` : words.shift();
  }
  return { title: { ...title, text: `${first}<br>${words.join(" ")}`, font: atLeast(title.font, size) },
           lines: 2 };
}

export function projectorLayout(layout, data, width) {
  layout.font = atLeast(layout.font, MIN_FONT);
  let lines = 0;
  if (layout.title) {
    const fitted = fitTitle(typeof layout.title === "string" ? { text: layout.title } : layout.title, width);
    layout.title = { ...fitted.title, x: 0.01, xanchor: "left", xref: "container",
      // Plotly anchors a two-line title by its first line: moved down one line, it stays inside
      y: 1 - (28 * (fitted.lines - 1)) / (layout.height || 400), yanchor: "top", yref: "container",
      pad: { t: 4 }, automargin: true };
    lines = fitted.lines;
  }
  layout.legend = { ...(layout.legend || {}), font: atLeast(layout.legend?.font, MIN_FONT),
    orientation: "h", x: 0, xanchor: "left", y: 1, yanchor: "bottom" };
  layout.hoverlabel = { ...(layout.hoverlabel || {}), font: atLeast(layout.hoverlabel?.font, MIN_FONT) };
  const margin = layout.margin || {};
  const legend = data.filter((trace) => trace.showlegend !== false && trace.name).length > 1
    && layout.showlegend !== false;
  layout.margin = { ...margin, t: 12 + 22 * lines + (legend ? 28 : 0),
    l: Math.max(margin.l ?? 0, 60), r: Math.max(margin.r ?? 0, 16), b: Math.max(margin.b ?? 0, 50) };
  for (const key of Object.keys(layout)) {
    if (!/^[xy]axis\d*$/.test(key) || typeof layout[key] !== "object") continue;
    const axis = { ...layout[key], automargin: true, tickfont: atLeast(layout[key].tickfont, MIN_FONT) };
    if (axis.title) {
      const t = typeof axis.title === "string" ? { text: axis.title } : axis.title;
      axis.title = { ...t, font: atLeast(t.font, MIN_FONT), standoff: 6 };
    }
    // the axis's length on screen: ticks and its title are thinned or broken to fit it
    const [from, to] = axis.domain ?? [0, 1];
    const across = key.startsWith("x");
    const span = (to - from) * (across ? width - layout.margin.l - layout.margin.r
      : (layout.height || 300) - layout.margin.t - layout.margin.b);
    axis.nticks = Math.min(axis.nticks ?? 8, Math.max(across ? 3 : 2, Math.floor(span / (across ? 70 : 30))));
    if (Array.isArray(axis.tickvals) && axis.tickvals.length > 2) {
      const room = Math.max(2, Math.floor(span / (across ? 70 : 30)) + 1);
      const every = Math.ceil(axis.tickvals.length / room);
      if (every > 1) {
        const keep = axis.tickvals.map((_, i) => i % every === 0);
        axis.tickvals = axis.tickvals.filter((_, i) => keep[i]);
        if (Array.isArray(axis.ticktext)) axis.ticktext = axis.ticktext.filter((_, i) => keep[i]);
      }
    }
    if (across && axis.title?.text && !String(axis.title.text).includes("<br")
        && String(axis.title.text).length * MIN_FONT * CHAR_WIDTH > span) {
      const text = String(axis.title.text);
      const dash = text.includes(" — ");
      const cut = dash ? text.indexOf(" — ") : text.indexOf(" ", Math.floor(text.length / 2));
      const rest = text.slice(cut + (dash ? 3 : 1)).trim();
      if (cut > 0) axis.title = { ...axis.title, text: `${text.slice(0, cut).trim()}<br>${rest}` };
    }
    layout[key] = axis;
  }
  if (Array.isArray(layout.annotations)) {
    layout.annotations = layout.annotations.map((note) => ({ ...note, font: atLeast(note.font, MIN_FONT) }));
  }
  return data.map((trace) => {
    const out = { ...trace };
    if (trace.line && trace.mode !== "markers") {
      out.line = { ...trace.line, width: Math.max(3.5, (trace.line.width ?? 2) * 1.6) };
    }
    if (trace.colorbar) {
      const bar = trace.colorbar;
      const barTitle = typeof bar.title === "string" ? { text: bar.title } : bar.title;
      out.colorbar = { ...bar, tickfont: atLeast(bar.tickfont, MIN_FONT),
        ...(barTitle ? { title: { ...barTitle, font: atLeast(barTitle.font, MIN_FONT) } } : {}) };
    }
    if (trace.textfont || trace.texttemplate) out.textfont = atLeast(trace.textfont, MIN_FONT);
    return out;
  });
}

// Draws a figure at `height` with Plotly.react.
function drawFigure(element, figure, height) {
  const layout = { ...figure.layout, height };
  let data = figure.data;
  if (document.body.classList.contains("present")) {
    data = projectorLayout(layout, data, element.clientWidth);
  }
  element.style.height = `${height}px`;
  return window.Plotly.react(element, data, layout, element.data ? undefined : PLOT_CONFIG);
}

// A static drawing at a fixed size for the printed page (A4 landscape).
function drawForPrint(element, figure, figureCount) {
  const layout = { ...figure.layout, width: 600, height: figureCount === 1 ? 470 : 260 };
  element.style.height = `${layout.height}px`;
  return window.Plotly.newPlot(element, figure.data, layout,
    { ...PLOT_CONFIG, staticPlot: true, responsive: false });
}

// ---- the step's controls and its "open in ..." link ---------------------------------------

function updateLink(step) {
  if (!step.link_follows) return;
  const query = new URLSearchParams(Object.entries(step.state).map(([k, v]) => [k, String(v)]));
  step.link.href = `/${step.page}?${query}`;
}

for (const step of steps) {
  const rerun = throttle(() => run(step), 80);
  onControlInput(step.form, step.table, (name, value) => {
    step.state[name] = value;
    updateLink(step);
    writeAddress(step, "replace");
    rerun();
  });
}

// ---- the step's state in the address ------------------------------------------------------
// /lesson/N?weight_scale=1.2&answer=1: the controls the class moved (those that differ from the
// step's preset) and whether the answer is shown, so a reload or a copied link keeps them. Any
// other parameter (present, notes) is left as it is.

const OWNED = new Set(["answer", ...steps.flatMap((step) => step.controls)]);

function changedControls(step) {
  return step.controls.filter((name) => String(step.state[name]) !== String(step.preset[name]));
}

function stepUrl(step) {
  const url = new URL(window.location.href);
  url.pathname = `/lesson/${step.n}`;
  for (const name of OWNED) url.searchParams.delete(name);
  const query = toQuery(step.table, step.state);
  for (const name of changedControls(step)) url.searchParams.set(name, query.get(name));
  if (step.revealed) url.searchParams.set("answer", "1");
  return url;
}

function writeAddress(step, history) {
  if (printing || step.n !== current) return;
  if (history === "push") window.history.pushState({ step: step.n }, "", stepUrl(step));
  else if (history === "replace") window.history.replaceState({ step: step.n }, "", stepUrl(step));
}

// The address's values for a step's controls, each parsed and bounded as its field allows
// (a value outside its range or choices is ignored, as the other pages do).
function readAddress(step) {
  const query = new URLSearchParams(window.location.search);
  for (const name of step.controls) {
    const raw = query.get(name);
    const spec = step.table[name];
    if (raw === null || !spec) continue;
    let value = raw;
    if (spec.type === "int" || spec.type === "float") {
      value = spec.type === "int" ? Number.parseInt(raw, 10) : Number.parseFloat(raw);
      if (!Number.isFinite(value)) continue;
      if ((spec.min !== undefined && spec.min !== null && value < spec.min)
          || (spec.max !== undefined && spec.max !== null && value > spec.max)) continue;
    } else if (spec.choices && !spec.choices.includes(raw)) continue;
    step.state[name] = value;
  }
  updateLink(step);
  return query.get("answer") === "1";
}

// The controls live in the page only while their step is shown (their ids are shared).
function mountControls(step) {
  const template = step.section.querySelector(".step-controls-template");
  step.form.replaceChildren(template.content.cloneNode(true));
  fillControls(step.form, step.state);
}

// ---- the training race (a step with `race`) -----------------------------------------------
// Start streams /api/train/stream with the step's race settings (the training lab's own API):
// one accuracy line per network, drawn as the steps arrive, and when the run ends a sentence
// made from its last numbers.

const CELL_NAMES = { rnn: "plain RNN", lstm: "LSTM", gru: "GRU" };
const CELL_COLOURS = { rnn: "#d55e00", lstm: "#0072b2", gru: "#009e73" };
const RACE_SMOOTH = 20; // accuracy averaged over the last 20 steps, as the lab's curves are

function raceFigure(step) {
  const race = step.raceRun;
  const data = race.cells.map((cell) => ({
    type: "scatter", mode: "lines", name: CELL_NAMES[cell] ?? cell,
    x: race.steps[cell], y: race.accuracy[cell].map((v) => 100 * v),
    line: { color: CELL_COLOURS[cell], width: 2.5 } }));
  data.push({ type: "scatter", mode: "lines", name: "chance", x: [0, step.race.steps],
    y: [100 * race.chance, 100 * race.chance], line: { color: "#555", dash: "dot", width: 1.5 } });
  const layout = {
    title: { text: `Accuracy while training (lag ${step.race.lag})` },
    xaxis: { title: { text: "training step" }, range: [0, step.race.steps] },
    yaxis: { title: { text: "accuracy (%)" }, range: [0, 105] },
    margin: { l: 60, r: 16, t: 50, b: 50 }, showlegend: true, uirevision: "race",
  };
  return { data, layout };
}

function drawRace(step) {
  const element = step.section.querySelector(".race-figure");
  const box = step.section.querySelector(".step-race");
  const bar = box.querySelector(".race-bar").offsetHeight + box.querySelector(".race-result").offsetHeight;
  const height = Math.max(160, box.clientHeight - bar - 8);
  return drawFigure(element, raceFigure(step), height);
}

function smoothed(values) {
  const tail = values.slice(-RACE_SMOOTH);
  return tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length);
}

function raceSentence(step, reason) {
  const race = step.raceRun;
  const finals = race.cells.map((cell) => [cell, smoothed(race.accuracy[cell]),
    race.steps[cell].at(-1) ?? 0]);
  const chance = race.chance;
  const parts = finals.map(([cell, acc, last]) =>
    `${CELL_NAMES[cell] ?? cell} ${Math.round(100 * acc)}%` + (last < step.race.steps ? ` (stopped at step ${last})` : ""));
  const learned = finals.filter(([, acc]) => acc >= 0.95).map(([cell]) => CELL_NAMES[cell] ?? cell);
  const near = finals.filter(([, acc]) => acc < chance + 0.1).map(([cell]) => CELL_NAMES[cell] ?? cell);
  const first = race.cells.map((cell) => [cell, race.learnedAt[cell]])
    .filter(([, at]) => at !== undefined).sort((a, b) => a[1] - b[1])[0];
  let text = `After ${Math.max(...finals.map(([, , last]) => last))} steps${reason === "finished" ? "" : ` (${reason})`}, ` +
    `accuracy over the last ${RACE_SMOOTH} steps: ${parts.join(", ")}; chance is ${Math.round(100 * chance)}%. `;
  text += learned.length ? `Learned the task (95% or more): ${learned.join(" and ")}` +
    (first ? `, the ${CELL_NAMES[first[0]] ?? first[0]} first (step ${first[1]}). ` : ". ")
    : "No network reached 95%. ";
  if (near.length) text += `Within 10 points of chance: ${near.join(" and ")}.`;
  return text.trim();
}

function startRace(step) {
  const box = step.section.querySelector(".step-race");
  const status = box.querySelector(".race-status");
  const result = box.querySelector(".race-result");
  const button = box.querySelector(".race-start");
  step.raceAbort?.abort();
  const abort = new AbortController();
  step.raceAbort = abort;
  button.disabled = true;
  result.textContent = "";
  box.dataset.state = "running";
  status.textContent = "starting…";
  const query = toQuery(DATA.tables.train, step.race);
  let redraw = null;
  const schedule = () => { redraw ??= requestAnimationFrame(() => { redraw = null; drawRace(step); }); };
  readStream(`/api/train/stream?${query}`, (name, raw) => {
    const data = JSON.parse(raw);
    if (name === "meta") {
      step.raceRun = { cells: data.cells, chance: data.chance, steps: {}, accuracy: {}, learnedAt: {} };
      for (const cell of data.cells) { step.raceRun.steps[cell] = []; step.raceRun.accuracy[cell] = []; }
      drawRace(step);
    } else if (name === "step" && step.raceRun) {
      const race = step.raceRun;
      race.steps[data.cell].push(data.step);
      race.accuracy[data.cell].push(data.accuracy ?? 0);
      if (race.learnedAt[data.cell] === undefined && race.accuracy[data.cell].length >= 10
          && smoothed(race.accuracy[data.cell].slice(-10)) >= 0.95) race.learnedAt[data.cell] = data.step;
      status.textContent = `training… step ${data.step} of ${step.race.steps}`;
      schedule();
    } else if (name === "diverged") {
      status.textContent = data.message;
    } else if (name === "done") {
      drawRace(step);
      status.textContent = "done";
      result.textContent = raceSentence(step, data.reason ?? "finished");
      box.dataset.state = "done";
    } else if (name === "error") {
      status.textContent = `The race stopped: ${data.message}`;
      box.dataset.state = "error";
    }
  }, { signal: abort.signal }).catch((error) => {
    if (error.name === "AbortError") return;
    status.textContent = `The race could not run: ${error.message}`;
    box.dataset.state = "error";
  }).finally(() => { if (step.raceAbort === abort) button.disabled = false; });
}

for (const step of steps) {
  const button = step.section.querySelector(".race-start");
  if (button) button.addEventListener("click", () => startRace(step));
}

// ---- moving between steps -----------------------------------------------------------------

function showStep(n, history = "push") {
  const target = Math.min(Math.max(1, n), count);
  const before = steps[current - 1];
  if (target !== current) {
    before.form.replaceChildren();
    before.section.hidden = true;
  }
  current = target;
  root.dataset.current = String(current);
  const step = steps[current - 1];
  step.section.hidden = false;
  if (!step.form.children.length) mountControls(step);
  $("lesson-index").textContent = String(current);
  $("lesson-prev").disabled = current === 1;
  $("lesson-next").disabled = current === count;
  document.title = `${current}. ${step.section.querySelector("h1").textContent
    .replace(/^\s*\d+\.\s*/, "")} · Lesson · Gradient Flow Lab`;
  writeAddress(step, history);
  // A run cut short when the previous step's stream was replaced (latest wins) runs again.
  if (step.result && !step.pending) show(step);
  else run(step);
}

function setRevealed(step, shown) {
  const answer = step.section.querySelector(".step-answer");
  const button = step.section.querySelector(".reveal-button");
  step.revealed = shown;
  answer.hidden = !shown;
  button.setAttribute("aria-expanded", String(shown));
  button.textContent = shown ? "Hide the answer (R)" : "Reveal the answer (R)";
}

function reveal(step = steps[current - 1]) {
  setRevealed(step, !step.revealed);
  writeAddress(step, "replace");
}

for (const step of steps) {
  step.section.querySelector(".reveal-button").addEventListener("click", () => reveal(step));
}
$("lesson-prev").addEventListener("click", () => showStep(current - 1));
$("lesson-next").addEventListener("click", () => showStep(current + 1));
window.addEventListener("popstate", () => {
  const match = window.location.pathname.match(/^\/lesson\/(\d+)$/);
  const step = steps[Math.min(Math.max(1, match ? Number(match[1]) : 1), count) - 1];
  const before = JSON.stringify(step.state);
  setRevealed(step, readAddress(step));
  if (step.form.children.length) fillControls(step.form, step.state);
  if (JSON.stringify(step.state) !== before) step.result = null;
  showStep(step.n, "none");
});

// Keys, read on the document in the capture phase so that no focused element swallows them.
// PageUp/PageDown (what clickers send), Home and End always move between steps. Left/Right
// move between steps too, except in a text or number box (where they move the caret). On a
// focused range slider we take Left/Right for the steps and leave it Up/Down (and the mouse):
// blurring the slider after each change would have needed one extra key press after every
// move, and a clicker's arrow must never be lost to a slider that happens to hold focus.
const TYPING = "input[type=number], input[type=text], input:not([type]), textarea, [contenteditable]";
const ACTIVATES_ON_SPACE = "button, a[href], select, summary, input";

document.addEventListener("keydown", (event) => {
  if (printing || event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target instanceof Element ? event.target : document.body;
  const typing = target.matches(TYPING);
  switch (event.key) {
    case "PageDown": showStep(current + 1); break;
    case "PageUp": showStep(current - 1); break;
    case "Home": showStep(1); break;
    case "End": showStep(count); break;
    case "ArrowRight": if (typing) return; showStep(current + 1); break;
    case "ArrowLeft": if (typing) return; showStep(current - 1); break;
    case "r": case "R": if (typing) return; reveal(); break;
    case " ": if (typing || target.matches(ACTIVATES_ON_SPACE)) return; reveal(); break;
    default: return;
  }
  event.preventDefault();
  event.stopPropagation();
}, { capture: true });

// ---- projector mode and the window's size -------------------------------------------------

const redraw = throttle(() => { const step = steps[current - 1]; if (step.result) show(step); }, 150);
onPresentToggle(redraw);
window.addEventListener("resize", () => { if (!printing) redraw(); });

// ---- start --------------------------------------------------------------------------------

async function printAll() {
  for (const step of steps) {
    await run(step);
  }
  root.dataset.printReady = "1";
}

if (printing) printAll();
else {
  const first = steps[current - 1];
  if (readAddress(first)) setRevealed(first, true);
  // /lesson itself stays /lesson until the first move, unless it carries a step's state
  const carries = [...new URLSearchParams(window.location.search).keys()].some((k) => OWNED.has(k));
  showStep(current, window.location.pathname === "/lesson" && !carries ? "none" : "replace");
}
