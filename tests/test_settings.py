"""Settings come from GFL_ variables, are injected where used, and a bad one stops the server
at startup with one line that names it and its range."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from gradient_flow_lab.app.main import app
from gradient_flow_lab.app.settings import Settings, get_settings
from tests.strict_json import sse_events

COMMAND = str(Path(sys.executable).parent / "gradient-flow-lab")


def run_command(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([COMMAND, *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env={**os.environ, **env}, check=False)


def test_defaults_and_environment(monkeypatch):
    for name in ("GFL_HOST", "GFL_PORT", "GFL_MAX_TRAINING", "GFL_MAX_TRAINING_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    assert (defaults.host, defaults.port, defaults.max_training_seconds) == ("127.0.0.1", 8000,
                                                                             300.0)
    assert defaults.max_training == max(1, os.cpu_count() or 1)
    monkeypatch.setenv("GFL_HOST", "0.0.0.0")
    monkeypatch.setenv("GFL_PORT", "9000")
    monkeypatch.setenv("GFL_MAX_TRAINING", "3")
    monkeypatch.setenv("GFL_MAX_TRAINING_SECONDS", "2.5")
    assert Settings() == Settings(host="0.0.0.0", port=9000, max_training=3,
                                  max_training_seconds=2.5)


@pytest.mark.parametrize("variable,value,allowed", [
    ("GFL_MAX_TRAINING", "0", "an integer from 1 to 1024"),
    ("GFL_MAX_TRAINING", "-1", "an integer from 1 to 1024"),
    ("GFL_MAX_TRAINING", "abc", "an integer from 1 to 1024"),
    ("GFL_MAX_TRAINING_SECONDS", "nan", "a number above 0 and at most 86400"),
    ("GFL_MAX_TRAINING_SECONDS", "0", "a number above 0 and at most 86400"),
    ("GFL_MAX_TRAINING_SECONDS", "-5", "a number above 0 and at most 86400"),
    ("GFL_PORT", "99999", "an integer from 1 to 65535"),
])
def test_a_bad_variable_stops_the_command_with_one_line(variable, value, allowed):
    result = run_command("--port", "1", **{variable: value})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"gradient-flow-lab: {variable} must be {allowed} (got {value!r})"]
    assert "running at" not in result.stdout, "the server must not start"


def test_a_host_that_cannot_be_listened_on_is_one_line_and_no_banner():
    result = run_command("--port", "1", GFL_HOST="999.1.1.1")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("gradient-flow-lab: cannot listen on host '999.1.1.1'")
    assert "running at" not in result.stdout


def test_the_banner_waits_for_the_port_a_taken_port_prints_none():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_command("--port", str(taken.getsockname()[1]))
    assert result.returncode != 0
    assert "address already in use" in result.stderr
    assert "running at" not in result.stdout


def test_version_comes_from_the_package_metadata():
    result = run_command("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"gradient-flow-lab {version('gradient-flow-lab')}"
    assert app.version == version("gradient-flow-lab")


def test_a_bad_variable_stops_the_app_at_startup_under_plain_uvicorn_too(monkeypatch):
    monkeypatch.setenv("GFL_MAX_TRAINING_SECONDS", "inf")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValidationError, match="max_training_seconds"), TestClient(app):
            pass
    finally:
        get_settings.cache_clear()


def test_settings_are_injected_so_a_test_overrides_them_without_patching(client):
    client.app.dependency_overrides[get_settings] = lambda: Settings(max_training_seconds=0.001)
    try:
        response = client.get("/api/train/stream", params={"steps": 5000, "cells": "rnn"})
    finally:
        client.app.dependency_overrides.clear()
    events = sse_events(response.text)
    assert events[0][1]["max_seconds"] == 0.001
    assert events[-1] == ("done", events[-1][1]) and events[-1][1]["reason"] == "time limit"
