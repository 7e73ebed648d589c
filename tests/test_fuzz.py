"""Schemathesis against the app's own OpenAPI document: random and boundary requests to every
endpoint must never get a 5xx, and every response must match its declared schema and type."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.helpers import UVICORN_COMMAND, running_server

pytestmark = pytest.mark.slow
EXAMPLES = 25  # per operation and phase: about 800 requests in all


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    # Short trainings so a valid random request costs at most 2 s, and more slots than the
    # fuzzer's one-at-a-time requests need (a stream winding down still holds its slot briefly;
    # the 503 itself is tested in test_hardening).
    env = {**os.environ, "GFL_MAX_TRAINING_SECONDS": "2", "GFL_MAX_TRAINING": "8"}
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    with running_server(UVICORN_COMMAND, env=env, log=log) as server:
        yield server.url


def test_no_request_the_schema_allows_or_forbids_gets_a_server_error(fuzz_server):
    binary = shutil.which("schemathesis") or shutil.which("st")
    if binary is None:
        pytest.fail("schemathesis is missing: pip install -e '.[fuzz]' (.ci/run does it)")
    result = subprocess.run(
        [binary, "run", f"{fuzz_server}/openapi.json", "--max-examples", str(EXAMPLES),
         "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
         "--request-timeout", "30", "--seed", "20261126"],
        capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"})
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert "generated" in summary and "passed" in summary
