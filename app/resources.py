"""Where the installed templates, static files and plotly.js live.

Everything is found from the installed packages' own locations, never the working
directory, so the app runs the same from a checkout, a wheel or a container.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _package_dir(package: str) -> Path:
    # Installed (regular or editable) packages are plain folders; a zipped install is not
    # supported because Jinja2 and StaticFiles need real paths.
    path = Path(str(files(package)))
    assert path.is_dir(), f"expected package {package!r} to be a folder on disk, got {path}"
    return path


def templates_dir() -> Path:
    return _package_dir("gradient_flow_lab.templates")


def static_dir() -> Path:
    return _package_dir("gradient_flow_lab.static")


def plotly_js_path() -> Path:
    """The minified plotly.js bundled with the installed `plotly` Python package."""
    path = _package_dir("plotly") / "package_data" / "plotly.min.js"
    assert path.is_file(), f"expected plotly.js at {path}; is the plotly package installed?"
    return path
