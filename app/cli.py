"""Command line entry point: `gradient-flow-lab [--host H] [--port P] [--workers N]` serves the
app; `gradient-flow-lab report MODEL [--inputs X.npy] [--nonlinearity tanh] -o report.html`
writes a model's health report as one offline HTML file (see ``report_main``)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from types import FrameType

from pydantic import ValidationError

from gradient_flow_lab.app import __version__
from gradient_flow_lab.app.settings import Settings, describe_errors

PROG = "gradient-flow-lab"
APP = "gradient_flow_lab.app.main:app"
# glibc gives each thread that allocates its own heap arena and keeps their freed pages: under
# load the server grew to 4 GB and kept 1.6 GB after it. Two arenas: peak and settled memory
# fall to a fraction (README, "Limits"). Read by glibc at process start only, hence the re-exec.
MALLOC_ARENAS = "2"


def parse_args(argv: Sequence[str] | None = None,
               defaults: Settings | None = None) -> argparse.Namespace:
    defaults = defaults or Settings()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve Gradient Flow Lab, an interactive visualiser of gradient flow in RNNs.",
        epilog="`gradient-flow-lab report MODEL -o report.html` writes an uploaded model's health "
               "report instead (see `gradient-flow-lab report --help`). "
               "Also read from the environment: GFL_MAX_TRAINING (training streams at once, "
               f"now {defaults.max_training}), GFL_MAX_TRAINING_SECONDS (time limit of one "
               f"training, now {defaults.max_training_seconds:g} s), GFL_ENGINE_PROCESSES "
               f"(worker processes for simulations, now {defaults.engine_processes}) and the "
               "model store's GFL_MODEL_* (see the README).",
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
    parser.add_argument("--nonlinearity", choices=("tanh", "relu"), default="tanh",
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


def _with_few_malloc_arenas() -> None:
    """Starts this command again with MALLOC_ARENA_MAX set, unless it is set already (by the
    Dockerfile, or by the user: theirs wins). Same process id, same arguments."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    os.execve(sys.executable, [sys.executable, "-m", "gradient_flow_lab.app.cli", *sys.argv[1:]],
              {**os.environ, "MALLOC_ARENA_MAX": MALLOC_ARENAS})


def _serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    from gradient_flow_lab.app import connections, logfilter, shutdown

    options = connections.uvicorn_options(connections.raise_file_limit())

    class Server(uvicorn.Server):
        """The first SIGTERM or SIGINT tells the streams (they send a last event and end), then
        uvicorn stops as usual within ``GRACEFUL_SHUTDOWN_SECONDS``; a second one exits now."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit:
                os.write(2, f"{PROG}: second signal, exiting now\n".encode())
                os._exit(128 + sig)
            shutdown.begin()
            super().handle_exit(sig, frame)

        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets)  # binds; on failure uvicorn says why and exits
            if not self.should_exit:
                print(banner, flush=True)  # only once it really is running

    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        sys.exit(f"{PROG}: cannot listen on host {host!r} (--host or GFL_HOST): {error}")
    banner = (f"Gradient Flow Lab running at http://{host}:{port}/ (up to "
              f"{options['limit_concurrency']} connections)")
    if workers > 1:  # uvicorn's supervisor; each worker ends its streams at its time limit
        print(banner, flush=True)
        uvicorn.run(APP, host=host, port=port, workers=workers, **options)
        return
    config = uvicorn.Config(APP, host=host, port=port, **options)
    logfilter.install()  # after uvicorn configured its loggers
    Server(config).run()


def main(argv: Sequence[str] | None = None) -> None:
    real = argv is None  # the real command line, not a test calling main([...])
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:
        raise SystemExit(report_main(argv[1:]))
    if real:
        _with_few_malloc_arenas()
    try:
        settings = Settings()
    except ValidationError as error:
        # A bad environment variable is the user's to fix: one line, no traceback.
        sys.exit(f"{PROG}: {describe_errors(error)}")
    args = parse_args(argv, settings)
    # The lesson file (GFL_LESSON_FILE may name a lecturer's own) is checked before anything
    # starts: a bad one is one line naming the step and field, not a traceback after "running".
    from gradient_flow_lab.app.lesson import LessonError, lesson

    try:
        lesson()
    except (LessonError, OSError) as error:
        sys.exit(f"{PROG}: the lesson file: {error}")
    # uvicorn is imported in _serve, so that --help stays fast and starts nothing.
    _serve(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
