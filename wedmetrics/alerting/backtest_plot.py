"""Plot of a backtest: series, labelled windows, pending/firing spans, notifications.

Matplotlib is the ``[plot]`` extra: imported only when a plot is asked for.
"""
from __future__ import annotations

import numpy as np

__all__ = ["plot_backtest"]


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()))


def plot_backtest(result, ax=None, *, metric: str | None = None):
    """Draw ``result`` (a :class:`~wedmetrics.alerting.backtest.BacktestResult`).

    Parameters
    ----------
    ax : matplotlib Axes, optional
        Drawn into when given; else a new figure is made.
    metric : str, optional
        Which metric to draw (default: the first).

    Returns
    -------
    matplotlib.figure.Figure
    """
    try:
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError as e:      # the [plot] extra is missing
        raise ImportError("BacktestResult.plot needs matplotlib: pip install 'wedmetrics[plot]'") from e
    name = metric or next(iter(result.values))
    if name not in result.values:
        raise ValueError(f"metric {name!r} is not in the data (have {sorted(result.values)})")
    if ax is None:
        fig, ax = plt.subplots(figsize=(12, 4.5))
    else:
        fig = ax.figure
    t = (result.timestamps.astype("datetime64[s]") if len(result.timestamps)
         else np.array([], dtype="datetime64[s]"))
    y = result.values[name]
    ax.plot(t, y, lw=0.7, color="0.25", label=name)
    half = np.timedelta64(int(result.step // 2), "s")
    for k, (lo, hi) in enumerate(result.windows.tolist()):
        ax.axvspan(t[lo], t[hi], color="tab:green", alpha=0.18, label="labelled window" if k == 0 else None)
    colours = ["tab:red", "tab:purple", "tab:orange", "tab:blue", "tab:brown"]
    low, high = (float(np.min(y)), float(np.max(y))) if len(y) else (0.0, 1.0)
    band = (high - low) or 1.0
    for j, rule in enumerate(result.rules):
        c = colours[j % len(colours)]
        # one strip per rule under the series: pending light, firing solid
        y0 = low - band * (0.06 + 0.05 * j)
        for state, alpha, lw in (("pending", 0.35, 3), ("firing", 1.0, 5)):
            mask = result.pending[:, j] if state == "pending" else result.firing[:, j]
            for s, (lo, hi) in enumerate(_spans(mask)):
                ax.plot([t[lo] - half, t[hi] + half], [y0, y0], color=c, alpha=alpha, lw=lw,
                        solid_capstyle="butt", label=f"{rule.name} {state}" if s == 0 else None)
        rows = np.flatnonzero(result.onsets[:, j])
        if rows.size:
            ax.scatter(t[rows], y[rows], marker="v", s=60, color=c, zorder=3,
                       label=f"{rule.name} notification")
    ax.set_title(f"backtest of {result.data_name or name}: "
                 f"{result.metrics['overall']['notifications']} notifications, "
                 f"{result.metrics['overall']['windows_detected']}/{len(result.windows)} windows")
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    ax.legend(loc="upper left", fontsize="small", ncol=2)
    fig.tight_layout()
    return fig
