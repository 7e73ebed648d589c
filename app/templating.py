"""The one Jinja2Templates object, built from the installed templates folder."""

from __future__ import annotations

from fastapi.templating import Jinja2Templates

from gradient_flow_lab.app.resources import templates_dir

# One declarative list drives the header navigation on every page.
NAV_LINKS: tuple[tuple[str, str], ...] = (
    ("/", "Home"),
    ("/explore", "Explore"),
    ("/activations", "Activations"),
    ("/bptt", "BPTT"),
    ("/cells", "Cells"),
    ("/compare", "Compare"),
    ("/train", "Training lab"),
    ("/models", "Your model"),
)

templates = Jinja2Templates(directory=templates_dir())
templates.env.globals["nav_links"] = NAV_LINKS
