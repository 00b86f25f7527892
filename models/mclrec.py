"""MCLRec (Qin et al., SIGIR 2023) as an ordinary RecBole ``SequentialRecommender``.

A SASRec encoder (item + position embeddings, Transformer blocks, last-position
representation, cross-entropy over all items) plus CL4SRec's data augmentation and
MCLRec's two learnable model augmenters. ``calculate_loss`` returns the encoder
objective L0 as a tuple of its weighted terms, so RecBole's own ``Trainer`` trains it
jointly (the MCLRec-J ablation, or CL4SRec when ``use_cl2`` is off); the bilevel
meta-optimization lives in the suite's ``MetaTrainer``.

Its defaults are ``models/mclrec.yaml`` on top of RecBole's ``SASRec.yaml``; a plain RecBole
user passes them: ``Config(model=MCLRec, dataset=..., config_file_list=MCLRec.config_files())``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.layers import TransformerEncoder
from torch import nn

from models.defaults import missing_keys, model_file, read_defaults, recbole_model_file
from models.losses import cl2_loss, cl2_regularizer, info_nce
from models.sequence_augmentation import AugmentedViews, SequenceAugmenter

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


class MCLRec(SequentialRecommender):
    """SASRec encoder + augmentation + learnable augmenters; CL4SRec when ``use_cl2`` is off."""

    defaults_files: ClassVar[tuple[str, ...]] = ("mclrec",)
    """``models/<name>.yaml`` files read after RecBole's ``SASRec.yaml``, in order."""

    def __init__(self, config: Any, dataset: Any):
        super().__init__(config, dataset)
        _require_keys(config, type(self))
        get = config.__getitem__
        self.hidden_size = get("hidden_size")
        self.loss_type = get("loss_type")
        if self.loss_type != "CE":
            raise ValueError(f"MCLRec trains with loss_type CE (cross-entropy over all items), got {self.loss_type!r}")
        self.initializer_range = get("initializer_range")
        self.use_cl1, self.cl1_weight = bool(get("use_cl1")), float(get("cl1_weight"))
        self.use_cl2, self.cl2_weight = bool(get("use_cl2")), float(get("cl2_weight"))
        self.use_regularizer = bool(get("use_regularizer")) and self.use_cl2
        self.regularizer_weight = float(get("regularizer_weight"))
        self.augmenter_regularizer_weight = float(get("augmenter_regularizer_weight"))
        self.per_anchor = _choice("regularizer_scope", get("regularizer_scope"), ("per_anchor", "batch")) == "per_anchor"
        self.temperature = float(get("cl_temperature"))
        self.cl2_temperature = float(get("cl2_temperature"))
        self.mask_id = self._mask_id(_choice("aug_mask_item", get("aug_mask_item"), ("padding", "token")))
        self._build_encoder(get)
        self.augmenters = self._build_augmenters(bool(get("shared_augmenter")))
        self._initialize(_choice("augmenter_init", get("augmenter_init"), ("pytorch", "sasrec")))
        self.augment = SequenceAugmenter(
            get("aug_crop_ratio"), get("aug_mask_ratio"), get("aug_reorder_ratio"), self.mask_id, seed=int(config["seed"] or 0)
        )

    @classmethod
    def config_files(cls) -> list[Path]:
        """The defaults files for RecBole's ``config_file_list``: SASRec's, then this model's."""
        return [recbole_model_file("SASRec"), *(model_file(name) for name in cls.defaults_files)]

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Every hyperparameter the model (and its meta-trainer) reads, merged from ``config_files``."""
        return read_defaults(cls.config_files())

    def _mask_id(self, mask_item: str) -> int:
        """``padding``: item 0, as the authors' code (masked items drop out as attention keys and get
        no embedding gradient); ``token``: one extra, learnable embedding row, never scored (CL4SRec's paper)."""
        return 0 if mask_item == "padding" else self.n_items

    def _build_encoder(self, get: Any) -> None:
        rows = self.n_items + (1 if self.mask_id == self.n_items else 0)
        self.item_embedding = nn.Embedding(rows, self.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.hidden_size)
        self.trm_encoder = TransformerEncoder(
            n_layers=get("n_layers"),
            n_heads=get("n_heads"),
            hidden_size=self.hidden_size,
            inner_size=get("inner_size"),
            hidden_dropout_prob=get("hidden_dropout_prob"),
            attn_dropout_prob=get("attn_dropout_prob"),
            hidden_act=get("hidden_act"),
            layer_norm_eps=get("layer_norm_eps"),
        )
        self.LayerNorm = nn.LayerNorm(self.hidden_size, eps=get("layer_norm_eps"))
        self.dropout = nn.Dropout(get("hidden_dropout_prob"))

    def _build_augmenters(self, shared: bool) -> nn.ModuleList:
        if not self.use_cl2:
            return nn.ModuleList()
        return nn.ModuleList([Augmenter(self.hidden_size) for _ in range(1 if shared else 2)])

    def _initialize(self, augmenter_init: str) -> None:
        """SASRec's init for the encoder; the augmenters keep PyTorch's default init (the authors'
        code builds them in its trainer, outside the model) unless ``augmenter_init`` is ``sasrec``."""
        if augmenter_init == "sasrec":
            self.apply(self._init_weights)
            return
        for child in self.children():
            if child is not self.augmenters:
                child.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """SASRec's initialization: normal(0, initializer_range), LayerNorm to identity."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

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

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """Representation of each sequence: the last Transformer layer at its last position."""
        positions = torch.arange(item_seq.size(1), dtype=torch.long, device=item_seq.device)
        hidden = self.item_embedding(item_seq) + self.position_embedding(positions.unsqueeze(0).expand_as(item_seq))
        hidden = self.dropout(self.LayerNorm(hidden))
        output = self.trm_encoder(hidden, self.get_attention_mask(item_seq), output_all_encoded_layers=True)[-1]
        return self.gather_indexes(output, item_seq_len - 1)

    def encode_bucketed(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """``forward`` on length buckets, each cut to its longest sequence: the same values, less work.

        Sequences are left-aligned and attention is causal, so the state at position len-1
        never sees the right padding; cropped views and short prefixes then cost what
        their length costs instead of the full padded width.
        """
        width = item_seq.size(1)
        bounds = [width // 4, width // 2, width]
        low = 0
        pieces, index_list = [], []
        for high in bounds:
            rows = ((item_seq_len > low) & (item_seq_len <= high)).nonzero(as_tuple=True)[0]
            low = high
            if rows.numel() == 0:
                continue
            cut = int(item_seq_len[rows].max())
            pieces.append(self.forward(item_seq[rows, :cut], item_seq_len[rows]))
            index_list.append(rows)
        return torch.cat(pieces).index_select(0, torch.argsort(torch.cat(index_list)))

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

    def rec_loss(self, h: torch.Tensor, pos_items: torch.Tensor) -> torch.Tensor:
        """L_rec: cross-entropy of the next item over all items (the mask row excluded)."""
        logits = h @ self.item_embedding.weight[: self.n_items].T
        return F.cross_entropy(logits, pos_items)

    def encoder_loss_terms(self, interaction: Any, views: AugmentedViews | None) -> dict[str, torch.Tensor]:
        """The weighted terms of L0 = L_rec + lambda L_cl1 + beta (L_cl2 + regularizer_weight R)."""
        h, h1, h2 = self.encode_batch(interaction, views)
        terms = {"rec": self.rec_loss(h, interaction[self.POS_ITEM_ID])}
        if self.use_cl1:
            terms["cl1"] = self.cl1_weight * info_nce(h1, h2, self.temperature)
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
        terms = {"cl2": cl2_scale * cl2_loss(h1, h2, z1, z2, self.cl2_temperature)}
        if self.use_regularizer:
            terms["reg"] = regularizer_scale * cl2_regularizer(h1, h2, z1, z2, self.cl2_temperature, self.per_anchor)
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

    # -- scoring ------------------------------------------------------------------------

    def predict(self, interaction: Any) -> torch.Tensor:
        h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return (h * self.item_embedding(interaction[self.ITEM_ID])).sum(dim=1)

    def full_sort_predict(self, interaction: Any) -> torch.Tensor:
        h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return h @ self.item_embedding.weight[: self.n_items].T


def _require_keys(config: Any, model_class: type[MCLRec]) -> None:
    """Fail with the missing keys named: custom model classes get no defaults from RecBole itself."""
    model_keys = {key: value for key, value in model_class.default_config().items() if key not in TRAINER_KEYS}
    missing = missing_keys(config, model_keys)
    if missing:
        raise ValueError(
            f"{model_class.__name__} needs config keys {', '.join(missing)}: pass "
            f"config_file_list={model_class.__name__}.config_files() (or every key in config_dict)"
        )


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value
