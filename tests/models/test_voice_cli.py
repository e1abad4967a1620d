"""`python -m models.evaluate voice MANIFEST.csv [--telephone] [--whole]` on a small manifest of real RAVDESS clips:
by default each clip is read as a call reads it (cut by the call core's turn segmentation)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from models import audio
from tests.conftest import shared_data

REPO = Path(__file__).resolve().parents[2]
# (RAVDESS file, manifest label): labels as a user would write them, aliases included.
CLIPS = [
    ("Actor_01/03-01-05-02-01-01-01.flac", "angry"),
    ("Actor_02/03-01-05-02-02-01-02.flac", "anger"),
    ("Actor_03/03-01-01-01-01-01-03.flac", "neutral"),
    ("Actor_04/03-01-03-02-01-01-04.flac", "happy"),
    ("Actor_05/03-01-04-02-01-01-05.flac", "sadness"),
    ("Actor_06/03-01-06-02-01-01-06.flac", "fear"),  # silero's VAD hears no turn in it: a call would not read it
    ("Actor_07/03-01-02-01-01-01-07.flac", "calm"),  # no canonical label: skipped and counted
]


def build_manifest(tmp_path: Path) -> Path:
    """Copies clips as different formats and rates under a subfolder; paths in the CSV are relative."""
    base = shared_data("speech", "ravdess")
    (tmp_path / "audio").mkdir()
    rows = []
    for i, (name, label) in enumerate(CLIPS):
        pcm = audio.load(base / name)
        if i % 3 == 0:
            rel, data, rate = f"audio/{i}.wav", audio.resample(pcm, 16_000, 44_100), 44_100
            data = np.stack([data, data], axis=1)  # stereo
        elif i % 3 == 1:
            rel, data, rate = f"audio/{i}.flac", audio.resample(pcm, 16_000, 8_000), 8_000
        else:
            rel, data, rate = f"audio/{i}.ogg", pcm, 16_000
        sf.write(tmp_path / rel, data, rate)
        rows.append({"path": rel, "label": label})
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "models.evaluate", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600,
    )


@pytest.mark.parametrize(("telephone", "whole"), [(False, False), (True, False), (False, True)])
def test_voice_report_and_last_line_json(tmp_path: Path, telephone: bool, whole: bool) -> None:
    manifest = build_manifest(tmp_path)
    flags = [*(["--telephone"] if telephone else []), *(["--whole"] if whole else [])]
    result = run_cli("voice", str(manifest), *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    heard = 6 if whole else 5  # cut as a call cuts it, the fearful clip of actor 6 gives no turn
    assert summary["n"] == heard and summary["skipped"] == 7 - heard and summary["telephone"] is telephone
    assert summary["whole"] is whole
    assert ("whole clips" if whole else "cut as the call core cuts turns") in result.stdout
    assert ("VAD cut no turn" in result.stdout) is (not whole)
    assert set(summary) >= {"n", "accuracy", "macro_f1", "weighted_f1", "family_accuracy", "families"}
    assert summary["accuracy"] >= 0.5, result.stdout
    assert sum(summary["families"].values()) == heard and set(summary["families"]) <= {
        "negative",
        "neutral",
        "positive",
    }
    assert 0.5 <= summary["family_accuracy"] <= 1.0
    assert "family accuracy" in result.stdout
    assert "skipped 1 rows with labels outside the canonical set (calm: 1)" in result.stdout
    assert "confusion matrix" in result.stdout and "angry" in result.stdout


def test_rows_of_one_speaker_are_read_as_one_call(tmp_path: Path) -> None:
    # The same clips, twice: as first turns (no speaker column) and as one caller's call.
    manifest = build_manifest(tmp_path)
    rows = list(csv.DictReader(manifest.open()))
    called = tmp_path / "called.csv"
    with called.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "speaker"])
        writer.writeheader()
        writer.writerows({**r, "speaker": "caller-1"} for r in rows)
    alone, in_call = run_cli("voice", str(manifest)), run_cli("voice", str(called))
    assert alone.returncode == 0 and in_call.returncode == 0, in_call.stderr[-2000:]
    assert "callers: 0" in alone.stdout and "callers: 1" in in_call.stdout
    assert json.loads(in_call.stdout.strip().splitlines()[-1])["n"] == 5  # one clip gives no turn (above)


def test_missing_column_and_unreadable_audio_are_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nx.wav,angry\n")
    result = run_cli("voice", str(bad))
    assert result.returncode == 2 and "missing column(s) ['path']" in result.stderr
    manifest = build_manifest(tmp_path)
    (tmp_path / "audio" / "0.wav").write_bytes(b"not audio")
    result = run_cli("voice", str(manifest))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["n"] == 4  # one unreadable, one with no turn
    assert "cannot read audio" in result.stderr
