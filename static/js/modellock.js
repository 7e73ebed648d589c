// `?model=<id>` on a simulation page: the uploaded model's weights replace the seeded ones (the
// server does that). Here the page says so, shows the fields the model fixes with its values and
// locks them, and, when the server no longer holds the model, says so and offers to upload it
// again. Every page script imports this module with one line.

const SIMULATION_PAGES = ["/explore", "/bptt", "/cells", "/compare", "/chaos"];
const id = SIMULATION_PAGES.includes(window.location.pathname)
  ? new URLSearchParams(window.location.search).get("model") : null;

// The API query of a page: the model id is added to every simulation request.
export function modelId() { return id; }

function banner(kind) {
  const box = document.createElement("div");
  box.id = "model-banner";
  box.className = kind === "error" ? "error-box" : "model-banner";
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  const main = document.querySelector("main h1");
  if (main) main.after(box); else document.querySelector("main")?.prepend(box);
  return box;
}

function link(href, text) {
  return Object.assign(document.createElement("a"), { href, textContent: text });
}

function lock(model) {
  const controls = document.getElementById("controls");
  if (!controls) return;
  for (const [name, value] of Object.entries(model.fixed)) {
    const element = controls.querySelector(`[data-param="${name}"]`);
    if (!element) continue;
    if (element.dataset.lockedBy !== "model" && String(element.value) !== String(value)) {
      element.value = String(value);
      // the page's own handler updates its state and the URL (the server already uses the value)
      element.dispatchEvent(new Event("input", { bubbles: true }));
    }
    element.disabled = true;
    element.dataset.lockedBy = "model";
    element.title = "fixed by the uploaded model";
  }
  for (const name of model.ignored) {
    const element = controls.querySelector(`[data-param="${name}"]`);
    if (!element) continue;
    element.disabled = true;
    element.dataset.lockedBy = "model";
    element.title = "not used: the uploaded model's weights are given";
  }
}

if (id) {
  fetch(`/api/models/${encodeURIComponent(id)}`).then(async (response) => {
    if (response.status === 404 || response.status === 422) {
      const box = banner("error");
      box.append(`This link's model (${id.slice(0, 12)}…) is no longer on this server: it was ` +
        "evicted to make room, or never uploaded here. ", link("/models", "Upload the file again"),
        " (its id is the SHA-256 of the file, so this link will then work as before).");
      return;
    }
    const model = await response.json();
    const box = banner("info");
    const sizes = `${model.num_layers} layer${model.num_layers === 1 ? "" : "s"}, ` +
      `H = ${model.hidden_size}, D = ${model.input_size}`;
    box.append(`Your uploaded ${model.cell.toUpperCase()} (${sizes}) replaces the seeded ` +
      `network${model.inputs_shape ? ", with its own inputs" : ""}. `);
    box.append(model.output_size ? `Its read-out head (${model.output_size} outputs) computes the loss. `
      : "It has no read-out: the loss reads the top layer through a fixed seeded read-out (the " +
        "Jacobians ‖∂h_T/∂hₜ‖ do not depend on it). ");
    if (model.cell === "rnn") box.append("The nonlinearity is not stored in the file: tanh unless you choose another. ");
    box.append("Locked fields are the model's. ", link(`/models/${id}`, "Health report"), " · ",
      link(window.location.pathname, "back to the seeded network"));
    lock(model);
    // the page re-enables fields by cell after each change: lock them again once it has
    document.getElementById("controls")?.addEventListener("input", () => setTimeout(() => lock(model), 0));
    for (const warning of model.warnings) box.append(document.createElement("br"), `⚠ ${warning}`);
  }).catch(() => {});
}
