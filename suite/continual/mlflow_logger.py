"""An Avalanche logger that writes what the continual metrics computed to MLflow, through the suite's Tracker.

Avalanche ships no MLflow logger. This one computes nothing (Avalanche's split: metrics compute,
loggers log): every ``MetricValue`` it receives already carries its final name and its step
(``x_plot``), and is written as such, one MLflow batch per step. The accuracy matrix arrives
at the end as a document and is written as JSON and as a heatmap PNG.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from avalanche.evaluation.metric_results import MetricValue
from avalanche.logging import BaseLogger


class MLflowContinualLogger(BaseLogger):
    """Numbers to MLflow metrics at their step; the accuracy matrix to artifacts. No tracker: logs nothing."""

    def __init__(self, tracker: Any | None):
        super().__init__()
        self.tracker = tracker

    def log_metrics(self, metric_values: list[MetricValue]) -> None:
        """Write every numeric value, grouped into one request per step."""
        by_step: dict[int, dict[str, float]] = defaultdict(dict)
        for value in metric_values:
            if isinstance(value.value, (int, float)) and not isinstance(value.value, bool):
                by_step[int(value.x_plot)][value.name] = float(value.value)
        if self.tracker is not None:
            for step, values in by_step.items():
                self.tracker.log_metrics(values, step=step)

    def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
        self.log_metrics([MetricValue(self, name, value, x_plot)])

    def log_accuracy_matrix(self, payload: dict[str, Any], title: str) -> None:
        """The matrix document as ``accuracy_matrix.json`` and its heatmap, titled, as ``accuracy_matrix.png``."""
        if self.tracker is None or not payload["matrix"]:
            return
        self.tracker.log_dict(payload, "accuracy_matrix.json")
        self.tracker.log_figure(heatmap(payload["matrix"], title), "accuracy_matrix.png")


def heatmap(rows: list[list[float | None]], title: str = "") -> Any:
    """The accuracy matrix as an annotated heatmap (matplotlib figure, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    data = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    figure, axis = plt.subplots(figsize=(1.5 + 0.6 * data.shape[1], 1.4 + 0.5 * data.shape[0]))
    image = axis.imshow(np.ma.masked_invalid(data), vmin=0, vmax=100, cmap="viridis")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if not np.isnan(data[i, j]):
                axis.text(j, i, f"{data[i, j]:.0f}", ha="center", va="center", color="white" if data[i, j] < 60 else "black", fontsize=8)
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("evaluated on experience j")
    axis.set_ylabel("trained up to experience i")
    axis.set_xticks(range(data.shape[1]))
    axis.set_yticks(range(data.shape[0]))
    figure.colorbar(image, ax=axis, label="intent accuracy (%)")
    figure.tight_layout()
    plt.close(figure)
    return figure
