// The page's whole state lives in the query string. One declarative table per page (name ->
// {type, default}) drives both reading the URL and writing it, so a copied link reproduces the
// exact view, seed included. Controls are any element with `data-param="<name>"`.

export function readState(table, search = window.location.search) {
  const query = new URLSearchParams(search);
  const state = {};
  for (const [name, spec] of Object.entries(table)) {
    const raw = query.get(name);
    state[name] = raw === null ? spec.default : parse(spec.type, raw, spec.default);
  }
  return state;
}

function parse(type, raw, fallback) {
  if (type === "int") { const v = Number.parseInt(raw, 10); return Number.isFinite(v) ? v : fallback; }
  if (type === "float") { const v = Number.parseFloat(raw); return Number.isFinite(v) ? v : fallback; }
  if (type === "bool") return raw === "1" || raw === "true";
  return raw;
}

// Writes every field that differs from its default (short, readable URLs), keeping unrelated
// parameters such as `present`.
export function writeState(table, state) {
  const url = new URL(window.location.href);
  for (const [name, spec] of Object.entries(table)) {
    const value = state[name];
    if (value === spec.default || value === undefined) url.searchParams.delete(name);
    else url.searchParams.set(name, spec.type === "bool" ? (value ? "1" : "0") : String(value));
  }
  window.history.replaceState(window.history.state, "", url);
}

// The API query: every field, defaults included, so the server sees exactly the page's state.
export function toQuery(table, state) {
  const query = new URLSearchParams();
  for (const name of Object.keys(table)) {
    if (table[name].api === false) continue;
    const value = state[name];
    query.set(name, table[name].type === "bool" ? (value ? "1" : "0") : String(value));
  }
  return query;
}

// Puts state values into the controls and shows each control's value in its <output>, if any.
export function fillControls(root, state) {
  for (const element of root.querySelectorAll("[data-param]")) {
    const name = element.dataset.param;
    if (!(name in state)) continue;
    if (element.type === "checkbox") element.checked = Boolean(state[name]);
    else element.value = String(state[name]);
    showValue(element);
  }
}

export function readControl(table, element) {
  const spec = table[element.dataset.param];
  if (element.type === "checkbox") return element.checked;
  return parse(spec.type, element.value, spec.default);
}

export function showValue(element) {
  const output = document.querySelector(`output[for="${element.id}"]`);
  if (output) output.textContent = element.value;
}

// Calls onChange(name, value) when a [data-param] control inside `root` changes, after showing
// its new value in its <output>.
export function onControlInput(root, table, onChange) {
  root.addEventListener("input", (event) => {
    const element = event.target.closest?.("[data-param]");
    if (!element) return;
    const value = readControl(table, element);
    showValue(element);
    onChange(element.dataset.param, value);
  });
}

// The fields and defaults of app.schemas.SimulationConfig, written once for every page
// (tests/test_presets.py checks they agree with the server's).
export const SIMULATION_FIELDS = {
  cell: { type: "str", default: "rnn" },
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

// A page's state table: the simulation fields it shows, with its own defaults where they differ
// (toQuery sends every field, so the server always sees the page's choice).
export function simulationTable(names, pageDefaults = {}) {
  return Object.fromEntries(names.map((name) => [name, name in pageDefaults
    ? { ...SIMULATION_FIELDS[name], default: pageDefaults[name] }
    : SIMULATION_FIELDS[name]]));
}
