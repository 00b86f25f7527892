"""MCLRec (Qin et al., SIGIR 2023) as an ordinary RecBole ``SequentialRecommender``.

SASRec's network (``models.sasrec.FusedSASRec``: item + position embeddings, Transformer
blocks, last-position state, cross-entropy over all items) plus CL4SRec's data augmentation
and MCLRec's two learnable model augmenters. ``calculate_loss`` returns the encoder objective
L0 as a tuple of its weighted terms, so RecBole's own ``Trainer`` trains it jointly (the
MCLRec-J ablation, or CL4SRec when ``use_cl2`` is off); the bilevel meta-optimization lives
in the suite's ``MetaTrainer``, which calls ``encoder_loss_terms`` and ``augmenter_loss_terms``.

Its defaults are ``models/mclrec.yaml`` on top of ``models/sasrec.yaml`` and RecBole's
``SASRec.yaml``: ``Config(model=MCLRec, dataset=..., config_file_list=MCLRec.config_files())``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models.losses import cl2_terms, contrastive_loss, pair_similarity
from models.sasrec import FusedSASRec, choice
from models.sequence_augmentation import AugmentedViews, SequenceAugmentation

TRAINER_KEYS = ("meta_optimization", "augmenter_learning_rate")
"""Keys of ``mclrec.yaml`` that the meta-trainer reads, not the model."""


class Augmenter(nn.Module):
    """A learnable model augmenter: 3-layer MLP h -> h/2 -> h/4 -> h with GELU, L2-normalized output."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(hidden_size, hidden_size // 2),
            nn.GELU(),
            nn.Linear(hidden_size // 2, hidden_size // 4),
            nn.GELU(),
            nn.Linear(hidden_size // 4, hidden_size),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(h), dim=-1)


class MCLRec(FusedSASRec):
    """SASRec encoder + augmentation + learnable augmenters; CL4SRec when ``use_cl2`` is off."""

    defaults_files: ClassVar[tuple[str, ...]] = ("sasrec", "mclrec")
    trainer_keys: ClassVar[tuple[str, ...]] = TRAINER_KEYS

    def _read_config(self, config: Any) -> None:
        super()._read_config(config)
        self.use_cl1, self.cl1_weight = bool(config["use_cl1"]), float(config["cl1_weight"])
        self.use_cl2, self.cl2_weight = bool(config["use_cl2"]), float(config["cl2_weight"])
        self.use_regularizer = bool(config["use_regularizer"]) and self.use_cl2
        self.regularizer_weight = float(config["regularizer_weight"])
        self.augmenter_regularizer_weight = float(config["augmenter_regularizer_weight"])
        self.per_anchor = choice("regularizer_scope", config["regularizer_scope"], ("per_anchor", "batch")) == "per_anchor"
        self.temperature = float(config["cl_temperature"])
        self.cl2_temperature = float(config["cl2_temperature"])
        self.cl_loss = contrastive_loss(config["cl_loss"])
        self.mask_item = choice("aug_mask_item", config["aug_mask_item"], ("padding", "token"))
        self.augmenter_init = choice("augmenter_init", config["augmenter_init"], ("pytorch", "sasrec"))

    @property
    def mask_id(self) -> int:
        """``padding``: item 0, as the authors' code (masked items drop out as attention keys and get
        no embedding gradient); ``token``: one extra, learnable embedding row, never scored (CL4SRec's paper)."""
        return 0 if self.mask_item == "padding" else self.n_items

    def item_rows(self) -> int:
        return self.n_items + (1 if self.mask_item == "token" else 0)

    def _build_modules(self, config: Any) -> None:
        super()._build_modules(config)
        self.augmenters = self._build_augmenters(bool(config["shared_augmenter"]))
        self.augment = SequenceAugmentation(
            config["aug_crop_ratio"], config["aug_mask_ratio"], config["aug_reorder_ratio"], self.mask_id, seed=int(config["seed"] or 0)
        )

    def _build_augmenters(self, shared: bool) -> nn.ModuleList:
        if not self.use_cl2:
            return nn.ModuleList()
        return nn.ModuleList([Augmenter(self.hidden_size) for _ in range(1 if shared else 2)])

    def _initialize(self) -> None:
        """SASRec's init for the encoder; the augmenters keep PyTorch's default init (the authors'
        code builds them in its trainer, outside the model) unless ``augmenter_init`` is ``sasrec``."""
        if self.augmenter_init == "sasrec":
            self.apply(self._init_weights)
            return
        for child in self.children():
            if child is not self.augmenters:
                child.apply(self._init_weights)

    # -- parameter groups: the two sides of the bilevel problem -------------------------

    def augmenter_parameters(self) -> list[nn.Parameter]:
        return list(self.augmenters.parameters())

    def encoder_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.augmenter_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    @property
    def has_augmenters(self) -> bool:
        return len(self.augmenters) > 0

    def augmenter_pair(self) -> tuple[nn.Module, nn.Module]:
        return self.augmenters[0], self.augmenters[-1]

    # -- encoder ------------------------------------------------------------------------

    def encode_batch(self, interaction: Any, views: AugmentedViews | None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """h for the batch and h1, h2 for its views, encoded together in length buckets."""
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        if views is None:
            return self.encode_bucketed(item_seq, item_seq_len), None, None
        stacked = self.encode_bucketed(torch.cat([item_seq, views.seq1, views.seq2]), torch.cat([item_seq_len, views.len1, views.len2]))
        h, h1, h2 = stacked.split(item_seq.size(0))
        return h, h1, h2

    def encode_views(self, views: AugmentedViews) -> tuple[torch.Tensor, torch.Tensor]:
        stacked = self.encode_bucketed(torch.cat([views.seq1, views.seq2]), torch.cat([views.len1, views.len2]))
        h1, h2 = stacked.split(views.seq1.size(0))
        return h1, h2

    # -- losses -------------------------------------------------------------------------

    @property
    def needs_views(self) -> bool:
        return self.use_cl1 or self.use_cl2

    def draw_views(self, interaction: Any) -> AugmentedViews | None:
        """Two augmented views of each training sequence (None when no contrastive term is on)."""
        if not self.needs_views:
            return None
        return self.augment(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])

    def encoder_loss_terms(self, interaction: Any, views: AugmentedViews | None) -> dict[str, torch.Tensor]:
        """The weighted terms of L0 = L_rec + lambda L_cl1 + beta (L_cl2 + regularizer_weight R)."""
        h, h1, h2 = self.encode_batch(interaction, views)
        terms = {"rec": self.rec_loss(h, interaction[self.POS_ITEM_ID])}
        if self.use_cl1:
            terms["cl1"] = self.cl1_weight * self.cl_loss(*pair_similarity(h1, h2, self.temperature))
        if self.has_augmenters:
            terms.update(self._meta_terms(h1, h2, self.cl2_weight, self.cl2_weight * self.regularizer_weight))
        return terms

    def augmenter_loss_terms(self, views: AugmentedViews) -> dict[str, torch.Tensor]:
        """The terms of L1 = L_cl2 + augmenter_regularizer_weight R (the authors' code: R not scaled by beta).

        The encoder runs without autograd: lambda L_cl1 gives the augmenters no gradient and the
        encoder is frozen in this step, so no encoder gradient is computed at all.
        """
        with torch.no_grad():
            h1, h2 = self.encode_views(views)
        return self._meta_terms(h1, h2, 1.0, self.augmenter_regularizer_weight)

    def _meta_terms(self, h1: torch.Tensor, h2: torch.Tensor, cl2_scale: float, regularizer_scale: float) -> dict[str, torch.Tensor]:
        augmenter1, augmenter2 = self.augmenter_pair()
        z1, z2 = augmenter1(h1), augmenter2(h2)
        cl2, regularizer = cl2_terms(h1, h2, z1, z2, self.cl2_temperature, self.per_anchor, self.use_regularizer, self.cl_loss)
        terms = {"cl2": cl2_scale * cl2}
        if self.use_regularizer:
            terms["reg"] = regularizer_scale * regularizer
        return terms

    @property
    def loss_term_names(self) -> list[str]:
        """Names of the terms ``calculate_loss`` returns, in order (for per-term logging)."""
        names = ["rec"] + (["cl1"] if self.use_cl1 else [])
        if self.has_augmenters:
            names += ["cl2"] + (["reg"] if self.use_regularizer else [])
        return names

    def calculate_loss(self, interaction: Any) -> tuple[torch.Tensor, ...]:
        """L0 as a tuple of weighted terms (rec, cl1, cl2, reg): RecBole's Trainer sums and logs them."""
        return tuple(self.encoder_loss_terms(interaction, self.draw_views(interaction)).values())
