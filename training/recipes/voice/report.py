"""The voice head's numbers side by side: acted emotion, calm people, synthetic voices, calibration.

    python -m training.recipes.voice.report [--head models/weights/voice_head.pt] [--runs-dir DIR] [--calm skip]

Reads the cross-validation the recipe wrote (`cv.json`: RAVDESS actor folds and
FSDD leave one speaker out, from fold heads that never heard the speaker) and
scores the given head on what it never trained on, each speaker read as one call
(`CallerBaseline`, turns in order; the first turn has no baseline):
pocketsphinx-testdata and espeak-ng / flite voices reading neutral sentences,
the head's held-out FSDD speaker and RAVDESS actors; studio and through the
evaluation phone line. Shares are of families (`models.emotion.family_of`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from numpy.typing import NDArray

from models.emotion import FAMILIES, LABELS, canonical_label, family_of
from models.voice import DEFAULT_HEAD, CallerBaseline, VoiceEmotionModel, held_out_speakers
from training.metrics import confidence_calibration_error, evaluate
from training.recipes.calibration import softmax
from training.recipes.voice.config import HERE, RUNS, load_hparams
from training.recipes.voice.features import EVAL_VARIANT, Source, extract_pooled, ravdess_clips

if TYPE_CHECKING:
    from training.recipes.voice.train import Corpus, OutOfFold

VARIANT_NAMES = {"studio": "studio", EVAL_VARIANT: "phone"}


def confidence_ece(confidence: NDArray[Any], correct: NDArray[Any], bins: int = 10) -> float:
    """Expected calibration error of a confidence against whether the top label was right (4 decimals)."""
    return round(confidence_calibration_error(confidence, correct, bins), 4)


def family_shares(probs: NDArray[Any]) -> dict[str, float]:
    """Share of turns read as each family, plus n."""
    families = [family_of(p) for p in probs]
    return {**{f: round(families.count(f) / max(len(families), 1), 3) for f in FAMILIES}, "n": len(families)}


def confidences(
    probs: NDArray[Any], has_baseline: bool, distance: NDArray[Any], calibration: dict[str, Any]
) -> NDArray[Any]:
    """What `VoiceEmotionModel.postprocess` reports, from held-out readings."""
    scale = calibration["confidence_scale"][int(has_baseline)]
    familiar, halving = calibration["familiar"]
    familiarity = 0.5 ** (np.clip(distance - familiar, 0, None) / halving)
    return np.asarray(np.clip(probs.max(axis=1) * scale * familiarity, 0, 1))


def cv_report(corpus: Corpus, oof: OutOfFold, calibration: dict[str, Any], runs: Path) -> dict[str, Any]:
    """Pooled out-of-fold numbers: RAVDESS accuracy / macro-F1, FSDD family shares, calibration; per mode."""
    y = corpus.labels[oof.index]
    rav = corpus.corpus[oof.index] == "ravdess"
    out: dict[str, Any] = {"calibration": calibration, "ravdess": {}, "fsdd": {}, "ece": {}}
    out.update({"ravdess_calm": {}, "ravdess_without_calm": {}})
    sources = [corpus.sources[int(i)] for i in oof.index]
    for (variant, mode), logits in oof.logits.items():
        key = f"{VARIANT_NAMES[variant]}/{mode}"
        probs = softmax(logits / calibration["temperature"])
        report = evaluate(names(y[rav]), names(probs[rav].argmax(axis=1)))
        out["ravdess"][key] = {"accuracy": round(report.accuracy, 4), "macro_f1": round(report.macro_f1, 4)}
        if mode == "call":
            save_confusion_png(
                report, f"voice head, {VARIANT_NAMES[variant]}, in a call", runs / f"confusion-{key}.png"
            )
            out["ravdess"][key]["per_class_recall"] = {n: round(c["recall"], 3) for n, c in report.per_class.items()}
        out["fsdd"][key] = family_shares(probs[~rav])
        acted_calm = rav & np.array([getattr(s, "emotion", "") == "calm" for s in sources])
        if acted_calm.any():  # calm folded into neutral: how RAVDESS's acted calm reads, and the rest without it
            out["ravdess_calm"][key] = family_shares(probs[acted_calm])
            rest = rav & ~acted_calm
            out["ravdess_without_calm"][key] = headline(evaluate(names(y[rest]), names(probs[rest].argmax(axis=1))))
        if mode != "calm_start":
            conf = confidences(probs, mode == "call", oof.distance[variant], calibration)
            correct = probs.argmax(axis=1) == y
            out["ece"][key] = {
                "ravdess": confidence_ece(conf[rav], correct[rav]),
                "fsdd": confidence_ece(conf[~rav], correct[~rav]),
            }
    return out


def headline(report: Any) -> dict[str, float]:
    return {"accuracy": round(report.accuracy, 4), "macro_f1": round(report.macro_f1, 4)}


def names(idx: NDArray[Any]) -> list[str]:
    return [LABELS[int(i)] for i in idx]


def save_confusion_png(report: Any, title: str, path: Path) -> None:
    """Confusion matrix (rows gold) as a PNG, normalised per row, counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = report.confusion
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
    ax.set_yticks(range(len(LABELS)), LABELS)
    for (r, c), n in np.ndenumerate(counts):
        ax.text(c, r, str(int(n)), ha="center", va="center", color="white" if share[r, c] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{title}\naccuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_calls(
    model: VoiceEmotionModel, stats: NDArray[Any], speakers: Sequence[str]
) -> tuple[list[Any], NDArray[Any]]:
    """Each speaker's turns read in order as one call (a `CallerBaseline` each), as the connectors do."""
    baselines: dict[str, CallerBaseline] = defaultdict(CallerBaseline)
    estimates, first = [], []
    for s, speaker in zip(stats, speakers):
        first.append(baselines[speaker].turns == 0)
        estimates += model.predict_from_stats(s[None], baseline=baselines[speaker], learn=True)
    return estimates, np.array(first)


def calls_report(
    model: VoiceEmotionModel, sources: Sequence[Source], keep: NDArray[Any], speakers: Sequence[str]
) -> dict[str, Any]:
    """Family shares (all turns, first turns only), calibration and mean confidence of calm turns, studio and phone.

    `keep` selects the turns of `sources` to read (the cache holds all of them together).
    """
    out = {}
    for variant in ("studio", EVAL_VARIANT):
        estimates, first = read_calls(model, extract_pooled(variant, sources)[keep], [speakers[i] for i in keep])
        probs = np.array([e.probs for e in estimates])
        conf = np.array([e.confidence for e in estimates])
        correct = np.array([e.label == "neutral" for e in estimates])
        out[VARIANT_NAMES[variant]] = {
            **family_shares(probs),
            "first_turns": family_shares(probs[first]),
            "label_accuracy": round(float(correct.mean()), 4),
            "ece": confidence_ece(conf, correct),
            "mean_confidence": round(float(conf.mean()), 3),
        }
    return out


def probe_report(head: Path) -> dict[str, Any]:
    """The head on speakers and voices it never trained on, each read as calls."""
    from training.recipes.voice.calm import fsdd_turns, pocketsphinx_recordings, tts_recordings

    model = VoiceEmotionModel.load(head)
    held = held_out_speakers(head)
    out: dict[str, Any] = {"head": model.name, "held_out": dataclasses.asdict(held)}
    fsdd = fsdd_turns()
    speakers = [t.speaker for t in fsdd]
    out["fsdd_held_out"] = calls_report(model, fsdd, np.flatnonzero(np.isin(speakers, held.fsdd_speakers)), speakers)
    sphinx = pocketsphinx_recordings()
    if sphinx:
        out["pocketsphinx"] = calls_report(model, sphinx, np.arange(len(sphinx)), [r.speaker for r in sphinx])
    tts = tts_recordings()
    for engine in ("espeak-ng", "flite"):
        keep = np.flatnonzero([r.corpus == engine for r in tts])
        if len(keep):
            out[engine] = calls_report(model, tts, keep, [r.speaker for r in tts])
    clips = ravdess_clips()
    # RAVDESS lists an actor's clips by emotion; a call in that order would be all one emotion in a row.
    keep = np.flatnonzero([c.actor in held.ravdess_actors for c in clips])
    keep = keep[np.random.default_rng(5).permutation(len(keep))]
    emotions = [canonical_label(clips[i].emotion) or clips[i].emotion for i in keep]
    labelled = np.array([e != "calm" for e in emotions])
    for variant in ("studio", EVAL_VARIANT):
        estimates, _ = read_calls(model, extract_pooled(variant, clips)[keep], [clips[i].speaker for i in keep])
        gold = [e for e, k in zip(emotions, labelled) if k]
        report = evaluate(gold, [e.label for e, k in zip(estimates, labelled) if k])
        angry = [e.family == "negative" for e, g in zip(estimates, emotions) if g == "angry"]
        # Acted calm has no canonical label (not scored above), but a calm caller must not read negative.
        calm = [e.family == "negative" for e, g in zip(estimates, emotions) if g == "calm"]
        # Each clip also read as a caller's first turn (no baseline): what the first turn of an upset call gets.
        alone = model.predict_from_stats(extract_pooled(variant, clips)[keep], baseline=None)
        first = evaluate(gold, [e.label for e, k in zip(alone, labelled) if k])
        fused = fused_first_turns([clips[i] for i in keep], alone)
        out.setdefault("ravdess_held_out", {})[VARIANT_NAMES[variant]] = {
            "accuracy": round(report.accuracy, 4),
            "macro_f1": round(report.macro_f1, 4),
            "first_turn_accuracy": round(first.accuracy, 4),
            "first_turn_macro_f1": round(first.macro_f1, 4),
            # Issue 30's bar: the first turn with its (neutral) words through the shipped fusion, by family.
            "first_turn_fused_family": round(
                float(np.mean([f == family_of(_one_hot(g)) for f, g, k in zip(fused, emotions, labelled) if k])), 4
            ),
            "angry_read_negative": round(float(np.mean(angry)), 3),
            "calm_read_negative": round(float(np.mean(calm)), 3),
            "n": len(gold),
        }
    return out


# RAVDESS's two sentences (the filename's fifth field), the words a caller's turn would carry.
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}


def fused_first_turns(clips: Sequence[Any], voice: Sequence[Any]) -> list[str]:
    """Each clip's first-turn voice estimate fused with the text model's reading of its sentence (shipped text
    model and fusion, as `EmotionRecognizer` fuses a phone turn); the fused families."""
    from models.fusion import load_fusion
    from models.text import TextEmotionModel

    text, fusion = TextEmotionModel.load(), load_fusion()
    words = {k: text.predict(sentence) for k, sentence in STATEMENTS.items()}
    return [fusion.fuse([v, words[c.path.name.split("-")[4]]]).family for c, v in zip(clips, voice)]


def _one_hot(label: str) -> NDArray[Any]:
    out = np.zeros(len(LABELS))
    out[LABELS.index(label)] = 1.0
    return out


def render(cv: dict[str, Any], probes: dict[str, Any] | None) -> str:
    """One table: every corpus, studio and phone, beside each other."""
    lines = [
        "voice head: numbers side by side (families by probability mass; negative = sad/angry/fearful/disgusted)",
        "",
    ]
    lines.append("RAVDESS actor folds (fold heads), accuracy / macro-F1:")
    for key, r in cv["ravdess"].items():
        lines.append(f"  {key:<22} {r['accuracy']:.3f} / {r['macro_f1']:.3f}")
    lines.append("FSDD digit strings 2-5 s, leave one speaker out (fold heads), share negative / neutral:")
    for key, r in cv["fsdd"].items():
        lines.append(f"  {key:<22} {r['negative']:.3f} / {r['neutral']:.3f}  (n={r['n']})")
    lines.append("calibration (ECE of the reported confidence), RAVDESS / calm FSDD:")
    for key, r in cv["ece"].items():
        lines.append(f"  {key:<22} {r['ravdess']:.3f} / {r['fsdd']:.3f}")
    if probes:
        lines.append(
            f"never-heard speakers and voices, read as calls by {probes['head']}: share negative / neutral "
            "(first turns), ECE, mean confidence:"
        )
        for corpus in ("fsdd_held_out", "pocketsphinx", "espeak-ng", "flite"):
            for channel, r in probes.get(corpus, {}).items():
                f = r["first_turns"]
                lines.append(
                    f"  {corpus + '/' + channel:<24} {r['negative']:.3f} / {r['neutral']:.3f}  "
                    f"({f['negative']:.3f} / {f['neutral']:.3f})  ECE {r['ece']:.3f}  conf {r['mean_confidence']:.2f}"
                    f"  n={r['n']}"
                )
        for channel, r in probes.get("ravdess_held_out", {}).items():
            lines.append(
                f"  RAVDESS held-out actors/{channel}: accuracy {r['accuracy']:.3f}, macro-F1 {r['macro_f1']:.3f} "
                f"(first turns {r.get('first_turn_accuracy', float('nan')):.3f} / "
                f"{r.get('first_turn_macro_f1', float('nan')):.3f}, fused family with their words "
                f"{r.get('first_turn_fused_family', float('nan')):.3f}), "
                f"angry read negative {r['angry_read_negative']:.3f}, acted calm read negative "
                f"{r.get('calm_read_negative', float('nan')):.3f} (n={r['n']})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--head", type=Path, default=DEFAULT_HEAD)
    parser.add_argument("--runs-dir", type=Path, default=RUNS)
    parser.add_argument("--calm", choices=("neutral", "skip"), default=None)
    args = parser.parse_args(argv)
    calm = args.calm or load_hparams(HERE / "hparams.yaml", {})["calm"]
    cv = json.loads((args.runs_dir / f"calm-{calm}" / "cv.json").read_text())
    probes = probe_report(args.head)
    print(render(cv, probes))
    print(json.dumps({"cv": {k: cv[k] for k in ("ravdess", "fsdd", "ece")}, "probes": probes}))


if __name__ == "__main__":
    main()
