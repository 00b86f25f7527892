"""DuoRec (Qiu et al., WSDM 2022): SASRec + dropout and same-target contrastive views, a RecBole model.

Per training sequence the encoder (``models.sasrec.FusedSASRec``) gives h, a second pass
with other dropout masks gives h' (model-level augmentation, unsupervised), and a pass over
*another training sequence with the same target item* gives h+ (supervised positive). The
loss is next-item cross-entropy plus InfoNCE over the batch (``cl_loss: dcl`` for DCL):

- ``us_x`` (the authors' run script): L_rec(h) + sup_weight * L_con(h', h+)
- ``un``: + unsup_weight * L_con(h, h'); ``su``: + sup_weight * L_con(h, h+); ``us``: both.

With ``mask_same_target`` the other samples of the batch that share an anchor's target are
left out of its negatives (they are positives by DuoRec's own definition); the authors' code
keeps them (``false``). Similarity: dot product / tau (``cos``: cosine / tau).

Supervised positive sampling. The authors precompute, in their patched RecBole dataset, the
list of training samples with the same target for every sample, and draw one per sample in
their dataloader (itself when there is none). RecBole 1.2.1's own data pipeline is used
unchanged here, so ``SameTargetSampler`` does the equivalent inside the model: at
construction it reads the training dataset RecBole hands every model (``dataset.inter_feat``:
each row one training sample, its item sequence, length, user and target), sorts the samples
by (target, user, length), and at each batch draws, for every sequence, a uniformly chosen
*other* sample with the same target (a row is identified by its user and length, unique
among a user's prefixes with one target), or the sequence itself when it is its target's only
sample, as the authors do. The draws use torch's global generator (seeded by RecBole's
``init_seed``, saved in the suite's resume state). Evaluation never samples.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models.losses import contrastive_loss, pair_similarity, same_group_negatives
from models.sasrec import FusedSASRec, choice

CONTRASTS = ("us_x", "un", "su", "us")
SIMILARITIES = ("dot", "cos")


class SameTargetSampler(nn.Module):
    """For each training sequence, another training sequence with the same target item (supervised positive)."""

    def __init__(self, targets: torch.Tensor, users: torch.Tensor, sequences: torch.Tensor, lengths: torch.Tensor, n_users: int):
        super().__init__()
        self.user_span = int(n_users)
        self.length_span = int(sequences.size(1)) + 1
        keys = self.keys(targets, users, lengths)
        order = torch.argsort(keys)
        # buffers move with the model (.to(device)) but stay out of state_dict: they are data, not weights
        self.register_buffer("sorted_keys", keys[order], persistent=False)
        self.register_buffer("sequences", sequences[order].to(torch.int32), persistent=False)
        self.register_buffer("lengths", lengths[order].to(torch.int32), persistent=False)

    def keys(self, targets: torch.Tensor, users: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """One int64 per sample, sorted by target first: (target, user, length) in mixed radix."""
        return (targets.long() * self.user_span + users.long()) * self.length_span + lengths.long()

    def forward(
        self, targets: torch.Tensor, users: torch.Tensor, sequences: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sequences, lengths) of one uniformly drawn other sample per row with the row's target; the row itself if none."""
        if self.sorted_keys.numel() == 0:
            raise RuntimeError("SameTargetSampler has no training samples (a model loaded from a pickle predicts only)")
        span = self.user_span * self.length_span
        start = torch.searchsorted(self.sorted_keys, targets.long() * span)
        end = torch.searchsorted(self.sorted_keys, (targets.long() + 1) * span)
        anchor = self.keys(targets, users, lengths)
        own = torch.searchsorted(self.sorted_keys, anchor)
        is_listed = (own < end) & (self.sorted_keys[own.clamp(max=self.sorted_keys.numel() - 1)] == anchor)
        others = end - start - is_listed.long()
        draw = (torch.rand(targets.shape, device=targets.device) * others.clamp(min=1)).long().clamp(max=(others - 1).clamp(min=0))
        picked = start + draw
        picked = picked + (is_listed & (picked >= own)).long()  # skip the row's own slot: uniform over the others
        found = others > 0
        picked = picked.clamp(max=self.sorted_keys.numel() - 1)
        positive_sequences = torch.where(found.unsqueeze(1), self.sequences[picked].long(), sequences)
        positive_lengths = torch.where(found, self.lengths[picked].long(), lengths)
        return positive_sequences, positive_lengths

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (MLflow's model flavor) without the training data: a loaded model predicts, never samples."""
        state = self.__dict__.copy()
        state["_buffers"] = {name: buffer[:0] for name, buffer in self._buffers.items()}
        return state


class DuoRec(FusedSASRec):
    """SASRec's network; training adds DuoRec's dropout and same-target contrastive terms."""

    defaults_files: ClassVar[tuple[str, ...]] = ("sasrec", "duorec")

    def __init__(self, config: Any, dataset: Any):
        super().__init__(config, dataset)
        self.same_target = self._build_sampler(dataset) if self.contrast != "un" else None

    def _read_config(self, config: Any) -> None:
        super()._read_config(config)
        self.contrast = choice("contrast", config["contrast"], CONTRASTS)
        self.unsup_weight = float(config["unsup_weight"])
        self.sup_weight = float(config["sup_weight"])
        self.temperature = float(config["cl_temperature"])
        self.similarity = choice("cl_similarity", config["cl_similarity"], SIMILARITIES)
        self.mask_same_target = bool(config["mask_same_target"])
        self.cl_loss = contrastive_loss(config["cl_loss"])

    def _build_sampler(self, dataset: Any) -> SameTargetSampler:
        """The training samples RecBole built (one row per prefix), indexed by target."""
        inter = dataset.inter_feat
        return SameTargetSampler(
            inter[self.POS_ITEM_ID], inter[self.USER_ID], inter[self.ITEM_SEQ], inter[self.ITEM_SEQ_LEN], dataset.user_num
        )

    # -- losses -------------------------------------------------------------------------

    @property
    def loss_term_names(self) -> list[str]:
        """Names of the terms ``calculate_loss`` returns, in order (for per-term logging)."""
        return {"us_x": ["rec", "sup"], "un": ["rec", "unsup"], "su": ["rec", "sup"], "us": ["rec", "unsup", "sup"]}[self.contrast]

    def contrast_views(self, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """L_con(x, y) over the batch: similarity / tau, same-target negatives masked when asked."""
        if self.similarity == "cos":
            x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
        negatives = same_group_negatives(targets) if self.mask_same_target else None
        return self.cl_loss(*pair_similarity(x, y, self.temperature), negatives)

    def encode_views(self, interaction: Any) -> dict[str, torch.Tensor]:
        """h, and h' (second dropout pass) and h+ (same-target sequence) as the contrast needs, in one bucketed pass."""
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        names, sequences, lengths = ["h"], [item_seq], [item_seq_len]
        if self.contrast != "su":
            names.append("dropout")
            sequences.append(item_seq)
            lengths.append(item_seq_len)
        if self.same_target is not None:
            positive, positive_len = self.same_target(interaction[self.POS_ITEM_ID], interaction[self.USER_ID], item_seq, item_seq_len)
            names.append("same_target")
            sequences.append(positive)
            lengths.append(positive_len)
        encoded = self.encode_bucketed(torch.cat(sequences), torch.cat(lengths)).split(item_seq.size(0))
        return dict(zip(names, encoded))

    def loss_terms(self, interaction: Any) -> dict[str, torch.Tensor]:
        views = self.encode_views(interaction)
        targets = interaction[self.POS_ITEM_ID]
        terms = {"rec": self.rec_loss(views["h"], targets)}
        if self.contrast in ("un", "us"):
            terms["unsup"] = self.unsup_weight * self.contrast_views(views["h"], views["dropout"], targets)
        if self.contrast in ("su", "us"):
            terms["sup"] = self.sup_weight * self.contrast_views(views["h"], views["same_target"], targets)
        if self.contrast == "us_x":
            terms["sup"] = self.sup_weight * self.contrast_views(views["dropout"], views["same_target"], targets)
        return terms

    def calculate_loss(self, interaction: Any) -> tuple[torch.Tensor, ...]:
        """L_rec and the weighted contrastive terms as a tuple: RecBole's Trainer sums and logs them."""
        return tuple(self.loss_terms(interaction).values())
