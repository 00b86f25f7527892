"""A 2-layer MLP projection head, the kind contrastive methods put on top of an embedding.

Torch modules only. The continual method that uses it (COCONUT, ``suite/continual/coconut.py``)
builds and owns its heads; the base model does not.
"""

from __future__ import annotations

from torch import Tensor, nn


class ProjectionHead(nn.Module):
    """2-layer MLP projection for contrastive losses (normalization is the loss's job)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
