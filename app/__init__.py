"""Gradient Flow Lab web app: FastAPI routers, templates and static assets around the engine."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One version number, kept in pyproject.toml and read back from the installed metadata.
    __version__ = version("gradient-flow-lab")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
