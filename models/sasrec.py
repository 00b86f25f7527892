"""SASRec's network on a choice of encoder stack: the fused one (default) or RecBole's own.

``FusedSASRec`` has RecBole's ``SASRec`` parameters (same state-dict keys, same initial
weights for a seed) and function; with ``encoder: fused`` its passes run on
``models.transformer.FusedTransformerEncoder`` and compute only the last position's state,
which is all a next-item recommender reads. It is the base of MCLRec and CL4SRec and, as a
model of its own, the SASRec that competes on equal footing with them. RecBole's own
``SASRec`` class stays the reference (the suite's ``sasrec`` model with ``encoder: recbole``).

Defaults: RecBole's ``SASRec.yaml`` then ``models/sasrec.yaml``; a plain RecBole user passes
``config_file_list=FusedSASRec.config_files()``.
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
from models.transformer import FusedTransformerEncoder, fast_dropout

ENCODERS = ("fused", "recbole")
LENGTH_BUCKETS = (0.25, 0.5, 1.0)  # bucket upper bounds as shares of the batch width


class FusedSASRec(SequentialRecommender):
    """SASRec: item + position embeddings, Transformer blocks, last-position state, CE over all items."""

    defaults_files: ClassVar[tuple[str, ...]] = ("sasrec",)
    """``models/<name>.yaml`` files read after RecBole's ``SASRec.yaml``, in order."""
    trainer_keys: ClassVar[tuple[str, ...]] = ()
    """Keys of the defaults files that a trainer reads, not the model."""

    def __init__(self, config: Any, dataset: Any):
        super().__init__(config, dataset)
        self._require_keys(config)
        self._read_config(config)
        self._build_modules(config)
        self._initialize()

    # -- configuration --------------------------------------------------------------------

    @classmethod
    def config_files(cls) -> list[Path]:
        """The defaults files for RecBole's ``config_file_list``: SASRec's, then this model's."""
        return [recbole_model_file("SASRec"), *(model_file(name) for name in cls.defaults_files)]

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Every hyperparameter the model (and its trainer) reads, merged from ``config_files``."""
        return read_defaults(cls.config_files())

    def _require_keys(self, config: Any) -> None:
        """Fail with the missing keys named: custom model classes get no defaults from RecBole itself."""
        model_keys = {key: value for key, value in self.default_config().items() if key not in self.trainer_keys}
        missing = missing_keys(config, model_keys)
        if missing:
            name = type(self).__name__
            raise ValueError(
                f"{name} needs config keys {', '.join(missing)}: pass config_file_list={name}.config_files() (or every key in config_dict)"
            )

    def _read_config(self, config: Any) -> None:
        self.hidden_size = config["hidden_size"]
        self.initializer_range = config["initializer_range"]
        self.loss_type = config["loss_type"]
        if self.loss_type != "CE":
            raise ValueError(f"{type(self).__name__} trains with loss_type CE (cross-entropy over all items), got {self.loss_type!r}")
        self.encoder = choice("encoder", config["encoder"], ENCODERS)

    # -- modules --------------------------------------------------------------------------

    def item_rows(self) -> int:
        """Rows of the item embedding: the items (row 0 is padding); subclasses may add a mask item."""
        return self.n_items

    def _build_modules(self, config: Any) -> None:
        """SASRec's modules in RecBole's order (the same draws from the global generator)."""
        self.item_embedding = nn.Embedding(self.item_rows(), self.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.hidden_size)
        stack = FusedTransformerEncoder if self.encoder == "fused" else TransformerEncoder
        self.trm_encoder = stack(
            n_layers=config["n_layers"],
            n_heads=config["n_heads"],
            hidden_size=self.hidden_size,
            inner_size=config["inner_size"],
            hidden_dropout_prob=config["hidden_dropout_prob"],
            attn_dropout_prob=config["attn_dropout_prob"],
            hidden_act=config["hidden_act"],
            layer_norm_eps=config["layer_norm_eps"],
        )
        self.LayerNorm = nn.LayerNorm(self.hidden_size, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])

    def _initialize(self) -> None:
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """SASRec's initialization: normal(0, initializer_range), LayerNorm to identity."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    # -- encoder --------------------------------------------------------------------------

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """Representation of each sequence: the last Transformer layer at its last position."""
        positions = torch.arange(item_seq.size(1), dtype=torch.long, device=item_seq.device)
        hidden = self.LayerNorm(self.item_embedding(item_seq) + self.position_embedding(positions.unsqueeze(0).expand_as(item_seq)))
        if self.encoder == "fused":
            hidden = fast_dropout(hidden, self.dropout.p, self.training)
            return self.trm_encoder.last_states(hidden, item_seq, item_seq_len - 1)
        output = self.trm_encoder(self.dropout(hidden), self.get_attention_mask(item_seq), output_all_encoded_layers=True)[-1]
        return self.gather_indexes(output, item_seq_len - 1)

    def encode_bucketed(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """``forward`` on length buckets, each cut to its longest sequence: the same values, less work.

        Sequences are left-aligned and attention is causal, so the state at position len-1
        never sees the right padding; short sequences (and cropped views) then cost what their
        length costs instead of the full padded width. On a GPU the whole batch goes at once:
        bucket sizes are host-side numbers, and reading them would sync the device each batch.
        """
        if item_seq.device.type != "cpu":
            return self.forward(item_seq, item_seq_len)
        width = item_seq.size(1)
        low = 0
        pieces, index_list = [], []
        for high in (int(width * share) for share in LENGTH_BUCKETS):
            rows = ((item_seq_len > low) & (item_seq_len <= high)).nonzero(as_tuple=True)[0]
            low = high
            if rows.numel() == 0:
                continue
            cut = int(item_seq_len[rows].max())
            pieces.append(self.forward(item_seq[rows, :cut], item_seq_len[rows]))
            index_list.append(rows)
        return torch.cat(pieces).index_select(0, torch.argsort(torch.cat(index_list)))

    # -- loss and scoring -----------------------------------------------------------------

    def item_weights(self) -> torch.Tensor:
        """The embeddings of the items that can be recommended (a mask row, if any, excluded)."""
        return self.item_embedding.weight[: self.n_items]

    def rec_loss(self, h: torch.Tensor, pos_items: torch.Tensor) -> torch.Tensor:
        """L_rec: cross-entropy of the next item over all items."""
        return F.cross_entropy(h @ self.item_weights().T, pos_items)

    def calculate_loss(self, interaction: Any) -> torch.Tensor:
        h = self.encode_bucketed(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return self.rec_loss(h, interaction[self.POS_ITEM_ID])

    def predict(self, interaction: Any) -> torch.Tensor:
        h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return (h * self.item_embedding(interaction[self.ITEM_ID])).sum(dim=1)

    def full_sort_predict(self, interaction: Any) -> torch.Tensor:
        h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return h @ self.item_weights().T


def choice(key: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else a ValueError that names the key."""
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value
