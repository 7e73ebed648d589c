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
    """A Figure of plain dicts. Every axis asked for as ``type="log"`` (``base_layout(...,
    log_y=True)``) is drawn as a decade axis (see ``decade_axes``), so that zeros, overflows and
    values beyond float64 are told truthfully on every page."""
    decade_axes(data, layout)
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


# ---------------------------------------------------------------- decade axes
#
# A log axis in Plotly can only place what float64 holds, needs a stand-in for 0, and builds its
# tick labels from whatever range it is given. Instead, a "log" axis here is a linear axis of
# log10 values with power-of-ten labels made from integers: a value of 10^900 (a bound computed
# in log space) sits at 900, an exact 0 is a gap (and is not an overflow), inf or nan is a gap
# that the JSON boundary reports under ``nonfinite``, and the true value stays in ``customdata``
# for the hover and the CSV.

SUPERSCRIPT_MINUS = "\u2212"


def _decade_label(log10: float) -> str:
    """'1', '10', '10<sup>−7</sup>', or '2×10<sup>5</sup>' for a tick at log10 (a finite number)."""
    exponent = int(np.floor(log10 + 1e-9))
    mantissa = int(round(10 ** (log10 - exponent)))
    if mantissa == 10:
        exponent, mantissa = exponent + 1, 1
    if -3 <= exponent <= 3 and mantissa != 1:
        return f"{mantissa * 10.0 ** exponent:g}"  # 0.002, 0.5, 20: plain where short
    if exponent == 0:
        power = "1"
    elif exponent == 1:
        power = "10"
    else:
        power = f"10<sup>{str(exponent).replace('-', SUPERSCRIPT_MINUS)}</sup>"
    if mantissa == 1:
        return power
    return f"{mantissa}" if exponent == 0 else f"{mantissa}×{power}"


def value_text(log10: float) -> str:
    """The number whose log10 is given, as text that never overflows: '0.0123', '3.93e+156',
    '1.2e+900'."""
    if not np.isfinite(log10):
        return "overflow" if log10 > 0 or np.isnan(log10) else "0"
    if -3 <= log10 < 4:
        return f"{10 ** log10:.4g}"
    exponent = int(np.floor(log10))
    mantissa = 10 ** (log10 - exponent)
    if mantissa >= 9.995:
        exponent, mantissa = exponent + 1, 1.0
    return f"{mantissa:.3g}e{exponent:+d}"


def decade_ticks(low: float, high: float, max_ticks: int = 8) -> tuple[list[float], list[str]]:
    """Tick positions (log10) and labels for a decade axis spanning [low, high]: whole decades
    every 1, 2, 5, 10, 20, 50, ... decades, or 1-2-5 (or 1..9) steps inside a short span."""
    span = high - low
    if span < 0.6:
        mantissas = range(1, 10)
    elif span < 2.5:
        mantissas = (1, 2, 5)
    else:
        mantissas = (1,)
    if len(mantissas) > 1:
        ticks = [exponent + np.log10(m)
                 for exponent in range(int(np.floor(low)), int(np.ceil(high)) + 1)
                 for m in mantissas]
        ticks = [t for t in ticks if low - 1e-9 <= t <= high + 1e-9]
        if len(ticks) >= 2:
            return ticks, [_decade_label(t) for t in ticks]
        if span < 0.6:  # narrower than 1..9 steps: evenly spaced values, labelled as numbers
            return _narrow_ticks(low, high)
    step = 1
    for candidate in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000):
        step = candidate
        if span / candidate <= max_ticks:
            break
    first = int(np.ceil(low / step) * step)
    ticks = [float(k) for k in range(first, int(np.floor(high)) + 1, step)]
    return ticks, [_decade_label(t) for t in ticks]


def _narrow_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Ticks for a decade axis spanning less than a factor of 4: about five round values."""
    if abs(low) > 300 or abs(high) > 300:  # beyond float64: three labelled positions
        ticks = [low + (high - low) * f for f in (0.1, 0.5, 0.9)]
        return ticks, [value_text(t) for t in ticks]
    small, large = 10.0 ** low, 10.0 ** high
    raw = (large - small) / 5
    power = 10.0 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    values = np.arange(np.ceil(small / step), np.floor(large / step) + 1) * step
    values = values[values > 0]
    return [float(np.log10(v)) for v in values], [f"{v:.4g}" for v in values]


def log_magnitudes(values, *, already_log10: bool = False) -> tuple[list, list]:
    """(y, customdata) for a decade axis: y is log10 of each value, None (a gap, not an error)
    where the value is exactly 0, nan (reported as non-finite by the JSON boundary) where it is
    inf or nan; customdata holds [text, value] per point for the hover and the CSV."""
    values = np.asarray(values, dtype=float)
    if already_log10:
        logs = values
        zero = np.isneginf(values)  # log10(0)
        bad = np.isnan(values) | np.isposinf(values)
        raw = np.full(values.shape, np.nan)
        modest = np.isfinite(values) & (np.abs(values) < 300)
        raw[modest] = 10.0 ** values[modest]
        raw[zero] = 0.0
    else:
        zero = values == 0
        bad = ~np.isfinite(values)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(np.abs(values))
        raw = values
    y: list = []
    custom: list = []
    for log, value, is_zero, is_bad in zip(logs.tolist(), raw.tolist(), zero.tolist(),
                                           bad.tolist(), strict=True):
        if is_zero:
            y.append(None)
            custom.append(["0", 0.0])
        elif is_bad:
            y.append(float("nan"))
            custom.append(["overflow", None])
        else:
            y.append(log)
            custom.append([value_text(log), value if np.isfinite(value) else value_text(log)])
    return y, custom


def _axis_key(trace: dict, letter: str) -> str:
    ref = trace.get(f"{letter}axis", letter)  # "y", "y2", ...
    return f"{letter}axis{ref[1:]}"


def decade_axes(data: list[dict], layout: dict) -> None:
    """Turns every y axis of ``layout`` with type "log" into a decade axis, in place.

    A trace whose ``meta`` has ``"log10": True`` already holds log10 values (e.g. a bound
    computed in log space, beyond float64); one with ``"sets_range": False`` is drawn where it
    truly is but does not stretch the axis: where it leaves the chart, a note inside the plot
    says so and how far it goes. An axis with no finite value at all says so inside the plot.
    """
    log_axes = [name for name, axis in layout.items()
                if name.startswith("yaxis") and isinstance(axis, dict)
                and axis.get("type") == "log"]
    notes = []
    for axis_name in log_axes:
        axis = layout[axis_name]
        traces = [t for t in data if _axis_key(t, "y") == axis_name and "y" in t]
        if traces and all(len(t["y"]) == 0 for t in traces):
            continue  # filled in by the browser (the training lab): Plotly's own log axis
        in_range, others = [], []
        zeros = bad = 0
        for trace in traces:
            meta = trace.get("meta") or {}
            y, custom = log_magnitudes(trace["y"], already_log10=bool(meta.get("log10")))
            trace["y"] = y
            trace["customdata"] = custom
            trace["meta"] = {**meta, "decades": True}
            template = trace.get("hovertemplate")
            if template:
                for fmt in (":.3e", ":.4e", ":.2e", ":.3g", ":.4g", ""):
                    template = template.replace("%{y" + fmt + "}", "%{customdata[0]}")
                trace["hovertemplate"] = template
            finite = [v for v in y if v is not None and np.isfinite(v)]
            if meta.get("sets_range", True):
                zeros += sum(v is None for v in y)
                bad += sum(v is not None and not np.isfinite(v) for v in y)
                in_range.append((trace, finite))
            else:
                others.append((trace, finite))
            if len(finite) == 1 and trace.get("mode", "lines") == "lines":
                trace["mode"] = "lines+markers"  # one point of a line draws nothing
        values = [v for _, finite in in_range for v in finite]
        axis["type"] = "linear"
        axis.pop("exponentformat", None)
        if not values:
            reason = ("every value is exactly 0" if zeros and not bad else
                      "every value overflowed float64 (inf or nan)" if bad and not zeros else
                      "every value is 0 or overflowed" if bad else "nothing to draw")
            axis.update(range=[-1, 1], tickvals=[], ticktext=[], showticklabels=False)
            notes.append(_note(axis_name, 0.5, f"No finite value to draw: {reason}", "middle"))
            continue
        low, high = min(values), max(values)
        # A guide line (sets_range False) widens the view only while that does not squeeze the
        # data: by at most max(3, the data's own span) decades on either side.
        reach = max(3.0, high - low)
        guide = [v for _, finite in others for v in finite]
        low = min([low, *[v for v in guide if v >= low - reach]])
        high = max([high, *[v for v in guide if v <= high + reach]])
        pad = max(0.25, 0.06 * (high - low))
        low, high = low - pad, high + pad
        ticks, labels = decade_ticks(low, high)
        axis.update(range=[low, high], tickmode="array", tickvals=ticks, ticktext=labels,
                    autorange=False, automargin=True)
        if zeros:
            notes.append(_note(axis_name, 0.0, f"gaps: exactly 0 at {zeros} of "
                               f"{zeros + bad + len(values)} points", "bottom"))
        for trace, finite in others:
            above = [v for v in finite if v > high]
            below = [v for v in finite if v < low]
            name = trace.get("name", "a line")
            if above:
                notes.append(_note(axis_name, 1.0, f"▲ {name} goes off the chart above, up to "
                                   f"{value_text(max(above))}", "top"))
            if below:
                notes.append(_note(axis_name, 0.0, f"▼ {name} goes off the chart below, down "
                                   f"to {value_text(min(below))}", "bottom"))
    if notes:
        layout["annotations"] = list(layout.get("annotations", [])) + notes
    _single_step_ticks(data, layout)


def _note(axis_name: str, where: float, text: str, anchor: str) -> dict:
    """A note inside the plot area of the y axis ``axis_name`` (paper-relative within its
    domain)."""
    yref = "y" + axis_name[5:] + " domain"
    return dict(text=text, xref="paper", x=0.5 if anchor == "middle" else 0.99,
                xanchor="center" if anchor == "middle" else "right", yref=yref, y=where,
                yanchor=anchor, showarrow=False, font=dict(size=13, color="#444444"),
                bgcolor="rgba(255,255,255,0.85)")


def _single_step_ticks(data: list[dict], layout: dict) -> None:
    """A plot of one time step gets one tick at that step (not -0.5 and 0.5)."""
    for trace in data:
        x = trace.get("x")
        if trace.get("type", "scatter") != "scatter" or x is None or len(x) != 1:
            return
    xs = {float(np.asarray(t["x"])[0]) for t in data if t.get("x") is not None}
    if len(xs) == 1 and "xaxis" in layout:
        only = xs.pop()
        layout["xaxis"].update(tickmode="array", tickvals=[only],
                               range=[only - 1, only + 1])


def figure_json(fig: Figure | go.Figure) -> dict:
    """The figure as plain data for the JSON boundary (which nulls and reports non-finite
    values): the builder's own dicts, unless plotly.py's figure was built (and maybe changed)."""
    if isinstance(fig, Figure) and fig._plotly is None:
        return fig._spec
    plotly_figure = fig.plotly if isinstance(fig, Figure) else fig
    return plotly_figure.to_plotly_json()


def positive_or_none(values: np.ndarray) -> np.ndarray:
    """Values for a log ("decade") axis, as float64: ``figure`` turns them into log10, a 0 into
    a gap that is not an error, and inf or nan into a reported gap."""
    return np.asarray(values, dtype=float)


def log10_or_nan(values: np.ndarray) -> np.ndarray:
    """log10 of each value (same shape, dtype object) for a heatmap's z or a colour scale: None
    (a gap, not an error) where the value is exactly 0, nan (nulled and reported as non-finite by
    the JSON boundary) where it is inf or nan."""
    values = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(np.abs(values))
    return np.where(values == 0, None, np.where(np.isfinite(values), logs, np.nan))


def finite_range(*arrays: np.ndarray) -> tuple[float, float] | None:
    """(min, max) over the finite numbers of arrays that may hold None gaps; None if none."""
    numbers = [float(v) for array in arrays for v in np.ravel(array)
               if v is not None and np.isfinite(v)]
    return (min(numbers), max(numbers)) if numbers else None


def log10_gaps(logs: np.ndarray) -> list:
    """log10 values computed elsewhere (e.g. a bound) as nested lists: -inf (log10 of an exact
    0) becomes None, a gap that is not an error; +inf and nan stay non-finite (reported)."""
    logs = np.asarray(logs, dtype=float)
    return np.where(np.isneginf(logs), None, logs).tolist()
