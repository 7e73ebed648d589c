// The page's whole state lives in the query string. One declarative table per page (name ->
// {type, default, ...}) drives both reading the URL and writing it, so a copied link reproduces
// the exact view, seed included. Controls are any element with `data-param="<name>"`.
//
// The table is the server's: the page's field specs (app/fieldspecs.py, read off the pydantic
// models) sit in a JSON block, so no bound or default is written in this code.

// The page's field specs, {name: {name, type, default, min, max, step, choices, ...}}, in URL
// order, from the <script type="application/json" id="field-specs"> block.
export function pageFields(root = document) {
  const block = root.getElementById("field-specs");
  if (!block) throw new Error("this page has no #field-specs block");
  return JSON.parse(block.textContent);
}

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

// Writes every field of the state, defaults included, so a copied link means the same view
// even after a default changes; unrelated parameters such as `present` are kept.
export function writeState(table, state) {
  const url = new URL(window.location.href);
  for (const [name, spec] of Object.entries(table)) {
    const value = state[name];
    // null is an optional field left unset (e.g. `model`): absent from the link, as from the query
    if (value === undefined || value === null) url.searchParams.delete(name);
    else url.searchParams.set(name, spec.type === "bool" ? (value ? "1" : "0") : String(value));
  }
  window.history.replaceState(window.history.state, "", url);
}

// The state the address bar asks for (a field it leaves out takes the spec's default, so old
// links keep working), written straight back in full.
export function loadState(table) {
  const state = readState(table);
  writeState(table, state);
  return state;
}

// The API query: every field, defaults included, so the server sees exactly the page's state.
export function toQuery(table, state) {
  const query = new URLSearchParams();
  for (const name of Object.keys(table)) {
    if (table[name].api === false) continue;
    const value = state[name];
    if (value === undefined || value === null) continue;  // an optional field left unset
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
