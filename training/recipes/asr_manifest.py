"""Transcribed manifests of speakers no Toneline model trained on, for `python -m models.evaluate asr`.

    python -m training.recipes.asr_manifest [--out DIR]

Writes into DIR (default ~/.cache/toneline/asr, outside the repository: the
manifests name data files by absolute path, and the data is not ours to ship):

- `ravdess_held_out.csv`: every clip of the RAVDESS actors the shipped voice head
  holds out (`models.voice.held_out_speakers()`, actors 19 and 20: 120 clips, the
  sentences "Kids are talking by the door" and "Dogs are sitting by the door");
- `pocketsphinx.csv`: the recordings of Debian's `pocketsphinx-testdata` that come
  with a transcript (the LibriVox reader's five sentences, five card names);
- `fsdd_held_out.csv`: the held-out FSDD speaker's digits joined into 2-5 s digit
  strings (`training.recipes.voice.calm.fsdd_turns`: pauses of the speaker's own room
  tone), written as 16 kHz WAV under DIR/fsdd, as a caller reads an account number.

A corpus whose data is missing is skipped, saying so. Whisper itself trained on
none of these as far as its authors say; "held out" is about Toneline's models.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import soundfile as sf

from models.audio import SAMPLE_RATE
from models.voice import held_out_speakers
from training.data import data_root
from training.recipes.voice.calm import POCKETSPHINX, fsdd_turns

OUT = Path.home() / ".cache" / "toneline" / "asr"
FSDD_TURNS = 60
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SPHINX_LINE = re.compile(r"^<s>\s*(.*?)\s*</s>\s*\((\S+)\)\s*$")


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "text"])
        writer.writerows(rows)
    print(f"{path}: {len(rows)} recordings")


def ravdess(root: Path) -> list[tuple[str, str]]:
    actors = set(held_out_speakers().ravdess_actors)
    with (root / "metadata.csv").open(newline="") as handle:
        return [(str(root / r["path"]), r["statement"]) for r in csv.DictReader(handle) if int(r["actor"]) in actors]


def pocketsphinx(root: Path = POCKETSPHINX) -> list[tuple[str, str]]:
    """Recordings listed in a `transcription` file beside them (`<s> words </s> (file id)`)."""
    rows = []
    for listing in sorted(root.rglob("*transcription")):
        for line in listing.read_text().splitlines():
            found = _SPHINX_LINE.match(line.strip())
            wav = listing.parent / f"{found.group(2)}.wav" if found else None
            if found and wav is not None and wav.is_file():
                rows.append((str(wav), found.group(1)))
    return rows


def fsdd(root: Path, out: Path, turns: int = FSDD_TURNS) -> list[tuple[str, str]]:
    speakers = set(held_out_speakers().fsdd_speakers)
    with (root / "metadata.csv").open(newline="") as handle:
        digit = {str(root / r["path"]): int(r["digit"]) for r in csv.DictReader(handle)}
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, recording in enumerate([r for r in fsdd_turns(root) if r.speaker in speakers][:turns]):
        path = out / f"{recording.speaker}-{i:03d}.wav"
        sf.write(str(path), recording.load(), SAMPLE_RATE, subtype="PCM_16")
        rows.append((str(path), " ".join(_DIGITS[digit[str(p)]] for p in recording.parts)))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    speech = data_root() / "speech"
    if (speech / "ravdess" / "metadata.csv").is_file():
        _write(args.out / "ravdess_held_out.csv", ravdess(speech / "ravdess"))
    else:
        print(f"skipped RAVDESS: {speech / 'ravdess'} not found (set TONELINE_DATA)")
    if POCKETSPHINX.is_dir():
        _write(args.out / "pocketsphinx.csv", pocketsphinx())
    else:
        print(f"skipped pocketsphinx-testdata: {POCKETSPHINX} not found (apt-get install pocketsphinx-testdata)")
    if (speech / "fsdd" / "metadata.csv").is_file():
        _write(args.out / "fsdd_held_out.csv", fsdd(speech / "fsdd", args.out / "fsdd"))
    else:
        print(f"skipped FSDD: {speech / 'fsdd'} not found (set TONELINE_DATA)")


if __name__ == "__main__":
    main()
