"""The grammar of the strings a RecBole dataset spec holds: dataset names, field names, intervals.

RecBole's ``Config`` calls ``eval()`` on every string of its config dict, so a string that
reaches it unchecked is code. Each function here accepts exactly the language RecBole means
by its key and raises ``ValueError`` (pydantic turns it into a spec error naming the key)
for anything else. ``suite.sequential.recbole_strings`` applies the same functions again,
key by key, to the whole config dict right before ``Config(...)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
"""A folder and file stem: letters, digits, ``_``, ``.``, ``-`` (``ml-100k``, ``Beauty``, ``ml-100k-u20-3f2a``)."""
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
"""A column of an atomic file (``user_id``, ``timestamp``)."""
_BOUND = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+|inf)"
INTERVAL = re.compile(rf"([\[(])\s*({_BOUND})\s*,\s*({_BOUND})\s*([\])])")
"""One interval of counts, RecBole's syntax: ``[5,inf)``, ``(2,10]``."""


@dataclass(frozen=True)
class Interval:
    """A parsed count interval, with RecBole's meaning of the brackets."""

    left: str
    low: float
    high: float
    right: str

    def contains(self, count: float) -> bool:
        above = count >= self.low if self.left == "[" else count > self.low
        below = count <= self.high if self.right == "]" else count < self.high
        return above and below


def dataset_name(value: str) -> str:
    """A dataset name RecBole can use as folder and file stem; anything else is refused."""
    if not DATASET_NAME.fullmatch(value):
        raise ValueError("expected a dataset name (letters, digits, '_', '.', '-'; at most 128)")
    return value


def field_name(value: str) -> str:
    """An atomic-file column name (a Python-style identifier)."""
    if not FIELD_NAME.fullmatch(value):
        raise ValueError("expected a field name (letters, digits and '_', not starting with a digit)")
    return value


def parse_interval(text: str) -> Interval:
    """``[5,inf)`` -> Interval('[', 5, inf, ')'); one interval, low <= high, counts not negative."""
    match = INTERVAL.fullmatch(text.strip())
    if not match:
        raise ValueError("expected one interval of counts such as '[5,inf)' or '(2,10]'")
    left, low, high, right = match.group(1), float(match.group(2)), float(match.group(3)), match.group(4)
    if math.isnan(low) or low > high or low < 0:
        raise ValueError(f"interval {text!r}: expected 0 <= lower bound <= upper bound")
    return Interval(left, low, high, right)


def interval(text: str) -> str:
    """Validate an interval string and return it unchanged (RecBole parses it itself)."""
    parse_interval(text)
    return text
