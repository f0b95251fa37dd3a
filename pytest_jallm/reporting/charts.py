"""Charts for the HTML reports: matplotlib (Agg, no display), PNGs as base64 strings.

Uses `matplotlib.figure.Figure` directly rather than pyplot, so no global
figure state is touched (safe inside pytest and in threads).
"""

from __future__ import annotations

import base64
import io
import math
from typing import Mapping, Sequence

MISSING = "Charts need matplotlib, which is not installed (pip install matplotlib)."
_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(w: float, h: float, polar: bool = False):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111, projection="polar" if polar else None)
    return fig, ax


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def radar(series: Mapping[str, Mapping[str, float]], axes: Sequence[str] | None = None, title: str | None = None,
          max_value: float = 100.0) -> str | None:
    """One polygon per series (label -> {category: score 0-max_value}) over the category axes
    (MT-Bench's radar: 0-10).

    Needs three axes for a polygon; returns None with fewer.
    """
    if axes is None:
        axes = list(dict.fromkeys(c for s in series.values() for c in s))
    axes = list(axes)
    if len(axes) < 3 or not series:
        return None
    fig, ax = _figure(5.5, 5.5, polar=True)
    angles = [2 * math.pi * i / len(axes) for i in range(len(axes))]
    for i, (label, scores) in enumerate(series.items()):
        values = [float(scores.get(c) or 0.0) for c in axes]
        color = _COLORS[i % len(_COLORS)]
        ax.plot(angles + angles[:1], values + values[:1], color=color, linewidth=1.5, label=label)
        ax.fill(angles + angles[:1], values + values[:1], color=color, alpha=0.12)
    ax.set_theta_offset(math.pi / 2)  # first category on top, clockwise, as the leaderboard draws it
    ax.set_theta_direction(-1)
    ax.set_xticks(angles)
    ax.set_xticklabels(axes)
    ax.set_ylim(0, max_value)
    ax.set_yticks([max_value * k / 5 for k in range(1, 5)])
    ax.tick_params(axis="y", labelsize=7)
    if title:
        ax.set_title(title, pad=18)
    if len(series) > 1:
        ax.legend(loc="upper right", bbox_to_anchor=(1.35, 1.12), fontsize=7)
    return _png(fig)


def delta_bars(deltas: Mapping[str, float], highlight: set[str] | frozenset[str] = frozenset()) -> str:
    """Horizontal bars of score - baseline per benchmark; red where the gate flagged a regression."""
    names = list(deltas)
    fig, ax = _figure(6.5, max(1.6, 0.35 * len(names) + 0.8))
    colors = ["#d62728" if n in highlight else ("#2ca02c" if deltas[n] >= 0 else "#ff9896") for n in names]
    ax.barh(range(len(names)), [deltas[n] for n in names], color=colors)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.axvline(0, color="#333", linewidth=0.8)
    ax.set_xlabel("Δ score vs baseline (points)")
    lim = max([abs(v) for v in deltas.values()] + [1.0]) * 1.15
    ax.set_xlim(-lim, lim)
    for i, n in enumerate(names):
        v = deltas[n]
        ax.text(v, i, f" {v:+.2f} ", va="center", ha="left" if v >= 0 else "right", fontsize=7)
    return _png(fig)


def scatter_params(points: Mapping[str, tuple[float, float]]) -> str:
    """AVG against #params (billions, log scale): label -> (params_b, avg)."""
    fig, ax = _figure(6.5, 4.5)
    for i, (label, (params, avg)) in enumerate(points.items()):
        ax.scatter([params], [avg], color=_COLORS[i % len(_COLORS)], s=30)
        ax.annotate(label, (params, avg), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if all(p > 0 for p, _ in points.values()):
        ax.set_xscale("log")
    ax.set_xlabel("#params (B)")
    ax.set_ylabel("AVG")
    ax.grid(True, alpha=0.3)
    return _png(fig)
