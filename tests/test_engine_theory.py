"""The Pascanu, Mikolov & Bengio (2013) bound, in the engine and as the explore page uses it."""

import numpy as np
import pytest

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
