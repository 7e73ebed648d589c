"""The one configuration model: the page's query string, the POST body and the SSE query all
mean the same thing, field for field (the names are stable: they appear in shared URLs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gradient_flow_lab.app.modelstore import MODEL_ID_PATTERN, get_store
from gradient_flow_lab.engine.params import GATES

# Total work of one simulation, in multiply-adds of the recurrence: T * L * B * G * H^2.
# About 0.3 s of one core at the limit, so no request can hold a worker for long.
WORK_BUDGET = 250_000_000
# Peak memory of one simulation, from the view, result and figures, in bytes. Fitted on 56
# random configurations of the four views with tracemalloc (tests/benchmark_hostile.py has the
# scenario that checks it against RSS): the engine keeps a few (L, T, B, H) arrays per run
# (hidden states, their gradients, outputs) and one per gate block, the diagnostics add
# Jacobian products (T * L * H^2, windowed) and the loss-reach matrix (T^2). Of the measured
# peaks above 5 MB, none is more than 1 % above the estimate; most are well below it.
MEMORY_BASE = 4_000_000
MEMORY_PER_STATE = 80  # bytes per T * L * B * H of each view (runs' states and gradients)
MEMORY_PER_GATE = 55  # bytes per T * L * B * H per gate block run
MEMORY_PER_JACOBIAN = 24  # bytes per T * L * H^2, up to the window below
MEMORY_JACOBIAN_WINDOW = 48_000_000
MEMORY_PER_REACH = 16  # bytes per T^2
# One request's estimate may not pass this (a 422 naming the fields); app/admission.py bounds
# the total of all requests running at once.
MEMORY_PER_REQUEST = 384 * 1024 * 1024


class SimulationConfig(BaseModel):
    """One network and its data: every field bounded, NaN and infinities refused by name."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    cell: Literal["rnn", "lstm", "gru"] = Field("rnn", description="Recurrent cell type.")
    nonlinearity: Literal["tanh", "sigmoid", "relu"] = Field(
        "tanh", description="rnn activation phi (lstm and gru use their own).")
    seq_len: int = Field(50, ge=1, le=1000, description="Sequence length T.")
    num_layers: int = Field(1, ge=1, le=4, description="Stacked layers L.")
    hidden_size: int = Field(32, ge=1, le=256, description="Hidden units H per layer.")
    input_size: int = Field(4, ge=1, le=64, description="Input features D.")
    batch_size: int = Field(1, ge=1, le=32, description="Sequences per batch B.")
    weight_scale: float = Field(
        1.0, ge=0.0, le=10.0,
        description="Largest singular value of each recurrent weight block W_hh.")
    input_scale: float = Field(1.0, ge=0.0, le=10.0, description="Std of the random inputs.")
    init: Literal["default", "normal", "orthogonal", "identity"] = Field(
        "orthogonal", description="Initialisation before rescaling to weight_scale.")
    forget_bias: float = Field(1.0, ge=-10.0, le=10.0, description="lstm forget-gate bias.")
    loss_at: Literal["last", "all"] = Field(
        "last", description="Loss at the last step only, or at every step.")
    truncation: int = Field(0, ge=0, le=1000,
                            description="Truncated BPTT chunk length k; 0 = full BPTT.")
    clip: float = Field(0.0, ge=0.0, le=1e6,
                        description="Global-norm clipping threshold; 0 = no clipping.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed (weights and inputs).")
    model: str | None = Field(
        None, pattern=MODEL_ID_PATTERN,
        description="Id of an uploaded model (POST /api/models): its weights, and its inputs if "
                    "it came with some, replace the seeded ones; the sizes it fixes override "
                    "cell, num_layers, hidden_size, input_size (and seq_len, batch_size).")

    @property
    def truncation_or_none(self) -> int | None:
        return self.truncation or None


View = Literal["explore", "bptt", "cells", "compare", "chaos"]
VIEWS: tuple[str, ...] = View.__args__

# ---- the edge-of-chaos view's plan: what it computes and what that costs, in the budget's units
# Its Lyapunov sweeps and phase-diagram runs loop over steps in Python with tiny matrices, so
# their cost per step is mostly the loop itself. Measured (tests/benchmark_lyapunov.py): about
# 40 us per step of a one-vector QR sweep and 5 us per layer-step of a forward pass, which at the
# budget's rate (2.5e8 for ~0.3 s) are these many multiply-adds.
SWEEP_STEP_WORK = 32_768
FORWARD_STEP_WORK = 4_096
# Each phase-diagram point also builds its own weights and inputs before its first step: about
# 0.3 ms of overhead plus the QR that makes each H x H gate block orthogonal (~2 H^3 each).
POINT_WORK = 262_144
# The singular-value fan multiplies H x H matrices, which BLAS does about 8 times faster per
# multiply-add than the recurrence's matrix-vector steps (measured at H = 64 to 128): counted
# at an eighth.
MATRIX_PRODUCT_SHARE = 8
CHAOS_MAX_EXPONENTS = 32  # the spectrum's k: the top 32 exponents at most (O(T G H^2 k))
CHAOS_FAN_POINTS = 60  # the singular-value fan at up to 60 steps t
CHAOS_GRID = (9, 9)  # phase diagram: weight scales x input scales ...
CHAOS_LSTM_GRID = (7, 7)  # ... and, for lstm, two panels (input scale, forget bias) of 7 x 7
CHAOS_GRID_MAX_STEPS = 100  # each grid point is a run of at most this many steps ...
CHAOS_GRID_MIN_STEPS = 16  # ... and at least this many, or the request is refused


class ChaosPlan(BaseModel):
    """What /chaos computes for a configuration, sized to fit the work budget."""

    k: int  # exponents per layer
    state_size: int  # S: H, or 2H for lstm
    panels: tuple[str, ...]  # column fields of the phase-diagram panels
    grid: tuple[int, int]  # rows x columns of each panel
    grid_steps: int  # steps of each grid point's run (0: not even the shortest fits)
    fixed_work: int  # the run, the spectrum and the singular-value fan
    grid_work: int  # the phase diagram at grid_steps

    @property
    def grid_points(self) -> int:
        return len(self.panels) * self.grid[0] * self.grid[1]


def chaos_plan(config: SimulationConfig) -> ChaosPlan:
    """The /chaos view's sizes and cost: the run (T L B G H^2), the spectrum (per layer and step
    G H^2 k plus a QR of S x k), the singular-value fan (one backward sweep of an S x H matrix,
    G H^3 per step, and an SVD per chosen step), and the phase diagram: per point its weights and
    inputs, then a run of as many steps (at most CHAOS_GRID_MAX_STEPS) as the budget has room
    for."""
    cell, T, L, H = config.cell, config.seq_len, config.num_layers, config.hidden_size
    gates = GATES[cell]
    state = 2 * H if cell == "lstm" else H
    k = min(state, CHAOS_MAX_EXPONENTS)
    run = T * L * config.batch_size * gates * H**2
    spectrum = T * L * (gates * H**2 * k + state * k * k + SWEEP_STEP_WORK)
    fan = (T * (gates * H**3 // MATRIX_PRODUCT_SHARE + FORWARD_STEP_WORK)
           + min(T, CHAOS_FAN_POINTS) * 4 * H**3 // MATRIX_PRODUCT_SHARE)
    fixed = run + spectrum + fan
    panels = ("input_scale", "forget_bias") if cell == "lstm" else ("input_scale",)
    grid = CHAOS_LSTM_GRID if cell == "lstm" else CHAOS_GRID
    points = len(panels) * grid[0] * grid[1]
    per_step = (L * (gates * H**2 + FORWARD_STEP_WORK)  # every layer forward
                + gates * H**2 + state + SWEEP_STEP_WORK)  # the top layer's one-vector sweep
    per_point = POINT_WORK + L * gates * 2 * H**3
    spare = WORK_BUDGET - fixed - points * per_point
    room = spare // (points * per_step) if spare > 0 else 0
    steps = min(T, CHAOS_GRID_MAX_STEPS, room)
    if steps < min(T, CHAOS_GRID_MIN_STEPS):
        steps = 0
    # Refused (0 steps), its cost is that of the shortest grid allowed: above the budget.
    grid_work = points * (per_point + per_step * (steps or min(T, CHAOS_GRID_MIN_STEPS)))
    return ChaosPlan(k=k, state_size=state, panels=panels, grid=grid, grid_steps=steps,
                     fixed_work=fixed, grid_work=grid_work)


def view_gates(config: SimulationConfig, view: str) -> int:
    """Gate blocks the view runs in total: compare runs all three cells, bptt the same network
    twice (full and truncated), cells shows an lstm when asked for an rnn."""
    if view == "compare":
        return sum(GATES.values())
    if view == "bptt":
        return 2 * GATES[config.cell]
    if view == "cells" and config.cell == "rnn":
        return GATES["lstm"]
    return GATES[config.cell]  # chaos: its main run (its other work is in chaos_plan)


def view_work(config: SimulationConfig, view: str) -> int:
    """Multiply-adds of the recurrence over every run the view makes: T * L * B * gates * H^2.
    The one place that knows what a view costs (the budget below, the heavy lane in the API).
    For chaos: the run, the spectrum, the fan and the phase diagram (``chaos_plan``)."""
    if view == "chaos":
        plan = chaos_plan(config)
        return plan.fixed_work + plan.grid_work
    return (config.seq_len * config.num_layers * config.batch_size * view_gates(config, view)
            * config.hidden_size**2)


def view_memory(config: SimulationConfig, view: str) -> int:
    """Estimated peak bytes of the view's runs, diagnostics, result and figures."""
    states = config.seq_len * config.num_layers * config.batch_size * config.hidden_size
    jacobians = config.seq_len * config.num_layers * config.hidden_size**2
    return int(MEMORY_BASE
               + states * (MEMORY_PER_STATE + MEMORY_PER_GATE * view_gates(config, view))
               + min(MEMORY_PER_JACOBIAN * jacobians, MEMORY_JACOBIAN_WINDOW)
               + MEMORY_PER_REACH * config.seq_len**2)


class SimulationQuery(SimulationConfig):
    """A configuration and the page it is for: what every simulation endpoint parses, once.

    The work budget and the memory estimate are checked here, before any NumPy runs, over
    every run the view makes."""

    view: View = Field("explore", description="The page whose runs, checks and figures to make.")

    @model_validator(mode="after")
    def _within_work_budget(self) -> SimulationQuery:
        if self.model is not None:
            # The uploaded model's own sizes, so the budget counts the real work. An id that is
            # not in the store raises ModelNotFound (a 404, not a validation error).
            for name, value in get_store().get(self.model).fixed_fields().items():
                setattr(self, name, value)
        work = view_work(self, self.view)
        if work > WORK_BUDGET and self.view == "chaos":
            plan = chaos_plan(self)
            raise ValueError(
                f"too much work for view 'chaos': the run, the top {plan.k} Lyapunov exponents "
                f"of each layer and the singular values of dh_T-1/dh_t (seq_len "
                f"{self.seq_len}, hidden_size {self.hidden_size}, num_layers "
                f"{self.num_layers}) come to {plan.fixed_work:,} multiply-adds, leaving no "
                f"room in the budget of {WORK_BUDGET:,} for a phase diagram of "
                f"{plan.grid_points} runs of {min(self.seq_len, CHAOS_GRID_MIN_STEPS)} steps "
                f"or more; lower hidden_size, seq_len or num_layers")
        if work > WORK_BUDGET:
            gates = view_gates(self, self.view)
            raise ValueError(
                f"too much work for view {self.view!r}: seq_len x num_layers x batch_size x "
                f"gates run x hidden_size^2 = {self.seq_len} x {self.num_layers} x "
                f"{self.batch_size} x {gates} x {self.hidden_size}^2 = {work:,} exceeds the "
                f"budget of {WORK_BUDGET:,}; lower seq_len, hidden_size, batch_size or "
                f"num_layers")
        memory = view_memory(self, self.view)
        if memory > MEMORY_PER_REQUEST:
            raise ValueError(
                f"too much memory for view {self.view!r}: about {memory / 2**20:,.0f} MB "
                f"for seq_len x num_layers x batch_size x hidden_size = {self.seq_len} x "
                f"{self.num_layers} x {self.batch_size} x {self.hidden_size} exceeds the "
                f"limit of {MEMORY_PER_REQUEST / 2**20:,.0f} MB per request; lower seq_len, "
                f"batch_size, num_layers or hidden_size")
        return self

    @property
    def config(self) -> SimulationConfig:
        """The configuration alone (what a view builder takes)."""
        return SimulationConfig.model_construct(**self.model_dump(exclude={"view"}))


CELL_NAMES = ("rnn", "lstm", "gru")


class TrainingConfig(BaseModel):
    """Query of ``GET /api/train/stream``; every field optional with the /train page's defaults.
    The names are stable: they appear in shared URLs."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    task: Literal["delayed_recall", "temporal_order", "adding"] = Field(
        "delayed_recall", description="Long-lag task.")
    lag: int = Field(40, ge=2, le=200, description="Steps between the cue and the answer.")
    noise: float = Field(0.5, ge=0.0, le=2.0,
                         description="delayed_recall: noise on the symbol channels in the lag.")
    cells: str = Field("rnn,lstm,gru", max_length=20,
                       description="Comma-separated cells to train side by side.")
    nonlinearity: Literal["tanh", "sigmoid", "relu"] = Field("tanh", description="rnn phi.")
    hidden_size: int = Field(32, ge=1, le=128, description="Hidden units H.")
    batch_size: int = Field(32, ge=1, le=128, description="Sequences per step B.")
    optimizer: Literal["sgd", "momentum", "adam"] = Field("adam", description="Optimiser.")
    lr: float = Field(0.01, gt=0.0, le=10.0, description="Learning rate.")
    clip: float = Field(1.0, ge=0.0, le=1000.0, description="Clipping threshold; 0 = off.")
    clip_mode: Literal["norm", "value"] = Field("norm", description="Global norm or per value.")
    truncation: int = Field(0, ge=0, le=200, description="TBPTT chunk length; 0 = full BPTT.")
    forget_bias: float = Field(10.0, ge=-10.0, le=10.0, description="lstm forget-gate bias.")
    update_bias: float = Field(
        3.0, ge=-10.0, le=10.0,
        description="gru update-gate bias (b_iz): z = sigmoid(b) near 1 carries the state.")
    steps: int = Field(2000, ge=1, le=20000, description="Training steps per model.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of weights and data.")

    @field_validator("cells")
    @classmethod
    def _check_cells(cls, cells: str) -> str:
        names = [name.strip() for name in cells.split(",") if name.strip()]
        unknown = [name for name in names if name not in CELL_NAMES]
        if not names or unknown or len(set(names)) != len(names):
            raise ValueError(f"cells must be a comma-separated list of distinct names from "
                             f"{', '.join(CELL_NAMES)}, got {cells!r}")
        return ",".join(names)

    @property
    def cell_list(self) -> list[str]:
        return [name.strip() for name in self.cells.split(",") if name.strip()]
