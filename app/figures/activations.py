"""Figures of the activations page (/activations): why a slope capped at 0.25 (sigmoid) makes a
gradient vanish through many steps, and why tanh (slope up to 1) lasts longer but cannot grow.

Every figure works as a plotly.py ``go.Figure`` too, so also in a notebook::

    from gradient_flow_lab.app.figures.activations import chain_figure
    chain_figure(depth=30, x0=0.5).show()

The numbers come from ``engine.activations``: ``compose(name, x, n)`` gives f^k(x) and the chain
product d f^k / dx = prod_{j<k} f'(f^j(x)) for k = 0..n.
"""

from __future__ import annotations

import numpy as np

from gradient_flow_lab.app.figures.common import (
    PALETTE,
    Figure,
    base_layout,
    figure,
    positive_or_none,
)
from gradient_flow_lab.engine import (
    DERIVATIVE_BOUND,
    activation,
    activation_grad,
    compose,
    grad_maxima,
    sigmoid_fixed_point,
)

MAX_DEPTH = 50
X0_LIMIT = 5.0

# One colour per nonlinearity on every figure of the page (Okabe-Ito).
COLOURS = {"sigmoid": PALETTE[1], "tanh": PALETTE[0], "relu": PALETTE[2]}  # orange, blue, green
FAINT = "#B8BEC6"

# x = -6.00, -5.95, ..., 6.00 built from integers so that 0 is exactly on the grid: the
# derivative maxima (both at x = 0) are then read off the grid, not assumed.
CURVE_X = np.arange(-120, 121) / 20.0  # (241,)
# Starting points for the repeated-application figures: the x0 slider's range.
START_X = np.arange(-100, 101) / 20.0  # (201,) in [-5, 5]
EARLIER_DEPTHS = (1, 2, 3, 5, 10, 20, 30, 40)  # faint curves drawn under the chosen depth n


def curves_figure() -> Figure:
    """Left: sigmoid, tanh and ReLU on [-6, 6]. Right: their derivatives, maxima annotated."""
    data = []
    for name in ("sigmoid", "tanh", "relu"):
        colour = COLOURS[name]
        dash = "dot" if name == "relu" else "solid"
        data.append(_scatter(
            x=CURVE_X, y=activation(name, CURVE_X), mode="lines", name=name,
            legendgroup=name, line=dict(color=colour, width=2.5, dash=dash),
            hovertemplate="x = %{x:.2f}<br>" + name + "(x) = %{y:.4f}<extra></extra>"))
        data.append(_scatter(
            x=CURVE_X, y=activation_grad(name, CURVE_X), mode="lines", name=f"{name}′",
            legendgroup=name, showlegend=False, xaxis="x2", yaxis="y2",
            # relu' jumps from 0 to 1 at x = 0: draw it as a step, not a slanted segment.
            line=dict(color=colour, width=2.5, dash=dash, shape="hv" if name == "relu" else None),
            hovertemplate="x = %{x:.2f}<br>" + name + "′(x) = %{y:.4f}<extra></extra>"))
    layout = _two_panels("The activation functions and their slopes",
                         "f(x)", "slope f′(x)", height=420)
    layout["yaxis2"]["range"] = [-0.05, 1.15]
    maxima = grad_maxima(CURVE_X, ("sigmoid", "tanh"))
    layout["annotations"] += [
        _arrow_note(0.0, maxima["sigmoid"], f"sigmoid′ max = {maxima['sigmoid']:g} at x = 0",
                    ax=60, ay=-22, xanchor="left", colour=COLOURS["sigmoid"]),
        _arrow_note(0.0, maxima["tanh"], f"tanh′ max = {maxima['tanh']:g} at x = 0",
                    ax=-30, ay=-14, xanchor="right", colour=COLOURS["tanh"]),
    ]
    return figure(data, layout)


def iterates_figure(depth: int, x0: float | None = None) -> Figure:
    """f^n(x) against the starting point x for the chosen n, sigmoid left and tanh right, with
    faint curves for smaller n. sigmoid^n flattens onto its fixed point ~0.659 (no slope left:
    the start no longer matters); tanh^n shrinks towards 0 only slowly and keeps a slope."""
    check_depth(depth)
    fixed = sigmoid_fixed_point()
    data = []
    for panel, name in enumerate(("sigmoid", "tanh")):
        axes = dict(xaxis="x2", yaxis="y2") if panel else {}
        values, _ = compose(name, START_X, depth)  # (n + 1, N)
        earlier = [k for k in EARLIER_DEPTHS if k < depth]
        for i, k in enumerate(earlier):
            data.append(_scatter(
                x=START_X, y=values[k], mode="lines", name="smaller n",
                legendgroup="earlier", showlegend=panel == 0 and i == 0,
                line=dict(color=FAINT, width=1.2), **axes,
                hovertemplate=f"n = {k}<br>x = %{{x:.2f}}<br>f^n(x) = %{{y:.4f}}<extra></extra>"))
        data.append(_scatter(
            x=START_X, y=values[depth], mode="lines", name=f"{name}ⁿ(x), n = {depth}",
            line=dict(color=COLOURS[name], width=3), **axes,
            hovertemplate=(f"n = {depth}<br>x = %{{x:.2f}}<br>{name}ⁿ(x) = %{{y:.4f}}"
                           "<extra></extra>")))
        if x0 is not None:
            end = compose(name, np.array([x0]), depth)[0][depth, 0]
            data.append(_scatter(
                x=[x0], y=[end], mode="markers", name="start x₀", legendgroup="x0",
                showlegend=panel == 0, **axes,
                marker=dict(color=COLOURS[name], size=10, symbol="circle",
                            line=dict(color="#000000", width=1.5)),
                hovertemplate=f"x₀ = %{{x:.2f}}<br>{name}ⁿ(x₀) = %{{y:.4f}}<extra></extra>"))
    layout = _two_panels(f"Applying the function n = {depth} times", "fⁿ(x)", "fⁿ(x)",
                         x_title="starting point x", panel_titles=("sigmoidⁿ(x)", "tanhⁿ(x)"))
    if depth >= 1:  # n = 0 is the identity line; from n = 1 on, every value is inside (-1, 1)
        layout["yaxis"]["range"] = layout["yaxis2"]["range"] = [-1.08, 1.08]
    layout["shapes"] = [
        _hline(fixed, "x", "y", COLOURS["sigmoid"]),
        _hline(0.0, "x2", "y2", COLOURS["tanh"]),
    ]
    layout["annotations"] += [
        dict(x=1.0, xref="x domain", y=fixed, yref="y", xanchor="right", yanchor="bottom",
             text=f"fixed point {fixed:.3f}", showarrow=False,
             font=dict(size=12, color=COLOURS["sigmoid"])),
        dict(x=1.0, xref="x2 domain", y=0.0, yref="y2", xanchor="right", yanchor="bottom",
             text="fixed point 0", showarrow=False, font=dict(size=12, color=COLOURS["tanh"])),
    ]
    return figure(data, layout)


def chain_figure(depth: int, x0: float) -> Figure:
    """The product of slopes along the chain, d f^k(x0)/dx0 for k = 0..n, on a log axis, with
    each function's best case (its largest slope to the power k): 0.25^k and 1^k."""
    check_depth(depth)
    steps = np.arange(depth + 1)  # (n + 1,)
    data = []
    for name in ("sigmoid", "tanh"):
        bound = DERIVATIVE_BOUND[name]
        data.append(_scatter(
            x=steps, y=bound ** steps.astype(float), mode="lines",
            name=f"{name} best case {bound:g}ᵏ", line=dict(color=COLOURS[name], width=2,
                                                        dash="dash"),
            hovertemplate=f"k = %{{x}}<br>{bound:g}ᵏ = %{{y:.3e}}<extra></extra>"))
    for name in ("sigmoid", "tanh"):
        _, products = compose(name, np.array([x0]), depth)  # (n + 1, 1)
        data.append(_scatter(
            x=steps, y=positive_or_none(products[:, 0]), mode="lines+markers",
            name=f"{name}, from x₀ = {x0:g}", line=dict(color=COLOURS[name], width=3),
            marker=dict(size=5),
            hovertemplate=(f"k = %{{x}}<br>∏ {name}′ = %{{y:.3e}}<extra>x₀ = {x0:g}</extra>")))
    layout = base_layout(f"Product of slopes through k steps (x₀ = {x0:g})", "steps k",
                         "∏ f′ along the chain (log)", log_y=True, height=400)
    layout["xaxis"]["range"] = [0, max(depth, 1)]
    _log_decades(layout["yaxis"], [trace["y"] for trace in data])
    return figure(data, layout)


def spread_figure(depth: int, x0: float | None = None) -> Figure:
    """d f^n(x)/dx at the chosen depth n for every starting point x: where the gradient
    survives n steps. The sigmoid's stays under 0.25^n everywhere."""
    check_depth(depth)
    data = []
    for name in ("sigmoid", "tanh"):
        _, products = compose(name, START_X, depth)  # (n + 1, N)
        data.append(_scatter(
            x=START_X, y=positive_or_none(products[depth]), mode="lines",
            name=f"{name}", line=dict(color=COLOURS[name], width=3),
            hovertemplate=(f"x = %{{x:.2f}}<br>d {name}ⁿ/dx = %{{y:.3e}}<extra>n = {depth}"
                           "</extra>")))
    layout = base_layout(f"Gradient after n = {depth} steps, for every start", "starting point x",
                         "d fⁿ(x)/dx (log)", log_y=True, height=400)
    layout["shapes"] = [
        _hline(DERIVATIVE_BOUND["sigmoid"] ** depth, "x", "y", COLOURS["sigmoid"]),
        _hline(DERIVATIVE_BOUND["tanh"] ** depth, "x", "y", COLOURS["tanh"]),
    ]
    layout["annotations"] = [
        dict(x=0.0, xref="x domain", y=np.log10(DERIVATIVE_BOUND["sigmoid"] ** depth), yref="y",
             xanchor="left", yanchor="top", showarrow=False,
             text=f"0.25ⁿ = {0.25 ** depth:.3g}", font=dict(size=12, color=COLOURS["sigmoid"])),
        dict(x=0.0, xref="x domain", y=0.0, yref="y", xanchor="left", yanchor="bottom",
             showarrow=False, text="1ⁿ = 1", font=dict(size=12, color=COLOURS["tanh"])),
    ]
    _log_decades(layout["yaxis"], [trace["y"] for trace in data] + [[0.25**depth]])
    if x0 is not None:
        layout["shapes"].append(dict(type="line", xref="x", x0=x0, x1=x0, yref="y domain",
                                     y0=0, y1=1, line=dict(color="#000000", width=1, dash="dot")))
    return figure(data, layout)


def _scatter(**trace) -> dict:
    """A scatter trace (app.jsonsafe turns its arrays into plain lists)."""
    return dict(type="scatter", **trace)


def check_depth(depth: int) -> None:
    """Raises ValueError unless depth is an integer in 0..MAX_DEPTH (the figures' x range)."""
    if isinstance(depth, bool) or int(depth) != depth or not 0 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be an integer in 0..{MAX_DEPTH}, got {depth!r}")


def _two_panels(title: str, y_title: str, y2_title: str, *, x_title: str = "x",
                panel_titles: tuple[str, str] = ("f(x)", "f′(x)"), height: int = 410) -> dict:
    """base_layout with a second panel on the right (axes x2, y2)."""
    layout = base_layout(title, x_title, y_title, height=height)
    layout["margin"] = dict(l=64, r=20, t=70, b=48)
    layout["xaxis"]["domain"] = [0.0, 0.46]
    layout["xaxis2"] = dict(domain=[0.54, 1.0], anchor="y2", title=dict(text=x_title),
                            zeroline=False)
    layout["yaxis2"] = dict(anchor="x2", title=dict(text=y2_title), zeroline=False,
                            exponentformat="power")
    layout["annotations"] = [
        dict(x=0.5, xref=f"{axis} domain", y=1.02, yref="paper", yanchor="bottom",
             text=f"<b>{text}</b>", showarrow=False, font=dict(size=13))
        for axis, text in (("x", panel_titles[0]), ("x2", panel_titles[1]))
    ]
    return layout


def _arrow_note(x: float, y: float, text: str, *, ax: int, ay: int, xanchor: str,
                colour: str) -> dict:
    return dict(x=x, y=y, xref="x2", yref="y2", text=text, showarrow=True, arrowhead=2,
                ax=ax, ay=ay, xanchor=xanchor, arrowcolor=colour, font=dict(size=12, color=colour),
                bgcolor="rgba(255,255,255,0.85)")


def _log_decades(axis: dict, series: list) -> None:
    """A log axis from the decade below the smallest positive value up to just above 1, with
    about six labelled powers of ten and no minor-digit labels (2, 3, ... 9) at small ranges."""
    values = np.concatenate([np.asarray(y, dtype=float) for y in series])
    smallest = np.nanmin(np.where(values > 0, values, np.nan))
    low = float(np.floor(np.log10(smallest))) if np.isfinite(smallest) else -1.0
    low = min(low, -1.0)
    axis.update(range=[low - 0.2, 0.3], dtick=max(1, int(np.ceil(-low / 6))))


def _hline(y: float, xref: str, yref: str, colour: str) -> dict:
    return dict(type="line", xref=f"{xref} domain", x0=0, x1=1, yref=yref, y0=y, y1=y,
                line=dict(color=colour, width=1.5, dash="dot"))
