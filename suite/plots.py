"""The launch figure: a method's curve metric over its stages, one line per grid point, mean ± std over seeds.

For continual runs the curve is the average accuracy over the experiences seen so far, after
each experience (``avg_acc_seen``, step = experience index), so methods that forget early
and methods that never learn late look different even when their final numbers agree.
Drawn on a bare ``matplotlib.figure.Figure`` (no pyplot state), so it is safe in workers.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def curve_figure(histories: pd.DataFrame, metric: str, title: str, stage: str = "stage") -> Figure:
    """Plot ``histories`` (columns ``label, seed, step, value``): per label, the mean over seeds and a ± std band.

    The band is left out where only one seed reached a step; the legend says how many seeds
    each line averages.
    """
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.add_subplot()
    for label, curve in histories.groupby("label", sort=False):
        per_step = curve.groupby("step")["value"].agg(["mean", "std"])
        seeds = curve["seed"].nunique()
        line = axes.plot(per_step.index, per_step["mean"], marker="o", label=f"{label} ({seeds} seed{'s' if seeds > 1 else ''})")[0]
        band = per_step.dropna(subset=["std"])
        if not band.empty:
            axes.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"], color=line.get_color(), alpha=0.2)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(f"{stage} (step)")
    axes.set_ylabel(metric)
    axes.set_title(f"{title}\nmean ± std over seeds", fontsize="medium")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure
