"""The one configuration model: the page's query string, the POST body and the SSE query all
mean the same thing, field for field (the names are stable: they appear in shared URLs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.params import GATES

# Total work of one simulation, in multiply-adds of the recurrence: T * L * B * G * H^2.
# About 0.3 s of one core at the limit, so no request can hold a worker for long.
WORK_BUDGET = 250_000_000


class SimulationConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

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

    @model_validator(mode="after")
    def _within_work_budget(self) -> SimulationConfig:
        work = (self.seq_len * self.num_layers * self.batch_size * GATES[self.cell]
                * self.hidden_size**2)
        if work > WORK_BUDGET:
            raise ValueError(
                f"too much work: seq_len x num_layers x batch_size x gates x hidden_size^2 = "
                f"{self.seq_len} x {self.num_layers} x {self.batch_size} x {GATES[self.cell]} x "
                f"{self.hidden_size}^2 = {work:,} exceeds the budget of {WORK_BUDGET:,}; "
                f"lower seq_len, hidden_size, batch_size or num_layers")
        return self

    @property
    def truncation_or_none(self) -> int | None:
        return self.truncation or None


VIEWS = ("explore", "bptt", "cells", "compare")
View = Literal["explore", "bptt", "cells", "compare"]
