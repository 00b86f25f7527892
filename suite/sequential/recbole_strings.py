"""Which strings may reach RecBole's ``Config``, and in what form.

RecBole's ``Config._convert_config_dict`` calls ``eval()`` on every top-level string of its
config dict and of the command line (``sys.argv``): a user string that reaches it is code.
So no string leaves the suite unchecked:

1. the spec's options validate each string against its grammar when the spec is read
   (metric names, ``name@k`` and devices here; dataset names, field names and intervals in
   ``scenarios.recsys.grammar``), so a bad value is exit 2 naming the key, before any run;
2. ``guard_config`` checks the whole config dict again, key by key, right before
   ``Config(...)`` (a value no grammar accepts is refused), and hands RecBole every string as
   a Python string literal (``repr``): ``eval`` of a literal is the string itself and runs
   nothing, so even a grammar too generous could not run code.

The command line is the third door: the pipeline hands RecBole an empty ``sys.argv``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from recbole.evaluator.register import metric_information, metric_types
from recbole.utils import EvaluatorType

from scenarios.recsys.grammar import dataset_name, field_name, interval
from suite.errors import SpecError

RANKING_METRICS = sorted(name for name, kind in metric_types.items() if kind == EvaluatorType.RANKING)
"""RecBole's registry of metrics a full-ranking evaluation computes (hit, ndcg, mrr, ...)."""
TOPK_METRICS = frozenset(name for name in RANKING_METRICS if {"rec.topk", "rec.items"} & set(metric_information[name]))
"""The ranking metrics computed at a cut-off k (``mrr@10``); the others (``gauc``) have none."""

METRIC_AT_K = re.compile(r"([A-Za-z]+)(?:@([1-9][0-9]{0,5}))?")
DEVICE = re.compile(r"cpu|cuda(?::([0-9]{1,3}))?")
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
"""A choice among fixed values (``CE``, ``gelu``, ``adam``, ``per_anchor``, ``two-step``): the grammar of any other string key."""
GPU_ID = re.compile(r"|[0-9]{1,3}")
ABSOLUTE_PATH = re.compile(r"/[^\x00-\x1f]*")


def metric_name(value: str) -> str:
    """A metric of RecBole's ranking registry, any case (``Hit``, ``NDCG``, ``MRR``)."""
    if not re.fullmatch(r"[A-Za-z]+", value) or value.lower() not in RANKING_METRICS:
        raise ValueError(f"expected one of RecBole's ranking metrics ({', '.join(RANKING_METRICS)})")
    return value


def split_valid_metric(value: str) -> tuple[str, int | None]:
    """``MRR@10`` -> ('mrr', 10); ``GAUC`` -> ('gauc', None); anything else is a ValueError."""
    match = METRIC_AT_K.fullmatch(value)
    if not match:
        raise ValueError("expected a metric such as 'NDCG@10' or 'MRR@10'")
    name, k = match.group(1).lower(), match.group(2)
    metric_name(name)
    if name in TOPK_METRICS and k is None:
        raise ValueError(f"metric {value!r} needs a cut-off, e.g. '{match.group(1)}@10'")
    if name not in TOPK_METRICS and k is not None:
        raise ValueError(f"metric {match.group(1)!r} has no cut-off; write {match.group(1)!r}")
    return name, int(k) if k is not None else None


def valid_metric(value: str) -> str:
    split_valid_metric(value)
    return value


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"expected {what}")
        return value

    return check


GRAMMARS: dict[str, Callable[[str], str]] = {
    "dataset": dataset_name,
    "data_path": _matching(ABSOLUTE_PATH, "an absolute folder path"),
    "checkpoint_dir": _matching(ABSOLUTE_PATH, "an absolute folder path"),
    "pre_model_path": _matching(re.compile(f"|{ABSOLUTE_PATH.pattern}"), "an absolute file path or ''"),
    "item_attribute": field_name,
    "USER_ID_FIELD": field_name,
    "ITEM_ID_FIELD": field_name,
    "TIME_FIELD": field_name,
    "user_inter_num_interval": interval,
    "item_inter_num_interval": interval,
    "valid_metric": valid_metric,
    "gpu_id": _matching(GPU_ID, "a GPU index or ''"),
    "weight_mode": _matching(re.compile(r"|dynamic|static|max_logits"), "'', 'dynamic', 'static' or 'max_logits'"),
    "reranker_CAN_NUM": _matching(re.compile(r"[1-9][0-9]{0,6}(?:,[1-9][0-9]{0,6}){0,7}"), "partition sizes such as '500,100,20'"),
}
"""The grammar of each string-valued RecBole key; any other key's string must be a ``WORD``."""
NESTED_GRAMMARS: dict[str, Callable[[str], str]] = {"metrics": metric_name, "load_col": field_name, "selected_features": field_name}
"""Keys whose nested strings (list items, dict values) RecBole reads as names; it does not eval them."""


def grammar_of(key: str) -> Callable[[str], str]:
    return GRAMMARS.get(key, _matching(WORD, "a word (letters, digits, '_', '.', '-')"))


def guard_config(config_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The last gate before ``Config(...)``: every string checked by its key's grammar, then quoted.

    Returns a copy in which each top-level string is its own Python literal (``'NDCG@10'``
    becomes ``"'NDCG@10'"``), which RecBole's ``eval`` turns back into exactly the string.
    A string no grammar accepts raises ``SpecError`` naming the key.
    """
    guarded: dict[str, Any] = {}
    for key, value in config_dict.items():
        _check_nested(key, value)
        if isinstance(value, str):
            _check(key, value, grammar_of(key))
            value = repr(str(value))
        guarded[key] = value
    return guarded


def _check(key: str, value: str, grammar: Callable[[str], str]) -> None:
    try:
        grammar(value)
    except ValueError as error:
        raise SpecError(f"RecBole config key '{key}' = {value!r}: {error}; refused (RecBole would eval it)") from None


def _check_nested(key: str, value: Any) -> None:
    grammar = NESTED_GRAMMARS.get(key)
    if grammar is None:
        return
    items = [item for values in value.values() for item in values] if isinstance(value, Mapping) else value
    for item in items if isinstance(items, (list, tuple)) else [items]:
        if isinstance(item, str):
            _check(key, item, grammar)
