"""A fused SASRec encoder: RecBole's ``TransformerEncoder`` function and parameters, cheaper passes.

Same state-dict keys as ``recbole.model.layers.TransformerEncoder`` (a checkpoint loads into
either), same order of operations per layer (post-norm: attention, dropout, residual,
LayerNorm; feed-forward with GELU, dropout, residual, LayerNorm), same additive -10000 mask
(causal, padding keys masked). What changes is how each pass is computed:

- attention through ``torch.nn.functional.scaled_dot_product_attention``; while training on
  a CPU, where SDPA's dropout falls back to its plain math with a slow Bernoulli draw, the
  same math runs here with ``fast_dropout``;
- the last layer computes only the last position of each sequence (a sequential
  recommender reads nothing else): keys and values for every position, queries, output
  projection and feed-forward for one position per sequence;
- dropout masks from 8 to 32 random bits per element (``fast_dropout``), about ten times
  cheaper on a CPU than ``torch.bernoulli``; on a GPU PyTorch's own dropout is used.

``torch.compile`` was measured on this path (CPU, dynamic shapes for the length buckets): about
165 s to compile and a step 1.8x slower than this eager code, so it is not used.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

MASKED = -10000.0  # RecBole's additive attention mask value

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,  # the exact (erf) GELU, as RecBole's
    "relu": F.relu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with ``F.dropout``'s distribution; on a CPU the keep mask compares random bits.

    ``torch.bernoulli`` draws one Mersenne-Twister number per element through a slow path
    (about 40 ms per million elements on one core here). Random 64-bit integers from the same
    global generator, cut into 8-, 16- or 32-bit fields, give the mask for a fraction of that:
    8 bits when p is a multiple of 1/256 (0.5, 0.25: exact), else 16 when p is a multiple of
    2^-16, else 32 (p rounded to a multiple of 2^-32).
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    return x * keep_mask(x.shape, p) * (1.0 / (1.0 - p))


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """A boolean tensor, True with probability 1 - p, from the global CPU generator."""
    bits = next((width for width in (8, 16) if float(p * 2**width).is_integer()), 32)
    field = {8: torch.uint8, 16: torch.int16, 32: torch.int32}[bits]
    count = math.prod(shape)
    per_draw = 64 // bits
    draws = torch.randint(-(2**63), 2**63 - 1, ((count + per_draw - 1) // per_draw,), dtype=torch.int64)
    fields = draws.view(field)[:count].view(shape)
    threshold = round(p * 2**bits) - (0 if field is torch.uint8 else 2 ** (bits - 1))  # uint8 is unsigned
    return fields >= threshold


def causal_padding_mask(item_seq: torch.Tensor) -> torch.Tensor:
    """RecBole's ``get_attention_mask``: 0 where key <= query and the key is an item, -10000 elsewhere."""
    keys = (item_seq != 0).unsqueeze(1).unsqueeze(2)
    allowed = torch.tril(keys.expand(-1, -1, item_seq.size(-1), -1))
    return torch.where(allowed, 0.0, MASKED)


class FusedSelfAttention(nn.Module):
    """RecBole's ``MultiHeadAttention`` (same parameters): attention, dropout, residual, LayerNorm."""

    def __init__(self, n_heads: int, hidden_size: int, hidden_dropout_prob: float, attn_dropout_prob: float, layer_norm_eps: float):
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attn_dropout_prob = attn_dropout_prob

    def _split_heads(self, projected: torch.Tensor, count: int) -> list[torch.Tensor]:
        """[B, T, count * H] -> ``count`` contiguous [B, heads, T, H / heads] tensors, one copy for all."""
        batch, length = projected.shape[:2]
        return list(projected.view(batch, length, count, self.n_heads, -1).permute(2, 0, 3, 1, 4).contiguous().unbind(0))

    def _project(self, hidden: torch.Tensor, layers: tuple[nn.Linear, ...]) -> list[torch.Tensor]:
        """Several projections of ``hidden`` as one matrix product (concatenated weights), split into heads."""
        weight = torch.cat([layer.weight for layer in layers])
        bias = torch.cat([layer.bias for layer in layers])
        return self._split_heads(F.linear(hidden, weight, bias), len(layers))

    def _attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        dropout = self.attn_dropout_prob if self.training else 0.0
        if dropout == 0.0 or query.device.type != "cpu":
            return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout)
        scores = torch.matmul(query, key.transpose(-1, -2)).mul_(1.0 / math.sqrt(query.size(-1))).add_(mask)
        return torch.matmul(fast_dropout(torch.softmax(scores, dim=-1), dropout, True), value)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention over ``hidden`` [B, L, H]; ``queries`` [B, T, H] (default: every position) ask."""
        if queries is None:
            queries = hidden
            query, key, value = self._project(hidden, (self.query, self.key, self.value))
        else:
            (query,) = self._project(queries, (self.query,))
            key, value = self._project(hidden, (self.key, self.value))
        context = self._attend(query, key, value, mask).transpose(1, 2).reshape(queries.shape)
        out = fast_dropout(self.dense(context), self.hidden_dropout_prob, self.training)
        return self.LayerNorm(out + queries)


class FusedFeedForward(nn.Module):
    """RecBole's ``FeedForward`` (same parameters): dense, activation, dense, dropout, residual, LayerNorm."""

    def __init__(self, hidden_size: int, inner_size: int, hidden_dropout_prob: float, hidden_act: str, layer_norm_eps: float):
        super().__init__()
        if hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {', '.join(ACTIVATIONS)}, got {hidden_act!r}")
        self.dense_1 = nn.Linear(hidden_size, inner_size)
        self.dense_2 = nn.Linear(inner_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.activation = ACTIVATIONS[hidden_act]
        self.hidden_dropout_prob = hidden_dropout_prob

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out = fast_dropout(self.dense_2(self.activation(self.dense_1(hidden))), self.hidden_dropout_prob, self.training)
        return self.LayerNorm(out + hidden)


class FusedTransformerLayer(nn.Module):
    """RecBole's ``TransformerLayer``: self-attention then feed-forward."""

    def __init__(
        self,
        n_heads: int,
        hidden_size: int,
        intermediate_size: int,
        hidden_dropout_prob: float,
        attn_dropout_prob: float,
        hidden_act: str,
        layer_norm_eps: float,
    ):
        super().__init__()
        self.multi_head_attention = FusedSelfAttention(n_heads, hidden_size, hidden_dropout_prob, attn_dropout_prob, layer_norm_eps)
        self.feed_forward = FusedFeedForward(hidden_size, intermediate_size, hidden_dropout_prob, hidden_act, layer_norm_eps)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        return self.feed_forward(self.multi_head_attention(hidden, mask, queries))


class FusedTransformerEncoder(nn.Module):
    """RecBole's ``TransformerEncoder`` (same arguments, parameters and full-sequence function) plus
    ``last_states``, which computes only what the last position of each sequence needs."""

    def __init__(
        self,
        n_layers: int = 2,
        n_heads: int = 2,
        hidden_size: int = 64,
        inner_size: int = 256,
        hidden_dropout_prob: float = 0.5,
        attn_dropout_prob: float = 0.5,
        hidden_act: str = "gelu",
        layer_norm_eps: float = 1e-12,
    ):
        super().__init__()
        # one layer deep-copied, as RecBole builds its stack: the same draws from the global RNG
        layer = FusedTransformerLayer(n_heads, hidden_size, inner_size, hidden_dropout_prob, attn_dropout_prob, hidden_act, layer_norm_eps)
        self.layer = nn.ModuleList([copy.deepcopy(layer) for _ in range(n_layers)])

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, output_all_encoded_layers: bool = True) -> list[torch.Tensor]:
        """RecBole's signature and result: every position of every layer (or of the last)."""
        outputs = []
        for layer in self.layer:
            hidden = layer(hidden, attention_mask)
            outputs.append(hidden)
        return outputs if output_all_encoded_layers else outputs[-1:]

    def last_states(self, hidden: torch.Tensor, item_seq: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The last layer's state at position ``last`` of each sequence [B, H], as ``forward`` gives it.

        Left-aligned sequences: the keys a last position sees under the causal mask are its
        sequence's items, so its mask row is the padding mask alone.
        """
        *inner, final = self.layer
        if inner:
            mask = causal_padding_mask(item_seq)
            for layer in inner:
                hidden = layer(hidden, mask)
        queries = hidden.gather(1, last.view(-1, 1, 1).expand(-1, 1, hidden.size(-1)))
        key_mask = torch.where(item_seq != 0, 0.0, MASKED)[:, None, None, :]
        return final(hidden, key_mask, queries).squeeze(1)
