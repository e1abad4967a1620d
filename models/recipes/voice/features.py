"""RAVDESS clips, their telephone variants, and cached Whisper encoder states.

    python -m models.recipes.voice.features [--variants studio tel0 tel1 tel2 tel3 tel-eval]
    python -m models.recipes.voice.features --variants studio-asr tel-eval-asr --actors 1 6 11 16

Each variant is every clip once: `studio` as recorded, `telK` through a
telephone channel drawn with training seed K, `tel-eval` through the channel
with a seed used only for evaluation; `*-asr` variants encode the same audio
with the 30 s window of an ASR pass. States (float16) are cached under
~/.cache/toneline/voice-feats, outside the repository.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models import audio
from models.data import data_root
from models.logs import log_event
from models.voice import ENCODER_NAME, PhoneBandFbank, WhisperEncoder

logger = logging.getLogger(__name__)
CACHE = Path(os.environ.get("TONELINE_CACHE", Path.home() / ".cache" / "toneline")) / "voice-feats"
TRAIN_VARIANTS = ("tel0", "tel1", "tel2", "tel3")
EVAL_VARIANT = "tel-eval"
ALL_VARIANTS = ("studio", *TRAIN_VARIANTS, EVAL_VARIANT)
# The same audio encoded as faster-whisper's ASR pass does (input padded to 30 s): what
# `predict_from_encoder` receives from the telephony connector. Evaluation only.
ASR_SUFFIX = "-asr"
ASR_VARIANTS = ("studio" + ASR_SUFFIX, EVAL_VARIANT + ASR_SUFFIX)
_EVAL_SEED = 7_777
CHANNEL = audio.TelephoneChannel()


@dataclass(frozen=True)
class Clip:
    """One RAVDESS recording with its RAVDESS emotion name (calm included)."""

    path: Path
    actor: int
    emotion: str
    intensity: str


def ravdess_clips(root: Path | None = None) -> list[Clip]:
    """All clips listed in RAVDESS `metadata.csv`, in file order."""
    base = root or data_root() / "speech" / "ravdess"
    with (base / "metadata.csv").open(newline="") as handle:
        return [
            Clip(base / row["path"], int(row["actor"]), row["emotion"], row["intensity"])
            for row in csv.DictReader(handle)
        ]


def variant_seed(variant: str) -> int | None:
    """RNG seed of a telephone variant; None for studio audio."""
    variant = variant.removesuffix(ASR_SUFFIX)
    if variant == "studio":
        return None
    if variant == EVAL_VARIANT:
        return _EVAL_SEED
    return 1_000 + int(variant.removeprefix("tel"))


def variant_audio(clip: Clip, index: int, variant: str) -> np.ndarray:
    """The clip as heard in `variant`: studio, or through a seeded phone channel."""
    pcm = audio.load(clip.path)
    seed = variant_seed(variant)
    if seed is None:
        return pcm
    return CHANNEL.apply(pcm, np.random.default_rng([seed, index]))


def cache_path(variant: str, clips: list[Clip]) -> Path:
    key = "\n".join([ENCODER_NAME, repr(CHANNEL), variant, *(str(c.path) for c in clips)])
    return CACHE / f"{variant}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"


def extract(variant: str, clips: list[Clip], encoder: WhisperEncoder | None = None) -> list[np.ndarray]:
    """Encoder states of every clip in `variant`, computed once and cached."""
    path = cache_path(variant, clips)
    if path.exists():
        data = np.load(path)
        return np.split(data["states"], data["offsets"][1:-1])
    encoder = encoder or WhisperEncoder(threads=1)
    started = time.perf_counter()
    states = [
        encoder.encode(variant_audio(clip, i, variant), full_window=variant.endswith(ASR_SUFFIX)).astype(np.float16)
        for i, clip in enumerate(tqdm(clips, desc=f"encode {variant}", unit="clip", mininterval=10))
    ]
    offsets = np.cumsum([0, *(s.shape[0] for s in states)])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, states=np.concatenate(states), offsets=offsets)
    log_event(
        logger,
        logging.INFO,
        "voice.features.cached",
        variant=variant,
        clips=len(clips),
        seconds=round(time.perf_counter() - started, 1),
        path=str(path),
    )
    return states


def extract_fbank(variant: str, clips: list[Clip]) -> list[np.ndarray]:
    """Phone-band filterbanks of every clip in `variant` (same audio as its encoder states), cached."""
    path = cache_path("fbank-" + variant, clips)
    if path.exists():
        data = np.load(path)
        return np.split(data["feats"], data["offsets"][1:-1])
    fbank = PhoneBandFbank()
    feats = [
        fbank(variant_audio(clip, i, variant)).astype(np.float16)
        for i, clip in enumerate(tqdm(clips, desc=f"fbank {variant}", unit="clip", mininterval=10))
    ]
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, feats=np.concatenate(feats), offsets=np.cumsum([0, *(f.shape[0] for f in feats)]))
    return feats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(ALL_VARIANTS), choices=ALL_VARIANTS + ASR_VARIANTS)
    parser.add_argument("--fbank", action="store_true", help="filterbanks instead of encoder states")
    parser.add_argument("--actors", type=int, nargs="*", default=None, help="only these actors (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    clips = [c for c in ravdess_clips() if args.actors is None or c.actor in args.actors]
    if args.fbank:
        for variant in args.variants:
            extract_fbank(variant, clips)
        return
    encoder = WhisperEncoder(threads=1)
    for variant in args.variants:
        extract(variant, clips, encoder)


if __name__ == "__main__":
    main()
