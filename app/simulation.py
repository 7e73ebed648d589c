"""Runs the engine for one configuration and gathers what the pages show, as NumPy values.

No web types here: ``app.routers.api`` turns the result into strict JSON, and the figure builders
in ``app.figures`` turn it into Plotly figures (also usable from a notebook).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from gradient_flow_lab import engine
from gradient_flow_lab.engine.health import with_readout

if TYPE_CHECKING:  # the figures import this module, and they stay free of pydantic
    from gradient_flow_lab.app.schemas import SimulationConfig

OUTPUT_SIZE = 8  # classes of the read-out; the pictures do not depend on it
MAX_HEATMAP_UNITS = 32  # hidden-state heatmap: at most this many units ...
MAX_HEATMAP_STEPS = 300  # ... and this many (evenly strided) steps, to keep responses small


@dataclass
class Simulation:
    """One engine run and everything derived from it (each diagnostic computed on first use)."""

    config: SimulationConfig
    params: dict[str, np.ndarray]
    trace: engine.Trace

    @cached_property
    def grad_norms(self) -> np.ndarray:  # (L, T)
        return engine.grad_norms(self.trace)

    @cached_property
    def spectra(self) -> list[dict[str, engine.Spectrum]]:
        weights = [self.params[f"weight_hh_l{k}"] for k in range(self.trace.num_layers)]
        if all(np.isfinite(w).all() for w in weights):
            return engine.recurrent_spectra(self.config.cell, self.params)
        # An uploaded model with NaN or inf weights: LAPACK refuses them, and no eigenvalue of
        # such a matrix is a number, so every value is nan (reported as such, not a crash).
        hidden = weights[0].shape[1]
        missing = engine.Spectrum(np.full(hidden, np.nan, dtype=complex), np.full(hidden, np.nan))
        return [{name: missing for name in engine.GATE_NAMES[self.config.cell]}
                for _ in weights]

    @cached_property
    def sigma_max(self) -> list[float]:
        """Largest singular value of each layer's recurrent weights (over its gate blocks)."""
        return [max(float(s.singular_values[0]) for s in layer.values()) for layer in self.spectra]

    @property
    def gamma(self) -> float | None:
        """sup |phi'| for rnn; None for gated cells (no single bound applies)."""
        if self.config.cell != "rnn":
            return None
        return engine.derivative_bound(self.config.nonlinearity)

    @cached_property
    def bound_log10(self) -> np.ndarray | None:
        """Pascanu et al.'s bound on ||d loss / d h_t|| of the top layer, log10, (T,); rnn only
        (see ``engine.pascanu_log10_bound``: rate gamma * sigma_max, the head's gradient norms
        as the direct terms, cut at the chunk starts of truncated BPTT)."""
        if self.gamma is None:
            return None
        return engine.pascanu_log10_bound(
            engine.norm(self.trace.grad_output[-1], axis=(1, 2)),  # (T,)
            self.gamma * self.sigma_max[-1], self.config.truncation_or_none)

    @cached_property
    def jacobian(self) -> engine.JacobianNorms:
        return engine.jacobian_norms(self.trace)

    @cached_property
    def contribution_norms(self) -> np.ndarray:  # (L, T)
        return engine.contribution_norms(self.trace)

    @cached_property
    def clipping(self) -> dict[str, float | None]:
        """Global gradient norm before and after clipping (the threshold 0 means no clipping)."""
        total = engine.global_norm(self.trace.grads)
        threshold = self.config.clip
        if not threshold:
            return {"threshold": None, "norm": total, "clipped_norm": total, "coef": 1.0}
        # Clipping by the true norm (engine.clip_grad_norm follows PyTorch, whose norm is inf for
        # entries above ~1e154 and would then zero the gradient; the page shows the real thing).
        coef = min(1.0, threshold / (total + 1e-6)) if np.isfinite(total) else float("nan")
        with np.errstate(invalid="ignore", under="ignore"):
            clipped = {key: grad * coef for key, grad in self.trace.grads.items()}
        return {"threshold": threshold, "norm": total,
                "clipped_norm": engine.global_norm(clipped), "coef": coef}

    @property
    def overflow_step(self) -> int | None:
        """First step where anything (forward values or the backward sweep) overflowed."""
        steps = [s for s in (self.trace.overflow_step, self.trace.grad_overflow_step)
                 if s is not None]
        return min(steps) if steps else None

    def hidden_heatmap(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps (n,), units (m,), values (L, m, n)) of h_t for sequence 0, strided to size."""
        T, H = self.trace.seq_len, self.trace.hidden.shape[-1]
        steps = np.arange(0, T, max(1, -(-T // MAX_HEATMAP_STEPS)))
        units = np.arange(0, H, max(1, -(-H // MAX_HEATMAP_UNITS)))
        values = self.trace.hidden[:, steps][:, :, 0][:, :, units].transpose(0, 2, 1)
        return steps, units, values


def simulate(config: SimulationConfig) -> Simulation:
    """Initialise the weights and the data from the seed, run forward and backward.

    With ``config.model`` set, the uploaded model's weights replace the seeded ones when its cell
    is the configuration's (``/compare`` runs the other cells seeded, at the model's sizes), its
    inputs replace the random ones when it came with some, and a model without a head reads out
    through a fixed seeded one. The targets always come from the seed."""
    # Imported here: the store is web-side state, and the figures that import this module stay
    # free of it.
    from gradient_flow_lab.app.modelstore import get_store

    stored = get_store().get(config.model) if config.model else None
    if stored is not None and stored.model.cell == config.cell:
        params = with_readout(stored.model.params, OUTPUT_SIZE)
    else:
        params = engine.init_params(
            config.cell, config.input_size, config.hidden_size, OUTPUT_SIZE, config.num_layers,
            init=config.init, scale=config.weight_scale, forget_bias=config.forget_bias,
            seed=config.seed)
    output_size = params["head.weight"].shape[0]
    inputs, targets = engine.random_batch(
        config.seq_len, config.batch_size, config.input_size, output_size,
        input_scale=config.input_scale, loss_at=config.loss_at, seed=config.seed + 1)
    if stored is not None and stored.inputs is not None:
        inputs = stored.inputs  # (T, B, D), the shape the configuration was given
    trace = engine.run(config.cell, params, inputs, targets, nonlinearity=config.nonlinearity,
                       truncation=config.truncation_or_none)
    return Simulation(config, params, trace)
