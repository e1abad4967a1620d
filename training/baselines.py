"""Weights kept only as baselines to compare against; nothing loads them at run time, so they live here.

- `FROZEN_HEAD`: the foundation's frozen-MiniLM text head (`python -m training.recipes.text.frozen` writes it;
  `bench.text` and the text tests read it as the baseline the fine-tuned model must beat).
- `PREVIOUS_TEXT`: the text model before issue 18's head refit (20261202), `bench.text`'s "previous" row.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FROZEN_HEAD = WEIGHTS_DIR / "text_head.pt"
PREVIOUS_TEXT = WEIGHTS_DIR / "text_lora_20261202.pt"
