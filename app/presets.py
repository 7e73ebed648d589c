"""Named starting points: each preset is a page plus a query string of SimulationConfig fields,
so it is just a link (``/explore?cell=rnn&nonlinearity=sigmoid&...``) that anyone can share.

Each preset's point is data too: ``claim`` is the id of the check, in its page view's ``checks``
(POST /api/simulate with view=<page>), that proves it on the preset's own numbers.
``tests/test_presets.py`` runs every preset and requires that check to pass, and the numbers its
description promises to hold. A preset whose claim fails is changed, never the check.
"""

from __future__ import annotations

from urllib.parse import urlencode

PRESETS: list[dict] = [
    {
        "slug": "vanishing-sigmoid",
        "title": "Vanishing gradient (sigmoid)",
        "description": "A sigmoid's slope is at most 1/4, so each step back multiplies the "
                       "gradient by at most 0.25: after 100 steps almost nothing is left.",
        "page": "explore",
        "claim": "vanishes",
        "query": {"cell": "rnn", "nonlinearity": "sigmoid", "weight_scale": 1.0,
                  "seq_len": 100},
    },
    {
        "slug": "vanishing-tanh",
        "title": "Vanishing gradient (tanh, scale 0.9)",
        "description": "tanh's slope is at most 1, but with recurrent weights of scale 0.9 "
                       "each step back still shrinks the gradient by 10% or more.",
        "page": "explore",
        "claim": "vanishes",
        "query": {"cell": "rnn", "nonlinearity": "tanh", "weight_scale": 0.9, "seq_len": 100},
    },
    {
        "slug": "edge-of-chaos",
        "title": "Edge of chaos (tanh, scale 1)",
        "description": "Orthogonal weights of scale 1 and no input keep tanh at 0, where its "
                       "slope is exactly 1: each step back only turns the gradient (×1.000 per "
                       "step), so after 100 steps all of it is still there. Below scale 1 it "
                       "would vanish, above it explode: this is the boundary.",
        "page": "explore",
        "claim": "edge",
        "query": {"cell": "rnn", "nonlinearity": "tanh", "weight_scale": 1.0,
                  "input_scale": 0.0, "seq_len": 100},
    },
    {
        "slug": "exploding",
        "title": "Exploding gradient (scale 2.5)",
        "description": "Recurrent weights of scale 2.5: the gradient at the first step is "
                       "about a million times the one at the last.",
        "page": "explore",
        "claim": "explodes",
        "query": {"cell": "rnn", "nonlinearity": "tanh", "weight_scale": 2.5, "seq_len": 100},
    },
    {
        "slug": "exploding-clipped",
        "title": "Exploding, tamed by clipping",
        "description": "The same exploding network with global-norm clipping at 1: the update "
                       "keeps its direction but its length is cut to the threshold.",
        "page": "explore",
        "claim": "clipped",
        "query": {"cell": "rnn", "nonlinearity": "tanh", "weight_scale": 2.5, "seq_len": 100,
                  "clip": 1.0},
    },
    {
        "slug": "overflow",
        "title": "Past what float64 can hold",
        "description": "ReLU with recurrent weights of scale 10: the state grows about 5.8-fold "
                       "a step (not tenfold: ReLU zeroes the negative part) and overflows "
                       "float64 around step 400. The page says where; the loss is not a number, "
                       "so no gradient at any step is a number either.",
        "page": "explore",
        "claim": "overflow",
        "query": {"cell": "rnn", "nonlinearity": "relu", "weight_scale": 10.0, "seq_len": 500,
                  "init": "orthogonal"},
    },
    {
        "slug": "lstm-carousel",
        "title": "LSTM constant error carousel",
        "description": "Forget-gate bias 10 (f ≈ 0.99995), no recurrent weights and no input: "
                       "on Cells, the error on the cell state, ‖∂loss/∂c_t‖, stays flat (within "
                       "1%) over all 100 steps, while the error on h has no road back at all.",
        "page": "cells",
        "claim": "cec",
        "query": {"cell": "lstm", "forget_bias": 10.0, "weight_scale": 0.0, "input_scale": 0.0,
                  "seq_len": 100},
    },
    {
        "slug": "gru",
        "title": "GRU with saturated update gates",
        "description": "Identity recurrent weights of scale 10 hold the update gate z open "
                       "(above 0.95 in over 90% of its values), so most units copy their state "
                       "forward. On Cells, the copy road alone (×z per step) brings about a "
                       "third of the error at the end back to t = 0, 100 steps earlier: at "
                       "least as much as all roads together.",
        "page": "cells",
        "claim": "carry_share",
        "query": {"cell": "gru", "init": "identity", "weight_scale": 10.0, "input_scale": 1.0,
                  "seq_len": 100},
    },
    {
        "slug": "truncated-bptt",
        "title": "Truncated BPTT (k = 10)",
        "description": "Backpropagation stops every 10 steps and the loss is taken at every "
                       "step: the gradient is cut into chunks with nothing flowing between them.",
        "page": "bptt",
        "claim": "truncation_reach",
        "query": {"cell": "rnn", "nonlinearity": "tanh", "seq_len": 100, "truncation": 10,
                  "loss_at": "all"},
    },
]


def preset_query_string(preset: dict) -> str:
    """The preset's fields as a query string, ``cell=rnn&...`` (what a page's button holds)."""
    return urlencode(preset["query"])


def preset_url(preset: dict) -> str:
    """The preset as a site-relative link, e.g. ``/explore?cell=rnn&...``."""
    return f"/{preset['page']}?{preset_query_string(preset)}"


def presets_with_urls() -> list[dict]:
    return [{**preset, "url": preset_url(preset), "query_string": preset_query_string(preset)}
            for preset in PRESETS]


def preset(slug: str) -> dict:
    """The preset named ``slug``, with its url (KeyError for an unknown slug)."""
    return {item["slug"]: item for item in presets_with_urls()}[slug]
