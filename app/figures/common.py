"""Shared look: the Okabe-Ito colour-blind-safe palette, fonts, log axes with exponent labels."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
CELL_COLOURS = {"rnn": "#D55E00", "lstm": "#0072B2", "gru": "#009E73"}
# Diverging blue-white-vermillion for signed values, sequential viridis for magnitudes.
DIVERGING = [[0.0, "#0072B2"], [0.5, "#FFFFFF"], [1.0, "#D55E00"]]
SEQUENTIAL = "Viridis"
UIREVISION = "keep"  # a fixed uirevision: Plotly.react keeps the user's zoom across updates


def base_layout(title: str, x_title: str, y_title: str, *, log_y: bool = False,
                height: int = 340) -> dict:
    return dict(
        title=dict(text=title, x=0.01, xanchor="left", font=dict(size=15)),
        xaxis=dict(title=dict(text=x_title), zeroline=False),
        yaxis=dict(title=dict(text=y_title), type="log" if log_y else "linear",
                   exponentformat="power", zeroline=False),
        height=height,
        margin=dict(l=64, r=20, t=44, b=48),
        # At the foot of the figure whatever its height, and the margin it needs reserved: a
        # legend placed in plot fractions ran into the x-axis title on short or tall plots.
        legend=dict(orientation="h", x=0, xanchor="left", yref="container", y=0,
                    yanchor="bottom"),
        font=dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=13),
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="#FFFFFF",
        uirevision=UIREVISION,
        colorway=list(PALETTE),
    )


class Figure:
    """A figure as the plain dicts the browser receives, with plotly.py's ``go.Figure`` on demand.

    Every ``go.Figure`` method works on it (``show()`` in a notebook, ``to_html``,
    ``update_layout``...): the first such use builds, and validates, the plotly.py figure once.
    The request path never builds it, because plotly.py's property objects, template and deep
    copies cost several times the whole simulation (measured: the five explore figures took
    21 ms as ``go.Figure``s without validation, against 2 ms for the simulation). The tests
    validate every figure with plotly.py instead (tests/test_figures.py).
    """

    __slots__ = ("_spec", "_plotly")

    def __init__(self, data: list[dict], layout: dict) -> None:
        self._spec = {"data": data, "layout": layout}
        self._plotly: go.Figure | None = None

    @property
    def plotly(self) -> go.Figure:
        if self._plotly is None:
            # Template "none": the look the browser gives it (Plotly.js with no template), not
            # plotly.py's default, whose white grid vanishes on our white plot background.
            self._plotly = go.Figure(self._spec, layout_template="none")
        return self._plotly

    def __getattr__(self, name: str):
        # Only called for names this class lacks: show, to_html, layout, update_layout, ...
        if name in Figure.__slots__:  # unset, as during copy or unpickling: nothing to ask
            raise AttributeError(name)
        return getattr(self.plotly, name)

    def __getstate__(self) -> dict:
        return {"data": self._spec["data"], "layout": self._spec["layout"]}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["data"], state["layout"])

    def __repr__(self) -> str:
        title = self._spec["layout"].get("title", {}).get("text")
        return f"<Figure: {len(self._spec['data'])} traces, {title!r}>"


def figure(data: list[dict], layout: dict) -> Figure:
    for name, axis in layout.items():
        if name.startswith(("xaxis", "yaxis")):
            # Plotly's default ("hide past div") measures every tick label's box on every redraw
            # to hide the ones past the plot's edge; ours stay inside the margins. Measured: 10%
            # of a slider move's redraw time on /explore.
            axis.setdefault("ticklabeloverflow", "allow")
        if name.startswith("xaxis"):
            # The x-axis title and tick labels move up out of the legend's way (see legend).
            axis.setdefault("automargin", True)
    return Figure(data, layout)


def figure_json(fig: Figure | go.Figure) -> dict:
    """The figure as plain data for the JSON boundary (which nulls and reports non-finite
    values): the builder's own dicts, unless plotly.py's figure was built (and maybe changed)."""
    if isinstance(fig, Figure) and fig._plotly is None:
        return fig._spec
    plotly_figure = fig.plotly if isinstance(fig, Figure) else fig
    return plotly_figure.to_plotly_json()


def positive_or_none(values: np.ndarray) -> np.ndarray:
    """For log axes: zeros (no gradient at all, e.g. beyond a truncation boundary) become NaN so
    Plotly leaves a gap instead of failing; the JSON boundary turns NaN into null."""
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, np.nan)


def log10_or_nan(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(np.asarray(values, dtype=float))
    return np.where(np.isfinite(out), out, np.nan)
