"""Temperature scaling (Guo et al., 2017) and the softmax it is read through, shared by the training recipes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray


def softmax(logits: NDArray[Any]) -> NDArray[Any]:
    """Row-wise softmax over the last axis, stable for large logits."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def fit_temperature(logits: NDArray[Any], y: NDArray[Any]) -> float:
    """The temperature minimising the NLL of held-out `logits` (N, C) for labels `y` (N,)."""
    log_t = torch.zeros(1, requires_grad=True)
    x, target = torch.from_numpy(np.asarray(logits)).float(), torch.from_numpy(np.asarray(y)).long()
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), target)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().item())
