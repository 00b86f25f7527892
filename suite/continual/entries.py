"""Registry objects of the continual family (declared as entry points in setup.cfg).

Cheap to import: torch, Avalanche and the runner load only when a model is built or a
method runs, so ``suite list`` and spec validation stay fast.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from suite.api import MethodEntry, ModelEntry
from suite.continual import options as opts


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


def run(ctx: Any, method: str) -> dict[str, float]:
    """Train and evaluate one continual method for one seed (see ``suite.continual.runner``)."""
    from suite.continual.runner import run as run_continual

    return run_continual(ctx, method)


def _method(name: str, options: type, description: str) -> MethodEntry:
    return MethodEntry(
        name=name,
        family="continual",
        options=options,
        train_options=opts.ContinualTrain,
        run=partial(run, method=name),
        description=description,
    )


FINETUNE = _method("finetune", opts.FinetuneOptions, "train on each experience in turn (lower bound)")
JOINT = _method("joint", opts.JointOptions, "train once on all experiences together (upper bound)")
REPLAY = _method("replay", opts.ReplayMethodOptions, "experience replay: reservoir, class-balanced or herding buffer")
EWC = _method("ewc", opts.EWCOptions, "elastic weight consolidation (Avalanche EWCPlugin, seq2seq Fisher)")
LWF = _method("lwf", opts.LwFOptions, "learning without forgetting on the decoder logits (Avalanche LwFPlugin)")
AKD = _method("akd", opts.AKDOptions, "replay + audio feature distillation on rehearsal samples")
SKD = _method("skd", opts.SKDOptions, "replay + sequence-level distillation on rehearsal samples")
COCONUT = _method("coconut", opts.CoconutOptions, "replay + NSPT + multimodal audio-text contrastive loss (COCONUT)")
