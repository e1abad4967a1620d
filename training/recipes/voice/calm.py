"""Calm, unacted speech: FSDD digit-string turns (training and evaluation) and out-of-distribution probes.

    python -m training.recipes.voice.calm [--variants studio tel0 tel1 tel2 tel3 tel-eval]

- `fsdd_turns()`: the three FSDD speakers' single digits (8 kHz) joined, with
  short pauses filled with the speaker's own room tone, into 2-5 s turns, as a
  caller reads an account number. Neutral training turns beside RAVDESS, and
  scored leave-one-speaker-out.
- `pocketsphinx_recordings()`: Debian's `pocketsphinx-testdata` (read
  sentences, digits, card names; 16 kHz). Evaluation only.
- `tts_recordings()`: espeak-ng and flite voices reading neutral contact-centre
  sentences. Evaluation only: synthetic voices are probes of how the model
  behaves on audio unlike its training data, not examples of how people sound.

Every recording is a `Recording` (a `features.Source`), so the same feature
cache and telephone variants serve RAVDESS and these.
"""

from __future__ import annotations

import argparse
import csv
import logging
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from models import audio
from models.voice import WhisperEncoder
from training.data import data_root
from training.recipes.voice.features import ALL_VARIANTS, CACHE, READING, READINGS, extract, set_reading

logger = logging.getLogger(__name__)
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
TTS_CACHE = CACHE.parent / "voice-probes"
TURN_SECONDS = (2.0, 5.0)
PAUSE_SECONDS = (0.1, 0.45)
FSDD_PASSES = 2  # each digit recording appears in this many turns (in different company)
# Neutral sentences a contact-centre caller might say; read by every synthetic voice.
NEUTRAL_SENTENCES = (
    "Hello, I am calling about my account.",
    "Can you tell me when my next bill is due?",
    "My account number is four five seven two nine one.",
    "I would like to update my postal address, please.",
    "The parcel was sent to the old address last week.",
    "Could you check the status of my order?",
    "I moved house in March and need a new contract.",
    "Yes, that is the right date of birth.",
    "Please read the reference number back to me.",
    "I am calling from my mobile phone today.",
)
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-us+f3", "en-gb-x-rp+f2")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")


@dataclass(frozen=True)
class Recording:
    """One calm turn: a file, or several (FSDD digits) joined by pauses of the speaker's own room tone."""

    corpus: str
    speaker: str
    parts: tuple[Path, ...]
    pauses: tuple[float, ...] = ()  # seconds after each part but the last
    text: str = ""

    @property
    def key(self) -> str:
        return "|".join([*(str(p) for p in self.parts), *(f"{p:.3f}" for p in self.pauses)])

    def load(self) -> NDArray[Any]:
        pieces = [load_any(p) for p in self.parts]
        out = [pieces[0]]
        for pause, piece in zip(self.pauses, pieces[1:]):
            out += [room_tone(out[-1], int(pause * audio.SAMPLE_RATE)), piece]
        return np.asarray(np.concatenate(out), np.float32)


def load_any(path: Path) -> NDArray[Any]:
    """Canonical audio of a WAV/FLAC file, or of headerless 16 kHz 16-bit PCM (pocketsphinx `.raw`)."""
    if path.suffix == ".raw":
        return audio.to_canonical(np.fromfile(path, dtype="<i2"), audio.SAMPLE_RATE, str(path))
    return audio.load(path)


def room_tone(pcm: NDArray[Any], n: int, frame: int = 160) -> NDArray[Any]:
    """`n` samples of the quietest 10 ms frames of `pcm`: a pause that sounds like the same microphone.

    Digital silence between digits would be a cue no real call has (and one the
    head could learn as "calm").
    """
    frames = pcm[: pcm.size // frame * frame].reshape(-1, frame)
    quiet = frames[np.argsort((frames**2).mean(axis=1))[: max(1, len(frames) // 5)]].ravel()
    return np.resize(quiet, n).astype(np.float32)


def fsdd_turns(root: Path | None = None, seed: int = 16, passes: int = FSDD_PASSES) -> list[Recording]:
    """Each FSDD speaker's digits shuffled and joined into turns of 2-5 s (pauses included), `passes` times."""
    base = root or data_root() / "speech" / "fsdd"
    by_speaker: dict[str, list[Path]] = defaultdict(list)
    with (base / "metadata.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_speaker[row["speaker"]].append(base / row["path"])
    rng = np.random.default_rng(seed)
    turns = []
    for speaker in sorted(by_speaker):
        files = sorted(by_speaker[speaker])
        seconds = {f: sf.info(str(f)).duration for f in files}
        for _ in range(passes):
            turns += _join(speaker, [files[i] for i in rng.permutation(len(files))], seconds, rng)
    return turns


def _join(speaker: str, files: list[Path], seconds: dict[Path, float], rng: np.random.Generator) -> list[Recording]:
    """Consecutive runs of `files` as turns of a random target length within `TURN_SECONDS`."""
    turns: list[Recording] = []
    parts: list[Path] = []
    pauses: list[float] = []
    total = 0.0
    target = rng.uniform(*TURN_SECONDS)
    for f in files:
        pause = float(rng.uniform(*PAUSE_SECONDS)) if parts else 0.0
        if parts and total + pause + seconds[f] > TURN_SECONDS[1]:
            turns.append(Recording("fsdd", speaker, tuple(parts), tuple(pauses)))
            parts, pauses, total, pause = [], [], 0.0, 0.0
            target = rng.uniform(*TURN_SECONDS)
        if parts:
            pauses.append(round(pause, 3))
        parts.append(f)
        total += pause + seconds[f]
        if total >= target:
            turns.append(Recording("fsdd", speaker, tuple(parts), tuple(pauses)))
            parts, pauses, total = [], [], 0.0
            target = rng.uniform(*TURN_SECONDS)
    if parts and total >= TURN_SECONDS[0]:
        turns.append(Recording("fsdd", speaker, tuple(parts), tuple(pauses)))
    return turns


def pocketsphinx_recordings(root: Path = POCKETSPHINX) -> list[Recording]:
    """The read speech in Debian's `pocketsphinx-testdata` (empty when the package is not installed)."""
    if not root.is_dir():
        return []
    found = sorted(p for p in root.rglob("*") if p.suffix in (".wav", ".raw"))
    # One speaker per folder (librivox reader, cards, tidigits); the loose files are one more.
    return [Recording("pocketsphinx", p.parent.name if p.parent != root else "loose", (p,)) for p in found]


def tts_available() -> dict[str, bool]:
    return {engine: shutil.which(engine) is not None for engine in ("espeak-ng", "flite")}


def tts_recordings(out: Path = TTS_CACHE) -> list[Recording]:
    """Every available synthetic voice reading `NEUTRAL_SENTENCES` (synthesised once into `out`)."""
    have = tts_available()
    voices = [("espeak-ng", v) for v in ESPEAK_VOICES if have["espeak-ng"]]
    voices += [("flite", v) for v in FLITE_VOICES if have["flite"]]
    out.mkdir(parents=True, exist_ok=True)
    recordings = []
    for engine, voice in voices:
        for i, sentence in enumerate(NEUTRAL_SENTENCES):
            path = out / f"{engine}-{voice.replace('+', '_')}-{i:02d}.wav"
            if not path.exists():
                _synthesise(engine, voice, sentence, path)
            recordings.append(Recording(engine, f"{engine}:{voice}", (path,), text=sentence))
    return recordings


def _synthesise(engine: str, voice: str, text: str, path: Path) -> None:
    if engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice, "-w", str(path), text]
    else:
        cmd = ["flite", "-voice", voice, "-t", text, "-o", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(ALL_VARIANTS), choices=ALL_VARIANTS)
    parser.add_argument("--corpora", nargs="+", default=["fsdd", "pocketsphinx", "tts"])
    parser.add_argument("--reading", choices=READINGS, default=READING, help="read as a call cuts them, or whole")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    set_reading(args.reading)
    encoder = WhisperEncoder(threads=1)
    sets = {"fsdd": fsdd_turns, "pocketsphinx": pocketsphinx_recordings, "tts": tts_recordings}
    for name in args.corpora:
        recordings = sets[name]()
        for variant in args.variants:
            extract(variant, recordings, encoder)


if __name__ == "__main__":
    main()
