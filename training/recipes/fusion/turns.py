"""Reading a turns manifest as production reads a turn: the estimates of each modality a row has.

A turns manifest is a CSV with `label` and any of `text`, `audio` (a path relative to the
manifest), `image` (a face image file), optionally `dialogue_id,turn`. Each row is one
customer turn:

- text: the `text` column is the words (no ASR), read by the text model with up to its
  context length of earlier turns of the same dialogue, as `plugin.nlu.EmotionRecognizer`
  reads a chat from Rasa's tracker;
- audio: decoded to the canonical 16 kHz mono float32 and read by the voice model against the
  caller's baseline (`models.voice.CallerBaseline`): the earlier turns of the same dialogue, as a
  call's connector keeps it; a row without a dialogue is a caller's first turn;
- image: a still image, read as the video connector reads a frame (largest face, else the
  whole image when it is already a 48x48 crop) and taken as the face seen throughout the turn.

`python -m models.evaluate turns` and the fusion recipe's spoken-set check use it.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.emotion import (
    FAMILIES,
    FAMILY_OF_LABEL,
    LABELS,
    MODALITIES,
    EmotionEstimate,
    Modality,
    canonical_label,
    family_of,
)
from training.data import TextSample, contexts

COLUMNS = {Modality.TEXT: "text", Modality.VOICE: "audio", Modality.FACE: "image"}


class TurnsManifestError(ValueError):
    """A turns manifest that cannot be read at all (missing file or columns)."""


@dataclass(frozen=True)
class TurnRow:
    """One labelled turn of a manifest: what it has of each modality, and its place in a dialogue."""

    line: int  # 1-based data row, for messages
    label: str
    text: str | None
    audio: Path | None
    image: Path | None
    dialogue_id: str | None
    turn: int | None
    extra: dict[str, str] = field(default_factory=dict)  # the other columns (voice, kind, ...), for breakdowns


@dataclass
class ReadTurns:
    """The rows that could be read, each with its estimates (by modality), and what was skipped and why."""

    rows: list[TurnRow]
    estimates: list[dict[Modality, EmotionEstimate]]
    skipped: Counter[str]
    no_face: int = 0  # images in which no face was found: those turns have no face estimate, as in production


def _cell(row: dict[str, Any], name: str) -> str | None:
    value = (row.get(name) or "").strip()
    return value or None


def _turn(value: str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def read_rows(manifest: Path) -> tuple[list[TurnRow], Counter[str]]:
    """Rows with a canonical label and at least one modality; the others counted by reason."""
    if not manifest.is_file():
        raise TurnsManifestError(f"manifest not found: {manifest}")
    with manifest.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if "label" not in columns or not any(c in columns for c in COLUMNS.values()):
            raise TurnsManifestError(
                f"{manifest}: needs a 'label' column and at least one of {sorted(COLUMNS.values())}; found {columns}"
            )
        rows, skipped = [], Counter[str]()
        for line, raw in enumerate(reader, start=1):
            label = canonical_label(raw.get("label") or "")
            if label is None:
                skipped[f"label {(raw.get('label') or '').strip() or '<empty>'!r} outside the canonical set"] += 1
                continue
            audio, image = _cell(raw, "audio"), _cell(raw, "image")
            row = TurnRow(
                line,
                label,
                _cell(raw, "text"),
                None if audio is None else manifest.parent / audio,
                None if image is None else manifest.parent / image,
                _cell(raw, "dialogue_id"),
                _turn(_cell(raw, "turn")),
                {k: v for k, v in raw.items() if k and k not in {"label", "text", "audio", "image"} and v},
            )
            if row.text is None and row.audio is None and row.image is None:
                skipped["no text, audio or image"] += 1
                continue
            rows.append(row)
    return rows, skipped


class ManifestReader:
    """The production models, loaded on first need; `read(rows)` -> per-row estimates."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._models: dict[Modality, Any] = {}

    def _model(self, modality: Modality) -> Any:
        if modality not in self._models:
            if modality is Modality.TEXT:
                from models.text import TextEmotionModel

                self._models[modality] = TextEmotionModel.load(threads=self.threads)
            elif modality is Modality.VOICE:
                from models.voice import VoiceEmotionModel

                self._models[modality] = VoiceEmotionModel.load(threads=self.threads)
            else:
                from models.face import FaceEmotionModel

                self._models[modality] = FaceEmotionModel.load(threads=self.threads)
        return self._models[modality]

    def read(self, rows: list[TurnRow]) -> ReadTurns:
        """Estimates for every row; a row whose audio or image cannot be used is skipped and counted."""
        text, voice = self._texts(rows), self._voices(rows)
        out = ReadTurns([], [], Counter[str]())
        for i, row in enumerate(rows):
            heard = voice[i]
            try:
                if isinstance(heard, ValueError):
                    raise heard
                found = {m: e for m, e in ((Modality.VOICE, heard), (Modality.FACE, self._face(row))) if e is not None}
            except ValueError as exc:  # AudioError, FaceError: one bad file must not void the evaluation
                out.skipped[f"row {row.line}: {exc}"] += 1
                continue
            out.no_face += int(row.image is not None and Modality.FACE not in found)
            words = text[i]
            if words is not None:
                found[Modality.TEXT] = words
            if not found:
                out.skipped["only an image, with no face in it"] += 1
                continue
            out.estimates.append({m: found[m] for m in MODALITIES if m in found})
            out.rows.append(row)
        return out

    def _texts(self, rows: list[TurnRow]) -> list[EmotionEstimate | None]:
        """Text estimates, each row read after the earlier turns of its dialogue (as the NLU component does)."""
        with_text = [i for i, r in enumerate(rows) if r.text is not None]
        out: list[EmotionEstimate | None] = [None] * len(rows)
        if not with_text:
            return out
        model = self._model(Modality.TEXT)
        # Context comes from every row of the dialogue that has words, as Rasa's tracker holds every user message.
        samples = [TextSample(rows[i].text or "", rows[i].label, rows[i].dialogue_id, rows[i].turn) for i in with_text]
        context = contexts(samples, model.context_turns)
        for start in range(0, len(samples), 64):
            chunk = samples[start : start + 64]
            predicted = model.predict_batch([s.text for s in chunk], context[start : start + 64])
            for i, estimate in zip(with_text[start : start + 64], predicted):
                out[i] = estimate
        return out

    def _voices(self, rows: list[TurnRow]) -> list[EmotionEstimate | ValueError | None]:
        """Voice estimates (or the error that made a row's audio unusable); each dialogue's turns in order, as a
        call hears them, rows without a dialogue each on their own."""
        from models.voice import CallerBaseline

        out: list[EmotionEstimate | ValueError | None] = [None] * len(rows)
        for call in _calls(rows):
            baseline = CallerBaseline()  # in memory for this call only, as the connectors keep it
            for i in call:
                out[i] = self._voice(rows[i], baseline)
        return out

    def _voice(self, row: TurnRow, baseline: Any) -> EmotionEstimate | ValueError | None:
        from models.audio import load

        if row.audio is None:
            return None
        try:
            estimate: EmotionEstimate = self._model(Modality.VOICE).predict(
                load(row.audio), baseline=baseline, learn=True
            )
        except ValueError as exc:  # AudioError: counted by `read`; the bad turn never joins the baseline
            return exc
        return estimate

    def _face(self, row: TurnRow) -> EmotionEstimate | None:
        if row.image is None:
            return None
        from models.face import SIZE, to_gray

        image = _read_image(row.image)
        model = self._model(Modality.FACE)
        face = model.preprocess(image)
        if face is None and image.shape[:2] == (SIZE, SIZE):
            face = to_gray(image)  # a 48x48 image is a face crop already, as in FER2013
        if face is None:
            return None  # no face in view: the turn has no face estimate, as in production
        probs = model.predict_faces(face[None])[0]
        # A still image stands for the face seen throughout the turn: the confidence of a turn with enough
        # frames (`FaceEmotionModel.aggregate` discounts turns of fewer than five frames).
        return EmotionEstimate.from_probs(Modality.FACE, probs, model=model.name)


def _calls(rows: list[TurnRow]) -> list[list[int]]:
    """Indices of the rows with audio, grouped as calls: one per dialogue in turn order, else one per row."""
    dialogues: dict[str, list[int]] = {}
    alone: list[list[int]] = []
    for i, row in enumerate(rows):
        if row.audio is None:
            continue
        if row.dialogue_id is None:
            alone.append([i])
        else:
            dialogues.setdefault(row.dialogue_id, []).append(i)
    ordered = [sorted(ids, key=lambda i: (rows[i].turn is None, rows[i].turn or 0, i)) for ids in dialogues.values()]
    return ordered + alone


def _read_image(path: Path) -> NDArray[Any]:
    import cv2

    from models.face import FaceError

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
    if image is None:
        raise FaceError(f"{path}: not a readable image")
    return np.asarray(image)


def family_scores(gold: list[str], probs: NDArray[Any]) -> dict[str, Any]:
    """Family accuracy (negative / neutral / positive by probability mass, `family_of`) and predicted family counts."""
    predicted = [family_of(p) for p in probs]
    hits = sum(FAMILY_OF_LABEL[g] == f for g, f in zip(gold, predicted))
    counts = Counter(predicted)
    return {
        "family_accuracy": round(hits / len(gold), 4) if gold else 0.0,
        "families": {family: counts.get(family, 0) for family in FAMILIES},
    }


def turn_arrays(
    estimates: list[dict[Modality, Any]],
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Per-row estimates (modality -> EmotionEstimate) as the fusion's batch arrays: probs, confidence, mask."""
    n = len(estimates)
    probs = np.full((n, len(MODALITIES), len(LABELS)), 1.0 / len(LABELS))
    confidence = np.ones((n, len(MODALITIES)))
    mask = np.zeros((n, len(MODALITIES)), dtype=bool)
    for i, found in enumerate(estimates):
        for j, m in enumerate(MODALITIES):
            if m in found:
                probs[i, j], confidence[i, j], mask[i, j] = found[m].probs, found[m].confidence, True
    return probs, confidence, mask
