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
    if (printing) return drawForPrint(element, figure, panelCount(step)); // a diagram is a panel too
    return drawFigure(element, figure, height);
  });
  if (!printing) sizePanels(step, height);
  return Promise.all(drawn);
}

// The panels of a step (figures, diagram, race) share the height below the figure area's top.
function panelCount(step) {
  return step.figures.length + (step.diagram ? 1 : 0) + (step.race ? 1 : 0);
}

// A diagram takes no more height than its drawing needs at the column's width (its text is
// drawn at 16 px or more there), the figures share the rest; a race and a figure share equally.
function panelHeights(step) {
  const box = step.section.querySelector(".step-figures").getBoundingClientRect();
  const free = window.innerHeight - Math.max(box.top + window.scrollY, 0) - 10;
  const svg = step.section.querySelector(".step-diagram svg");
  const view = svg?.viewBox?.baseVal;
  // One column (a phone, lesson.css's 60rem break): the page scrolls, every panel gets a
  // height of its own (at 180 px a two-panel figure's axes had no room: Plotly threw).
  if (window.matchMedia("(max-width: 60rem)").matches) {
    const width = Math.min(box.width, parseFloat(svg ? getComputedStyle(svg).maxWidth : "") || Infinity);
    return { figure: 380, diagram: view?.width ? Math.round((width * view.height) / view.width + 4) : 380 };
  }
  const share = free / panelCount(step) - 6;
  if (!svg || !view?.width || step.race || !step.figures.length) {
    return { figure: Math.round(Math.max(180, share)), diagram: Math.round(share) };
  }
  const width = Math.min(box.width, parseFloat(getComputedStyle(svg).maxWidth) || Infinity);
  const diagram = Math.round(Math.min(share, (width * view.height) / view.width + 4));
  return { figure: Math.round(Math.max(180, (free - diagram - 6) / step.figures.length - 6)), diagram };
}

function figureHeight(step) {
  return panelHeights(step).figure;
}

// The diagram takes its drawing's height, the race's plot the same height as a figure.
function sizePanels(step, height) {
  const diagram = step.section.querySelector(".step-diagram");
  if (diagram) diagram.style.height = `${panelHeights(step).diagram}px`;
  const race = step.section.querySelector(".step-race");
  if (race) {
    race.style.height = `${height}px`;
    const plot = race.querySelector(".race-figure");
    if (plot.data) drawRace(step);
  }
}

// Projector mode for a lesson figure: every text at least 16 px (the plots share a 720-pixel
// screen with the text, so they grow less than elsewhere), a title wider than the plot set on
// two lines, the legend in one row under the title, and thicker lines.
const MIN_FONT = 16;
const TITLE_SIZE = 17;
// Heights in the figure's top margin, in pixels: a one-line title (4 px pad + the line), a
// title with its subtitle (Plotly puts the subtitle 1.6 em of its size under the title's box),
// and a one-row legend.
const TITLE_BLOCK = [4, 26, 68];
const LEGEND_ROW = 30;
const PLAIN = (text) => String(text).replace(/<[^>]*>/g, "");
const atLeast = (font, size) => ({ ...(font || {}), size: Math.max(size, font?.size ?? 0) });

// The drawn width of a text in the plots' font, measured on a canvas.
const measure = document.createElement("canvas").getContext("2d");
function textWidth(text, font) {
  measure.font = `${font.size}px ${font.family || "sans-serif"}`;
  return measure.measureText(PLAIN(text)).width;
}

// A title wider than the plot is split at a word: its first line stays the title and the rest
// becomes Plotly's subtitle, which Plotly stacks under it. (A title with a <br> is set line by
// line from its anchor: anchored at its top, a two-line title started a line above the plot.)
function fitTitle(title, width, family) {
  const text = String(title.text ?? "").replace(/<br\s*\/?>/g, " ").replace(/\s+/g, " ").trim();
  const font = atLeast(title.font, TITLE_SIZE);
  const measured = { size: font.size, family: font.family || family };
  const room = width - 16;
  if (!width || textWidth(text, measured) <= room) return { title: { ...title, text, font }, lines: 1 };
  const words = text.split(" ");
  let first = words.shift();
  while (words.length && textWidth(`${first} ${words[0]}`, measured) <= room) first = `${first} ${words.shift()}`;
  return { title: { ...title, text: first, font, subtitle: { text: words.join(" "), font } }, lines: 2 };
}

// `text` broken at spaces into as few lines no wider than `room` pixels as it can be, the
// lines made as even as they can be; "a = b" stays on one line, and a text already broken is
// left as it is.
function wrapText(text, font, room) {
  if (typeof text !== "string" || text.includes("<br") || room <= 0 || textWidth(text, font) <= room) return text;
  const units = text.replace(/ = /g, "\u0000=\u0000").split(" ").map((u) => u.replace(/\u0000/g, " "));
  const greedy = (limit) => {
    const lines = [];
    for (const unit of units) {
      const last = lines.at(-1);
      if (last !== undefined && textWidth(`${last} ${unit}`, font) <= limit) lines[lines.length - 1] = `${last} ${unit}`;
      else lines.push(unit);
    }
    return lines;
  };
  const count = greedy(room).length;
  let low = Math.max(...units.map((unit) => textWidth(unit, font)));
  let high = Math.max(room, low);
  while (high - low > 2) { // the narrowest width that still needs no more lines
    const mid = (low + high) / 2;
    if (greedy(mid).length <= count) high = mid; else low = mid;
  }
  return greedy(high).join("<br>");
}

// Panels stacked in rows (the /cells figures): the gap between rows holds a 16 px row title
// (28 px), and each row title (an annotation at its row's top) moves with its row.
function stackRows(layout, plotHeight) {
  const rows = Object.keys(layout).filter((key) => /^yaxis\d*$/.test(key) && Array.isArray(layout[key].domain))
    .map((key) => [key, layout[key].domain]).sort((a, b) => b[1][1] - a[1][1]);
  if (rows.length < 2 || rows.some(([, d], i) => i && d[1] > rows[i - 1][1][0] + 1e-9)) return;
  const plot = plotHeight ?? (layout.height || 400) - layout.margin.t - layout.margin.b;
  layout.meta = { ...(layout.meta || {}), stackedRows: rows.length };
  const gap = Math.min(0.4, 28 / Math.max(plot, 1));
  const height = (1 - gap * (rows.length - 1)) / rows.length;
  const notes = Array.isArray(layout.annotations) ? layout.annotations.map((note) => ({ ...note })) : [];
  rows.forEach(([key, [, top]], i) => {
    const newTop = 1 - i * (height + gap);
    for (const note of notes) {
      if (note.yref === "paper" && note.yanchor === "bottom" && Math.abs(note.y - top) < 1e-6) note.y = newTop;
    }
    layout[key] = { ...layout[key], domain: [Math.max(0, newTop - height), newTop] };
  });
  if (notes.length) layout.annotations = notes;
}

export function projectorLayout(layout, data, width, extraTop = 0, plotHeight = null) {
  layout.font = atLeast(layout.font, MIN_FONT);
  const height = layout.height || 400;
  let lines = 0;
  if (layout.title && PLAIN(layout.title.text ?? layout.title).trim()) {
    const fitted = fitTitle(typeof layout.title === "string" ? { text: layout.title } : layout.title,
      width, layout.font.family);
    layout.title = { ...fitted.title, x: 0.01, xanchor: "left", xref: "container",
      y: 1, yanchor: "top", yref: "container", pad: { t: 4 }, automargin: false };
    lines = fitted.lines;
  }
  const listed = (trace) => trace.showlegend === true || (trace.showlegend !== false && trace.name
    && ["scatter", "scattergl", "bar", undefined].includes(trace.type));
  const legend = data.filter(listed).length > 1 && layout.showlegend !== false;
  // The legend in one row right under the title, in the container's own coordinates (the
  // figures' yref "container" with y = 1 and yanchor "bottom" had put it above the figure,
  // where nobody saw it: the /cells gradients' c and h lines had no names).
  layout.legend = { ...(layout.legend || {}), font: atLeast(layout.legend?.font, MIN_FONT),
    orientation: "h", x: 0, xanchor: "left", xref: "container",
    y: 1 - TITLE_BLOCK[lines] / height, yanchor: "top", yref: "container" };
  layout.hoverlabel = { ...(layout.hoverlabel || {}), font: atLeast(layout.hoverlabel?.font, MIN_FONT) };
  const margin = layout.margin || {};
  layout.margin = { ...margin, t: TITLE_BLOCK[lines] + (legend ? LEGEND_ROW : 0) + 8 + extraTop,
    l: Math.max(margin.l ?? 0, 60), r: Math.max(margin.r ?? 0, 16), b: Math.max(margin.b ?? 0, 50) };
  // Two panels side by side: the gap between them holds the right panel's 16 px tick labels
  // and its axis title (80 px), which otherwise ran over the left panel.
  const [left, right] = [layout.xaxis?.domain, layout.xaxis2?.domain];
  if (left && right && left[1] <= right[0] && left[0] === 0 && right[1] === 1) {
    const gap = Math.min(0.3, 80 / (width - layout.margin.l - layout.margin.r));
    layout.xaxis = { ...layout.xaxis, domain: [0, (1 - gap) / 2] };
    layout.xaxis2 = { ...layout.xaxis2, domain: [(1 + gap) / 2, 1] };
  }
  stackRows(layout, plotHeight);
  for (const key of Object.keys(layout)) {
    if (!/^[xy]axis\d*$/.test(key) || typeof layout[key] !== "object") continue;
    // labels 3 px off their axis: the lowest y label and the first x label no longer touch
    const axis = { ...layout[key], automargin: true, tickfont: atLeast(layout[key].tickfont, MIN_FONT),
      ticklabelstandoff: Math.max(3, layout[key].ticklabelstandoff ?? 0) };
    if (axis.title) {
      const t = typeof axis.title === "string" ? { text: axis.title } : axis.title;
      axis.title = { ...t, font: atLeast(t.font, MIN_FONT), standoff: 6 };
    }
    // the axis's length on screen: ticks and its title are thinned or broken to fit it
    const [from, to] = axis.domain ?? [0, 1];
    const across = key.startsWith("x");
    const span = (to - from) * (across ? width - layout.margin.l - layout.margin.r
      : plotHeight ?? (layout.height || 300) - layout.margin.t - layout.margin.b);
    axis.nticks = Math.min(axis.nticks ?? 8, Math.max(across ? 3 : 2, Math.floor(span / (across ? 70 : 30))));
    if (Array.isArray(axis.tickvals) && axis.tickvals.length > 2) {
      // two labels at least, unless the axis is too short for two (a thin stacked row): one
      const room = Math.max(!across && span < 44 ? 1 : 2, Math.floor(span / (across ? 70 : 30)) + 1);
      const every = Math.ceil(axis.tickvals.length / room);
      if (every > 1) {
        const keep = axis.tickvals.map((_, i) => i % every === 0);
        axis.tickvals = axis.tickvals.filter((_, i) => keep[i]);
        if (Array.isArray(axis.ticktext)) axis.ticktext = axis.ticktext.filter((_, i) => keep[i]);
      }
    }
    if (across && axis.title?.text && !String(axis.title.text).includes("<br")
        && textWidth(axis.title.text, { size: axis.title.font.size, family: layout.font.family }) > span) {
      const text = String(axis.title.text);
      const dash = text.includes(" — ");
      const cut = dash ? text.indexOf(" — ") : text.indexOf(" ", Math.floor(text.length / 2));
      const rest = text.slice(cut + (dash ? 3 : 1)).trim();
      if (cut > 0) axis.title = { ...axis.title, text: `${text.slice(0, cut).trim()}<br>${rest}` };
    } else if (!across && axis.title?.text) { // a y title longer than its (stacked) axis: on lines
      axis.title = { ...axis.title, text: wrapText(String(axis.title.text),
        { size: axis.title.font.size, family: layout.font.family }, span) };
    }
    layout[key] = axis;
  }
  if (Array.isArray(layout.annotations)) {
    // A note wider than its plot (at 16 px) is broken over lines that fit: a note with an arrow
    // within 70% of its panel's width, so that it can sit beside the point it names.
    const across = width - layout.margin.l - layout.margin.r;
    // Plotly widens an autoranged axis to take in a note that sticks out: an axis an arrow
    // note points in keeps the range of its data instead.
    for (const note of layout.annotations.filter((item) => item.showarrow)) {
      for (const letter of ["x", "y"]) {
        const id = String(note[`${letter}ref`] ?? "");
        if (!/^[xy]\d*$/.test(id)) continue;
        const key = id.replace(/^[xy]/, `${letter}axis`);
        const axis = layout[key] || {};
        if (axis.range || axis.type === "log" || axis.type === "category") continue;
        const values = data.filter((trace) => (trace[`${letter}axis`] ?? letter) === id)
          .flatMap((trace) => Array.from(trace[letter] ?? [])).filter(Number.isFinite);
        if (values.length) layout[key] = { ...axis, range: [Math.min(...values), Math.max(...values)], autorange: false };
      }
    }
    layout.annotations = layout.annotations.map((note) => {
      const font = atLeast(note.font, MIN_FONT);
      const axis = layout[String(note.xref ?? "").replace(/ domain$/, "").replace(/^x/, "xaxis")];
      const [from, to] = axis?.domain ?? [0, 1];
      const room = (to - from) * across * (note.showarrow ? 0.7 : 1) - 12;
      return { ...note, font, text: wrapText(note.text, { size: font.size, family: layout.font.family }, room) };
    });
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

// Draws a figure at `height` with Plotly.react. In projector mode, if the title (with its
// subtitle) or the legend (wrapped onto more rows) reaches the plot area, the figure is laid
// out again with that much more room on top (its ticks thinned for the shorter axes), once.
async function drawFigure(element, figure, height) {
  element.style.height = `${height}px`;
  const present = document.body.classList.contains("present");
  let extraTop = 0;
  let plotHeight = null; // the plot area's height as drawn, for rows stacked in it
  for (let pass = 0; pass < (present ? 2 : 1); pass += 1) {
    const layout = { ...figure.layout, height };
    const data = present
      ? projectorLayout(layout, figure.data, element.clientWidth, extraTop, plotHeight) : figure.data;
    await window.Plotly.react(element, data, layout, element.data ? undefined : PLOT_CONFIG);
    if (!present) return;
    const needed = topOverlap(element);
    const drawn = element._fullLayout._size.h - Math.max(needed, 0);
    const guessed = height - layout.margin.t - layout.margin.b;
    if (needed <= 0 && !(layout.meta?.stackedRows && Math.abs(drawn - guessed) > 4)) break;
    extraTop += Math.max(needed, 0);
    plotHeight = drawn;
  }
  await notesInside(element);
}

// How far the title block or the legend reaches into the plot area, in pixels (6 px kept free).
// A panel title set just above the top panel (an annotation) counts as part of that panel.
function topOverlap(element) {
  const size = element._fullLayout?._size;
  if (!size) return 0;
  const top = element.getBoundingClientRect().top;
  const boxes = (selector) => [...element.querySelectorAll(selector)]
    .map((node) => node.getBoundingClientRect()).filter((box) => box.height > 0);
  const bottoms = boxes(".g-gtitle, .infolayer .legend").map((box) => box.bottom - top);
  const above = boxes(".annotation").map((box) => [box.top - top, box.bottom - top])
    .filter(([from, to]) => from < size.t && to <= size.t + 2).map(([from]) => from);
  return Math.ceil(Math.max(0, ...bottoms) + 6 - Math.min(size.t, ...above));
}

// After drawing: a note that sticks out of its own panel (into the next panel, over an axis
// title, out of the figure) is moved back inside it, its arrow still on the point it names.
function notesInside(element) {
  const full = element._fullLayout;
  const notes = element.layout.annotations;
  if (!full || !Array.isArray(notes)) return undefined;
  const svg = element.querySelector(".main-svg")?.getBoundingClientRect();
  if (!svg) return undefined;
  const update = {};
  for (const group of element.querySelectorAll(".annotation")) {
    const i = Number(group.dataset.index);
    const note = notes[i];
    const text = group.querySelector(".annotation-text-g");
    if (!note || !text) continue;
    const x = full[String(note.xref ?? "paper").replace(/ domain$/, "").replace(/^x/, "xaxis")];
    const y = full[String(note.yref ?? "paper").replace(/ domain$/, "").replace(/^y/, "yaxis")];
    const left = svg.left + (x ? x._offset : full._size.l);
    const right = left + (x ? x._length : full._size.w);
    const box = text.getBoundingClientRect();
    let dx = 0;
    if (box.width <= right - left) {
      if (box.left < left) dx = left - box.left;
      else if (box.right > right) dx = right - box.right;
    }
    let dy = 0;
    if (y) { // in a panel's own coordinates: inside its height as well (panel titles sit above)
      const top = svg.top + y._offset;
      const bottom = top + y._length;
      if (box.height <= bottom - top) {
        if (box.top < top) dy = top - box.top;
        else if (box.bottom > bottom) dy = bottom - box.bottom;
      }
    }
    if (Math.abs(dx) < 0.5 && Math.abs(dy) < 0.5) continue;
    // the panel keeps its ranges (Plotly widens an autoranged axis to take in a moved note)
    for (const axis of [x, y]) {
      if (axis?.autorange) update[`${axis._name}.range`] = [...axis.range];
    }
    if (note.showarrow) {
      update[`annotations[${i}].ax`] = (note.ax ?? -10) + dx;
      update[`annotations[${i}].ay`] = (note.ay ?? -30) + dy;
    } else {
      update[`annotations[${i}].xshift`] = (note.xshift ?? 0) + dx;
      update[`annotations[${i}].yshift`] = (note.yshift ?? 0) - dy;
    }
  }
  return Object.keys(update).length ? window.Plotly.relayout(element, update) : undefined;
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
    `accuracy over the last ${RACE_SMOOTH} steps: ${parts.join(", ")}; chance is ${Number((100 * chance).toFixed(1))}%. `;
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
