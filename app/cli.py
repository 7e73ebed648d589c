"""Command line entry point: `gradient-flow-lab [--host H] [--port P] [--workers N]` serves the
app; `gradient-flow-lab report MODEL [--inputs X.npy] [--nonlinearity tanh] -o report.html`
writes a model's health report as one offline HTML file (see ``report_main``)."""

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


def report_main(argv: Sequence[str]) -> int:
    """`gradient-flow-lab report`: no server; exit code 1 and one line on stderr for a bad file."""
    parser = argparse.ArgumentParser(
        prog="gradient-flow-lab report",
        description="Write the health report of a trained nn.RNN/LSTM/GRU state_dict "
                    "(.safetensors or .npz) as one self-contained offline HTML file.")
    parser.add_argument("model", help="the model file (.safetensors or .npz)")
    parser.add_argument("--inputs", help="an input sequence (.npy, (T, D) or (T, B, D))")
    parser.add_argument("--nonlinearity", choices=("tanh", "sigmoid", "relu"), default="tanh",
                        help="an nn.RNN's nonlinearity, which a state_dict does not store "
                             "(default tanh)")
    parser.add_argument("-o", "--output", default="report.html",
                        help="where to write the HTML (default report.html)")
    args = parser.parse_args(argv)
    import sys

    from gradient_flow_lab.app.views import models as model_views
    from gradient_flow_lab.engine import io as model_io

    try:
        model = model_io.load_model(args.model)
        inputs = (None if args.inputs is None
                  else model_io.load_inputs(args.inputs, model.input_size))
    except (ValueError, OSError) as error:
        print(f"gradient-flow-lab report: {error}", file=sys.stderr)
        return 1
    report, figures = model_views.report_data(model, inputs, nonlinearity=args.nonlinearity,
                                              model_id=_sha256(args.model))
    html = model_views.offline_html(report, figures, source=args.model)
    with open(args.output, "w", encoding="utf-8") as file:
        file.write(html)
    print(f"wrote {args.output}: the health report of a {model.num_layers}-layer "
          f"{model.cell} (H = {model.hidden_size})")
    return 0


def _sha256(path: str) -> str:
    import hashlib

    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:
        raise SystemExit(report_main(argv[1:]))
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
