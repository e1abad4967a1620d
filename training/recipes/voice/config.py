"""Where the voice recipe keeps its hyperparameters and runs (shared by train and report without a cycle)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hyperpyyaml import load_hyperpyyaml

HERE = Path(__file__).resolve().parent
RUNS = Path(os.environ.get("TONELINE_CACHE", Path.home() / ".cache" / "toneline")) / "voice-runs"


def load_hparams(path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    with path.open() as handle:
        result: dict[str, Any] = load_hyperpyyaml(handle, overrides)
        return result
