// Lesson mode (/lesson, /lesson/{n}): one step at a time, each with its live figure.
//
// The steps are data (templates/lesson.toml, rendered into #lesson-data and the page by the
// server). This file only shows a step, runs its page's API with the step's state, draws the
// step's figures and its one paper check, and handles the keys a presentation clicker sends.
// With ?print=1 every step is shown and drawn once, for the printed handout.

import { throttle } from "./api.js";
import { PLOT_CONFIG } from "./plots.js";
import { fillControls, onControlInput, toQuery } from "./state.js";
import { formatNumber, onPresentToggle, showChecks, streamSimulation } from "./ui.js";

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

// ---- the paper checks of the activations page ---------------------------------------------
// /api/activations returns numbers but no checks, so the two claims are judged here from its
// live summary (the other pages' checks come from the server).
const SLACK = 1e-9;
const LOCAL_CHECKS = {
  slope_ceilings: (s) => {
    const ok = Math.abs(s.sigmoid_grad_max - 0.25) < 1e-3 && Math.abs(s.tanh_grad_max - 1) < 1e-3;
    return { id: "slope_ceilings", label: "Largest slope: σ′ = 0.25, tanh′ = 1",
      status: ok ? "pass" : "fail",
      detail: `measured on the curves: max σ′ = ${formatNumber(s.sigmoid_grad_max, 4)}, ` +
        `max tanh′ = ${formatNumber(s.tanh_grad_max, 4)}` };
  },
  chain_within_ceiling: (s) => {
    const { sigmoid, tanh } = s.chains;
    const ok = sigmoid.grad_product <= sigmoid.best_case * (1 + SLACK)
      && tanh.grad_product <= tanh.best_case * (1 + SLACK);
    return { id: "chain_within_ceiling",
      label: `Slope product of ${s.depth} steps ≤ 0.25ⁿ (σ) and ≤ 1 (tanh)`,
      status: ok ? "pass" : "fail",
      detail: `σ: ${formatNumber(sigmoid.grad_product)} ≤ ${formatNumber(sigmoid.best_case)}; ` +
        `tanh: ${formatNumber(tanh.grad_product)} ≤ 1` };
  },
};

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
                    check: LOCAL_CHECKS[step.check](body.summary) });
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
  const drawn = step.figures.map((name) => {
    const element = $(`fig-s${step.n}-${name}`);
    const figure = figures[name];
    if (!element || !figure) return Promise.resolve();
    if (printing) return drawForPrint(element, figure, step.figures.length);
    return drawFigure(element, figure, figureHeight(step));
  });
  return Promise.all(drawn);
}

// The height that fills the screen below the figure area's top, shared by the step's figures.
function figureHeight(step) {
  const box = step.section.querySelector(".step-figures").getBoundingClientRect();
  const free = window.innerHeight - Math.max(box.top, 0) - 12;
  return Math.round(Math.max(180, free / step.figures.length - 8));
}

// Draws a figure at `height` with Plotly.react. Projector mode here is gentler than the other
// pages' (plots.js makes fonts 20 px and figures 1.45 times taller): a step's figures must
// share one 720-pixel-high screen with the text, so the type grows less and the height stays.
function drawFigure(element, figure, height) {
  const layout = { ...figure.layout, height };
  let data = figure.data;
  if (document.body.classList.contains("present")) {
    layout.font = { ...(layout.font || {}), size: 15 };
    if (layout.title) layout.title = { ...layout.title, font: { ...(layout.title.font || {}), size: 17 } };
    for (const axis of ["xaxis", "yaxis"]) layout[axis] = { ...(layout[axis] || {}), automargin: true };
    data = data.map((trace) => (trace.line
      ? { ...trace, line: { ...trace.line, width: Math.max(3.5, (trace.line.width ?? 2) * 1.6) } }
      : trace));
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
    rerun();
  });
}

// The controls live in the page only while their step is shown (their ids are shared).
function mountControls(step) {
  const template = step.section.querySelector(".step-controls-template");
  step.form.replaceChildren(template.content.cloneNode(true));
  fillControls(step.form, step.state);
}

// ---- moving between steps -----------------------------------------------------------------

function stepUrl(n) {
  const url = new URL(window.location.href);
  url.pathname = `/lesson/${n}`;
  return url;
}

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
  if (history === "push") window.history.pushState({ step: current }, "", stepUrl(current));
  else if (history === "replace") window.history.replaceState({ step: current }, "", stepUrl(current));
  // A run cut short when the previous step's stream was replaced (latest wins) runs again.
  if (step.result && !step.pending) show(step);
  else run(step);
}

function reveal(step = steps[current - 1]) {
  const answer = step.section.querySelector(".step-answer");
  const button = step.section.querySelector(".reveal-button");
  answer.hidden = !answer.hidden;
  button.setAttribute("aria-expanded", String(!answer.hidden));
  button.textContent = answer.hidden ? "Reveal the answer (R)" : "Hide the answer (R)";
}

for (const step of steps) {
  step.section.querySelector(".reveal-button").addEventListener("click", () => reveal(step));
}
$("lesson-prev").addEventListener("click", () => showStep(current - 1));
$("lesson-next").addEventListener("click", () => showStep(current + 1));
window.addEventListener("popstate", () => {
  const match = window.location.pathname.match(/^\/lesson\/(\d+)$/);
  showStep(match ? Number(match[1]) : 1, "none");
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
else showStep(current, window.location.pathname === "/lesson" ? "none" : "replace");
