"""YAML loading with a bound on what aliases expand to.

YAML anchors and aliases let a few hundred bytes describe billions of nodes (ten levels of
ten aliases each: 10**10). ``yaml.safe_load`` builds such a document cheaply, sharing one
object per anchor, but anything that walks it (a deep copy, ``repr`` in an error message,
a grid label, MLflow's params) expands it and exhausts memory. ``safe_load_bounded`` counts
the nodes the document stands for, each alias counted as the whole subtree it repeats,
before constructing anything, and refuses more than ``MAX_NODES`` (or a recursive alias)
with a ``SpecError``. A spec is a few hundred nodes; the bound leaves room for generous grids.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from suite.errors import SpecError

MAX_NODES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that measures the composed document before constructing it."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        expanded_size(node)
        return self.construct_document(node)


def safe_load_bounded(text: str) -> Any:
    """``yaml.safe_load`` that refuses documents whose aliases expand beyond ``MAX_NODES`` nodes."""
    return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass


def expanded_size(root: Node, limit: int = MAX_NODES) -> int:
    """The number of nodes ``root`` stands for with every alias expanded; a SpecError beyond ``limit``.

    Aliases share node objects, so sizes are memoized per node: the count costs one visit
    per distinct node, however large the expansion.
    """
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise SpecError("YAML refers to itself through an alias (a recursive anchor); write the value out instead")
        visiting.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                raise SpecError(
                    f"YAML aliases expand to more than {limit:,} values (an alias bomb?); write the spec out without nested anchors"
                )
        visiting.discard(key)
        sizes[key] = total
        return total

    try:
        return size(root)
    except RecursionError:
        raise SpecError("YAML nested too deeply to read") from None
