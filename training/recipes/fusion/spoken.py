"""The contact-centre spoken set: our own sentences, spoken at run time by local synthetic voices.

    python -m training.recipes.fusion.spoken [--out DIR]   # synthesise (cached) and write DIR/turns.csv

`contact_centre_turns.csv` (beside this file) holds 72 sentences a contact centre hears
(plain requests, account numbers, thanks, anger, polite anger, worry, grief), each with
the canonical label of what the words say. Each is spoken by every voice in `VOICES`
(Debian's espeak-ng and flite: several speakers, none of them acting an emotion, so the
emotion is in the words) into a cache outside the repository, and listed in a turns
manifest (`text,audio,label`) for `python -m models.evaluate turns`.

Synthetic voices are probes, not people: a flat voice reading "I am furious" is the
case the fusion must get right (the words carry the emotion, the voice says nothing),
not a sample of how callers sound.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from training.recipes.fusion.paths import CACHE

SENTENCES = Path(__file__).resolve().parent / "contact_centre_turns.csv"
SPOKEN_CACHE = CACHE / "spoken"


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: the engine (a Debian program) and its voice name."""

    engine: str  # "espeak-ng" or "flite"
    name: str

    @property
    def tag(self) -> str:
        return f"{self.engine}-{self.name}".replace("+", "_")

    def command(self, text: str, out: Path) -> list[str]:
        if self.engine == "espeak-ng":
            return ["espeak-ng", "-v", self.name, "-s", "160", "-w", str(out), text]
        return ["flite", "-voice", self.name, "-t", text, "-o", str(out)]


# Two espeak-ng speakers (US male, British female variant) and three flite speakers
# (US female, US male, Scottish male): five voices of two engines.
VOICES: tuple[Voice, ...] = (
    Voice("espeak-ng", "en-us"),
    Voice("espeak-ng", "en-gb+f3"),
    Voice("flite", "slt"),
    Voice("flite", "rms"),
    Voice("flite", "awb"),
)


class SynthesisUnavailable(RuntimeError):
    """A speech engine the spoken set needs is not installed."""


@dataclass(frozen=True)
class Sentence:
    id: str
    text: str
    label: str
    kind: str


def sentences(path: Path = SENTENCES) -> list[Sentence]:
    """The contact-centre sentences with their labels and kinds (request, thanks, polite_angry, ...)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [Sentence(r["id"], r["text"], r["label"], r["kind"]) for r in csv.DictReader(handle)]


def missing_engines(voices: tuple[Voice, ...] = VOICES) -> list[str]:
    """Engines of `voices` that are not on PATH (apt-get install espeak-ng flite; .ci/run installs both)."""
    return sorted({v.engine for v in voices if shutil.which(v.engine) is None})


def synthesise(sentence: Sentence, voice: Voice, cache: Path = SPOKEN_CACHE) -> Path:
    """The WAV file of `voice` saying `sentence`, made once (keyed by the words) and reused."""
    key = hashlib.sha256(f"{voice.engine}\n{voice.name}\n{sentence.text}".encode()).hexdigest()[:10]
    out = cache / voice.tag / f"{sentence.id}-{key}.wav"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".part.wav")
    subprocess.run(voice.command(sentence.text, partial), check=True, capture_output=True, timeout=60)
    partial.rename(out)  # complete files only: a run cut short leaves no truncated clip in the cache
    return out


def build_manifest(out_dir: Path, voices: tuple[Voice, ...] = VOICES) -> Path:
    """Speak every sentence in every voice and write `out_dir/turns.csv` (text, audio, label, voice, kind).

    Raises `SynthesisUnavailable` naming the engines that are missing.
    """
    missing = missing_engines(voices)
    if missing:
        raise SynthesisUnavailable(f"the spoken set needs {missing}: apt-get install espeak-ng flite")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / "turns.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "audio", "label", "voice", "kind", "sentence"])
        writer.writeheader()
        for voice in voices:
            for s in sentences():
                audio = synthesise(s, voice)
                relative = os.path.relpath(audio, out_dir)  # audio paths are relative to the manifest
                writer.writerow(
                    {"text": s.text, "audio": relative, "label": s.label, "voice": voice.tag, "kind": s.kind}
                    | {"sentence": s.id}
                )
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=SPOKEN_CACHE)
    args = parser.parse_args(argv)
    print(build_manifest(args.out))


if __name__ == "__main__":
    main()
