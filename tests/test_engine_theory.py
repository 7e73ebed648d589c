"""The Pascanu, Mikolov & Bengio (2013) bound, in the engine and as the explore page uses it."""

import numpy as np
import pytest

from gradient_flow_lab import engine
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.simulation import simulate

# Simulation.bound_log10 as it was computed in app/simulation.py before the recursion moved into
# the engine: the move must not change a single number.
PINNED_BOUNDS = [
    (dict(seq_len=12, hidden_size=4, weight_scale=1.3, loss_at="last"),
     [0.9547743563898158, 0.840831004082979, 0.7268876517761421, 0.6129442994693053,
      0.4990009471624685, 0.38505759485563174, 0.27111424254879496, 0.15717089024195818,
      0.04322753793512138, -0.07071581437171541, -0.1846591666785522, -0.298602518985389]),
    (dict(seq_len=12, hidden_size=4, weight_scale=0.7, loss_at="all", truncation=5,
          batch_size=2),
     [0.3301514216988052, 0.27898525673758007, 0.2762980842131613, 0.1695129979299311,
      -0.1432918035042717, 0.3005353181736103, 0.24668186509465723, 0.12462117178813295,
      0.03634147922719041, -0.09924417231093649, 0.08471628198444212, -0.2132757881331704]),
    (dict(seq_len=10, hidden_size=3, nonlinearity="sigmoid", weight_scale=2.0, loss_at="all",
          num_layers=2),
     [0.04983053386560167, 0.03349310119341227, -0.05091045343821639, 0.09562769216038614,
      0.1120514762542851, 0.11467247868771102, 0.08804959876814192, 0.03939056184428652,
      -0.04706316770165856, -0.21547896192506596]),
    (dict(seq_len=8, hidden_size=3, weight_scale=0.0, loss_at="all", truncation=3),
     [-0.31889348428103464, -0.48532142038371434, -0.2864902838258424, -0.38360951229962953,
      -0.43952069047319176, -0.439380069516654, -0.17568965138843, -0.23863358205004287]),
    (dict(seq_len=6, hidden_size=3, nonlinearity="relu", weight_scale=5.0, loss_at="last",
          truncation=4),
     [-np.inf, -np.inf, -np.inf, -np.inf, 0.34442227493954014, -0.3545477293964787]),
]


@pytest.mark.parametrize(("config", "expected"), PINNED_BOUNDS)
def test_simulation_bound_keeps_its_numbers(config, expected):
    bound = simulate(SimulationConfig(**config)).bound_log10
    np.testing.assert_allclose(bound, expected, rtol=1e-13, atol=0)


def test_gated_cells_have_no_bound():
    assert simulate(SimulationConfig(cell="lstm", seq_len=5, hidden_size=3)).bound_log10 is None


def brute_force_bound(direct, rate, truncation=None):
    """b_t = sum over s >= t in t's chunk of rate^(s - t) g_s, summed directly."""
    T = len(direct)
    bound = np.zeros(T)
    for t in range(T):
        end = T if truncation is None else min(T, (t // truncation + 1) * truncation)
        bound[t] = sum(rate ** (s - t) * direct[s] for s in range(t, end))
    return bound


@pytest.mark.parametrize("truncation", [None, 1, 3, 7])
@pytest.mark.parametrize("rate", [0.0, 0.4, 1.0, 2.5])
def test_pascanu_recursion_matches_the_sum_it_stands_for(rate, truncation):
    direct = np.random.default_rng(0).uniform(0.0, 2.0, 11)
    direct[4] = 0.0  # a step with no loss of its own
    got = engine.pascanu_bound(direct, rate, truncation)
    np.testing.assert_allclose(got, brute_force_bound(direct, rate, truncation), rtol=1e-12)


def test_pascanu_bound_for_one_error_is_the_geometric_closed_form():
    log_bound = engine.pascanu_log10_bound(3.0 * np.eye(50)[-1], 0.8)
    expected = np.log10(3.0) + np.arange(49, -1, -1) * np.log10(0.8)
    np.testing.assert_allclose(log_bound, expected, rtol=1e-12)


def test_pascanu_bound_stays_a_number_where_float64_overflows():
    log_bound = engine.pascanu_log10_bound(np.ones(1000), 10.0)
    assert log_bound[0] == pytest.approx(999.0 + np.log10(1 / 0.9), rel=1e-12)
    assert engine.pascanu_bound(np.ones(1000), 10.0)[0] == np.inf


@pytest.mark.parametrize(("args", "message"), [
    ((np.ones((2, 3)), 1.0), "one-dimensional"),
    ((np.array([1.0, -1.0]), 1.0), ">= 0"),
    ((np.ones(3), -0.5), "rate"),
    ((np.ones(3), float("nan")), "rate"),
    ((np.ones(3), 1.0, 0), "truncation"),
    ((np.ones(3), 1.0, 2.5), "truncation"),
])
def test_pascanu_bound_rejects_what_it_cannot_mean(args, message):
    with pytest.raises(ValueError, match=message):
        engine.pascanu_log10_bound(*args)
