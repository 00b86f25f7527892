"""The class-incremental protocol: which classes arrive in which order, how many per experience.

Pure Python (no torch, no Avalanche), so that the scenarios' pre-flight checks can run it
while the launch is planned, before any MLflow run exists, and the build runs the same code.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from scenarios.slu.options import SLUOptions
from suite.errors import SpecError


def split_sizes(n_classes: int, num_experiences: int, classes_per_exp: Sequence[int] | None = None) -> list[int]:
    """Classes per experience: the given list (checked), else even with the remainder first (31/10 = 4 + 9x3)."""
    if classes_per_exp is not None:
        sizes = list(classes_per_exp)
        if any(size < 1 for size in sizes) or sum(sizes) != n_classes:
            raise SpecError(
                f"scenario.classes_per_exp {sizes} sums to {sum(sizes)} but the corpus has {n_classes} classes; "
                f"every experience needs >= 1 class and together they must cover all {n_classes}"
            )
        return sizes
    if not 1 <= num_experiences <= n_classes:
        raise SpecError(f"scenario.num_experiences={num_experiences}: must be between 1 and the number of classes ({n_classes})")
    base, extra = divmod(n_classes, num_experiences)
    return [base + extra] + [base] * (num_experiences - 1)


def resolve_class_order(classes: Sequence[str], class_order: Sequence[str] | None, seed: int) -> list[str]:
    """The spec's order (checked to be a permutation of the classes) or one drawn from ``seed``."""
    if class_order is None:
        order = sorted(classes)
        random.Random(seed).shuffle(order)
        return order
    order = list(class_order)
    missing = sorted(set(classes) - set(order))
    unknown = sorted(set(order) - set(classes))
    repeated = sorted({name for name in order if order.count(name) > 1})
    if missing or unknown or repeated:
        problems = [
            f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
            for label, names in (("missing", missing), ("unknown", unknown), ("repeated", repeated))
            if names
        ]
        raise SpecError(f"scenario.class_order is not a permutation of the {len(classes)} classes ({'; '.join(problems)})")
    return order


def check_protocol(classes: Sequence[str], options: SLUOptions) -> None:
    """SpecError if the experiences or the class order do not fit ``classes`` (the seed's draw always fits)."""
    split_sizes(len(classes), options.experiences, options.classes_per_exp)
    if options.class_order is not None:
        resolve_class_order(classes, options.class_order, seed=0)
