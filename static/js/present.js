// Projector mode: toggles `body.present`. The state lives in the URL (?present=1)
// so a shared link opens in the same mode.

const PARAM = "present";

function isOn() {
  return new URLSearchParams(window.location.search).get(PARAM) === "1";
}

function apply(on) {
  document.body.classList.toggle("present", on);
  const button = document.getElementById("present-toggle");
  if (button) button.setAttribute("aria-pressed", String(on));
  // Plotly plots size to their container; tell them the layout changed.
  window.dispatchEvent(new Event("resize"));
}

function setInUrl(on) {
  const url = new URL(window.location.href);
  if (on) url.searchParams.set(PARAM, "1");
  else url.searchParams.delete(PARAM);
  window.history.replaceState(window.history.state, "", url);
}

apply(isOn());

document.getElementById("present-toggle")?.addEventListener("click", () => {
  const on = !document.body.classList.contains("present");
  setInUrl(on);
  apply(on);
});

// Keep projector mode while following in-site links.
document.addEventListener("click", (event) => {
  const link = event.target.closest?.("a[href]");
  if (!link || !document.body.classList.contains("present")) return;
  const target = new URL(link.href, window.location.href);
  if (target.origin !== window.location.origin) return;
  target.searchParams.set(PARAM, "1");
  link.href = target.href;
});

// The control panels are forms only for their semantics: Enter in a field must not reload the
// page. (A listener here, not onsubmit="...", because the CSP forbids inline handlers.)
document.addEventListener("submit", (event) => event.preventDefault());
