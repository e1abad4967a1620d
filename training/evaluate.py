"""Evaluate a Toneline model on a labelled manifest.

    python -m models.evaluate text MANIFEST.csv [--head PATH] [--batch-size 64]
    python -m models.evaluate voice MANIFEST.csv [--telephone] [--whole] [--head PATH]
    python -m models.evaluate fusion [--head PATH] [--pairs]
    python -m models.evaluate face FILE.npz [--head PATH]
    python -m models.evaluate turns MANIFEST.csv [--head PATH]
    python -m models.evaluate asr MANIFEST.csv [--telephone] [--whole]

MANIFEST.csv for text has the columns `text,label` and optionally `dialogue_id,turn`:
rows that have them are read with the turns before them in their dialogue.
Labels are canonical (neutral, happy, sad, angry, fearful, disgusted, surprised)
or a common alias of one (joy, anger, sadness, fear, disgust, surprise, ...);
rows with any other label are skipped and counted. A manifest labelled by
family instead (`negative`, `neutral`, `positive`, as sentiment data is: a
complaint, a plain request, praise) is scored by family: the reading is the
family holding the most probability, and the report, its accuracy and F1 are
over the three families. Both print, for each gold family, the share of its
rows read negative / neutral / positive (`family_read` in the JSON line). MANIFEST.csv for voice has
the columns `path,label`: audio paths relative to the CSV, any format soundfile
reads at any rate; `--telephone` first passes each clip through the simulated
phone channel (seeded per row); each clip is then read as a call reads it, cut by
the call core's turn segmentation (its longest turn) and encoded as the listener
encodes a turn, and `--whole` reads whole clips instead (the first heads' way:
acted corpora have silence around each sentence that no call gives). Prints per-class
precision/recall/F1, a confusion matrix and, as the last line, one JSON object
with n, accuracy, macro_f1 and weighted_f1 (text, face and turns add
family_accuracy, negative / neutral / positive by probability mass, and
families, the counts of predicted families).

FILE.npz for face holds `images` (N, H, W) uint8 grayscale, `labels` (N,) int
and `classes` (the names of the label ids, FER2013 spelling or canonical).
48x48 images are taken as face crops (as in FER2013); larger ones go through
face detection first, and where no face is found the whole image is used as
the face (counted and printed).

MANIFEST.csv for turns has `label` and any of `text`, `audio` (a path relative
to the CSV), `image` (a face image file), optionally `dialogue_id,turn`. Each row
is one customer turn, read as production reads it: the words are the `text`
column (no ASR), read with the earlier turns of its dialogue; the audio goes to
the voice model, the image to the face model; whatever a row lacks is masked in
the fusion (`--head` names another fusion.json). It prints each modality alone
(on the rows that have it) and the fused turn, and as the last line one JSON
object for the fused turn with the same numbers per modality under
`modalities`. Rows with a label outside the canonical set, with none of text,
audio and image, or whose audio or image cannot be read are skipped and
counted.

MANIFEST.csv for asr has the columns `path,text` (audio paths relative to the
CSV, or absolute; headerless 16 kHz 16-bit `.raw` too). Each recording is read by
the shipped recognizer (the listener's encoder pass and `models.asr`'s decoder,
as `SpeechRecognizer.hear` does), by default cut as the call core cuts turns: one
second of silence is appended (the caller stops talking), then
`models.turns.TurnSegmenter` with its default settings (silero VAD) cuts it, and
the clip's transcript is its turns' texts joined. `--whole` reads each clip whole
instead; `--telephone` first passes it through the simulated phone line (seeded
per row, before the cut, as a call hears it). Prints the WER (`training.wer`:
lower case, no punctuation, numbers as digits however written), the share of
clips whose transcript has a repeated phrase (a word n-gram of at least 3 words
found twice in it but not twice in the reference), the decode time per turn and
the worst clips, and as the last line one JSON object with wer, repeated, n,
exact (share of clips heard exactly), turns and the error counts.

`fusion` takes no manifest: it reads $TONELINE_DATA and reports, on held-out
RAVDESS actors (actor folds; each fold's fusion never saw them), voice alone,
ASR-text alone and fused, studio and telephone; then MELD test text alone and
FER2013 PublicTest face alone vs the shipped fusion (`--head`); then the
calibration check. It needs the voice
head's out-of-fold logits (`python -m training.recipes.voice.train --no-export`).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
from numpy.typing import NDArray

from models.emotion import FAMILY_NAMES, FAMILY_OF_LABEL, LABELS, MODALITIES, canonical_label
from training.metrics import bootstrap_interval, evaluate, json_line
from training.recipes.fusion.turns import family_scores
from training.wer import WordErrors, repeated_phrase, word_errors

if TYPE_CHECKING:
    from models.asr import WhisperDecoder
    from models.listen import TurnListener


class ManifestError(ValueError):
    """The manifest cannot be read as asked."""


def read_manifest(
    path: Path, required: tuple[str, ...], also: tuple[str, ...] = ()
) -> tuple[list[dict[str, str]], Counter[str]]:
    """Rows whose label maps to the canonical set (label replaced) or is one of `also`, and counts of skipped labels."""
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
        rows, skipped = [], Counter[str]()
        for row in reader:
            raw = (row.get("label") or "").strip().lower()
            label = raw if raw in also else canonical_label(raw)
            if label is None:
                skipped[(row.get("label") or "").strip() or "<empty>"] += 1
                continue
            rows.append({**row, "label": label})
    return rows, skipped


def evaluate_text(args: argparse.Namespace) -> str:
    from models.text import TextEmotionModel
    from training.data import TextSample, contexts

    rows, skipped = read_manifest(args.manifest, ("text", "label"), also=FAMILY_NAMES)
    _print_skipped(skipped)
    model = TextEmotionModel.load(args.head)
    # Rows that name their dialogue and turn are read with the turns before them (the rows of that dialogue).
    samples = [TextSample(r["text"] or "", r["label"], _dialogue(r), _turn(r)) for r in rows]
    context = contexts(samples, model.context_turns)
    estimates = []
    for start in range(0, len(rows), args.batch_size):
        end = start + args.batch_size
        estimates += model.predict_batch([s.text for s in samples[start:end]], context[start:end])
    gold = [r["label"] for r in rows]
    with_context = sum(bool(c) for c in context)
    print(f"model: {model.name}\nmanifest: {args.manifest}\nrows read with context: {with_context}\n")
    if any(g in ("negative", "positive") for g in gold):
        return evaluate_text_families(gold, estimates, sum(skipped.values()))
    report = evaluate(gold, [e.label for e in estimates], LABELS)
    print(report.render())
    families = family_scores(gold, np.array([e.probs for e in estimates]).reshape(-1, len(LABELS)))
    print(families_line(families))
    intervals = bootstrap_interval(gold, [e.label for e in estimates], [s.dialogue_id for s in samples])
    print(intervals_line(intervals))
    read = family_read([FAMILY_OF_LABEL[g] for g in gold], [e.family for e in estimates])
    print(family_read_lines(read))
    return json_line(
        report, modality="text", skipped=sum(skipped.values()), **families, family_read=read, intervals=intervals
    )


def evaluate_text_families(gold: list[str], estimates: list[Any], skipped: int) -> str:
    """A manifest labelled by family (negative / neutral / positive, as sentiment data is): scored by family.

    Every row's gold is its family (a canonical label counts as its family); the
    reading is the family holding the most probability, what routing and tone act on.
    The report's accuracy and F1 are over the three families.
    """
    gold_families = [g if g in FAMILY_NAMES else FAMILY_OF_LABEL[g] for g in gold]
    read = [e.family for e in estimates]
    report = evaluate(gold_families, read, FAMILY_NAMES)
    print("labels are families (negative / neutral / positive, by probability mass)\n")
    print(report.render())
    shares = family_read(gold_families, read)
    print(family_read_lines(shares))
    counts = Counter(read)
    return json_line(
        report,
        modality="text",
        labels="families",
        skipped=skipped,
        family_accuracy=round(report.accuracy, 4),
        families={f: counts.get(f, 0) for f in FAMILY_NAMES},
        family_read=shares,
    )


def family_read(gold: list[str], read: list[str]) -> dict[str, dict[str, float]]:
    """For each gold family present, the share of its rows read as each family (issue 31's reading)."""
    out = {}
    for g in FAMILY_NAMES:
        mine = [r for gf, r in zip(gold, read) if gf == g]
        if mine:
            out[g] = {f: round(mine.count(f) / len(mine), 4) for f in FAMILY_NAMES}
    return out


def family_read_lines(shares: dict[str, dict[str, float]]) -> str:
    lines = ["read as (share of each gold family's rows, by probability mass):"]
    for gold, row in shares.items():
        lines.append(f"  {gold:<9}" + "  ".join(f"{f} {v:.3f}" for f, v in row.items()))
    return "\n".join(lines) + "\n"


def intervals_line(intervals: dict[str, tuple[float, float]]) -> str:
    """The 95 % intervals of `bootstrap_interval`, by dialogue where the manifest names dialogues."""
    lo, hi = intervals["macro_f1"]
    recalls = ", ".join(
        f"{name[len('recall_') :]} [{a:.3f}, {b:.3f}]" for name, (a, b) in intervals.items() if name != "macro_f1"
    )
    return (
        "95 % intervals (1,000 bootstrap resamples of whole dialogues, a row without one alone): "
        f"macro-F1 [{lo:.3f}, {hi:.3f}]; recall {recalls}\n"
    )


def family_line(gold: list[str], families: list[str]) -> str:
    """Accuracy over negative / neutral / positive (`models.emotion.FAMILIES`), the reading routing acts on."""
    hits = sum(FAMILY_OF_LABEL[g] == f for g, f in zip(gold, families))
    return f"family accuracy (negative / neutral / positive, by probability mass) {hits / max(len(gold), 1):.4f}\n"


def families_line(families: dict[str, Any]) -> str:
    """`family_line` from `family_scores`, with the counts of predicted families."""
    counts = ", ".join(f"{family} {n}" for family, n in families["families"].items())
    return (
        f"family accuracy (negative / neutral / positive, by probability mass) {families['family_accuracy']:.4f}"
        f"  (predicted: {counts})\n"
    )


def _dialogue(row: dict[str, Any]) -> str | None:
    value = (row.get("dialogue_id") or "").strip()
    return value or None


def _turn(row: dict[str, Any]) -> int | None:
    try:
        return int(str(row.get("turn", "")).strip())
    except ValueError:
        return None


def evaluate_voice(args: argparse.Namespace) -> str:
    from models.listen import TurnListener
    from models.voice import CallerBaseline, VoiceEmotionModel

    rows, skipped = read_manifest(args.manifest, ("path", "label"))
    _print_skipped(skipped)
    model = VoiceEmotionModel.load(args.head)
    listener = TurnListener(model.encoder, model)
    # Rows naming a `speaker` (or `dialogue_id`) are that caller's turns in file order: each is read against the
    # caller's earlier calm turns (`CallerBaseline`, as a call keeps it), the first as a first turn. Rows naming
    # neither are first turns.
    callers: dict[str, CallerBaseline] = {}
    gold, estimates, uncut = [], [], 0
    for row, turns in clip_turns(args.manifest, rows, args.telephone, args.whole):
        caller = (row.get("speaker") or "").strip() or _dialogue(row)
        baseline = callers.setdefault(caller, CallerBaseline()) if caller else None
        if not turns:  # the VAD heard no turn: a call would not have read it either; counted
            uncut += 1
            continue
        if args.whole:
            estimate = model.predict(turns[0], baseline=baseline, learn=True)
        else:
            listening = listener.listen(max(turns, key=len), baseline=baseline)
            if listening.voice is None:
                uncut += 1
                continue
            if baseline is not None and listening.stats is not None:
                baseline.learn(listening.stats, listening.absolute)
            estimate = listening.voice
        estimates.append(estimate)
        gold.append(row["label"])
    unreadable = len(rows) - len(gold) - uncut
    if unreadable:
        print(f"skipped {unreadable} rows whose audio could not be used")
    if uncut:
        print(f"skipped {uncut} clips in which the VAD cut no turn (a call would not have read them)")
    report = evaluate(gold, [e.label for e in estimates], LABELS)
    condition = "telephone (simulated G.711 channel)" if args.telephone else "as recorded"
    reading = "whole clips" if args.whole else "cut as the call core cuts turns (the longest turn of each clip)"
    print(f"model: {model.name}\nmanifest: {args.manifest}\naudio: {condition}, {reading}\ncallers: {len(callers)}\n")
    print(report.render())
    families = [e.family for e in estimates]
    print(family_line(gold, families))
    return json_line(
        report,
        modality="voice",
        telephone=bool(args.telephone),
        whole=bool(args.whole),
        skipped=sum(skipped.values()) + unreadable + uncut,
        family_accuracy=round(sum(FAMILY_OF_LABEL[g] == f for g, f in zip(gold, families)) / max(len(gold), 1), 4),
        families=dict(Counter(families)),
    )


def evaluate_fusion(args: argparse.Namespace) -> str:
    import json

    from models.fusion import DEFAULT_FUSION, EvidenceFusion
    from training.recipes.fusion.report import calibration_check, fer_test, meld_test, ravdess_arms, summarise
    from training.recipes.fusion.train import HPARAMS, SYNTHETIC_TEST, cross_validate

    held, _ = cross_validate(HPARAMS)
    summary = summarise(held)
    for variant, h in held.items():
        for arm, (_, report) in ravdess_arms(h).items():
            title = f"RAVDESS {variant}" if variant != SYNTHETIC_TEST else "AUGMENTATION ONLY, synthetic pairs"
            print(f"== {title}, held-out actors (5 actor folds): {arm} ==\n{report.render()}\n")
        share = summary[variant]["contribution"]
        print(f"contribution, mean over turns: voice {share['voice_mean']:.3f}, text {share['text_mean']:.3f}\n")
    fusion = EvidenceFusion.load(args.head or DEFAULT_FUSION)
    for name, test in (("MELD test, text only", meld_test), ("FER2013 PublicTest, face only", fer_test)):
        scores, arms = test(fusion.weights)
        for arm, (_, report) in arms.items():
            print(f"== {name}: {arm} ({fusion.name}) ==\n{report.render()}\n")
        summary["meld_test" if "MELD" in name else "fer_test"] = scores
    summary["calibration"] = calibration_check(held)
    print("== summary ==\n" + json.dumps(summary, indent=2) + "\n")
    studio, meld, fer = summary["studio"], summary["meld_test"], summary["fer_test"]
    return json.dumps(
        {
            "n": studio["n"],
            "accuracy": studio["fused"]["accuracy"],
            "macro_f1": studio["fused"]["macro_f1"],
            "weighted_f1": studio["fused"]["weighted_f1"],
            "voice_accuracy": studio["voice"]["accuracy"],
            "asr_text_accuracy": studio["asr_text"]["accuracy"],
            "telephone_fused_accuracy": summary["telephone"]["fused"]["accuracy"],
            "telephone_voice_accuracy": summary["telephone"]["voice"]["accuracy"],
            "contribution_voice": studio["contribution"]["voice_mean"],
            "contribution_text": studio["contribution"]["text_mean"],
            "meld_text_accuracy": meld["text"]["accuracy"],
            "meld_fused_accuracy": meld["fused"]["accuracy"],
            "fer_face_accuracy": fer["face"]["accuracy"],
            "fer_fused_accuracy": fer["fused"]["accuracy"],
            "modality": "fusion",
        }
    )


def evaluate_turns(args: argparse.Namespace) -> str:
    import json

    from models.fusion import DEFAULT_FUSION, EvidenceFusion
    from training.recipes.fusion.turns import ManifestReader, TurnsManifestError, read_rows, turn_arrays

    try:
        rows, skipped = read_rows(args.manifest)
    except TurnsManifestError as exc:
        raise ManifestError(str(exc)) from None
    fusion = EvidenceFusion.load(args.head or DEFAULT_FUSION)
    read = ManifestReader().read(rows)
    skipped.update(read.skipped)
    _print_turn_skips(skipped, read.no_face)
    if not read.rows:
        raise ManifestError(f"{args.manifest}: no row could be read as a turn")
    probs, confidence, mask = turn_arrays(read.estimates)
    fused = fusion.weights.fuse_probs(probs, confidence, mask)
    gold = [r.label for r in read.rows]
    with_context = sum(r.dialogue_id is not None and r.turn is not None for r in read.rows)
    print(f"fusion: {fusion.name}\nmanifest: {args.manifest}")
    print(f"rows read: {len(gold)} ({with_context} with dialogue_id,turn)\n")
    per_modality = {}
    for j, modality in enumerate(MODALITIES):
        has = np.flatnonzero(mask[:, j])
        if len(has):
            per_modality[modality.value] = _turn_scores(
                f"{modality.value} alone ({len(has)} rows that have it)", [gold[i] for i in has], probs[has, j]
            )
    fused_scores = _turn_scores(f"fused turn ({len(gold)} rows)", gold, fused)
    return json.dumps(
        {**fused_scores, "modality": "turns", "skipped": sum(skipped.values()), "modalities": per_modality}
    )


def _turn_scores(title: str, gold: list[str], probs: NDArray[Any]) -> dict[str, Any]:
    """Print one arm's report (per-class, confusion, families) and return its headline numbers."""
    report = evaluate(gold, [LABELS[int(i)] for i in probs.argmax(axis=1)], LABELS)
    families = family_scores(gold, probs)
    print(f"== {title} ==\n{report.render()}\n{families_line(families)}")
    return {**report.headline(), **families}


def _print_turn_skips(skipped: Counter[str], no_face: int) -> None:
    if skipped:
        detail = "; ".join(f"{reason}: {n}" for reason, n in skipped.most_common())
        print(f"skipped {sum(skipped.values())} rows ({detail})")
    if no_face:
        print(f"no face found in {no_face} images: those turns were fused without a face, as in production")


def evaluate_face(args: argparse.Namespace) -> str:
    import numpy as np

    from models.face import SIZE, FaceEmotionModel, FaceError, canonical_classes, to_gray

    try:
        with np.load(args.manifest, allow_pickle=False) as raw:
            images, labels, classes = raw["images"], raw["labels"].astype(int), [str(c) for c in raw["classes"]]
    except (OSError, KeyError) as exc:
        raise ManifestError(f"{args.manifest}: needs arrays images, labels, classes ({exc})") from exc
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) != len(labels):
        raise ManifestError(f"{args.manifest}: images must be uint8 (N, H, W) with N labels, got {images.shape}")
    if labels.size and not 0 <= labels.min() <= labels.max() < len(classes):
        raise ManifestError(f"{args.manifest}: labels must index classes (0..{len(classes) - 1})")
    gold_idx = np.array(canonical_classes(classes))[labels]
    model = FaceEmotionModel.load(args.head)
    undetected = 0
    if images.shape[1:] == (SIZE, SIZE):
        faces = images
    else:
        import cv2

        crops = []
        for image in images:
            try:
                face = model.preprocess(image)
            except FaceError as exc:
                raise ManifestError(f"{args.manifest}: {exc}") from exc
            if face is None:
                undetected += 1
                face = np.asarray(cv2.resize(to_gray(image), (SIZE, SIZE), interpolation=cv2.INTER_AREA), np.uint8)
            crops.append(face)
        faces = np.stack(crops)
    probs = np.concatenate([model.predict_faces(faces[i : i + 256]) for i in range(0, len(faces), 256)])
    report = evaluate([LABELS[i] for i in gold_idx], [LABELS[i] for i in probs.argmax(axis=1)], LABELS)
    print(f"model: {model.name}\nimages: {args.manifest} ({len(images)}, {images.shape[1]}x{images.shape[2]})")
    if undetected:
        print(f"no face detected in {undetected} images: the whole image was used")
    print()
    print(report.render())
    families = family_scores([LABELS[i] for i in gold_idx], probs)
    print(families_line(families))
    return json_line(report, modality="face", undetected=undetected, **families)


def read_transcripts(path: Path) -> list[dict[str, str]]:
    """Rows of a `path,text` manifest (text may be empty: nothing should be heard)."""
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("path", "text") if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
        return [{"path": row["path"] or "", "text": row["text"] or ""} for row in reader]


TRAILING_SILENCE_S = 1.0  # after each recording, so that the VAD hears the caller stop as in a call
WORST_SHOWN = 10


@dataclass
class HeardClip:
    """One manifest row as a recognizer heard it: the turns it was cut into and their joined text."""

    path: str
    text: str
    heard: str = ""
    turns: int = 0
    decode_ms: list[float] = field(default_factory=list)
    encode_ms: list[float] = field(default_factory=list)

    @property
    def errors(self) -> WordErrors:
        return word_errors(self.text, self.heard)

    @property
    def repeat(self) -> str | None:
        return repeated_phrase(self.text, self.heard)


def clip_turns(
    manifest: Path, rows: list[dict[str, str]], telephone: bool, whole: bool
) -> Iterator[tuple[dict[str, str], list[NDArray[np.float32]]]]:
    """Each readable row with the turns a call would cut from it (or the whole clip); unreadable rows are
    reported on stderr and left out."""
    from models.audio import SAMPLE_RATE, AudioError, TelephoneChannel
    from models.turns import cut_turns
    from training.recipes.voice.calm import load_any

    channel = TelephoneChannel()
    for i, row in enumerate(rows):
        try:
            pcm = load_any(manifest.parent / row["path"])
            if not whole:
                pcm = np.concatenate([pcm, np.zeros(int(TRAILING_SILENCE_S * SAMPLE_RATE), np.float32)])
            if telephone:
                pcm = channel.apply(pcm, np.random.default_rng([7_777, i]))
        except (AudioError, OSError) as exc:  # one broken file must not void a whole evaluation; it is counted
            print(f"skipped: {row['path']}: {exc}", file=sys.stderr)
            continue
        yield row, [pcm] if whole else [t.pcm for t in cut_turns(pcm)]


def hear_clips(
    manifest: Path,
    rows: list[dict[str, str]],
    listener: TurnListener,
    decoders: dict[str, WhisperDecoder],
    telephone: bool,
    whole: bool,
) -> dict[str, list[HeardClip]]:
    """Every clip through one encoder pass per turn and each of `decoders` (timed one after the other on the
    same states), as `SpeechRecognizer.hear` reads a turn."""
    out: dict[str, list[HeardClip]] = {name: [] for name in decoders}
    for row, turns in clip_turns(manifest, rows, telephone, whole):
        clips = {name: HeardClip(row["path"], row["text"], turns=len(turns)) for name in decoders}
        texts: dict[str, list[str]] = {name: [] for name in decoders}
        for turn in turns:
            listening = listener.listen(turn, emotion=False)
            for name, decoder in decoders.items():
                started = time.perf_counter()
                texts[name].append(decoder.decode(listening).text)
                clips[name].decode_ms.append((time.perf_counter() - started) * 1000)
                clips[name].encode_ms.append(listening.encode_ms)
        for name, clip in clips.items():
            clip.heard = " ".join(t for t in texts[name] if t)
            out[name].append(clip)
    return out


def asr_summary(clips: list[HeardClip]) -> dict[str, Any]:
    """The headline numbers of `hear_clips`'s clips (the JSON line's fields)."""
    total = sum((c.errors for c in clips), WordErrors(0, 0, 0, 0))
    decode_ms = [ms for c in clips for ms in c.decode_ms]
    encode_ms = [ms for c in clips for ms in c.encode_ms]
    n = max(len(clips), 1)
    repeated = sum(c.repeat is not None for c in clips)
    return {
        "n": len(clips),
        "wer": round(total.rate, 4),
        "repeated": round(repeated / n, 4),
        "repeated_clips": repeated,
        "exact": round(sum(c.errors.errors == 0 for c in clips) / n, 4),
        "turns": sum(c.turns for c in clips),
        "substitutions": total.substitutions,
        "deletions": total.deletions,
        "insertions": total.insertions,
        "reference_words": total.reference_words,
        "decode_ms_p50": round(float(np.percentile(decode_ms, 50)), 1) if decode_ms else None,
        "decode_ms_p95": round(float(np.percentile(decode_ms, 95)), 1) if decode_ms else None,
        "encode_ms_p50": round(float(np.percentile(encode_ms, 50)), 1) if encode_ms else None,
    }


def render_asr(clips: list[HeardClip], summary: dict[str, Any]) -> str:
    """The report of one decoding: WER and its parts, exact and repeated shares, times, the worst clips."""
    n = max(summary["n"], 1)
    lines = [
        f"clips: {summary['n']}; turns: {summary['turns']} (clips cut into several: "
        f"{sum(c.turns > 1 for c in clips)}, into none: {sum(c.turns == 0 for c in clips)})",
        f"WER {summary['wer']:.4f} ({summary['substitutions']} substitutions, {summary['deletions']} deletions, "
        f"{summary['insertions']} insertions over {summary['reference_words']} reference words)",
        f"clips heard exactly: {round(summary['exact'] * n)}/{summary['n']} ({summary['exact']:.3f})",
        f"clips with a repeated phrase: {summary['repeated_clips']}/{summary['n']} ({summary['repeated']:.3f}) "
        "(a word n-gram of at least 3 words twice in the transcript, not twice in the reference)",
        f"decode ms per turn: p50 {summary['decode_ms_p50']}, p95 {summary['decode_ms_p95']}; "
        f"encode ms per turn: p50 {summary['encode_ms_p50']}",
        "worst clips (WER, reference | heard):",
    ]
    worst = sorted(clips, key=lambda c: (-c.errors.rate, -c.errors.errors, c.path))[:WORST_SHOWN]
    for c in worst:
        if c.errors.errors:
            mark = f"  [repeats: {c.repeat}]" if c.repeat else ""
            lines.append(f"  {c.errors.rate:.2f}  {c.path}: {c.text!r} | {c.heard!r}{mark}")
    return "\n".join(lines) + "\n"


def asr_conditions(telephone: bool, whole: bool) -> str:
    cut = "whole clips" if whole else "cut as the call core cuts turns (TurnSegmenter defaults, silero VAD)"
    return ("telephone (simulated G.711 channel)" if telephone else "as recorded") + ", " + cut


def evaluate_asr(args: argparse.Namespace) -> str:
    import json

    from models.asr import WhisperDecoder
    from models.listen import TurnListener

    rows = read_transcripts(args.manifest)
    listener = TurnListener.load(emotion=False)
    decoder = WhisperDecoder.around(listener)
    clips = hear_clips(args.manifest, rows, listener, {"shipped": decoder}, args.telephone, args.whole)["shipped"]
    if not clips:
        raise ManifestError(f"{args.manifest}: no recording could be read")
    print(f"recognizer: Whisper tiny.en, {decoder.describe()}\nmanifest: {args.manifest}")
    print(f"audio: {asr_conditions(args.telephone, args.whole)}")
    if len(clips) < len(rows):
        print(f"skipped {len(rows) - len(clips)} rows whose audio could not be used")
    summary = asr_summary(clips)
    print(render_asr(clips, summary))
    extra = {"telephone": bool(args.telephone), "whole": bool(args.whole), "skipped": len(rows) - len(clips)}
    return json.dumps({**summary, **extra, "modality": "asr"})


def _print_skipped(skipped: Counter[str]) -> None:
    if skipped:
        detail = ", ".join(f"{label}: {n}" for label, n in skipped.most_common())
        print(f"skipped {sum(skipped.values())} rows with labels outside the canonical set ({detail})")


EVALUATORS: dict[str, Callable[[argparse.Namespace], str]] = {
    "text": evaluate_text,
    "voice": evaluate_voice,
    "fusion": evaluate_fusion,
    "face": evaluate_face,
    "turns": evaluate_turns,
    "asr": evaluate_asr,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("modality", choices=sorted(EVALUATORS))
    parser.add_argument(
        "manifest",
        type=Path,
        nargs="?",
        help="labelled CSV (text, voice, turns), transcribed CSV (asr), NPZ (face); fusion takes none",
    )
    parser.add_argument(
        "--head", type=Path, default=None, help="head checkpoint, or fusion.json for turns (default: the shipped one)"
    )
    parser.add_argument("--telephone", action="store_true", help="voice, asr: simulate a phone line before predicting")
    parser.add_argument("--whole", action="store_true", help="voice, asr: read whole clips instead of cutting turns")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.manifest is None and args.modality != "fusion":
        parser.error(f"{args.modality} needs a MANIFEST.csv")
    try:
        line = EVALUATORS[args.modality](args)
    except (ManifestError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
