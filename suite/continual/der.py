"""DER and DER++, dark experience replay (Buzzega et al., NeurIPS 2020), per decoder token.

The paper stores, with each buffer sample, the network's logits z (one vector over the classes)
and adds ``alpha * ||f(x) - z||^2`` on rehearsal samples (DER), plus ``beta * CE(f(x), y)`` on
other rehearsal samples (DER++). A seq2seq model has no single logit vector per sample: it has
one vector over the vocabulary per target token. So here the stored "logits" of a buffer sample
are its teacher-forced decoder logits at every target position, [L_i, V] for its own target
length L_i (no padding is stored), and

    L_der   = mean over the rehearsal batch's real target tokens (b, t) and the vocabulary v of
              (logits[b, t, v] - stored[b, t, v])^2          (the ``der`` term, weight ``alpha``)
    L_der++ = the seq2seq token loss on the same rehearsal batch (the ``der_ce`` term, weight ``beta``)

i.e. every target token of an utterance is one of the paper's samples: with a single target
token (the intent alone) this is the paper's loss exactly, and the mean squared error is the
paper's (and Avalanche's ``F.mse_loss``) averaged over tokens instead of samples. ``beta = 0``
is DER, ``beta > 0`` DER++.

As in Avalanche's ``DER`` strategy (and unlike the paper, which records the logits when a sample
enters the reservoir during training), the logits are computed when the buffer is updated, at
the end of the experience the sample belongs to, in eval mode. One rehearsal batch is drawn per
step (Avalanche, too, uses one; the paper two: one for each term). It is drawn with the global
torch generator, so a resumed run draws the same batches; the buffer is the suite's replay
buffer (``reservoir`` by default, as in the paper), saved as sample ids, and the stored logits
are saved with it, by sample id.

Memory: the stored logits take buffer size x mean target length x vocabulary x 4 bytes. On the
embedded corpus (a vocabulary of 85 tokens, targets of 7.6 tokens on average) that is about
2.6 KB a sample: 140 KB for the study's 1% buffer (54 utterances), 2.6 MB for 1,000 samples.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor
from torch.utils.data import DataLoader

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.replay import ReplayOptions, Seq2SeqReplayPlugin, replay_plugin, sample_ids
from suite.continual.strategy import weighted_token_mean


class DERParams(Options):
    """The DER paper's and Avalanche's defaults: alpha 0.1, beta 0.5 (DER++); beta 0 is DER."""

    alpha: float = Field(0.1, ge=0, description="weight of the MSE between the rehearsal samples' logits and their stored ones")
    beta: float = Field(0.5, ge=0, description="weight of the rehearsal samples' seq2seq loss (0: DER, > 0: DER++)")


class DEROptions(Options):
    replay: ReplayOptions = Field(default_factory=ReplayOptions)
    der: DERParams = Field(default_factory=DERParams)


def token_logit_mse(logits: Tensor, stored: Tensor, valid: Tensor) -> Tensor:
    """Mean squared difference over the real target tokens (``valid`` [B, L]) and the vocabulary of [B, L, V] logits."""
    squared = (logits - stored).pow(2).sum(-1)
    return (squared * valid).sum() / (valid.sum().clamp(min=1) * logits.size(-1))


def pad_stored(stored: list[Tensor], length: int) -> Tensor:
    """Stored per-sample logits [L_i, V] padded with zeros to [B, length, V] (padding is masked out of the loss)."""
    out = stored[0].new_zeros(len(stored), length, stored[0].size(-1))
    for row, logits in enumerate(stored):
        out[row, : logits.size(0)] = logits
    return out


class DERPlugin(Seq2SeqReplayPlugin):
    """The suite's replay buffer plus each buffer sample's stored decoder logits (keyed by sample id)."""

    def __init__(self, replay: Seq2SeqReplayPlugin, alpha: float, beta: float, batch_size_mem: int, pad_id: int, intent_weight: float):
        super().__init__(replay.mem_size, replay.collate_fn, replay.storage_policy, experiences=replay.experiences)
        self.alpha, self.beta, self.batch_size_mem = alpha, beta, batch_size_mem
        self.pad_id, self.intent_weight = pad_id, intent_weight
        self.logits: dict[int, Tensor] = {}

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """New samples only in the loader: the rehearsal batch is drawn in ``before_backward``."""

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().after_training_exp(strategy, **kwargs)
        self.store_logits(strategy)

    @torch.no_grad()
    def store_logits(self, strategy: Any) -> None:
        """Teacher-forced logits of the samples new in the buffer; those of evicted samples are dropped."""
        buffer = self.storage_policy.buffer
        ids = sample_ids(buffer)
        self.logits = {i: self.logits[i] for i in ids if i in self.logits}
        missing = [row for row, i in enumerate(ids) if i not in self.logits]
        if not missing:
            return
        model = strategy.model
        was_training = model.training
        model.eval()
        loader = DataLoader(buffer.subset(missing), batch_size=strategy.eval_mb_size, collate_fn=self.collate_fn)
        rows = iter(missing)
        for batch in loader:
            x, _, x_lens, tokens = (part.to(strategy.device) for part in batch[:4])
            logits = model(x, x_lens, tokens[:, :-1]).float().cpu()
            lengths = (tokens[:, 1:] != self.pad_id).sum(1).tolist()
            for sample_logits, length in zip(logits, lengths):
                self.logits[ids[next(rows)]] = sample_logits[:length].clone()
        model.train(was_training)

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        buffer = self.storage_policy.buffer
        if len(buffer) == 0 or not (self.alpha or self.beta):
            return
        rows = torch.randperm(len(buffer))[: self.batch_size_mem].tolist()
        buffered = sample_ids(buffer)
        ids = [buffered[row] for row in rows]
        x, _, x_lens, tokens = (part.to(strategy.device) for part in self.collate_fn([buffer[i] for i in rows])[:4])
        logits = strategy.model(x, x_lens, tokens[:, :-1])
        targets = tokens[:, 1:]
        stored = pad_stored([self.logits[i] for i in ids], targets.size(1)).to(strategy.device)
        if self.alpha:
            strategy.add_loss("der", token_logit_mse(logits, stored, (targets != self.pad_id).to(logits.dtype)), self.alpha)
        if self.beta:
            per_token = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=self.pad_id, reduction="none")
            strategy.add_loss("der_ce", weighted_token_mean(per_token, targets, self.pad_id, self.intent_weight), self.beta)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "logits": {int(i): t.clone() for i, t in self.logits.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.logits = {int(i): t.clone() for i, t in state["logits"].items()}


def make_plugins(options: DEROptions, setup: MethodSetup) -> list[Any]:
    replay = replay_plugin(options.replay, setup)
    batch_size_mem = options.replay.batch_size_mem or setup.train.batch_size
    der = options.der
    return [DERPlugin(replay, der.alpha, der.beta, batch_size_mem, setup.scenario.tokenizer.pad_id, setup.train.intent_weight)]


DER = continual_method(
    "der", DEROptions, make_plugins, "dark experience replay (DER++): rehearsal samples' stored decoder logits matched per token"
)
