"""Presets: every one is a valid configuration, names the check that proves its point (its
`claim`), and that check passes on the preset's own numbers, on its own page's view; the same
check does not pass when the settings that make the point are changed. The numbers each
description promises are checked too."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

from gradient_flow_lab.app.presets import PRESETS, preset_url
from gradient_flow_lab.app.schemas import VIEWS, SimulationConfig
from tests.strict_json import post_json

BY_SLUG = {preset["slug"]: preset for preset in PRESETS}

# For each preset, a change to its settings that takes its point away, and what its claim check
# must then say ("fail" where the statement becomes false, "n/a" where its premise goes).
BROKEN = {
    "vanishing-sigmoid": ({"nonlinearity": "tanh", "input_scale": 0.01}, "fail"),
    "vanishing-tanh": ({"weight_scale": 1.0, "input_scale": 0.01}, "fail"),
    "edge-of-chaos": ({"input_scale": 0.1}, "fail"),  # the old preset: x0.946 per step
    "exploding": ({"weight_scale": 1.2, "input_scale": 0.1}, "fail"),  # grows 4-fold only
    "exploding-clipped": ({"weight_scale": 0.5, "clip": 10.0}, "fail"),  # nothing to cut
    "overflow": ({"weight_scale": 1.0}, "n/a"),
    "lstm-carousel": ({"input_scale": 1.0}, "n/a"),  # the old preset: prod f = 0.986 < 0.99
    "gru": ({"init": "orthogonal", "weight_scale": 3.0}, "fail"),  # the old preset: 1.7e-24
    "truncated-bptt": ({"truncation": 0}, "n/a"),
}


def run(client, slug: str, **change) -> dict:
    preset = BY_SLUG[slug]
    return post_json(client, "/api/simulate", {**preset["query"], **change},
                     params={"view": preset["page"]})


def claim_of(document: dict, preset: dict) -> dict:
    (found,) = [c for c in document["checks"] if c["id"] == preset["claim"]]
    return found


def ratio_first_last(document: dict) -> float:
    summary = document["summary"]
    return summary["grad_norm_first"] / summary["grad_norm_last"]


def test_presets_have_the_fields_pages_need():
    slugs = [preset["slug"] for preset in PRESETS]
    assert len(slugs) == len(set(slugs)), "preset slugs must be unique"
    for preset in PRESETS:
        assert set(preset) == {"slug", "title", "description", "page", "query", "claim"}, preset
        assert re.fullmatch(r"[a-z0-9-]+", preset["slug"]), preset["slug"]
        assert preset["page"] in VIEWS, preset["page"]
        assert set(preset["query"]) <= set(SimulationConfig.model_fields), preset["query"]
    assert set(BROKEN) == set(slugs), "every preset has a setting that breaks its claim"


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p["slug"])
def test_preset_url_validates_and_its_claim_passes_on_its_own_page(client, preset):
    url = urlsplit(preset_url(preset))
    assert url.path == f"/{preset['page']}"
    query = dict(parse_qsl(url.query))
    config = SimulationConfig.model_validate(query)  # the string form, as a browser sends it
    for name, value in preset["query"].items():
        assert getattr(config, name) == value, name
    document = run(client, preset["slug"])
    claim = claim_of(document, preset)
    assert claim["status"] == "pass", claim
    if preset["slug"] != "overflow":  # overflowing is that preset's point
        assert document["summary"]["overflow_step"] is None
        statuses = {c["id"]: c["status"] for c in document["checks"]}
        assert statuses["finite"] == "pass", statuses


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p["slug"])
def test_preset_claim_does_not_pass_without_its_settings(client, preset):
    change, expected = BROKEN[preset["slug"]]
    claim = claim_of(run(client, preset["slug"], **change), preset)
    assert claim["status"] == expected, claim


def test_api_lists_the_presets_with_their_claims(client):
    response = client.get("/api/presets")
    assert response.status_code == 200
    listed = response.json()
    assert [item["slug"] for item in listed] == [preset["slug"] for preset in PRESETS]
    for item, preset in zip(listed, PRESETS, strict=True):
        for key in ("title", "page", "query", "claim", "description"):
            assert item[key] == preset[key], key
        assert item["url"] == preset_url(preset)
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/api/presets"]["get"]
    reference = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert reference["type"] == "array"
    assert "claim" in schema["components"]["schemas"]["Preset"]["properties"]


def test_cells_page_buttons_are_the_presets(client):
    """The /cells page's carousel and saturated-GRU buttons hold the presets' own settings (the
    carousel button used T = 200 and input 0 while the preset used T = 100 and input 1)."""
    page = client.get("/cells").text
    for slug, button in (("lstm-carousel", "preset-cec"), ("gru", "preset-gru-saturated")):
        match = re.search(rf'id="{button}"[^>]*data-preset="([^"]+)"', page)
        assert match, button
        held = dict(parse_qsl(match.group(1).replace("&amp;", "&")))
        assert SimulationConfig.model_validate(held) == SimulationConfig(
            **BY_SLUG[slug]["query"]), slug


def test_vanishing_presets_vanish(client):
    for slug in ("vanishing-sigmoid", "vanishing-tanh"):
        document = run(client, slug)
        assert ratio_first_last(document) < 1e-3, slug
        assert document["summary"]["gamma_sigma"] < 1, slug
        statuses = {c["id"]: c["status"] for c in document["checks"]}
        assert statuses["vanish"] == "pass" and statuses["bound"] == "pass", statuses


def test_edge_of_chaos_keeps_its_promised_numbers(client):
    """'each step back only turns the gradient (×1.000 per step), so after 100 steps all of it
    is still there. Below scale 1 it would vanish, above it explode', and the status does not
    call it ordered or vanishing."""
    document = run(client, "edge-of-chaos")
    summary = document["summary"]
    assert summary["gamma_sigma"] == pytest.approx(1.0)
    assert "×1.000 per step" in BY_SLUG["edge-of-chaos"]["description"]
    assert summary["retention"] == pytest.approx(1.0, abs=5e-4)
    assert summary["lyapunov_prediction"].startswith("near the edge of chaos")
    assert not any("vanishes going back" in part or "ordered" in part
                   for part in summary["status"])
    below, above = run(client, "edge-of-chaos", weight_scale=0.95), run(
        client, "edge-of-chaos", weight_scale=1.05)
    assert ratio_first_last(below) < 0.01 < 100 < ratio_first_last(above)


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
    over all 100 steps (the claim in its description), and h has no road back."""
    preset = BY_SLUG["lstm-carousel"]
    assert preset["page"] == "cells"
    assert "within 1%" in preset["description"] and "all 100 steps" in preset["description"]
    document = run(client, "lstm-carousel")
    cell = np.array(document["series"]["grad_cell"][-1], dtype=float)
    assert len(cell) == preset["query"]["seq_len"] == 100
    assert cell.min() > 0
    assert cell.max() / cell.min() < 1.01, (cell.min(), cell.max())
    hidden = np.array(document["series"]["grad_hidden"][-1], dtype=object)
    assert all(value is None or value == 0 for value in hidden[:-1]), "h has no road back"


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


def test_gru_preset_keeps_its_promised_numbers(client):
    """'z above 0.95 in over 90% of its values', 'the copy road alone brings about a third of the
    error at the end back to t = 0', 'at least as much as all roads together'."""
    description = BY_SLUG["gru"]["description"]
    assert "over 90%" in description and "about a third" in description
    summary = run(client, "gru")["summary"]
    assert summary["carry_open_share"] > 0.9
    assert 0.25 < summary["carry_path_first"] / summary["grad_state_last"] < 0.42
    assert summary["carry_path_first"] >= summary["grad_state_first"]


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

