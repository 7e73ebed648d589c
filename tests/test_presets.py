"""Presets: every one is a valid configuration, runs through the API, and shows what its
description claims, checked with numbers."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

from gradient_flow_lab.app.presets import PRESETS, preset_url
from gradient_flow_lab.app.schemas import VIEWS, SimulationConfig
from tests.strict_json import post_json

BY_SLUG = {preset["slug"]: preset for preset in PRESETS}


def run(client, slug: str) -> dict:
    return post_json(client, "/api/simulate", BY_SLUG[slug]["query"], params={"view": "explore"})


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
    document = post_json(client, "/api/simulate", preset["query"], params={"view": "explore"})
    if preset["slug"] == "overflow":
        return  # overflowing is that preset's point (test_overflow_preset_overflows_and_says_where)
    assert document["summary"]["overflow_step"] is None
    statuses = {c["id"]: c["status"] for c in document["checks"]}
    assert statuses["finite"] == "pass", statuses


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


def test_lstm_carousel_keeps_the_cell_gradient_flat(client):
    """The preset opens /cells, where the carousel is drawn: ||d loss / d c_t|| flat within 1%
    (the claim in its description), not ||d loss / d h_t|| (which varied 25-fold before)."""
    preset = BY_SLUG["lstm-carousel"]
    assert preset["page"] == "cells"
    assert "within 1%" in preset["description"]
    document = post_json(client, "/api/simulate", preset["query"], params={"view": "cells"})
    cell = np.array(document["series"]["grad_cell"][-1], dtype=float)
    assert len(cell) == preset["query"]["seq_len"]
    assert cell.min() > 0
    assert cell.max() / cell.min() < 1.01, (cell.min(), cell.max())


def test_overflow_preset_states_the_measured_growth(client):
    """The description's growth per step is the one measured on the hidden state before it
    overflows, and it says every gradient is lost (none is finite)."""
    preset = BY_SLUG["overflow"]
    claimed = float(re.search(r"about ([0-9.]+)-fold", preset["description"]).group(1))
    document = run(client, "overflow")
    norms = np.array(document["series"]["grad_norms"][-1], dtype=object)
    assert all(value is None for value in norms), "no gradient of an overflowed run is finite"
    assert "no gradient at any step" in preset["description"]
    from gradient_flow_lab.app.simulation import simulate

    trace = simulate(SimulationConfig(**preset["query"])).trace
    with np.errstate(all="ignore"):
        hidden = np.sqrt(np.sum(np.square(trace.hidden[-1, :, 0, :]), axis=-1))  # (T,)
        growth = hidden[1:] / hidden[:-1]
    growth = growth[np.isfinite(growth) & (growth > 0)][5:200]
    assert abs(np.exp(np.mean(np.log(growth))) - claimed) < 0.1


def test_gru_preset_keeps_the_gradient_alive(client):
    assert 1e-2 < ratio_first_last(run(client, "gru")) < 1e2


def test_truncated_bptt_cuts_the_flow_at_chunk_boundaries(client):
    query = BY_SLUG["truncated-bptt"]["query"]
    k = query["truncation"]

    def top_norms(**change) -> np.ndarray:
        document = post_json(client, "/api/simulate", {**query, **change})
        return np.array(document["series"]["grad_norms"][-1], dtype=float)

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

