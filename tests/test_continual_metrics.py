"""Continual-learning metrics on a known accuracy matrix, and WER."""

import math

import pytest

from suite.continual.metrics import (
    average_accuracies,
    average_incremental_accuracy,
    backward_transfer,
    edit_distance,
    forgetting,
    last_accuracy,
    word_error_rate,
)
from suite.continual.transcript import transcript_ids

NAN = math.nan
MATRIX = [
    [90.0, NAN, NAN],
    [60.0, 80.0, NAN],
    [50.0, 70.0, 85.0],
]


def test_average_accuracies_per_row():
    assert average_accuracies(MATRIX) == pytest.approx([90.0, 70.0, 205.0 / 3])


def test_avg_acc_is_average_incremental_accuracy_and_last_acc_is_last_row():
    assert average_incremental_accuracy(MATRIX) == pytest.approx((90.0 + 70.0 + 205.0 / 3) / 3)
    assert last_accuracy(MATRIX) == pytest.approx(205.0 / 3)


def test_forgetting_uses_best_earlier_accuracy():
    # experience 0: best 90, final 50 -> 40; experience 1: best 80, final 70 -> 10
    assert forgetting(MATRIX) == pytest.approx(25.0)
    improving = [[50.0, NAN], [70.0, 90.0]]
    assert forgetting(improving) == pytest.approx(-20.0)


def test_bwt_against_accuracy_just_after_learning():
    assert backward_transfer(MATRIX) == pytest.approx(((50 - 90) + (70 - 80)) / 2)


def test_joint_single_row_with_every_experience_seen():
    joint = [[92.0, 88.0, 90.0]]
    assert average_incremental_accuracy(joint, seen=[3]) == pytest.approx(90.0)
    assert last_accuracy(joint, seen=[3]) == pytest.approx(90.0)
    assert forgetting(joint, seen=[3]) == 0.0
    assert backward_transfer(joint, seen=[3]) == 0.0


def test_future_columns_are_ignored():
    full = [[90.0, 5.0, 3.0], [60.0, 80.0, 7.0], [50.0, 70.0, 85.0]]
    assert average_incremental_accuracy(full) == pytest.approx(average_incremental_accuracy(MATRIX))


def test_edit_distance_and_wer():
    # torchaudio.functional.edit_distance since issue 13.2; the values are those of the former own Levenshtein
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert edit_distance([], [1, 2]) == 2
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert word_error_rate([[1, 2, 3, 4], [5, 6]], [[1, 9, 3, 4], [5, 6, 7]]) == pytest.approx(2 / 6)


def test_transcript_ids_skip_prefix_and_stop_at_eos():
    # [bos=1, intent=7, sep=3, w, w, eos=2, pad...]
    assert transcript_ids([1, 7, 3, 11, 12, 2, 0, 0], pad_id=0, eos_id=2) == [11, 12]
    assert transcript_ids([1, 7, 3, 11, 12], pad_id=0, eos_id=2) == [11, 12]
