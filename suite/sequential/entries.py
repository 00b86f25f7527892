"""Registry objects of the sequential family: SASRec, CL4SRec, MCLRec and their trainers.

Models build to ``(RecBole model class, config fragment)``; methods run one seed through
``suite.sequential.pipeline``. Every option is a pydantic field (unknown keys are errors),
and every hyperparameter reaches RecBole explicitly.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from recbole.model.sequential_recommender import SASRec

from suite.api import MethodEntry, ModelEntry, NoOptions, Options, RunContext
from suite.sequential.train_options import SequentialTrainOptions

FAMILY = "sequential"


class EncoderOptions(Options):
    """The SASRec encoder shared by all three models (METHODS.md section 2)."""

    hidden_size: int = Field(default=64, gt=0)
    n_layers: int = Field(default=2, gt=0)
    n_heads: int = Field(default=2, gt=0)
    inner_size: int = Field(default=256, gt=0)
    hidden_act: Literal["gelu", "relu", "swish", "tanh", "sigmoid"] = "gelu"
    layer_norm_eps: float = Field(default=1e-12, gt=0)
    initializer_range: float = Field(default=0.02, gt=0)
    hidden_dropout_prob: float = Field(default=0.5, ge=0, lt=1)
    attn_dropout_prob: float = Field(default=0.5, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> EncoderOptions:
        if self.hidden_size % self.n_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of n_heads {self.n_heads}")
        return self

    def encoder_fragment(self) -> dict[str, Any]:
        return {**self.model_dump(include=set(EncoderOptions.model_fields)), "loss_type": "CE"}


class SASRecOptions(EncoderOptions):
    """RecBole's own SASRec, cross-entropy over all items."""


class CL4SRecOptions(EncoderOptions):
    """CL4SRec = MCLRec without L_cl2 and the augmenters: L_rec + lambda L_cl1."""

    cl1_weight: float = Field(default=0.1, ge=0, description="lambda")
    temperature: float = Field(default=1.0, gt=0)
    crop_ratio: float = Field(default=0.5, gt=0, le=1, description="eta")
    mask_ratio: float = Field(default=0.5, ge=0, le=1, description="mu")
    reorder_ratio: float = Field(default=0.8, ge=0, le=1, description="rho")

    def contrastive_fragment(self) -> dict[str, Any]:
        return {
            "cl1_weight": self.cl1_weight,
            "cl_temperature": self.temperature,
            "aug_crop_ratio": self.crop_ratio,
            "aug_mask_ratio": self.mask_ratio,
            "aug_reorder_ratio": self.reorder_ratio,
        }


class MCLRecOptions(CL4SRecOptions):
    """MCLRec and its ablations: no L_cl1 (cl1: false), no R (regularizer: false), shared augmenter."""

    cl1: bool = True
    cl2: bool = True
    cl2_weight: float = Field(default=0.1, ge=0, description="beta")
    regularizer: bool = True
    regularizer_weight: float | None = Field(default=None, ge=0, description="gamma; None means 0.1 * beta")
    regularizer_scope: Literal["per_anchor", "batch"] = "per_anchor"
    shared_augmenter: bool = False


def build_sasrec(options: SASRecOptions) -> tuple[type, dict[str, Any]]:
    return SASRec, options.encoder_fragment()


def build_cl4srec(options: CL4SRecOptions) -> tuple[type, dict[str, Any]]:
    from models.mclrec import MCLRec

    switches = {
        "use_cl1": True,
        "use_cl2": False,
        "cl2_weight": 0.0,
        "use_regularizer": False,
        "regularizer_weight": None,
        "regularizer_scope": "per_anchor",
        "shared_augmenter": False,
    }
    return MCLRec, {**options.encoder_fragment(), **options.contrastive_fragment(), **switches}


def build_mclrec(options: MCLRecOptions) -> tuple[type, dict[str, Any]]:
    from models.mclrec import MCLRec

    switches = {
        "use_cl1": options.cl1,
        "use_cl2": options.cl2,
        "cl2_weight": options.cl2_weight,
        "use_regularizer": options.regularizer,
        "regularizer_weight": options.regularizer_weight if options.regularizer_weight is not None else 0.1 * options.cl2_weight,
        "regularizer_scope": options.regularizer_scope,
        "shared_augmenter": options.shared_augmenter,
    }
    return MCLRec, {**options.encoder_fragment(), **options.contrastive_fragment(), **switches}


class MetaTrainerOptions(Options):
    """MCLRec's bilevel optimization: two steps by default; the authors' third step; MCLRec-J."""

    third_step: bool = False
    joint: bool = False
    augmenter_learning_rate: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_variant(self) -> MetaTrainerOptions:
        if self.third_step and self.joint:
            raise ValueError("third_step and joint exclude each other (joint is a single step)")
        return self


def run_recbole_trainer(ctx: RunContext) -> dict[str, float]:
    """RecBole's own training loop (suite-owned checkpoints) for any sequential model."""
    from suite.sequential.meta_trainer import SuiteTrainer
    from suite.sequential.pipeline import run_sequential

    return run_sequential(ctx, SuiteTrainer)


def run_meta_trainer(ctx: RunContext) -> dict[str, float]:
    """MCLRec's meta-trainer; the model must be MCLRec or CL4SRec."""
    from suite.errors import SpecError
    from suite.sequential.meta_trainer import MetaTrainer
    from suite.sequential.pipeline import run_sequential

    if ctx.model_entry.name not in ("mclrec", "cl4srec"):
        raise SpecError(f"method 'mclrec-trainer' trains model mclrec or cl4srec, not '{ctx.model_entry.name}' (use recbole-trainer)")
    options: MetaTrainerOptions = ctx.method_options
    fragment = {
        "meta_third_step": options.third_step,
        "meta_joint": options.joint,
        "augmenter_learning_rate": options.augmenter_learning_rate,
    }
    return run_sequential(ctx, MetaTrainer, fragment)


SASREC = ModelEntry("sasrec", FAMILY, SASRecOptions, build_sasrec, "RecBole's own SASRec (CE over all items)")
CL4SREC = ModelEntry("cl4srec", FAMILY, CL4SRecOptions, build_cl4srec, "CL4SRec: SASRec + crop/mask/reorder InfoNCE")
MCLREC = ModelEntry("mclrec", FAMILY, MCLRecOptions, build_mclrec, "MCLRec: CL4SRec + meta-optimized learnable augmenters")
RECBOLE_TRAINER = MethodEntry(
    "recbole-trainer", FAMILY, NoOptions, SequentialTrainOptions, run_recbole_trainer, "RecBole's Trainer, one optimizer"
)
MCLREC_TRAINER = MethodEntry(
    "mclrec-trainer", FAMILY, MetaTrainerOptions, SequentialTrainOptions, run_meta_trainer, "MCLRec's bilevel meta-optimization"
)
