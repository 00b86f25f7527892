"""An Avalanche logger that writes continual-learning results to MLflow through the suite's Tracker.

Avalanche ships no MLflow logger. This one receives the ``DecodingMetrics`` values of each
evaluation pass (one pass after each training experience), fills one row of the accuracy
matrix, and logs it with the experience index as MLflow step: the accuracy on each test
experience, the average accuracy over the experiences seen so far, and the WER. At the end
(``finalize``) it logs the matrix as JSON and as a heatmap PNG.
"""

from __future__ import annotations

import math
import re
from typing import Any

from avalanche.logging import BaseLogger

from suite.continual import metrics as cl_metrics

_VALUE = re.compile(r"^(intent_acc|wer)/exp(\d+)$")
_COUNT = re.compile(r"^counts/exp(\d+)/(\w+)$")


class MLflowContinualLogger(BaseLogger):
    """Accuracy-matrix rows to MLflow after every experience; the matrix itself at the end."""

    def __init__(self, tracker: Any | None, num_experiences: int, prefix: str = "", echo: bool = False):
        super().__init__()
        self.tracker = tracker
        self.num_experiences = num_experiences
        self.prefix = prefix
        self.echo = echo
        self.rows: list[list[float]] = []
        self.seen: list[int] = []
        self.wers: list[float] = []
        self._values: dict[int, float] = {}
        self._counts: dict[int, dict[str, float]] = {}

    def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
        if match := _VALUE.match(name):
            if match.group(1) == "intent_acc":
                self._values[int(match.group(2))] = 100.0 * float(value)
        elif match := _COUNT.match(name):
            self._counts.setdefault(int(match.group(1)), {})[match.group(2)] = float(value)

    def after_eval(self, strategy: Any, metric_values: Any) -> None:
        """One evaluation pass = one row of the matrix, logged at step = its experience index."""
        if not self._values:
            return
        row = [self._values.get(j, math.nan) for j in range(self.num_experiences)]
        seen = len(strategy.seen_experiences) or len(self._values)
        errors = sum(self._counts.get(j, {}).get("errors", 0.0) for j in range(seen))
        words = sum(self._counts.get(j, {}).get("words", 0.0) for j in range(seen))
        wer = 100.0 * errors / words if words else 0.0
        self.rows.append(row)
        self.seen.append(seen)
        self.wers.append(wer)
        self._values, self._counts = {}, {}
        step = len(self.rows) - 1
        logged = {f"{self.prefix}acc_exp{j}": value for j, value in enumerate(row) if not math.isnan(value)}
        logged[f"{self.prefix}avg_acc_seen"] = cl_metrics.average_accuracies([row], [seen])[0]
        logged[f"{self.prefix}wer_seen"] = wer
        if self.tracker is not None:
            self.tracker.log_metrics(logged, step=step)
        if self.echo:
            accs = " ".join(f"{row[j]:5.1f}" for j in range(seen))
            print(f"  after experience {step}: avg acc {logged[f'{self.prefix}avg_acc_seen']:5.1f}  [{accs}]  wer {wer:5.1f}", flush=True)

    def summary(self) -> dict[str, float]:
        """The run's summary metrics in percent: avg_acc, last_acc, forgetting, bwt, wer."""
        return {
            "avg_acc": cl_metrics.average_incremental_accuracy(self.rows, self.seen),
            "last_acc": cl_metrics.last_accuracy(self.rows, self.seen),
            "forgetting": cl_metrics.forgetting(self.rows, self.seen),
            "bwt": cl_metrics.backward_transfer(self.rows, self.seen),
            "wer": self.wers[-1] if self.wers else math.nan,
        }

    def finalize(self) -> None:
        """Log the accuracy matrix (JSON and heatmap PNG)."""
        if self.tracker is None or not self.rows:
            return
        payload = {
            "matrix": [[None if math.isnan(v) else v for v in row] for row in self.rows],
            "seen": self.seen,
            "rows": "trained up to experience i",
            "columns": "test experience j",
            "unit": "percent intent accuracy",
        }
        self.tracker.log_dict(payload, "accuracy_matrix.json")
        self.tracker.log_figure(heatmap(self.rows), "accuracy_matrix.png")


def heatmap(rows: list[list[float]]) -> Any:
    """The accuracy matrix as an annotated heatmap (matplotlib figure, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    data = np.array(rows, dtype=float)
    figure, axis = plt.subplots(figsize=(1.0 + 0.6 * data.shape[1], 1.0 + 0.5 * data.shape[0]))
    image = axis.imshow(np.ma.masked_invalid(data), vmin=0, vmax=100, cmap="viridis")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if not np.isnan(data[i, j]):
                axis.text(j, i, f"{data[i, j]:.0f}", ha="center", va="center", color="white" if data[i, j] < 60 else "black", fontsize=8)
    axis.set_xlabel("test experience j")
    axis.set_ylabel("trained up to experience i")
    axis.set_xticks(range(data.shape[1]))
    axis.set_yticks(range(data.shape[0]))
    figure.colorbar(image, ax=axis, label="intent accuracy (%)")
    figure.tight_layout()
    plt.close(figure)
    return figure
