"""The health report of an uploaded model: the numbers of ``engine.health``, the paper checks,
one sentence per item saying what it means, and the report's figures.

Used by the web page and JSON (``app.routers.models``), the command line (``gradient-flow-lab
report``) and a notebook::

    from gradient_flow_lab.app.views.models import report_figures
    for fig in report_figures("my_lstm.safetensors").values():
        fig.show()
"""

from __future__ import annotations

import math
from os import PathLike

import numpy as np

from gradient_flow_lab import engine
from gradient_flow_lab.app import jsonsafe
from gradient_flow_lab.app.figures import explore as explore_figures
from gradient_flow_lab.app.figures import models as model_figures
from gradient_flow_lab.app.figures.common import Figure, figure_json
from gradient_flow_lab.app.resources import plotly_js_path, static_dir
from gradient_flow_lab.app.schemas import WORK_BUDGET, SimulationConfig
from gradient_flow_lab.app.simulation import Simulation
from gradient_flow_lab.app.templating import templates
from gradient_flow_lab.app.views import chaos as chaos_view
from gradient_flow_lab.app.views.common import paper_checks
from gradient_flow_lab.engine import health
from gradient_flow_lab.engine import io as model_io
from gradient_flow_lab.engine.io import LoadedModel

REPORT_SEQ_LEN = 100  # random inputs when the model came without any: N(0, 1), B = 1
REPORT_SEED = 0
CARRY_NAMES = {"f": "forget gate f", "z": "update gate z"}
GATE_WORDS = {"i": "input gate i", "f": "forget gate f", "o": "output gate o",
              "r": "reset gate r", "z": "update gate z", "h": "hidden state |h|"}


def report_inputs(model: LoadedModel, inputs: np.ndarray | None) -> tuple[np.ndarray, str]:
    """The inputs the report runs on (T, B, D), cut to the work budget, and a sentence saying
    what they are."""
    if inputs is None:
        rng = np.random.default_rng(REPORT_SEED)
        inputs = rng.standard_normal((REPORT_SEQ_LEN, 1, model.input_size))
        source = (f"random inputs N(0, 1), T = {REPORT_SEQ_LEN}, one sequence (the model came "
                  f"without inputs; upload a .npy of real ones for a truer picture)")
    else:
        source = f"the uploaded inputs, T = {inputs.shape[0]}, B = {inputs.shape[1]}"
    per_step = health.work(model.cell, model.num_layers, model.hidden_size, 1, 1)
    batch = max(1, min(inputs.shape[1], WORK_BUDGET // (per_step * inputs.shape[0]) or 1))
    steps = max(1, min(inputs.shape[0], WORK_BUDGET // (per_step * batch)))
    if (steps, batch) != inputs.shape[:2]:
        source += f", cut to T = {steps}, B = {batch} to stay within this server's work budget"
        inputs = inputs[:steps, :batch]
    return inputs, source


def _fmt(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return {math.inf: "∞", -math.inf: "−∞"}.get(value, "not a number")
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def _spectrum_sentence(cell: str, item: health.GateSpectrum, gamma: float | None) -> str:
    if not math.isfinite(item.sigma_max):
        return "This block holds non-finite weights: nothing it computes is a number."
    if cell == "rnn":
        rate = gamma * item.sigma_max
        if rate < 1:
            return (f"γ·σ_max = {_fmt(rate)} < 1: every step back shrinks the gradient by at "
                    f"least this factor, so it must vanish over long gaps.")
        return (f"γ·σ_max = {_fmt(rate)} ≥ 1: growth is possible; the spectral radius "
                f"{_fmt(item.spectral_radius)} is the rate of many steps of the linear part.")
    if item.sigma_max < 1:
        return (f"This gate's recurrent weights shrink every direction of h (σ_max = "
                f"{_fmt(item.sigma_max)} < 1): through this block alone the state fades.")
    return (f"σ_max = {_fmt(item.sigma_max)} ≥ 1: this block can amplify some directions of h "
            f"by one step; the gates' slopes decide how much reaches the gradient.")


def _saturation_sentence(item: health.GateSaturation) -> str:
    if not math.isfinite(item.high):  # no finite value to measure
        return (f"Every value of the {GATE_WORDS[item.gate]} is infinite or not a number on "
                f"these inputs (the run overflowed), so how saturated it is cannot be measured.")
    overflow = (f"{_fmt(100 * item.nonfinite, 2)}% of its values are infinite or not a "
                f"number (the run overflowed); of the others, " if item.nonfinite > 0 else "")
    if item.gate == "h":
        return (f"{overflow}{_fmt(100 * item.high, 2)}% of the hidden values sit near ±1, where "
                f"the activation is flat and passes almost no gradient.")
    words = GATE_WORDS[item.gate]
    text = (f"{overflow}the {words} is shut (< 0.05) {_fmt(100 * item.low, 2)}% and wide open "
            f"(> 0.95) {_fmt(100 * item.high, 2)}% of the time; ")
    text = text[0].upper() + text[1:]
    if item.nonfinite > 0.5:  # what the finite rest says matters less than the overflow
        return text + ("but with most of its values overflowed, its gradient is not a number "
                       "either: the weights need fixing before this gate can learn.")
    if item.gate in ("f", "z") and item.high > 0.5:
        return text + "mostly open, it carries its state (and its gradient) across many steps."
    if item.low + item.high > 0.5:
        return text + "mostly saturated, its own weights get almost no gradient."
    return text + "mostly in its sensitive range, it still learns from its gradient."


def _carry_sentence(item: health.CarryBias) -> str:
    keep = item.gate_at_rest
    survive = keep ** 40 if keep < 1 else 1.0
    return (f"At rest the {CARRY_NAMES[item.gate]} is sigmoid({_fmt(item.mean)}) = {_fmt(keep)}: "
            f"the carried state keeps that share per step, {_fmt(survive, 2)} of it after 40 "
            f"steps without input.")


def _horizon_sentence(item: health.Horizon, seq_len: int) -> str:
    if not math.isfinite(item.factor):
        return "No finite product of Jacobians: the run overflowed or the weights are not numbers."
    measured = f"a least-squares fit over the {seq_len - 1} steps back measured"
    if item.factor >= 1:
        return (f"Going back, ‖∂h_T−1/∂hₜ‖ does not shrink (about ×{_fmt(item.factor)} per step, "
                f"{measured}): a change at the start still moves the last state fully, or more "
                f"(watch for explosion).")
    if item.factor == 0:
        return (f"‖∂h_T−1/∂hₜ‖ is exactly 0 from {item.observed} steps back: nothing before that "
                "reaches the last state.")
    seen = ("" if item.observed is None else
            f"; measured, it first falls below 10⁻³ {item.observed} steps back")
    beyond = (f", extrapolated beyond the {seq_len} steps measured" if
              item.observed is None and item.horizon > seq_len else "")
    return (f"Going back, ‖∂h_T−1/∂hₜ‖ shrinks by about ×{_fmt(item.factor)} per step "
            f"({measured}): after about {_fmt(item.horizon, 3)} steps only a thousandth (10⁻³) "
            f"of a change at the end is left{beyond}{seen}.")


def _factors_sentence(layer: int, fitted: float, lyapunov: float | None, warmup: int) -> str:
    """Why the report's two per-step factors (the horizon's fit, e^λ₁) differ, with the numbers."""
    if lyapunov is None or not (math.isfinite(fitted) and math.isfinite(lyapunov)):
        return (f"Layer {layer}: the two per-step factors cannot be compared (one is not a "
                "number).")
    gap = abs(fitted - lyapunov) / max(abs(lyapunov), 1e-300)
    agree = "agree within 5%" if gap <= 0.05 else f"differ by {gap:.0%}"
    return (f"Layer {layer}: the horizon's factor ×{_fmt(fitted)} and e^λ₁ = ×{_fmt(lyapunov)} "
            f"{agree}. They measure the same stretching in two ways: the factor is a straight "
            f"line fitted to the size of the whole product ∂h_T−1/∂hₜ, from every step t to the "
            f"end, the few steps next to the end included; λ₁ is the average stretch per step "
            f"of the most-stretched direction after a warm-up of {warmup} steps. Over a long run "
            "they meet; over a short one, or while the state is still settling, they differ.")


def build_report(model: LoadedModel, inputs: np.ndarray | None = None, *,
                 nonlinearity: str = "tanh") -> tuple[dict, dict[str, Figure]]:
    """The report's document (plain data and sentences) and its figures."""
    run_inputs, source = report_inputs(model, inputs)
    params = health.with_readout(model.params)
    trace = health.report_run(model.cell, params, run_inputs, nonlinearity=nonlinearity)
    config = SimulationConfig.model_construct(
        **{**SimulationConfig().model_dump(), "cell": model.cell, "nonlinearity": nonlinearity,
           "num_layers": model.num_layers, "hidden_size": model.hidden_size,
           "input_size": model.input_size, "seq_len": run_inputs.shape[0],
           "batch_size": run_inputs.shape[1]})
    sim = Simulation(config, params, trace)
    finite = all(np.isfinite(value).all() for value in params.values())
    gamma = sim.gamma
    spectra = health.weight_spectra(model.cell, params)
    saturation = health.gate_saturation(trace)
    carry = health.carry_bias(model.cell, params)
    horizons = health.memory_horizon(trace)
    # λ₁ per layer (k = 1, warm-up T // 10): the one number with a sign, as /chaos defines it.
    exponents = chaos_view.not_past_overflow(sim, engine.lyapunov_spectrum(
        model.cell, params, trace, k=1, warmup=trace.seq_len // 10,
        nonlinearity=nonlinearity if model.cell == "rnn" else None).exponents[:, 0])
    head_note = ("its own read-out head (head.weight, head.bias)" if model.output_size else
                 "no read-out in the file: the loss reads the top layer through a fixed seeded "
                 "read-out (8 classes); the Jacobians ‖∂h_T−1/∂hₜ‖ do not depend on it")
    document = {
        "model": model.describe(),
        "nonlinearity": nonlinearity if model.cell == "rnn" else None,
        "nonlinearity_note": (f"The nonlinearity is not stored in a state_dict: this report "
                              f"assumes {nonlinearity} (change it with ?nonlinearity=)."
                              if model.cell == "rnn" else None),
        "inputs": source,
        "head": head_note,
        "spectra": [{**vars(s), "meaning": _spectrum_sentence(model.cell, s, gamma)}
                    for s in spectra],
        "carry_bias": [{**vars(c), "meaning": _carry_sentence(c)} for c in carry],
        "saturation": [{**vars(s), "meaning": _saturation_sentence(s)} for s in saturation],
        "horizon": [{"layer": h.layer, "factor": h.factor, "horizon": h.horizon,
                     "observed": h.observed, "meaning": _horizon_sentence(h, trace.seq_len)}
                    for h in horizons],
        "lyapunov": [{"layer": layer, **chaos_view.exponent_summary(
                          float(largest), trace.seq_len - trace.seq_len // 10)}
                     for layer, largest in enumerate(exponents)],
        "factor_notes": [_factors_sentence(
            h.layer, h.factor,
            float(np.exp(largest)) if not np.isnan(largest) else None, trace.seq_len // 10)
            for h, largest in zip(horizons, exponents, strict=True)],
        "loss": trace.loss,
        "checks": paper_checks(sim) if finite else [{
            "id": "finite", "label": "Weights are numbers", "status": "fail",
            "detail": "the file holds NaN or infinite weights (see the warnings): the paper "
                      "checks need finite ones"}],
    }
    figures = {
        "spectra": model_figures.spectra_figure(spectra, gamma),
        "saturation": model_figures.saturation_figure(saturation),
        "horizon": model_figures.horizon_figure(horizons, trace.seq_len),
    }
    if finite:  # LAPACK refuses non-finite matrices
        figures["eigenvalues"] = explore_figures.eigenvalue_figure(sim)
    figures["grad_norms"] = explore_figures.grad_norm_figure(sim)
    return document, figures


def report_figures(path: str | PathLike[str], inputs: str | PathLike[str] | None = None, *,
                   nonlinearity: str = "tanh") -> dict[str, Figure]:
    """The report's figures for a model file (and optional .npy inputs), for ``fig.show()``."""
    model = model_io.load_model(path)
    values = None if inputs is None else model_io.load_inputs(inputs, model.input_size)
    return build_report(model, values, nonlinearity=nonlinearity)[1]


def report_data(model: LoadedModel, inputs: np.ndarray | None, *, nonlinearity: str = "tanh",
                model_id: str = "") -> tuple[dict, dict]:
    """(report, figures) as strict-JSON-ready data (non-finite numbers nulled, listed under
    ``report["nonfinite"]``): what the page, the JSON document and the offline file show."""
    document, figures = build_report(model, inputs, nonlinearity=nonlinearity)
    clean, nonfinite = jsonsafe.to_strict(
        {"report": {"id": model_id, **document},
         "figures": {name: figure_json(fig) for name, fig in figures.items()}})
    clean["report"]["nonfinite"] = nonfinite
    return clean["report"], clean["figures"]


def offline_html(report: dict, figures: dict, *, source: str = "") -> str:
    """The report as one self-contained HTML file: the stylesheet and plotly.js inline, no
    server and no network needed to open it."""
    plotly_js = plotly_js_path().read_text(encoding="utf-8").replace("</script", "<\\/script")
    css = (static_dir() / "css" / "site.css").read_text(encoding="utf-8")
    return templates.env.get_template("model_report_offline.html").render(
        report=report, figures=figures, plotly_js=plotly_js, css=css.replace("</", "<\\/"),
        source=source)
