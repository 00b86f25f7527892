"""Continual-learning metrics: pure functions on an accuracy matrix, and the Avalanche metric that fills it.

The accuracy matrix ``A[i][j]`` is the intent accuracy on experience j's evaluation data after
training experience i (``nan`` where j was not evaluated). ``seen[i]`` is how many
experiences the model had been trained on at row i: ``i + 1`` for sequential methods, all
of them in the single row of joint training.

``AccuracyMatrix`` is where these numbers are computed during a run (Avalanche's split:
metrics compute, loggers only log): it greedy-decodes every evaluation batch, fills one row
per evaluation pass, and emits the row's values under their final names with the row index
as step; ``summary()`` gives the run's summary metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue
from torchaudio.functional import edit_distance

from suite.continual.transcript import transcript_ids

Matrix = Sequence[Sequence[float]]


def default_seen(matrix: Matrix) -> list[int]:
    return [i + 1 for i in range(len(matrix))]


def average_accuracies(matrix: Matrix, seen: Sequence[int] | None = None) -> list[float]:
    """Average accuracy after each row: mean of A[i][j] over the experiences seen so far."""
    seen = list(seen or default_seen(matrix))
    return [float(np.mean([row[j] for j in range(count)])) for row, count in zip(matrix, seen)]


def average_incremental_accuracy(matrix: Matrix, seen: Sequence[int] | None = None) -> float:
    """Avg Acc: the mean of the average accuracies over all rows."""
    return float(np.mean(average_accuracies(matrix, seen)))


def last_accuracy(matrix: Matrix, seen: Sequence[int] | None = None) -> float:
    """Last Acc: the average accuracy after the final row."""
    return average_accuracies(matrix, seen)[-1]


def forgetting(matrix: Matrix, seen: Sequence[int] | None = None) -> float:
    """Mean over the experiences learned before the last row of (best earlier accuracy - final accuracy)."""
    seen = list(seen or default_seen(matrix))
    if len(matrix) < 2:
        return 0.0
    last = matrix[-1]
    drops = []
    for j in range(seen[-2]):
        earlier = [matrix[i][j] for i in range(len(matrix) - 1) if j < seen[i]]
        drops.append(max(earlier) - last[j])
    return float(np.mean(drops)) if drops else 0.0


def backward_transfer(matrix: Matrix, seen: Sequence[int] | None = None) -> float:
    """BWT: mean over the experiences learned before the last row of A[last][j] - A[learned(j)][j]."""
    seen = list(seen or default_seen(matrix))
    if len(matrix) < 2:
        return 0.0
    gaps = []
    for j in range(seen[-2]):
        learned = next(i for i in range(len(matrix)) if j < seen[i])
        gaps.append(matrix[-1][j] - matrix[learned][j])
    return float(np.mean(gaps)) if gaps else 0.0


def word_error_rate(references: Sequence[Sequence[Any]], hypotheses: Sequence[Sequence[Any]]) -> float:
    """Corpus WER: total edit distance (torchaudio's) over total reference words (0 for no words)."""
    errors = sum(edit_distance(r, h) for r, h in zip(references, hypotheses))
    words = sum(len(r) for r in references)
    return errors / words if words else 0.0


@dataclass
class DecodingCounts:
    """What one evaluation experience adds up to: intents right out of utterances, word errors out of words."""

    correct: int = 0
    total: int = 0
    errors: int = 0
    words: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)

    def add(self, other: DecodingCounts) -> DecodingCounts:
        return DecodingCounts(self.correct + other.correct, self.total + other.total, self.errors + other.errors, self.words + other.words)


def decoding_counts(strategy: Any) -> DecodingCounts:
    """Greedy-decode the strategy's evaluation batch and count intent hits and transcript word errors."""
    decoded = strategy.model.greedy_decode(strategy.mb_x, strategy.mb_x_lens, strategy.max_decode_len, strategy.bos_id, strategy.eos_id)
    gold = strategy.mb_tokens
    predicted_intent = decoded[:, 1] if decoded.size(1) > 1 else torch.full_like(gold[:, 1], -1)
    counts = DecodingCounts(correct=int((predicted_intent == gold[:, 1]).sum()), total=gold.size(0))
    for ref_row, hyp_row in zip(gold.tolist(), decoded.tolist()):
        reference = transcript_ids(ref_row, strategy.pad_id, strategy.eos_id)
        counts.errors += edit_distance(reference, transcript_ids(hyp_row, strategy.pad_id, strategy.eos_id))
        counts.words += len(reference)
    return counts


class AccuracyMatrix(PluginMetric[dict]):
    """Decodes every evaluation batch and keeps the accuracy matrix, one row per evaluation pass.

    After each pass (``after_eval``) it emits, at step = the row's index, ``acc_exp<j>`` for every
    evaluated experience j, ``avg_acc_seen`` (the mean over the experiences trained so far) and
    ``wer_seen`` (corpus WER over those experiences), all in percent and prefixed with ``prefix``
    (``valid.`` while tuning). Intent accuracy compares the first decoded token with the gold
    intent token; WER compares the decoded transcript words with the gold ones.
    """

    def __init__(self, num_experiences: int, prefix: str = ""):
        super().__init__()
        self.num_experiences = num_experiences
        self.prefix = prefix
        self.rows: list[list[float]] = []
        self.seen: list[int] = []
        self.wers: list[float] = []
        self._row: dict[int, DecodingCounts] = {}
        self._experience = DecodingCounts()

    # ---- Avalanche callbacks ----------------------------------------------------------
    def reset(self) -> None:
        self._experience = DecodingCounts()

    def result(self) -> dict:
        return {"rows": self.rows, "seen": self.seen, "wers": self.wers}

    def before_eval_exp(self, strategy: Any) -> None:
        self.reset()

    @torch.no_grad()
    def after_eval_iteration(self, strategy: Any) -> None:
        self._experience = self._experience.add(decoding_counts(strategy))

    def after_eval_exp(self, strategy: Any) -> None:
        self._row[strategy.experience.current_experience] = self._experience

    def after_eval(self, strategy: Any) -> list[MetricValue]:
        """One evaluation pass = one row of the matrix, emitted at step = its index."""
        if not self._row:
            return []
        seen = len(strategy.seen_experiences) or len(self._row)
        row = [100.0 * self._row[j].accuracy if j in self._row else math.nan for j in range(self.num_experiences)]
        trained = DecodingCounts()
        for j in range(seen):
            trained = trained.add(self._row.get(j, DecodingCounts()))
        self.rows.append(row)
        self.seen.append(seen)
        self.wers.append(100.0 * trained.errors / trained.words if trained.words else 0.0)
        self._row = {}
        step = len(self.rows) - 1
        values = {f"acc_exp{j}": value for j, value in enumerate(row) if not math.isnan(value)}
        values["avg_acc_seen"] = average_accuracies([row], [seen])[0]
        values["wer_seen"] = self.wers[-1]
        return [MetricValue(self, f"{self.prefix}{name}", value, step) for name, value in values.items()]

    # ---- resume ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"rows": [list(row) for row in self.rows], "seen": list(self.seen), "wers": list(self.wers)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows, self.seen, self.wers = [list(row) for row in state["rows"]], list(state["seen"]), list(state["wers"])

    # ---- what the run reports ---------------------------------------------------------
    def summary(self) -> dict[str, float]:
        """The run's summary metrics in percent: avg_acc, last_acc, forgetting, bwt, wer (prefixed)."""
        values = {
            "avg_acc": average_incremental_accuracy(self.rows, self.seen),
            "last_acc": last_accuracy(self.rows, self.seen),
            "forgetting": forgetting(self.rows, self.seen),
            "bwt": backward_transfer(self.rows, self.seen),
            "wer": self.wers[-1] if self.wers else math.nan,
        }
        return {f"{self.prefix}{name}": value for name, value in values.items()}

    def payload(self) -> dict[str, Any]:
        """The matrix as a JSON-ready document (``None`` where an experience was not evaluated)."""
        return {
            "matrix": [[None if math.isnan(v) else v for v in row] for row in self.rows],
            "seen": self.seen,
            "rows": "trained up to experience i",
            "columns": f"{'valid' if self.prefix.startswith('valid') else 'test'} experience j",
            "unit": "percent intent accuracy",
        }

    def row_line(self, index: int = -1) -> str:
        """One terminal line for a row: its average over the seen experiences, each of them, WER."""
        row, seen = self.rows[index], self.seen[index]
        accuracies = " ".join(f"{row[j]:5.1f}" for j in range(seen))
        step = index % len(self.rows)
        average = average_accuracies([row], [seen])[0]
        return f"  after experience {step}: avg acc {average:5.1f}  [{accuracies}]  wer {self.wers[index]:5.1f}"

    def __str__(self) -> str:
        return "AccuracyMatrix"


class EpochLosses(PluginMetric[dict]):
    """Per-epoch means of the training loss and of each loss term, the gradient norm and how often clipping fired.

    Values accumulate on the device after every iteration and are read once per epoch (no
    per-batch device sync). Emitted after each epoch, at step = the number of epochs trained
    before it in the whole run (a global epoch count across experiences): ``train.loss``,
    ``train.loss.<term>`` (``seq2seq``, ``nspt``, ``mm``, ``akd``, ``skd``, ``lwf``, ``ewc``,
    ``si``, ``mas``, ``rwalk``, ``mir``, ``der``, ``der_ce``: each term before its weight, averaged
    over the batches it appeared in; ``agem``, ``gem``: the memory loss the projection compares
    with, not added to the loss), ``train.grad_norm``
    (the norm ``grad_clip`` bounds, before clipping: the total loss's gradient, or the seq2seq
    loss's with ``grad_clip_on=seq2seq_loss``), ``train.clip_fraction`` (share of steps
    clipped) and ``train.lr``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epochs = 0
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def reset(self) -> None:
        self._sums, self._counts = {}, {}

    def result(self) -> dict:
        return {"epochs": self.epochs}

    def before_training_epoch(self, strategy: Any) -> None:
        self.reset()

    def after_training_iteration(self, strategy: Any) -> None:
        self._add("loss", strategy.loss.detach().sum())
        for name, value in strategy.loss_terms.items():
            self._add(f"loss.{name}", value)
        if strategy.grad_norm is not None:
            self._add("grad_norm", strategy.grad_norm.detach())
            self._add("clip_fraction", (strategy.grad_norm.detach() > strategy.grad_clip).float())

    def after_training_epoch(self, strategy: Any) -> list[MetricValue]:
        if not self._counts:
            return []
        names = list(self._sums)
        totals = torch.stack([self._sums[name].float() for name in names]).tolist()  # the epoch's one device read
        values = {f"train.{name}": total / self._counts[name] for name, total in zip(names, totals)}
        values["train.lr"] = float(strategy.optimizer.param_groups[0]["lr"])
        step, self.epochs = self.epochs, self.epochs + 1
        return [MetricValue(self, name, value, step) for name, value in values.items()]

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs = state["epochs"]

    def _add(self, name: str, value: torch.Tensor) -> None:
        value = value.sum()  # scalars of any shape ([], [1])
        self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._counts[name] = self._counts.get(name, 0) + 1

    def __str__(self) -> str:
        return "EpochLosses"
