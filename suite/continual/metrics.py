"""Continual-learning metrics: pure functions on an accuracy matrix, and the decoding metric.

The accuracy matrix ``A[i][j]`` is the intent accuracy on experience j's test data after
training experience i (``nan`` where j was not evaluated). ``seen[i]`` is how many
experiences the model had been trained on at row i: ``i + 1`` for sequential methods, all
of them in the single row of joint training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

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


def edit_distance(reference: Sequence[Any], hypothesis: Sequence[Any]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def word_error_rate(references: Sequence[Sequence[Any]], hypotheses: Sequence[Sequence[Any]]) -> float:
    """Corpus WER: total edit distance over total reference words (0 for no words)."""
    errors = sum(edit_distance(r, h) for r, h in zip(references, hypotheses))
    words = sum(len(r) for r in references)
    return errors / words if words else 0.0


class DecodingMetrics(PluginMetric[dict]):
    """Greedy-decodes each evaluation batch; emits intent accuracy and WER per test experience.

    Intent accuracy compares the first decoded token with the gold intent token; WER compares
    the decoded transcript words with the gold ones. Values are fractions; the logger turns
    accuracies into percent.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def reset(self) -> None:
        self.correct = 0
        self.total = 0
        self.errors = 0
        self.words = 0

    def result(self) -> dict:
        return {"intent_acc": self.correct / max(self.total, 1), "wer": self.errors / max(self.words, 1)}

    def before_eval_exp(self, strategy: Any) -> None:
        self.reset()

    @torch.no_grad()
    def after_eval_iteration(self, strategy: Any) -> None:
        decoded = strategy.model.greedy_decode(strategy.mb_x, strategy.mb_x_lens, strategy.max_decode_len, strategy.bos_id, strategy.eos_id)
        gold = strategy.mb_tokens
        predicted_intent = decoded[:, 1] if decoded.size(1) > 1 else torch.full_like(gold[:, 1], -1)
        self.correct += int((predicted_intent == gold[:, 1]).sum())
        self.total += gold.size(0)
        for ref_row, hyp_row in zip(gold.tolist(), decoded.tolist()):
            reference = transcript_ids(ref_row, strategy.pad_id, strategy.eos_id)
            hypothesis = transcript_ids(hyp_row, strategy.pad_id, strategy.eos_id)
            self.errors += edit_distance(reference, hypothesis)
            self.words += len(reference)

    def after_eval_exp(self, strategy: Any) -> list[MetricValue]:
        j = strategy.experience.current_experience
        step = strategy.clock.train_iterations
        values = self.result()
        extra = {"correct": self.correct, "total": self.total, "errors": self.errors, "words": self.words}
        return [
            MetricValue(self, f"intent_acc/exp{j}", values["intent_acc"], step),
            MetricValue(self, f"wer/exp{j}", values["wer"], step),
            MetricValue(self, f"counts/exp{j}", extra, step),
        ]

    def __str__(self) -> str:
        return "DecodingMetrics"
