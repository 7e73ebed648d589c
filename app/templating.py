"""The one Jinja2Templates object, built from the installed templates folder."""

from __future__ import annotations

from fastapi.templating import Jinja2Templates

from gradient_flow_lab.app.fieldspecs import options
from gradient_flow_lab.app.resources import templates_dir

# One declarative list drives the header navigation on every page.
NAV_LINKS: tuple[tuple[str, str], ...] = (
    ("/", "Home"),
    ("/explore", "Explore"),
    ("/activations", "Activations"),
    ("/bptt", "BPTT"),
    ("/cells", "Cells"),
    ("/compare", "Compare"),
    ("/chaos", "Chaos"),
    ("/train", "Train"),
    ("/lesson", "Lesson"),
    ("/models", "Your model"),
)

templates = Jinja2Templates(directory=templates_dir())
templates.env.globals["nav_links"] = NAV_LINKS
templates.env.globals["select_options"] = options
# Field specs keep the model's field order (the order of the links the pages write).
templates.env.policies["json.dumps_kwargs"] = {"sort_keys": False}
