"""Settings in one place, read from environment variables with the prefix ``GFL_``.

GFL_HOST                  interface to bind (default 127.0.0.1: local only)
GFL_PORT                  TCP port, 1 to 65535 (default 8000)
GFL_MAX_TRAINING          training streams allowed at once, at least 1 (default: the CPU count)
GFL_MAX_TRAINING_SECONDS  wall-time limit of one training stream, above 0 and at most 86400
                          seconds (default 300)
GFL_ENGINE_PROCESSES      worker processes for the NumPy work, 0 to 64 (default: the CPU count, at
                          least 2; 0 runs it in threads of the server's process)
GFL_MODEL_DIR             where uploaded models are kept (default <temp>/gradient-flow-lab-models)
GFL_MODEL_MAX_BYTES       largest model or inputs file, 1 KiB to 1 GiB (default 32 MiB)
GFL_MODEL_STORE_BYTES     total size of the model store, 1 MiB to 64 GiB (default 512 MiB)
GFL_MODEL_STORE_COUNT     most models kept, 1 to 100000 (default 200)

Code that needs them takes ``Depends(get_settings)``; a test swaps them with
``app.dependency_overrides[get_settings]``. A bad value is a ``pydantic.ValidationError`` at
startup, which ``describe_errors`` turns into one line naming the variable and its range.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "GFL_"


def _cpu_count() -> int:
    return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    host: str = Field("127.0.0.1", min_length=1, max_length=253)
    port: int = Field(8000, ge=1, le=65535)
    # Training is the only long CPU work: one stream per core keeps the rest of the app answering.
    max_training: int = Field(default_factory=_cpu_count, ge=1, le=1024)
    # Bounded so that a typo (3e9) cannot make a stream that never ends.
    max_training_seconds: float = Field(300.0, gt=0, le=86400, allow_inf_nan=False)
    # The engine's worker processes (app/workers.py). At least two, so that a light request
    # always finds one beside the one large network the heavy lane lets run.
    engine_processes: int = Field(default_factory=lambda: max(2, _cpu_count()), ge=0, le=64)
    # The uploaded-model store (app/modelstore.py): bounded in file size, total size and count.
    model_dir: str = Field(
        default_factory=lambda: os.path.join(tempfile.gettempdir(), "gradient-flow-lab-models"),
        min_length=1, max_length=4096)
    model_max_bytes: int = Field(32 * 2**20, ge=2**10, le=2**30)
    model_store_bytes: int = Field(512 * 2**20, ge=2**20, le=64 * 2**30)
    model_store_count: int = Field(200, ge=1, le=100_000)


@lru_cache
def get_settings() -> Settings:
    """The app's settings, read from the environment once (a FastAPI dependency)."""
    return Settings()


def _allowed(name: str) -> str:
    """'an integer from 1 to 65535' or 'a number above 0 and at most 86400', from the field."""
    field = Settings.model_fields[name]
    low = high = None
    above = False
    for meta in field.metadata:
        if getattr(meta, "ge", None) is not None:
            low = meta.ge
        if getattr(meta, "gt", None) is not None:
            low, above = meta.gt, True
        if getattr(meta, "le", None) is not None:
            high = meta.le
    kind = "an integer" if field.annotation is int else "a number"
    if low is None or high is None:
        return "a non-empty string" if field.annotation is str else kind
    if above:
        return f"{kind} above {low:g} and at most {high:g}"
    if field.annotation is int:  # 1073741824, not 1.07374e+09
        return f"{kind} from {low} to {high}"
    return f"{kind} from {low:g} to {high:g}"


def describe_errors(error: ValidationError) -> str:
    """One line for people: 'GFL_PORT must be an integer from 1 to 65535 (got '99999')'."""
    parts = []
    for problem in error.errors(include_url=False):
        name = str(problem["loc"][0]) if problem["loc"] else "?"
        variable = ENV_PREFIX + name.upper()
        if name in Settings.model_fields:
            parts.append(f"{variable} must be {_allowed(name)} (got {problem['input']!r})")
        else:
            parts.append(f"{variable}: {problem['msg']}")
    return "; ".join(parts)
