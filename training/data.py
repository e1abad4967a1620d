"""Loaders for the labelled corpora in ../shared/data, mapped to canonical labels.

Nothing here copies data into the repository: paths come from `TONELINE_DATA`
(default `../shared/data` beside the repository).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from models.emotion import FAMILY_NAMES, canonical_label

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """Where the shared labelled data lives."""
    return Path(os.environ.get("TONELINE_DATA", REPO_ROOT.parent / "shared" / "data"))


@dataclass(frozen=True)
class TextSample:
    """One labelled utterance, with its place in a dialogue when it has one."""

    text: str
    label: str
    dialogue_id: str | None = None
    turn: int | None = None
    source: str = ""


def meld(split: str) -> list[TextSample]:
    """MELD utterances (split: train, dev, test) with dialogue context ids."""
    path = data_root() / "text" / "meld" / f"{split}_sent_emo.csv"
    out = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            label = canonical_label(row["Emotion"])
            if label is None:
                continue
            text = row["Utterance"].replace("\u2019", "'").replace("\u0092", "'").strip()
            out.append(TextSample(text, label, f"meld-{split}-{row['Dialogue_ID']}", int(row["Utterance_ID"]), "meld"))
    return out


def goemotions(split: str, single_label_only: bool = True, exclude: tuple[str, ...] = ()) -> list[TextSample]:
    """GoEmotions (Ekman mapping); multi-label comments are skipped unless asked for.

    `exclude` names original GoEmotions labels (e.g. "approval", "desire") whose
    comments are left out: the Ekman grouping files them under joy, which a
    confirmation or a request in a service conversation is not.
    """
    base = data_root() / "text" / "goemotions" / "ekman"
    names = (base / "labels.txt").read_text().split()
    skip = _goemotions_comments_with(split, exclude) if exclude else set()
    out = []
    with (base / f"{split}.tsv").open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or (len(parts) > 2 and parts[2] in skip):
                continue
            ids = [int(i) for i in parts[1].split(",") if i]
            if single_label_only and len(ids) != 1:
                continue
            label = canonical_label(names[ids[0]])
            if label is not None:
                out.append(TextSample(parts[0].strip(), label, None, None, "goemotions"))
    return out


def _goemotions_comments_with(split: str, labels: tuple[str, ...]) -> set[str]:
    """Comment ids whose original (28-label) annotation includes any of `labels`."""
    base = data_root() / "text" / "goemotions" / "original"
    names = (base / "labels.txt").read_text().split()
    unknown = set(labels) - set(names)
    if unknown:
        raise ValueError(f"not GoEmotions labels: {sorted(unknown)}")
    wanted = {names.index(label) for label in labels}
    ids = set()
    with (base / f"{split}.tsv").open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) > 2 and wanted & {int(i) for i in parts[1].split(",") if i}:
                ids.add(parts[2])
    return ids


_DAILYDIALOG_LABELS = {0: "neutral", 1: "angry", 2: "disgusted", 3: "fearful", 4: "happy", 5: "sad", 6: "surprised"}


def dailydialog_validation() -> list[TextSample]:
    """DailyDialog validation dialogues, one sample per utterance."""
    base = data_root() / "text" / "dailydialog" / "validation"
    dialogues = (base / "dialogues.txt").read_text(encoding="utf-8").splitlines()
    emotions = (base / "dialogues_emotion.txt").read_text(encoding="utf-8").splitlines()
    out = []
    for d, (line, labels) in enumerate(zip(dialogues, emotions)):
        utterances = [u.strip() for u in line.split("__eou__") if u.strip()]
        for t, (utt, lab) in enumerate(zip(utterances, labels.split())):
            out.append(TextSample(utt, _DAILYDIALOG_LABELS[int(lab)], f"dd-{d}", t, "dailydialog"))
    return out


def dair_emotion(split: str, labels: tuple[str, ...] = ()) -> list[TextSample]:
    """dair-ai/emotion sentences (split: train, val, test), optionally only the given source labels.

    It has no neutral class and its "joy"/"love" read complaints as happy, so a
    recipe takes only the classes it lacks elsewhere (fear, sadness, anger).
    """
    path = data_root() / "text" / "dair_emotion" / f"{split}.txt"
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text, _, source = line.rpartition(";")
        label = canonical_label(source)
        if text and label and (not labels or source in labels):
            out.append(TextSample(text, label, source="dair_emotion"))
    return out


def contexts(samples: list[TextSample], turns: int) -> list[list[str]]:
    """For each sample, up to `turns` earlier utterances of its dialogue, oldest first (none without ids)."""
    by_dialogue: dict[str, dict[int, str]] = {}
    for s in samples:
        if s.dialogue_id is not None and s.turn is not None:
            by_dialogue.setdefault(s.dialogue_id, {})[s.turn] = s.text
    out: list[list[str]] = []
    for s in samples:
        if s.dialogue_id is None or s.turn is None or turns <= 0:
            out.append([])
            continue
        dialogue = by_dialogue[s.dialogue_id]
        earlier = sorted(t for t in dialogue if t < s.turn)[-turns:]
        out.append([dialogue[t] for t in earlier])
    return out


@dataclass(frozen=True)
class FamilySample:
    """One text labelled only by how the writer feels about it: negative, neutral or positive (issue 31).

    Sentiment corpora label satisfaction, not a discrete emotion: a complaint stated
    calmly is negative here and neutral in every emotion corpus.
    """

    text: str
    family: str
    group: str = ""  # who wrote it, where a corpus says (splits keep one writer on one side)
    source: str = ""


# ISEAR's situations by the emotion the writer felt, as families. Shame and guilt have no
# Toneline label but are plainly unhappy: they count as negative evidence, never as a label.
_ISEAR_FAMILY = {e: "negative" for e in ("anger", "disgust", "fear", "sadness", "shame", "guilt")} | {"joy": "positive"}
# TweetEval emotion: optimism is positive; there is no neutral class.
_TWEETEVAL_EMOTION_FAMILY = {"anger": "negative", "sadness": "negative", "joy": "positive", "optimism": "positive"}


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def tweeteval_sentiment() -> list[FamilySample]:
    """TweetEval sentiment (SemEval-2017 4A): `val.csv` then `test.csv`, both usable for training here (README)."""
    base = data_root() / "text" / "tweeteval_sentiment"
    return [
        FamilySample(_tweet(r["text"]), r["label"], source="tweeteval_sentiment")
        for name in ("val", "test")
        for r in csv_rows(base / f"{name}.csv")
        if r["label"] in FAMILY_NAMES
    ]


def tweeteval_emotion(split: str) -> list[FamilySample]:
    """TweetEval emotion (split: train, val, test) as families (`_TWEETEVAL_EMOTION_FAMILY`)."""
    path = data_root() / "text" / "tweeteval_emotion" / f"{split}.csv"
    return [
        FamilySample(_tweet(r["text"]), _TWEETEVAL_EMOTION_FAMILY[r["label"]], source="tweeteval_emotion")
        for r in csv_rows(path)
        if r["label"] in _TWEETEVAL_EMOTION_FAMILY
    ]


def tweeteval_irony(split: str) -> list[FamilySample]:
    """TweetEval irony (split: train, val, test); `family` holds "irony" or "non_irony" (measured, never a family)."""
    path = data_root() / "text" / "tweeteval_irony" / f"{split}.csv"
    return [FamilySample(_tweet(r["text"]), r["label"], source="tweeteval_irony") for r in csv_rows(path)]


def isear() -> list[FamilySample]:
    """ISEAR situations as families, grouped by respondent id (each wrote one situation per emotion)."""
    path = data_root() / "text" / "isear" / "isear.csv"
    return [
        FamilySample(" ".join(r["text"].split()), _ISEAR_FAMILY[r["emotion"]], r["id"], "isear")
        for r in csv_rows(path)
        if r["emotion"] in _ISEAR_FAMILY and r["text"].strip()
    ]


def _tweet(text: str) -> str:
    """A tweet as a customer's chat message would read: mentions and links were already masked (@user, http)."""
    return " ".join(text.replace("@user", "").split()) or text.strip()
