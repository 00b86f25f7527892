"""LaTeX tables to paste into a paper: booktabs rules, readable row labels, escaped text, aligned numbers."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
PREAMBLE_NOTE = r"% needs \usepackage{booktabs} in the preamble"


def latex_table(cells: pd.DataFrame, keys: int, baseline: str | None = None) -> str:
    """A booktabs tabular of text cells: the first ``keys`` columns left-aligned, the numbers right-aligned.

    Row labels read as a paper writes them (``readable_label``), and so does the baseline that
    the paired columns' headers name; every text is escaped.
    """
    cells = cells.copy()
    cells["label"] = [readable_label(label) for label in cells["label"]]
    if baseline is not None:
        raw, readable = f"vs {baseline} [", f"vs {readable_label(baseline)} ["
        cells.columns = [column.replace(raw, readable) for column in cells.columns]
    cells = cells.map(latex_text)
    cells.columns = [latex_text(column) for column in cells.columns]
    body = cells.to_latex(index=False, escape=False, column_format="l" * keys + "r" * (len(cells.columns) - keys))
    return PREAMBLE_NOTE + "\n" + body


def latex_text(value: Any) -> str:
    """Text as LaTeX typesets it: its special characters escaped, ± and Δ in math mode."""
    text = "".join(LATEX_ESCAPES.get(character, character) for character in str(value))
    return text.replace("±", r"$\pm$").replace("Δ", r"$\Delta$")


def readable_label(label: str) -> str:
    """A row label for a paper: ``method=replay method.replay.size=100`` reads ``replay (size=100)``.

    A section's name (``method=replay``) is shown by its value, any other setting by its last
    key part; a label that is not ``key=value`` pairs (a spec's own point name) stays as it is.
    """
    pairs = [part.split("=", 1) for part in re.split(r" (?=[\w./-]+=)", label)]
    if not all(len(pair) == 2 for pair in pairs):
        return label
    names = [value for key, value in pairs if "." not in key]
    settings = [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in pairs if "." in key]
    if not names:
        return ", ".join(settings)
    return ", ".join(names) + (f" ({', '.join(settings)})" if settings else "")
