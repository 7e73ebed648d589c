"""app/connections.py subclasses uvicorn's HttpToolsProtocol, which is not a public API; pyproject
bounds uvicorn above by the newest release this suite ran against. This test is the tripwire for
raising that bound: it names every hook the subclass overrides or calls, so a release that moved
one fails here with a sentence, not with a slow-client defence that silently stopped working."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest

from gradient_flow_lab.app import connections

# The methods our protocol overrides (and calls through super()), with the parameters it passes.
HOOKS = {
    "connection_made": ["transport"],
    "data_received": ["data"],
    "on_message_begin": [],
    "on_url": ["url"],
    "on_header": ["name", "value"],
    "on_headers_complete": [],
    "on_message_complete": [],
    "on_response_complete": [],
    "connection_lost": ["exc"],
    "_start_asgi_task": ["cycle", "app"],
}
# Attributes of a live protocol (and its cycle) that our code reads.
ATTRIBUTES = ("app", "cycle", "flow", "headers", "logger", "loop", "transport")


def test_uvicorn_is_within_the_tested_range():
    installed = tuple(int(part) for part in version("uvicorn").split(".")[:3])
    assert (0, 30) <= installed <= (0, 55, 0), (
        f"uvicorn {version('uvicorn')} is outside the range pyproject.toml allows")


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_overridden_hook_still_exists_with_its_parameters(name):
    base = connections.HttpToolsProtocol
    hook = getattr(base, name, None)
    assert hook is not None, (
        f"uvicorn {version('uvicorn')} no longer has HttpToolsProtocol.{name}: "
        "app/connections.py overrides it; adapt it before raising the bound in pyproject.toml")
    parameters = list(inspect.signature(hook).parameters)[1:]
    assert parameters == HOOKS[name], (
        f"HttpToolsProtocol.{name} now takes {parameters}, app/connections.py expects "
        f"{HOOKS[name]}")


def test_the_attributes_our_protocol_reads_are_set_by_uvicorn():
    source = inspect.getsource(connections.HttpToolsProtocol.__init__)
    source += inspect.getsource(connections.HttpToolsProtocol.connection_made)
    missing = [name for name in ATTRIBUTES if f"self.{name} =" not in source
               and f"self.{name}:" not in source]
    assert not missing, (
        f"uvicorn {version('uvicorn')}'s HttpToolsProtocol no longer sets {missing}, which "
        "app/connections.py reads")
    assert "response_complete" in inspect.getsource(connections.RequestResponseCycle), (
        "RequestResponseCycle.response_complete moved; app/connections.py reads it")


def test_no_import_of_uvicorn_private_modules():
    source = inspect.getsource(connections)
    assert "uvicorn._" not in source, "app/connections.py imports a private uvicorn module"
