"""Presets: every one is a valid configuration, runs through the API, and shows what its
description claims, checked with numbers."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

from gradient_flow_lab.app.presets import PRESETS, preset_url
from gradient_flow_lab.app.schemas import VIEWS, SimulationConfig

BY_SLUG = {preset["slug"]: preset for preset in PRESETS}


def run(client, slug: str) -> dict:
    preset = BY_SLUG[slug]
    response = client.post("/api/simulate", json=preset["query"], params={"view": "explore"})
    assert response.status_code == 200, response.text
    return response.json()


def ratio_first_last(document: dict) -> float:
    summary = document["summary"]
    return summary["grad_norm_first"] / summary["grad_norm_last"]


def test_presets_have_the_fields_pages_need():
    slugs = [preset["slug"] for preset in PRESETS]
    assert len(slugs) == len(set(slugs)), "preset slugs must be unique"
    for preset in PRESETS:
        assert set(preset) == {"slug", "title", "description", "page", "query"}, preset
        assert re.fullmatch(r"[a-z0-9-]+", preset["slug"]), preset["slug"]
        assert preset["page"] in VIEWS, preset["page"]
        assert set(preset["query"]) <= set(SimulationConfig.model_fields), preset["query"]


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p["slug"])
def test_preset_url_validates_and_simulates(client, preset):
    url = urlsplit(preset_url(preset))
    assert url.path == f"/{preset['page']}"
    query = dict(parse_qsl(url.query))
    config = SimulationConfig.model_validate(query)  # the string form, as a browser sends it
    for name, value in preset["query"].items():
        assert getattr(config, name) == value, name
    response = client.post("/api/simulate", json=preset["query"], params={"view": "explore"})
    assert response.status_code == 200, response.text
    document = response.json()
    if preset["slug"] == "overflow":
        return  # overflowing is that preset's point (test_overflow_preset_overflows_and_says_where)
    assert document["summary"]["overflow_step"] is None
    assert not [c for c in document["checks"] if c["id"] == "finite" and c["status"] != "pass"]


def test_vanishing_presets_vanish(client):
    for slug in ("vanishing-sigmoid", "vanishing-tanh"):
        document = run(client, slug)
        assert ratio_first_last(document) < 1e-3, slug
        assert document["summary"]["gamma_sigma"] < 1, slug
        statuses = {c["id"]: c["status"] for c in document["checks"]}
        assert statuses["vanish"] == "pass" and statuses["bound"] == "pass", statuses


def test_edge_of_chaos_decays_far_slower_than_vanishing(client):
    edge = ratio_first_last(run(client, "edge-of-chaos"))
    assert run(client, "edge-of-chaos")["summary"]["gamma_sigma"] == pytest.approx(1.0)
    assert 1e-4 < edge < 10, edge
    assert edge > 1e6 * ratio_first_last(run(client, "vanishing-tanh"))


def test_exploding_preset_explodes(client):
    document = run(client, "exploding")
    assert ratio_first_last(document) > 1e3
    assert document["summary"]["gamma_sigma"] > 1


def test_overflow_preset_overflows_and_says_where(client):
    document = run(client, "overflow")
    step = document["summary"]["overflow_step"]
    assert isinstance(step, int) and 0 < step < 500
    assert document["nonfinite"], "the nulls that stand for inf/nan are listed"
    assert {c["id"]: c["status"] for c in document["checks"]}["finite"] == "fail"


def test_clipping_preset_cuts_the_norm_to_the_threshold(client):
    document = run(client, "exploding-clipped")
    clipping = document["summary"]["clipping"]
    threshold = BY_SLUG["exploding-clipped"]["query"]["clip"]
    assert clipping["norm"] > 1e3 * threshold  # it really was exploding
    assert clipping["clipped_norm"] <= threshold * (1 + 1e-6)
    assert clipping["clipped_norm"] == pytest.approx(threshold, rel=1e-5)
    assert {c["id"]: c["status"] for c in document["checks"]}["clip"] == "pass"


def test_lstm_carousel_keeps_the_gradient_flat(client):
    norms = np.array(run(client, "lstm-carousel")["series"]["grad_norms"][-1], dtype=float)
    assert 0.1 < norms[0] / norms[-1] < 10, norms[[0, -1]]
    # Flat within two decades over all 100 steps (a plain RNN loses 17 or more).
    assert norms.min() / norms.max() > 1e-2


def test_gru_preset_keeps_the_gradient_alive(client):
    assert 1e-2 < ratio_first_last(run(client, "gru")) < 1e2


def test_truncated_bptt_cuts_the_flow_at_chunk_boundaries(client):
    query = BY_SLUG["truncated-bptt"]["query"]
    k = query["truncation"]

    def top_norms(**change) -> np.ndarray:
        response = client.post("/api/simulate", json={**query, **change})
        assert response.status_code == 200, response.text
        return np.array(response.json()["series"]["grad_norms"][-1], dtype=float)

    truncated, full, direct = top_norms(), top_norms(truncation=0), top_norms(truncation=1)
    ends = np.arange(k - 1, len(truncated) - 1, k)  # last step of each chunk but the final one
    # At a chunk's last step nothing arrives from later steps: only that step's own loss counts
    # (truncation=1 keeps exactly that), so it is less than what full BPTT delivers there.
    np.testing.assert_allclose(truncated[ends], direct[ends], rtol=1e-9)
    assert np.all(truncated[ends] < full[ends])
    # Inside a chunk the losses add up going back, so each chunk starts above where it ends.
    assert np.all(truncated[ends - (k - 1)] > truncated[ends])


def test_home_page_links_every_preset(client):
    response = client.get("/")
    assert response.status_code == 200
    for preset in PRESETS:
        assert preset_url(preset).replace("&", "&amp;") in response.text, preset["slug"]


def test_explore_table_matches_the_config_defaults():
    """static/js/state.js's SIMULATION_FIELDS names every field with SimulationConfig's default."""
    source = (Path(__file__).resolve().parent.parent / "static/js/state.js").read_text()
    table = dict(re.findall(r"^\s+(\w+): \{ type: \"\w+\", default: ([^ ]+) \},$", source, re.M))
    # `model` (an uploaded model's id) is no control: static/js/modellock.js reads it from the URL
    fields = {k: v for k, v in SimulationConfig.model_fields.items() if k != "model"}
    assert set(table) == set(fields)
    for name, field in fields.items():
        default = field.default
        written = table[name].strip('"')
        if isinstance(default, str):
            assert written == default, name
        else:
            assert float(written) == float(default), name
