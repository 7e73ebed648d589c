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
      window.location.assign(reportAddress(body, nonlinearity));
    } catch (error) {
      status.textContent = "";
      errorBox.hidden = false;
      errorBox.textContent = `The file was not stored: ${error.message}`;
      form.querySelector("button[type=submit]").disabled = false;
    }
  });
}

// Where a stored upload's report is: its nonlinearity when an RNN's is not tanh, and projector
// mode kept (?present=1) when the upload page was in it.
export function reportAddress(stored, nonlinearity, here = window.location.href) {
  const url = new URL(`/models/${stored.id}`, here);
  if (stored.cell === "rnn" && nonlinearity && nonlinearity !== "tanh") {
    url.searchParams.set("nonlinearity", nonlinearity);
  }
  if (new URL(here).searchParams.get("present") === "1") url.searchParams.set("present", "1");
  return `${url.pathname}${url.search}`;
}

const island = document.getElementById("report-figures");
if (island && window.Plotly) {
  const figures = JSON.parse(island.textContent);
  // plots.js (loaded only here: it needs Plotly) makes the text large in projector mode.
  const { presentLayout } = await import("./plots.js");
  const draw = () => Promise.all(Object.entries(figures).map(([name, figure]) => {
    const element = document.getElementById(`fig-${name}`);
    if (!element) return null;
    const layout = { ...figure.layout };
    let data = figure.data;
    if (document.body.classList.contains("present")) {
      data = data.map((trace) => ({ ...trace }));
      presentLayout(layout, data, element.clientWidth);
    }
    return window.Plotly.react(element, data, layout, element.data ? undefined : PLOT_CONFIG);
  }));
  await draw();
  document.body.dataset.reportDrawn = "1";
  let presenting = document.body.classList.contains("present");
  new MutationObserver(() => {
    const now = document.body.classList.contains("present");
    if (now !== presenting) { presenting = now; draw(); }
  }).observe(document.body, { attributes: true, attributeFilter: ["class"] });
  keepModelInLinks();
}

// The report's links to a simulation page (the "Edge of chaos" in its text, say) open that page
// with this model, as the links at the top do.
function keepModelInLinks() {
  const id = window.location.pathname.split("/")[2];
  const nonlinearity = new URLSearchParams(window.location.search).get("nonlinearity");
  const pages = ["/explore", "/bptt", "/cells", "/compare", "/chaos"];
  for (const link of document.querySelectorAll("#report a[href]")) {
    const url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin || !pages.includes(url.pathname)) continue;
    if (url.searchParams.has("model")) continue;
    url.searchParams.set("model", id);
    if (nonlinearity && nonlinearity !== "tanh") url.searchParams.set("nonlinearity", nonlinearity);
    link.href = `${url.pathname}${url.search}${url.hash}`;
  }
}
