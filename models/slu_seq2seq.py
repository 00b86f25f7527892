"""Sequence-to-sequence SLU model: log-mel frames in, ``<intent> <sep> transcript`` out.

Torch modules only. The encoder (convolutional subsampling, then a Transformer or
Conformer stack) turns audio into a memory; an autoregressive Transformer decoder emits the
target tokens, intent first, so that intent accuracy comes from the first decoded token and
WER from the rest. Methods that need more (COCONUT's projection heads) build their own
modules on top of ``pooled`` and ``embedding``; the model holds the seq2seq network only.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"d_model": 64, "num_heads": 4, "enc_layers": 2, "dec_layers": 1, "ff_dim": 128},
    "small": {"d_model": 96, "num_heads": 4, "enc_layers": 2, "dec_layers": 1, "ff_dim": 256},
    "base": {"d_model": 256, "num_heads": 4, "enc_layers": 6, "dec_layers": 3, "ff_dim": 1024},
    "large": {"d_model": 512, "num_heads": 8, "enc_layers": 12, "dec_layers": 6, "ff_dim": 2048},
}
"""The model's sizes, one row per preset: the only place they are written down."""

DEFAULT_PRESET = "small"

DEFAULTS: dict[str, Any] = {
    "dropout": 0.1,
    "encoder": "transformer",
    "conv_channels": 32,
    "conformer_kernel": 15,
    "global_conditioning": True,
}
"""Every other constructor argument's default, the same for every preset."""

ENCODERS = ("transformer", "conformer")


def subsampled_lengths(lengths: Tensor, times: int = 2) -> Tensor:
    """Frame counts after ``times`` stride-2 convolutions with kernel 3 and padding 1."""
    for _ in range(times):
        lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
    return lengths


def length_mask(lengths: Tensor, max_len: int) -> Tensor:
    """Boolean [B, max_len], True on valid (non-padded) positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class SinusoidalPosition(nn.Module):
    """Fixed sinusoidal positions: no parameters, any length up to ``max_len``."""

    def __init__(self, d_model: int, max_len: int = 4000):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * div)
        table[:, 1::2] = torch.cos(position * div[: d_model // 2])
        self.register_buffer("table", table, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.table[: x.size(1)].unsqueeze(0)


class ConvSubsampling(nn.Module):
    """Two stride-2 convolutions: 4x fewer frames, so attention over speech stays cheap."""

    def __init__(self, n_mels: int, d_model: int, channels: int = 32):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        freq = subsampled_lengths(torch.tensor(n_mels)).item()
        self.out = nn.Linear(channels * int(freq), d_model)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        h = self.conv(x.unsqueeze(1))  # [B, C, T/4, F/4]
        b, c, t, f = h.shape
        h = self.out(h.permute(0, 2, 1, 3).reshape(b, t, c * f))
        return h, subsampled_lengths(lengths).clamp(min=1, max=t)


class SLUSeq2Seq(nn.Module):
    """Encoder-decoder SLU model: audio features and teacher-forced target tokens in, next-token logits out."""

    def __init__(
        self,
        vocab_size: int,
        n_mels: int,
        pad_id: int,
        *,
        d_model: int,
        num_heads: int,
        enc_layers: int,
        dec_layers: int,
        ff_dim: int,
        dropout: float,
        encoder: str,
        conv_channels: int,
        conformer_kernel: int,
        global_conditioning: bool,
    ):
        """Every size is required here; ``build_slu_seq2seq`` fills them from ``PRESETS`` and ``DEFAULTS``."""
        super().__init__()
        self.pad_id = pad_id
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.subsample = ConvSubsampling(n_mels, d_model, conv_channels)
        self.position = SinusoidalPosition(d_model)
        self.dropout = nn.Dropout(dropout)
        self.encoder_kind = encoder
        if encoder == "conformer":
            from torchaudio.models import Conformer

            self.encoder = Conformer(d_model, num_heads, ff_dim, enc_layers, conformer_kernel, dropout=dropout)
        elif encoder == "transformer":
            layer = nn.TransformerEncoderLayer(d_model, num_heads, ff_dim, dropout, batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, enc_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        else:
            raise ValueError(f"unknown encoder '{encoder}' ({' or '.join(ENCODERS)})")
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        dec_layer = nn.TransformerDecoderLayer(d_model, num_heads, ff_dim, dropout, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(dec_layer, dec_layers, norm=nn.LayerNorm(d_model))
        self.output = nn.Linear(d_model, vocab_size)
        self.global_proj = nn.Linear(d_model, d_model) if global_conditioning else None

    def encode(self, x: Tensor, x_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Audio [B, T, n_mels] -> memory [B, T', d] and its validity mask [B, T'] (True = frame)."""
        h, lengths = self.subsample(x, x_lens)
        h = self.dropout(self.position(h))
        mask = length_mask(lengths, h.size(1))
        if self.encoder_kind == "conformer":
            h, _ = self.encoder(h, lengths)
        else:
            h = self.encoder(h, src_key_padding_mask=~mask)
        return h, mask

    @staticmethod
    def pooled(memory: Tensor, mask: Tensor) -> Tensor:
        """Masked mean of the encoder outputs: the utterance embedding a_i."""
        weights = mask.unsqueeze(-1).to(memory.dtype)
        return (memory * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def decode(self, memory: Tensor, mask: Tensor, tokens_in: Tensor) -> Tensor:
        """Teacher-forced decoder pass: logits [B, L, V] for the next token at each position.

        With ``global_conditioning`` the pooled utterance embedding a_i is added to every
        decoder input: the first target token (the intent) is otherwise predicted from a
        fixed query through cross-attention alone, which learns slowly from little data;
        it also ties the embedding the contrastive losses shape to the decoded intent.
        """
        length = tokens_in.size(1)
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=tokens_in.device), diagonal=1)
        h = self.position(self.embedding(tokens_in))
        if self.global_proj is not None:
            h = h + self.global_proj(self.pooled(memory, mask)).unsqueeze(1)
        h = self.dropout(h)
        h = self.decoder(
            h,
            memory,
            tgt_mask=causal,
            tgt_key_padding_mask=tokens_in == self.pad_id,
            memory_key_padding_mask=~mask,
            tgt_is_causal=True,
        )
        return self.output(h)

    def forward(self, x: Tensor, x_lens: Tensor, tokens_in: Tensor) -> Tensor:
        memory, mask = self.encode(x, x_lens)
        return self.decode(memory, mask, tokens_in)

    @torch.no_grad()
    def greedy_decode(self, x: Tensor, x_lens: Tensor, max_len: int, bos_id: int, eos_id: int) -> Tensor:
        """Greedy decoding; returns [B, <= max_len + 1] starting with bos, padded after eos."""
        memory, mask = self.encode(x, x_lens)
        tokens = torch.full((x.size(0), 1), bos_id, dtype=torch.long, device=x.device)
        finished = torch.zeros(x.size(0), dtype=torch.bool, device=x.device)
        for _ in range(max_len):
            next_token = self.decode(memory, mask, tokens)[:, -1].argmax(-1)
            next_token = torch.where(finished, torch.full_like(next_token, self.pad_id), next_token)
            tokens = torch.cat([tokens, next_token.unsqueeze(1)], dim=1)
            finished |= next_token == eos_id
            if bool(finished.all()):
                break
        return tokens


def build_slu_seq2seq(vocab_size: int, n_mels: int, pad_id: int = 0, preset: str = DEFAULT_PRESET, **overrides: Any) -> SLUSeq2Seq:
    """Build from a named preset (tiny, small, base, large) and ``DEFAULTS``; explicit, non-None keys take precedence."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}' ({', '.join(PRESETS)})")
    config = {**PRESETS[preset], **DEFAULTS, **{key: value for key, value in overrides.items() if value is not None}}
    return SLUSeq2Seq(vocab_size, n_mels, pad_id, **config)
