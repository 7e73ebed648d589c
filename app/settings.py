"""Settings in one place, read from environment variables.

GFL_HOST  interface to bind (default 127.0.0.1: local only)
GFL_PORT  TCP port (default 8000)
GFL_MAX_TRAINING          training streams allowed at once (default: the CPU count)
GFL_MAX_TRAINING_SECONDS  wall-time limit of one training stream (default 300)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # Training is the only long CPU work: one stream per core keeps the rest of the app answering.
    max_training_streams: int = max(1, os.cpu_count() or 1)
    max_training_seconds: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be in 1..65535, got {self.port}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        raw_port = env.get("GFL_PORT", str(cls.port))
        try:
            port = int(raw_port)
        except ValueError:
            raise ValueError(f"GFL_PORT must be an integer, got {raw_port!r}") from None
        return cls(
            host=env.get("GFL_HOST", cls.host),
            port=port,
            max_training_streams=int(env.get("GFL_MAX_TRAINING", cls.max_training_streams)),
            max_training_seconds=float(
                env.get("GFL_MAX_TRAINING_SECONDS", cls.max_training_seconds)),
        )
