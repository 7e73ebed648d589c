"""Command line entry point: `gradient-flow-lab [--host H] [--port P] [--workers N]`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gradient_flow_lab.app.settings import Settings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = Settings.from_env()
    parser = argparse.ArgumentParser(
        prog="gradient-flow-lab",
        description="Serve Gradient Flow Lab, an interactive visualiser of gradient flow in RNNs.",
    )
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
    args = parse_args(argv)
    # Imported here so that --help stays fast and works without starting anything.
    import uvicorn

    print(f"Gradient Flow Lab running at http://{args.host}:{args.port}/", flush=True)
    uvicorn.run("gradient_flow_lab.app.main:app", host=args.host, port=args.port,
                workers=args.workers)


if __name__ == "__main__":
    main()
