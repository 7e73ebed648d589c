// Projector mode: toggles `body.present`. The state lives in the URL (?present=1) so a shared
// link opens in the same mode; the server already renders a ?present=1 page in the mode (no
// flash of the small layout), and this module keeps it across every navigation.

const PARAM = "present";

function isOn() {
  return new URLSearchParams(window.location.search).get(PARAM) === "1";
}

// The button says which mode is on: "Projector mode: on" (aria-pressed="true") or "…: off".
function apply(on) {
  document.body.classList.toggle("present", on);
  const button = document.getElementById("present-toggle");
  if (button) {
    button.setAttribute("aria-pressed", String(on));
    button.textContent = `Projector mode: ${on ? "on" : "off"}`;
  }
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

// Paths that are files or data, not pages: a link there is a download or an API answer, and an
// extra query parameter would at best be ignored.
const NOT_PAGES = /^\/(api|static|vendor|openapi\.json|healthz)(\/|$)|\/offline$|\.[a-z0-9]{2,5}$/i;

// The page address a click on `link` goes to, if it is a navigation to a page of this site
// (so projector mode should follow); null for downloads (`download`, blob:, data:), other
// schemes (mailto:, javascript:), other hosts, files and API answers, and jumps within the page.
export function pageTarget(link, here = window.location.href) {
  if (link.hasAttribute("download")) return null;
  const raw = link.getAttribute("href") ?? "";
  if (raw.startsWith("#")) return null;
  let target;
  try {
    target = new URL(link.href, here);
  } catch {
    return null;
  }
  const current = new URL(here);
  if (target.protocol !== "http:" && target.protocol !== "https:") return null;
  if (target.origin !== current.origin || NOT_PAGES.test(target.pathname)) return null;
  if (target.pathname === current.pathname && target.search === current.search
      && target.hash) return null; // the same page, another anchor
  return target;
}

// Keep projector mode while following in-site links (a plain click, a middle click or
// Ctrl+click for a new tab, or Enter on a focused link, which also fires `click`).
function follow(event) {
  if (!document.body.classList.contains("present")) return;
  const link = event.target.closest?.("a[href]");
  if (!link) return;
  const target = pageTarget(link);
  if (!target || target.searchParams.get(PARAM) === "1") return;
  target.searchParams.set(PARAM, "1");
  link.href = target.href;
}
document.addEventListener("click", follow, true);
document.addEventListener("auxclick", follow, true);

// A form that navigates with GET (the model report's "Recompute") carries the mode as a field.
// The control panels (`form.controls`) are forms only for their semantics: Enter in a field
// must not reload the page. (Listeners here, not onsubmit="...": the CSP forbids inline
// handlers.)
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.matches?.("form.controls")) {
    event.preventDefault();
    return;
  }
  if (!document.body.classList.contains("present") || form.method !== "get") return;
  let field = form.querySelector(`input[type=hidden][name=${PARAM}]`);
  if (!field) {
    field = Object.assign(document.createElement("input"), { type: "hidden", name: PARAM });
    form.append(field);
  }
  field.value = "1";
});
