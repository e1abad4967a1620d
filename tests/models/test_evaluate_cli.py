"""`python -m models.evaluate text|face|turns`: the contract an independent evaluation relies on."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from models.emotion import LABELS
from tests.conftest import shared_data
from training.data import data_root, goemotions, meld

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "models.evaluate", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
        timeout=600,
    )


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_report_and_last_line_json_on_a_small_manifest(tmp_path: Path) -> None:
    rows = [
        {"text": "I'm so happy, thank you, this is wonderful!", "label": "happy", "dialogue_id": "1", "turn": "0"},
        {
            "text": "This is outrageous, I'm furious with your service!",
            "label": "anger",
            "dialogue_id": "1",
            "turn": "1",
        },
        {"text": "My dog died yesterday and I can't stop crying.", "label": "sad", "dialogue_id": "2", "turn": "0"},
        {"text": "I'll check and call you back.", "label": "neutral", "dialogue_id": "2", "turn": "1"},
        {"text": "Feeling calm today.", "label": "calm", "dialogue_id": "3", "turn": "0"},
        {"text": "Love it.", "label": "love", "dialogue_id": "3", "turn": "1"},
    ]
    result = run_cli("text", str(write_csv(tmp_path / "m.csv", rows)))
    assert result.returncode == 0, result.stderr
    out = result.stdout.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["n"] == 4 and summary["skipped"] == 2
    assert set(summary) >= {"n", "accuracy", "macro_f1", "weighted_f1"}
    assert summary["accuracy"] >= 0.75, result.stdout
    assert "confusion matrix" in result.stdout and "precision" in result.stdout
    assert "calm: 1" in result.stdout and "love: 1" in result.stdout
    assert "family accuracy (negative / neutral / positive, by probability mass) 1.0000" in result.stdout
    assert summary["family_accuracy"] == 1.0 and summary["families"] == {"negative": 2, "neutral": 1, "positive": 1}
    lo, hi = summary["intervals"]["macro_f1"]
    assert lo <= summary["macro_f1"] <= hi and "95 % intervals (1,000 bootstrap resamples" in result.stdout


def test_a_manifest_without_the_columns_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("text", str(write_csv(tmp_path / "bad.csv", [{"utterance": "hi", "emotion": "joy"}])))
    assert result.returncode == 2 and "missing column" in result.stderr
    assert run_cli("text", str(tmp_path / "absent.csv")).returncode == 2


@pytest.mark.data
def test_meld_test_read_in_context_meets_the_bar(tmp_path: Path) -> None:
    shared_data("text", "meld")
    samples = meld("test")
    rows = [{"text": s.text, "label": s.label, "dialogue_id": str(s.dialogue_id), "turn": str(s.turn)} for s in samples]
    result = run_cli("text", str(write_csv(tmp_path / "meld.csv", rows)))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == len(rows)
    read_in_context = int(result.stdout.split("rows read with context: ")[1].split()[0])
    assert read_in_context == sum(cast(int, s.turn) > 0 for s in samples), (
        "every turn after a dialogue's first has context"
    )
    assert summary["weighted_f1"] >= 0.60, summary  # issue 4's bar; the card has the exact figure


@pytest.mark.data
def test_goemotions_test_macro_f1_meets_the_bar(tmp_path: Path) -> None:
    shared_data("text", "goemotions")
    rows = [{"text": s.text, "label": s.label} for s in goemotions("test")]
    result = run_cli("text", str(write_csv(tmp_path / "goemotions.csv", rows)))
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == len(rows) and summary["macro_f1"] >= 0.50, summary


needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng; .ci/run installs it)"
)
TURN_KEYS = {"n", "accuracy", "macro_f1", "weighted_f1", "family_accuracy", "families"}


def speak(text: str, path: Path) -> str:
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True, capture_output=True)
    return path.name


def context(dialogue: str, turn: int) -> dict[str, str]:
    return {"dialogue_id": dialogue, "turn": str(turn)}


def fer_face(tmp_path: Path) -> tuple[str, str] | None:
    """A FER2013 PublicTest face as a PNG file and its canonical label, when ../shared is present."""
    base = data_root() / "faces" / "fer2013"
    if not base.exists():
        return None
    import cv2

    from models.face import canonical_classes

    with np.load(base / "PublicTest.npz") as raw:
        i = int(np.flatnonzero(raw["labels"] == list(raw["classes"]).index("happy"))[0])
        label = LABELS[canonical_classes([str(c) for c in raw["classes"]])[int(raw["labels"][i])]]
        cv2.imwrite(str(tmp_path / "face.png"), raw["images"][i])
    return "face.png", label


@needs_espeak
def test_turns_reads_each_row_as_production_and_reports_each_modality_and_the_fused_turn(tmp_path: Path) -> None:
    furious = "I am absolutely furious, you charged my card twice."
    bill = "Can you tell me when my next bill is due?"
    rows = [
        {"text": furious, "audio": speak(furious, tmp_path / "a1.wav"), "label": "angry"} | context("d1", 1),
        {"text": bill, "audio": "", "label": "neutral"} | context("d1", 0),
        {"text": "Thank you so much, that was exactly what I needed.", "audio": "", "label": "joy"},
        {"text": "", "audio": speak("My account number is four five seven.", tmp_path / "a2.wav"), "label": "neutral"},
        {"text": "Where is my parcel?", "audio": "missing.wav", "label": "neutral"},
        {"text": "Feeling calm today.", "audio": "", "label": "calm"},
        {"text": "", "audio": "", "label": "neutral"},
    ]
    face = fer_face(tmp_path)
    if face is not None:
        rows.append({"text": "Thanks, have a lovely day.", "audio": "", "label": face[1]} | {"image": face[0]})
        rows.append({"text": "", "audio": "", "label": face[1], "image": face[0]})
    for row in rows:
        row.setdefault("image", "")
        row.setdefault("dialogue_id", "")
        row.setdefault("turn", "")
    result = run_cli("turns", str(write_csv(tmp_path / "turns.csv", rows)))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) >= TURN_KEYS | {"modalities", "skipped"}
    assert summary["modality"] == "turns" and summary["skipped"] == 3  # bad audio, calm, nothing to read
    assert summary["n"] == len(rows) - 3 and sum(summary["families"].values()) == summary["n"]
    modalities = summary["modalities"]
    assert set(modalities) == ({"text", "voice", "face"} if face else {"text", "voice"})
    assert modalities["text"]["n"] == (4 if face else 3) and modalities["voice"]["n"] == 2
    assert all(set(m) >= TURN_KEYS for m in modalities.values())
    for heading in ("== text alone", "== voice alone", "== fused turn", "confusion", "family accuracy"):
        assert heading in result.stdout
    assert "missing.wav" in result.stdout and "rows read: " in result.stdout
    # The words carry these turns' emotion, whatever a synthetic voice sounds like.
    assert modalities["text"]["family_accuracy"] == 1.0


def test_turns_manifest_errors_are_clear(tmp_path: Path) -> None:
    result = run_cli("turns", str(write_csv(tmp_path / "bad.csv", [{"utterance": "hi", "label": "joy"}])))
    assert result.returncode == 2 and "needs a 'label' column and at least one of" in result.stderr
    result = run_cli("turns", str(write_csv(tmp_path / "none.csv", [{"text": "hi", "label": "calm"}])))
    assert result.returncode == 2 and "no row could be read" in result.stderr
    assert run_cli("turns", str(tmp_path / "absent.csv")).returncode == 2


@pytest.mark.data
def test_face_reports_families_in_its_last_line(tmp_path: Path) -> None:
    base = shared_data("faces", "fer2013")
    with np.load(base / "PublicTest.npz") as raw:
        np.savez(tmp_path / "faces.npz", images=raw["images"][:40], labels=raw["labels"][:40], classes=raw["classes"])
    result = run_cli("face", str(tmp_path / "faces.npz"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 40 and sum(summary["families"].values()) == 40 and 0.0 <= summary["family_accuracy"] <= 1.0
