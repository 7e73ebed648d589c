"""Command line entry point: `gradient-flow-lab [--host H] [--port P] [--workers N]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from gradient_flow_lab.app import __version__
from gradient_flow_lab.app.settings import Settings, describe_errors

PROG = "gradient-flow-lab"


def parse_args(argv: Sequence[str] | None = None,
               defaults: Settings | None = None) -> argparse.Namespace:
    defaults = defaults or Settings()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve Gradient Flow Lab, an interactive visualiser of gradient flow in RNNs.",
        epilog="Also read from the environment: GFL_MAX_TRAINING (training streams at once, "
               f"now {defaults.max_training}) and GFL_MAX_TRAINING_SECONDS (time limit of one "
               f"training, now {defaults.max_training_seconds:g} s).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--host",
        default=defaults.host,
        help=f"interface to bind (default {defaults.host}, env GFL_HOST)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=defaults.port,
        help=f"TCP port (default {defaults.port}, env GFL_PORT)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="number of worker processes (default 1)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be in 1..65535, got {args.port}")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = Settings()
    except ValidationError as error:
        # A bad environment variable is the user's to fix: one line, no traceback.
        sys.exit(f"{PROG}: {describe_errors(error)}")
    args = parse_args(argv, settings)
    # Imported here so that --help stays fast and works without starting anything.
    import uvicorn

    print(f"Gradient Flow Lab running at http://{args.host}:{args.port}/", flush=True)
    uvicorn.run("gradient_flow_lab.app.main:app", host=args.host, port=args.port,
                workers=args.workers)


if __name__ == "__main__":
    main()
