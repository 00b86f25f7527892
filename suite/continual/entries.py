"""Registry objects of the continual family: the SLU model entry, and how a method file declares its entry.

A continual method is one file (``finetune.py``, ``replay.py``, ``coconut.py``, ...): its options
class, a factory that returns the Avalanche plugins which make the method out of the seq2seq
template, and ``continual_method(...)`` turning both into a ``MethodEntry`` that an entry point in
``setup.cfg`` (or in any installed package) names. The runner knows no method by name.

This module stays cheap to import: torch, Avalanche and the runner load when a model is built
or a method runs.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from suite.api import MethodEntry, ModelEntry, Options, RunContext
from suite.continual import options as opts
from suite.continual.method_setup import MethodSetup, PluginFactory
from suite.errors import SpecError

__all__ = ["SLU_SEQ2SEQ", "MethodSetup", "PluginFactory", "build_model", "check_point", "continual_method", "run_method"]


def build_model(options: opts.SLUModelOptions, *, vocab_size: int, n_mels: int, pad_id: int = 0) -> Any:
    """The seq2seq SLU model from its spec options and the scenario's vocabulary and features."""
    from models.slu_seq2seq import build_slu_seq2seq

    values = options.model_dump()
    preset = values.pop("preset")
    return build_slu_seq2seq(vocab_size, n_mels, pad_id, preset=preset, **values)


SLU_SEQ2SEQ = ModelEntry(
    name="slu-seq2seq",
    family="continual",
    options=opts.SLUModelOptions,
    build=build_model,
    description="log-mel -> conv subsampling -> Transformer/Conformer encoder -> Transformer decoder (<intent> <sep> transcript)",
)


def continual_method(name: str, options: type[Options], make_plugins: PluginFactory, description: str) -> MethodEntry:
    """The registry entry of a continual method: its options and plugin factory, run by the shared runner.

    Every continual method logs ``avg_acc_seen`` once per experience (step = experience index),
    which the launch's parent run plots.
    """
    return MethodEntry(
        name=name,
        family="continual",
        options=options,
        train_options=opts.ContinualTrain,
        run=partial(run_method, make_plugins=make_plugins, name=name),
        description=description,
        check=check_point,
        curve_metric="avg_acc_seen",
    )


def plugin_factory(entry: MethodEntry) -> PluginFactory | None:
    """The plugin factory of a method that ``continual_method`` made, else None (a method with its own run).

    What lets one method build another's plugins (``combine.py``) without knowing it by name.
    """
    run = entry.run
    if isinstance(run, partial) and run.func is run_method:
        return run.keywords["make_plugins"]
    return None


def check_point(point: Any) -> None:
    """Pre-flight (before any MLflow run): the model is the SLU model (the device: ``suite.devices``)."""
    if point.model.family != "continual":
        raise SpecError(f"model '{point.model.name}' is not a continual model; continual methods train slu-seq2seq")


def run_method(ctx: RunContext, make_plugins: PluginFactory, name: str) -> dict[str, float]:
    """Train and evaluate one continual method for one seed (see ``suite.continual.runner``)."""
    from suite.continual.runner import run

    return run(ctx, make_plugins, name)
