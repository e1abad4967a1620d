"""One saved-model format for Toneline's small trained parts (text and voice heads, face CNN, fusion).

A `.pt` file (torch, loaded with `weights_only=True`) holds the state dict, the
label order, the calibration temperature, the architecture arguments and the
provenance; a `.json` sidecar beside it repeats everything but the weights, so
a reviewer can read what was trained on what without loading torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.emotion import LABELS


@dataclass(frozen=True)
class Checkpoint:
    """What is saved of a trained model: weights, architecture, labels, calibration and provenance."""

    state_dict: dict[str, Any]
    labels: tuple[str, ...]
    temperature: float
    arch: dict[str, Any]
    info: dict[str, Any]

    def save(self, path: Path) -> None:
        """Write the `.pt` file and its `.json` sidecar."""
        torch.save(
            {
                "state_dict": self.state_dict,
                "labels": list(self.labels),
                "temperature": self.temperature,
                "arch": self.arch,
                "info": self.info,
            },
            path,
        )
        summary = {"labels": list(self.labels), "temperature": self.temperature, "arch": self.arch, **self.info}
        path.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        """Read a checkpoint; raises `ValueError` if it was trained for another label order."""
        raw = torch.load(path, map_location="cpu", weights_only=True)
        labels = tuple(raw["labels"])
        if labels != LABELS:
            raise ValueError(f"{path}: model was trained for labels {labels}, this code uses {LABELS}")
        # The first text head was saved with only its hidden width in place of `arch`.
        arch = dict(raw["arch"]) if "arch" in raw else {"hidden": int(raw["hidden"])}
        return cls(raw["state_dict"], labels, float(raw["temperature"]), arch, dict(raw["info"]))
