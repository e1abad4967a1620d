"""The voice head (`VoiceHead`: a turn's pooled statistics beside the caller's baseline -> logits), its
checkpoint (the shared `Checkpoint` format; `load_head`, `OldVoiceHeadError` for heads of an earlier format)
and the speakers the shipped head was trained without (`held_out_speakers`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from models.checkpoint import Checkpoint
from models.emotion import LABELS
from models.voice.stats import STATS_DIM

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_HEAD = WEIGHTS_DIR / "voice_head.pt"
HEAD_KIND = "stats-baseline"  # `arch["kind"]` of heads that read pooled statistics beside the caller's baseline


class VoiceHead(nn.Module):
    """Pooled statistics of a turn, read beside the caller's baseline, -> logits over `LABELS`.

    `forward(stats, baseline, has_baseline)` takes (B, 3,072) `pooled_stats`, the
    (B, 3,072) mean statistics of the caller's earlier turns (anything where there
    are none) and a (B,) 0/1 mask. Both are standardised with the training set's
    statistics and projected by the same layer; the classifier reads the turn's own
    projection (the absolute reading: what calm sounds like in general) beside its
    departure from the baseline's projection (what changed for this caller), plus the
    mask. Centring alone would make a calm caller look like the average of all emotions.

    Buffers saved with the weights: the standardisation, a PCA model of the training
    statistics (`distance`: how unlike the training audio a turn is) and the
    reference distances and confidence scales the recipe fitted on held-out speakers.
    """

    center: torch.Tensor
    scale: torch.Tensor
    pca_axes: torch.Tensor
    pca_var: torch.Tensor
    residual_var: torch.Tensor
    familiar: torch.Tensor
    confidence_scale: torch.Tensor

    def __init__(
        self, hidden: int = 256, embedding: int = 128, dropout: float = 0.3, components: int = 32, **_: Any
    ) -> None:
        super().__init__()
        self.register_buffer("center", torch.zeros(STATS_DIM))
        self.register_buffer("scale", torch.ones(STATS_DIM))
        self.register_buffer("pca_axes", torch.zeros(components, STATS_DIM))
        self.register_buffer("pca_var", torch.ones(components))
        self.register_buffer("residual_var", torch.ones(1))
        # Distance up to which a turn counts as familiar, and the distance over which confidence then halves.
        self.register_buffer("familiar", torch.tensor([float("inf"), 1.0]))
        # Confidence = top probability x this scale, [first turn, with a baseline] (held-out accuracy / mean top p).
        self.register_buffer("confidence_scale", torch.ones(2))
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(STATS_DIM, hidden))
        self.embed = nn.Sequential(
            nn.LayerNorm(2 * hidden + 1), nn.Dropout(dropout), nn.Linear(2 * hidden + 1, embedding), nn.GELU()
        )
        self.classify = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding, len(LABELS)))

    def standardise(self, stats: torch.Tensor) -> torch.Tensor:
        return (stats - self.center) / self.scale

    def forward(
        self, stats: torch.Tensor, baseline: torch.Tensor, has_baseline: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = has_baseline.float()[:, None]
        turn = self.project(self.standardise(stats))
        # The departure is taken before the non-linearity: a linear map of (turn - baseline).
        departure = (turn - self.project(self.standardise(baseline))) * mask
        emb = self.embed(torch.cat([nn.functional.gelu(turn), departure, mask], dim=1))
        return self.classify(emb), emb

    def distance(self, stats: torch.Tensor) -> torch.Tensor:
        """RMS Mahalanobis distance of standardised statistics under the training PCA model (about 1 in training)."""
        z = self.standardise(stats)
        coords = z @ self.pca_axes.T
        residual = (z**2).sum(dim=1) - (coords**2).sum(dim=1)
        energy = (coords**2 / self.pca_var).sum(dim=1) + residual.clamp(min=0) / self.residual_var
        return torch.sqrt(energy / (self.pca_axes.shape[0] + 1))

    def familiarity(self, distance: torch.Tensor) -> torch.Tensor:
        """1 up to the familiar distance, then halving every `familiar[1]` beyond it."""
        beyond = (distance - self.familiar[0]).clamp(min=0) / self.familiar[1]
        return torch.pow(0.5, beyond)

    def fit_distribution(self, stats: NDArray[np.float32], components: int | None = None) -> None:
        """Standardisation and PCA model of the training statistics (rows: turns)."""
        x = torch.from_numpy(np.asarray(stats, dtype=np.float32))
        self.center.copy_(x.mean(dim=0))
        self.scale.copy_(x.std(dim=0).clamp(min=1e-3))
        z = self.standardise(x).double()
        k = components or self.pca_axes.shape[0]
        _, sing, axes = torch.linalg.svd(z, full_matrices=False)
        self.pca_axes.copy_(axes[:k].float())
        self.pca_var.copy_((sing[:k] ** 2 / (len(z) - 1)).float())
        coords = z @ axes[:k].T
        residual = (z**2).sum(dim=1) - (coords**2).sum(dim=1)
        self.residual_var.copy_(residual.mean().reshape(1).float())


# The voice head's file format is the shared one (weights, labels, temperature, arch, info).
VoiceCheckpoint = Checkpoint


class OldVoiceHeadError(ValueError):
    """A voice head saved before the caller baseline (it read frames, not statistics beside a baseline)."""


def load_head(checkpoint: Checkpoint, path: Path) -> VoiceHead:
    """The head of a checkpoint; an earlier head format fails with what to do about it."""
    if checkpoint.arch.get("kind") != HEAD_KIND:
        raise OldVoiceHeadError(
            f"{path}: voice head format {checkpoint.arch.get('kind', 'frames (before 2026-12)')!r} is no longer "
            f"supported: this code reads heads of kind {HEAD_KIND!r} (pooled statistics beside a caller "
            "baseline). Retrain it with `make train-voice` or use the shipped models/weights/voice_head.pt."
        )
    head = VoiceHead(**checkpoint.arch)
    head.load_state_dict(checkpoint.state_dict)
    return head.eval()


@dataclass(frozen=True)
class HeldOut:
    """Speakers the shipped head was trained without: callers it never heard, for end-to-end tests and quality runs."""

    ravdess_actors: tuple[int, ...]
    fsdd_speakers: tuple[str, ...]


def held_out_speakers(head_path: Path | None = None) -> HeldOut:
    """The RAVDESS actors and FSDD speakers the (shipped) head never heard, read from its JSON sidecar."""
    sidecar = (head_path or DEFAULT_HEAD).with_suffix(".json")
    held = json.loads(sidecar.read_text()).get("held_out")
    if not held:
        raise ValueError(f"{sidecar} names no held-out speakers: the head was trained on every speaker")
    return HeldOut(tuple(int(a) for a in held["ravdess_actors"]), tuple(str(s) for s in held["fsdd_speakers"]))
