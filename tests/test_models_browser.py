"""Bring your own model in a real browser: upload a file, read its health report, open /explore
with ``model=`` and see the uploaded network there, its fields locked."""

from __future__ import annotations

import numpy as np
import pytest

from gradient_flow_lab.app import modelstore
from tests.browser import screenshot, wait_rendered

pytestmark = pytest.mark.browser
torch = pytest.importorskip("torch")


@pytest.fixture
def model_file(tmp_path):
    modelstore.set_store(modelstore.ModelStore(tmp_path / "store"))
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 24, num_layers=2)
    state = {k: v.detach().numpy() for k, v in lstm.state_dict().items()}
    state["bias_ih_l0"][24:48] = 3.0  # an open forget gate in layer 0
    path = tmp_path / "my_lstm.npz"
    np.savez(path, **state)
    yield path
    modelstore.set_store(None)


def test_upload_read_the_report_and_open_explore_with_the_model(page, model_file):
    page.goto(page.base_url + "/")
    page.click("nav a[href='/models']")
    page.set_input_files("#model-file", str(model_file))
    page.click("#upload-button")
    page.wait_for_url("**/models/*", timeout=30_000)
    page.wait_for_selector("body[data-report-drawn='1']")
    page.wait_for_selector("#fig-horizon .main-svg")
    summary = page.text_content("#model-summary")
    assert "2 layers" in summary and "hidden size 24" in summary
    assert "fixed seeded read-out" in page.text_content("main")
    assert page.locator("#carry-table tbody tr").count() == 2
    screenshot(page, "model-report")

    page.click("a[data-page='explore']")
    page.wait_for_url("**/explore?model=*")
    page.wait_for_selector("#model-banner")
    assert "LSTM" in page.text_content("#model-banner")
    page.wait_for_function("document.getElementById('ctl-cell').value === 'lstm'")
    wait_rendered(page)
    assert page.is_disabled("#ctl-hidden_size") and page.is_disabled("#ctl-cell")
    assert page.input_value("#ctl-hidden_size") == "24"
    screenshot(page, "explore-with-model")


def test_an_evicted_model_link_says_so_and_offers_an_upload(page, model_file):
    page.goto(page.base_url + "/explore?model=" + "ab" * 32)
    page.wait_for_selector("#model-banner")
    text = page.text_content("#model-banner")
    assert "no longer on this server" in text
    assert page.locator("#model-banner a[href='/models']").count() == 1
    # the browser logs the expected 404s (the model lookup and the run); nothing else
    assert all("404" in error for error in page.watch.errors), page.watch.errors
    page.watch.errors.clear()
