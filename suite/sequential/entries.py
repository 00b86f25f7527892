"""Registry objects of the sequential family: SASRec, CL4SRec, DuoRec, MCLRec and their trainers.

Models build to ``(RecBole model class, config fragment)``; methods run one seed through
``suite.sequential.pipeline``. Every option is a pydantic field (unknown keys are errors),
and every hyperparameter reaches RecBole explicitly.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from recbole.model.sequential_recommender import SASRec

from models.cl4srec import CL4SRec
from models.defaults import read_defaults, recbole_model_file
from models.duorec import DuoRec
from models.mclrec import TRAINER_KEYS, MCLRec
from models.sasrec import FusedSASRec
from suite.api import MethodEntry, ModelEntry, NoOptions, Options, RunContext
from suite.sequential.train_options import SequentialTrainOptions

FAMILY = "sequential"
SASREC_DEFAULTS = read_defaults([recbole_model_file("SASRec")])
FUSED_SASREC_DEFAULTS = FusedSASRec.default_config()
MCLREC_DEFAULTS = MCLRec.default_config()
CL4SREC_DEFAULTS = CL4SRec.default_config()
DUOREC_DEFAULTS = DuoRec.default_config()


class EncoderOptions(Options):
    """The SASRec encoder shared by all three models; defaults: RecBole's ``SASRec.yaml``."""

    hidden_size: int = Field(default=SASREC_DEFAULTS["hidden_size"], gt=0)
    n_layers: int = Field(default=SASREC_DEFAULTS["n_layers"], gt=0)
    n_heads: int = Field(default=SASREC_DEFAULTS["n_heads"], gt=0)
    inner_size: int = Field(default=SASREC_DEFAULTS["inner_size"], gt=0)
    hidden_act: Literal["gelu", "relu", "swish", "tanh", "sigmoid"] = SASREC_DEFAULTS["hidden_act"]
    layer_norm_eps: float = Field(default=SASREC_DEFAULTS["layer_norm_eps"], gt=0)
    initializer_range: float = Field(default=SASREC_DEFAULTS["initializer_range"], gt=0)
    hidden_dropout_prob: float = Field(default=SASREC_DEFAULTS["hidden_dropout_prob"], ge=0, lt=1)
    attn_dropout_prob: float = Field(default=SASREC_DEFAULTS["attn_dropout_prob"], ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> EncoderOptions:
        if self.hidden_size % self.n_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of n_heads {self.n_heads}")
        return self


class SASRecOptions(EncoderOptions):
    """SASRec, cross-entropy over all items: RecBole's own class (``recbole``, the reference) or
    ``models.sasrec.FusedSASRec`` (``fused``: the same network on the encoder MCLRec and CL4SRec use)."""

    encoder: Literal["recbole", "fused"] = "recbole"


class ContrastiveOptions(EncoderOptions):
    """CL4SRec's InfoNCE on two augmented views; defaults: ``models/sasrec.yaml``, ``models/mclrec.yaml``."""

    encoder: Literal["fused", "recbole"] = FUSED_SASREC_DEFAULTS["encoder"]

    cl1_weight: float = Field(default=MCLREC_DEFAULTS["cl1_weight"], ge=0, description="lambda")
    cl_temperature: float = Field(default=MCLREC_DEFAULTS["cl_temperature"], gt=0, description="tau of L_cl1")
    aug_crop_ratio: float = Field(default=MCLREC_DEFAULTS["aug_crop_ratio"], gt=0, le=1, description="eta")
    aug_mask_ratio: float = Field(default=MCLREC_DEFAULTS["aug_mask_ratio"], ge=0, le=1, description="mu")
    aug_reorder_ratio: float = Field(default=MCLREC_DEFAULTS["aug_reorder_ratio"], ge=0, le=1, description="rho")
    aug_mask_item: Literal["padding", "token"] = MCLREC_DEFAULTS["aug_mask_item"]
    cl_loss: Literal["infonce", "dcl"] = Field(
        default=MCLREC_DEFAULTS["cl_loss"], description="L_con: infonce (the papers') or dcl (decoupled, positive out of the denominator)"
    )


class CL4SRecOptions(ContrastiveOptions):
    """CL4SRec = MCLRec without L_cl2 and the augmenters: L_rec + lambda L_cl1 (``models/cl4srec.yaml``)."""

    cl1_weight: float = Field(default=CL4SREC_DEFAULTS["cl1_weight"], ge=0, description="lambda")


class MCLRecOptions(ContrastiveOptions):
    """MCLRec and its ablations: no L_cl1, no R, a shared augmenter (``models/mclrec.yaml``)."""

    use_cl1: bool = MCLREC_DEFAULTS["use_cl1"]
    use_cl2: bool = MCLREC_DEFAULTS["use_cl2"]
    cl2_weight: float = Field(default=MCLREC_DEFAULTS["cl2_weight"], ge=0, description="beta")
    use_regularizer: bool = MCLREC_DEFAULTS["use_regularizer"]
    regularizer_weight: float = Field(default=MCLREC_DEFAULTS["regularizer_weight"], ge=0, description="R's weight next to L_cl2 in L0")
    augmenter_regularizer_weight: float = Field(
        default=MCLREC_DEFAULTS["augmenter_regularizer_weight"], ge=0, description="R's weight in L1"
    )
    regularizer_scope: Literal["per_anchor", "batch"] = MCLREC_DEFAULTS["regularizer_scope"]
    shared_augmenter: bool = MCLREC_DEFAULTS["shared_augmenter"]
    augmenter_init: Literal["pytorch", "sasrec"] = MCLREC_DEFAULTS["augmenter_init"]
    cl2_temperature: float = Field(default=MCLREC_DEFAULTS["cl2_temperature"], gt=0, description="tau of L_cl2 and R")


class DuoRecOptions(EncoderOptions):
    """DuoRec: dropout and same-target contrastive views (``models/duorec.yaml``: the authors' configuration)."""

    encoder: Literal["fused", "recbole"] = FUSED_SASREC_DEFAULTS["encoder"]
    contrast: Literal["us_x", "un", "su", "us"] = Field(
        default=DUOREC_DEFAULTS["contrast"], description="us_x: dropout view vs same-target sequence (the authors'); un, su, us"
    )
    unsup_weight: float = Field(default=DUOREC_DEFAULTS["unsup_weight"], ge=0, description="lambda of the dropout term (lmd)")
    sup_weight: float = Field(default=DUOREC_DEFAULTS["sup_weight"], ge=0, description="lambda of the same-target term (lmd_sem)")
    cl_temperature: float = Field(default=DUOREC_DEFAULTS["cl_temperature"], gt=0, description="tau")
    cl_similarity: Literal["dot", "cos"] = DUOREC_DEFAULTS["cl_similarity"]
    mask_same_target: bool = Field(default=DUOREC_DEFAULTS["mask_same_target"], description="same-target samples are no negatives")
    cl_loss: Literal["infonce", "dcl"] = DUOREC_DEFAULTS["cl_loss"]


def model_fragment(defaults: dict[str, Any], options: Options, exclude: set[str] | None = None) -> dict[str, Any]:
    """Every key the model reads: its defaults files, overridden by the spec's values (same names)."""
    return {**{key: value for key, value in defaults.items() if key not in TRAINER_KEYS}, **options.model_dump(exclude=exclude)}


def build_sasrec(options: SASRecOptions) -> tuple[type, dict[str, Any]]:
    if options.encoder == "fused":
        return FusedSASRec, model_fragment(FUSED_SASREC_DEFAULTS, options)
    return SASRec, model_fragment(SASREC_DEFAULTS, options, exclude={"encoder"})


def build_cl4srec(options: CL4SRecOptions) -> tuple[type, dict[str, Any]]:
    return CL4SRec, model_fragment(CL4SREC_DEFAULTS, options)


def build_duorec(options: DuoRecOptions) -> tuple[type, dict[str, Any]]:
    return DuoRec, model_fragment(DUOREC_DEFAULTS, options)


def build_mclrec(options: MCLRecOptions) -> tuple[type, dict[str, Any]]:
    return MCLRec, model_fragment(MCLREC_DEFAULTS, options)


class MetaTrainerOptions(Options):
    """MCLRec's bilevel optimization (defaults: ``models/mclrec.yaml``); the keys are the trainer's config keys."""

    meta_optimization: Literal["two-step", "three-step", "joint"] = MCLREC_DEFAULTS["meta_optimization"]
    augmenter_learning_rate: float | None = Field(default=MCLREC_DEFAULTS["augmenter_learning_rate"], gt=0)


def run_recbole_trainer(ctx: RunContext) -> dict[str, float]:
    """RecBole's own training loop (suite-owned checkpoints) for any sequential model; S3Rec pre-trains first."""
    from suite.sequential.pipeline import run_sequential
    from suite.sequential.pretraining import needs_pretraining, run_pretrained
    from suite.sequential.recbole_trainer import RecBoleTrainer

    model_class, _ = ctx.model_entry.build(ctx.model_options)
    if needs_pretraining(model_class):
        return run_pretrained(ctx, RecBoleTrainer)
    return run_sequential(ctx, RecBoleTrainer)


def check_meta_trainer_model(point: Any) -> None:
    """Pre-flight: the meta-trainer trains MCLRec-style models only (encoder and augmenter losses)."""
    from suite.errors import SpecError
    from suite.sequential.meta_trainer import MetaTrainer

    model_class, _ = point.model.build(point.model_options)
    if not MetaTrainer.trains(model_class):
        raise SpecError(
            f"method 'mclrec-trainer' trains model mclrec or cl4srec, not '{point.model.name}' "
            f"({model_class.__name__} has no encoder and augmenter losses); use method recbole-trainer"
        )


def run_meta_trainer(ctx: RunContext) -> dict[str, float]:
    """MCLRec's meta-trainer; the options are the trainer's own config keys."""
    from suite.sequential.meta_trainer import MetaTrainer
    from suite.sequential.pipeline import run_sequential

    return run_sequential(ctx, MetaTrainer, ctx.method_options.model_dump())


SASREC = ModelEntry("sasrec", FAMILY, SASRecOptions, build_sasrec, "SASRec (CE over all items): RecBole's own, or on the fused encoder")
CL4SREC = ModelEntry("cl4srec", FAMILY, CL4SRecOptions, build_cl4srec, "CL4SRec: SASRec + crop/mask/reorder InfoNCE")
DUOREC = ModelEntry("duorec", FAMILY, DuoRecOptions, build_duorec, "DuoRec: SASRec + dropout and same-target InfoNCE")
MCLREC = ModelEntry("mclrec", FAMILY, MCLRecOptions, build_mclrec, "MCLRec: CL4SRec + meta-optimized learnable augmenters")
RECBOLE_TRAINER = MethodEntry(
    "recbole-trainer",
    FAMILY,
    NoOptions,
    SequentialTrainOptions,
    run_recbole_trainer,
    "RecBole's Trainer, one optimizer",
    names_runs_after_model=True,
)
MCLREC_TRAINER = MethodEntry(
    "mclrec-trainer",
    FAMILY,
    MetaTrainerOptions,
    SequentialTrainOptions,
    run_meta_trainer,
    "MCLRec's bilevel meta-optimization",
    check=check_meta_trainer_model,
    names_runs_after_model=True,
)
