"""Spec keys as MLflow keys: a nested spec flattened to dotted params, metric names MLflow accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

MAX_PARAM_LENGTH = 6000


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping to dotted keys: {'a': {'b': 1}} -> {'a.b': 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def metric_key(key: str) -> str:
    """MLflow rejects '@' in metric names: ``test.hit@10`` is logged as ``test.hit_at_10``."""
    return key.replace("@", "_at_")


def param_key(key: str) -> str:
    """MLflow rejects ',' in param names: the grid axis ``method, train.lr`` is logged as ``grid.method/train.lr``."""
    return re.sub(r"\s*,\s*", "/", key)


def _param_text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."
