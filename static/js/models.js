// /models: uploads a model (and optional inputs) with fetch, shows the server's message on a
// refusal, and opens the health report on success. /models/{id}: draws the report's figures
// from the JSON the page carries (no second request).

// (not plots.js: it needs Plotly at load, which the upload page does not load)
const PLOT_CONFIG = { displaylogo: false, responsive: true };

const form = document.getElementById("upload-form");
if (form) {
  const status = document.getElementById("upload-status");
  const errorBox = document.getElementById("upload-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const nonlinearity = data.get("nonlinearity");
    data.delete("nonlinearity");
    if (!data.get("inputs")?.size) data.delete("inputs");
    errorBox.hidden = true;
    status.textContent = "Uploading and checking the file…";
    form.querySelector("button[type=submit]").disabled = true;
    try {
      const response = await fetch("/api/models", { method: "POST", body: data });
      const body = await response.json().catch(() => ({}));
      if (response.status !== 201) {
        const detail = typeof body.detail === "string" ? body.detail
          : (body.detail ?? []).map((d) => d.msg).join("; ");
        throw new Error(detail || `the server answered HTTP ${response.status}`);
      }
      status.textContent = `Stored: a ${body.num_layers}-layer ${body.cell.toUpperCase()}, ` +
        `H = ${body.hidden_size}. Computing its health report…`;
      const query = body.cell === "rnn" && nonlinearity !== "tanh" ? `?nonlinearity=${nonlinearity}` : "";
      window.location.assign(`/models/${body.id}${query}`);
    } catch (error) {
      status.textContent = "";
      errorBox.hidden = false;
      errorBox.textContent = `The file was not stored: ${error.message}`;
      form.querySelector("button[type=submit]").disabled = false;
    }
  });
}

const island = document.getElementById("report-figures");
if (island && window.Plotly) {
  const figures = JSON.parse(island.textContent);
  for (const [name, figure] of Object.entries(figures)) {
    const element = document.getElementById(`fig-${name}`);
    if (element) window.Plotly.react(element, figure.data, figure.layout, PLOT_CONFIG);
  }
  document.body.dataset.reportDrawn = "1";
}
