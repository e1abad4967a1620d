"""Simulated phone calls of calm and angry callers through the real telephony path: how often is a calm caller
handed to a person (false transfers), and how often, and how fast, an angry one (true transfers)?

    python -m bench.quality_calls [--calm 20] [--angry 20] [--speed 2.0] [--json out.json]

Starts the action server and Rasa with the Toneline channels (as `make demo` does) and places each call with
the Twilio simulator (connectors/twilio/simulator.py): signed webhook, Media Stream of 20 ms mu-law frames, the
channel's VAD, faster-whisper, the voice model, Rasa with Toneline, Redis. Calls run one at a time (the voice
estimate is skipped when the machine is overloaded, which would not measure the model).

Callers are people the shipped voice head never heard (`held_out()`):
- calm: 6 turns, FSDD digit strings of one speaker concatenated into 2 to 5 s (an account number read out) and
  sentences read by the people of Debian's pocketsphinx-testdata, in a shuffled order;
- angry: RAVDESS angry clips of one held-out actor, shuffled, up to `ANGRY_TURNS` turns (padded with the actor's
  disgusted clips if an actor has too few).
Prints one line per turn (transcript, voice / text / fused emotion, tone, handoff), then the rates.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import random
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from connectors.twilio.simulator import CallerOutcome, run_caller
from models.audio import SAMPLE_RATE, load, to_canonical
from scripts.stack import (
    REPO,
    RedisEndpoint,
    ensure_model,
    ensure_redis,
    free_port,
    stack_env,
    start_actions,
    start_rasa,
    stop,
)
from training.data import data_root

POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
FSDD_SPEAKERS = ("george", "jackson", "lucas")
CALM_TURNS = 6
ANGRY_TURNS = 5
TRANSFER_WITHIN = 3  # an angry caller must be handed over within this many turns
DIGIT_PAUSE_S = (0.1, 0.25)  # between digits read out (after trimming): under the VAD's end-of-turn silence
DIGIT_TURN_S = (2.0, 5.0)


class MaterialMissing(RuntimeError):
    """Recordings a caller needs are not on this machine; the message says which and how to get them."""


@dataclass(frozen=True)
class HeldOutCallers:
    """Speakers the shipped voice head was not trained on, and where that comes from."""

    ravdess_actors: tuple[int, ...]
    fsdd_speakers: tuple[str, ...]
    source: str


def held_out(head: Path | None = None) -> HeldOutCallers:
    """Ask the voice head which speakers it never heard; a head that names none has heard every RAVDESS actor."""
    try:
        from models.voice import held_out_speakers  # type: ignore[attr-defined,unused-ignore]

        spec = held_out_speakers(head)
    except (ImportError, ValueError, OSError) as exc:
        return HeldOutCallers(
            (), FSDD_SPEAKERS, f"the shipped head names none ({exc}); it was trained on no FSDD speaker"
        )
    return HeldOutCallers(
        tuple(int(a) for a in spec.ravdess_actors),
        tuple(str(s) for s in spec.fsdd_speakers),
        f"models.voice.held_out_speakers({head or ''})",
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def fsdd_clips(speaker: str) -> dict[int, list[Path]]:
    """The speaker's recordings by digit."""
    root = data_root() / "speech" / "fsdd"
    if not (root / "metadata.csv").exists():
        raise MaterialMissing(f"FSDD not found at {root} (../shared/data, or set TONELINE_DATA)")
    by_digit: dict[int, list[Path]] = {}
    for row in _rows(root / "metadata.csv"):
        if row["speaker"] == speaker:
            by_digit.setdefault(int(row["digit"]), []).append(root / row["path"])
    if not by_digit:
        raise MaterialMissing(f"no FSDD recordings of speaker {speaker!r} in {root}")
    return by_digit


def trimmed(pcm: NDArray[Any], margin_s: float = 0.04) -> NDArray[Any]:
    """The spoken part of a recording: FSDD clips carry up to half a second of silence, which would end a turn."""
    level = np.abs(pcm)
    loud = np.flatnonzero(level > 0.05 * level.max())
    if not loud.size:
        return pcm
    margin = int(margin_s * SAMPLE_RATE)
    return pcm[max(0, loud[0] - margin) : loud[-1] + margin]


def digit_string(by_digit: dict[int, list[Path]], rng: random.Random) -> NDArray[Any]:
    """Random digits of one speaker read out with short pauses, 2 to 5 s in all (an account number)."""
    target = rng.uniform(DIGIT_TURN_S[0] + 0.3, DIGIT_TURN_S[1] - 0.8)
    parts = [trimmed(load(rng.choice(by_digit[rng.randrange(10)])))]
    seconds = parts[0].size / SAMPLE_RATE
    while seconds < target:
        clip = trimmed(load(rng.choice(by_digit[rng.randrange(10)])))
        pause = np.zeros(int(rng.uniform(*DIGIT_PAUSE_S) * SAMPLE_RATE), dtype=np.float32)
        if seconds + (pause.size + clip.size) / SAMPLE_RATE > DIGIT_TURN_S[1]:
            break
        parts += [pause, clip]
        seconds += (pause.size + clip.size) / SAMPLE_RATE
    return np.concatenate(parts)


def pocketsphinx_sentences() -> list[NDArray[Any]]:
    """Read sentences of Debian's pocketsphinx-testdata (16 kHz; WAV and headerless 16-bit PCM)."""
    if not POCKETSPHINX.exists():
        raise MaterialMissing(f"{POCKETSPHINX} not found: apt-get install pocketsphinx-testdata (.ci/run does)")
    clips = [load(p) for p in sorted(POCKETSPHINX.glob("librivox/*.wav")) + sorted(POCKETSPHINX.glob("cards/*.wav"))]
    for name in ("goforward.raw", "numbers.raw", "something.raw"):
        raw = np.fromfile(POCKETSPHINX / name, dtype="<i2").astype(np.float32) / 32768.0
        clips.append(to_canonical(raw[:, None], SAMPLE_RATE, name=name))
    return clips


def ravdess_clips(actor: int, emotion: str) -> list[Path]:
    root = data_root() / "speech" / "ravdess"
    if not (root / "metadata.csv").exists():
        raise MaterialMissing(f"RAVDESS not found at {root} (../shared/data, or set TONELINE_DATA)")
    return [
        root / r["path"] for r in _rows(root / "metadata.csv") if int(r["actor"]) == actor and r["emotion"] == emotion
    ]


def calm_caller(speaker: str, sentences: list[NDArray[Any]], rng: random.Random) -> list[NDArray[Any]]:
    """Six turns: digit strings of one FSDD speaker and read sentences, shuffled."""
    by_digit = fsdd_clips(speaker)
    n_sentences = rng.choice((2, 3))
    turns = [digit_string(by_digit, rng) for _ in range(CALM_TURNS - n_sentences)]
    turns += rng.sample(sentences, n_sentences)
    rng.shuffle(turns)
    return turns


def angry_caller(actor: int, rng: random.Random, turns: int = ANGRY_TURNS) -> list[NDArray[Any]]:
    """One actor's angry clips in a shuffled order, padded with their disgusted clips if too few."""
    angry = ravdess_clips(actor, "angry")
    rng.shuffle(angry)
    if len(angry) < turns:
        angry += rng.sample(ravdess_clips(actor, "disgust"), turns - len(angry))
    return [load(p) for p in angry[:turns]]


async def fetch_tracker(base_url: str, sender: str, rasa_token: str | None = None) -> dict[str, Any]:
    # Rasa 3.6 reads its HTTP API token from `?token=` (set when the stack runs Rasa with --auth-token).
    query = f"?{urllib.parse.urlencode({'token': rasa_token})}" if rasa_token else ""

    def get() -> dict[str, Any]:
        with urllib.request.urlopen(f"{base_url}/conversations/{sender}/tracker{query}", timeout=30) as response:
            return dict(json.loads(response.read()))

    return await asyncio.get_running_loop().run_in_executor(None, get)


@dataclass
class CallResult:
    kind: str  # calm | angry
    who: str
    outcome: CallerOutcome


def print_call(result: CallResult) -> None:
    outcome = result.outcome
    after = f"transferred after utterance {outcome.transferred_after}" if outcome.transferred else "not transferred"
    print(f"\n{result.kind} call ({result.who}), {outcome.spoken} utterances, {after}", flush=True)
    for turn in outcome.turns:
        print(f"  {turn.line()}", flush=True)


def summary(results: list[CallResult]) -> dict[str, Any]:
    calm = [r.outcome for r in results if r.kind == "calm"]
    angry = [r.outcome for r in results if r.kind == "angry"]
    calm_turns = [t for o in calm for t in o.turns]
    out: dict[str, Any] = {
        "calm_calls": len(calm),
        "false_transfers": sum(o.transferred for o in calm),
        "calm_turns": len(calm_turns),
        "calm_turns_not_neutral_tone": sum(t.tone != "neutral" for t in calm_turns),
        "calm_turns_fused_negative": sum(t.valence <= -0.25 for t in calm_turns),
        "calm_turns_voice_labels": _count(t.voice for t in calm_turns),
        "angry_calls": len(angry),
        f"transferred_within_{TRANSFER_WITHIN}": sum(
            bool(o.transferred_after and o.transferred_after <= TRANSFER_WITHIN) for o in angry
        ),
        "transferred_within_4": sum(bool(o.transferred_after and o.transferred_after <= 4) for o in angry),
        f"transferred_within_{ANGRY_TURNS}": sum(o.transferred for o in angry),
        "turns_to_transfer": sorted(o.transferred_after for o in angry if o.transferred_after),
        "angry_turns_voice_labels": _count(t.voice for o in angry for t in o.turns),
    }
    out["false_transfer_rate"] = out["false_transfers"] / max(1, len(calm))
    out["true_transfer_rate"] = out[f"transferred_within_{TRANSFER_WITHIN}"] / max(1, len(angry))
    return out


def _count(labels: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for label in labels:
        counts[str(label)] = counts.get(str(label), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


async def place_all(
    url: str, token: str, args: argparse.Namespace, held: HeldOutCallers, rasa_token: str | None = None
) -> list[CallResult]:
    rng = random.Random(args.seed)
    sentences = pocketsphinx_sentences()
    plan: list[tuple[str, str, list[NDArray[Any]]]] = []
    for i in range(args.calm if held.fsdd_speakers else 0):
        speaker = held.fsdd_speakers[i % len(held.fsdd_speakers)]
        plan.append(("calm", f"FSDD {speaker} + pocketsphinx", calm_caller(speaker, sentences, rng)))
    actors = held.ravdess_actors or tuple(args.actors)
    for i in range(args.angry if actors else 0):
        actor = actors[i % len(actors)]
        plan.append(("angry", f"RAVDESS actor {actor}", angry_caller(actor, rng)))
    results = []
    for n, (kind, who, utterances) in enumerate(plan):
        outcome = await run_caller(
            url,
            token,
            utterances,
            lambda sid: fetch_tracker(url, sid, rasa_token),
            caller=f"+1555{n:07d}",
            speed=args.speed,
        )
        results.append(CallResult(kind, who, outcome))
        print_call(results[-1])
    return results


def versions() -> dict[str, str]:
    import rasa

    weights = REPO / "models" / "weights"
    files = {p.name: f"{p.stat().st_size} B" for p in sorted(weights.glob("*")) if p.is_file()}
    commit = os.popen(f"git -C {REPO} rev-parse --short HEAD").read().strip()
    return {"rasa": rasa.__version__, "commit": commit, "weights": json.dumps(files)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calm", type=int, default=20)
    parser.add_argument("--angry", type=int, default=20)
    parser.add_argument("--speed", type=float, default=2.0, help="stream audio this much faster than real time")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--actors", type=int, nargs="*", default=[], help="RAVDESS actors for angry calls when the model names none"
    )
    parser.add_argument(
        "--fold-heads",
        type=Path,
        help="a directory of cross-validation fold heads (fold-*/voice_head.pt, written by `python -m "
        "training.recipes.voice.train --fold-heads`): each fold's stack serves its own head, and every actor that "
        "head never heard places one angry call (--angry per fold is then the number of its actors), its FSDD "
        "speaker calm calls (--calm spread over the folds that hold one out)",
    )
    parser.add_argument("--json", type=Path, help="write the summary and every turn here")
    args = parser.parse_args()
    heads: list[Path | None] = sorted(args.fold_heads.glob("fold-*/voice_head.pt")) if args.fold_heads else [None]
    if not heads:
        print(f"no fold-*/voice_head.pt under {args.fold_heads}", file=sys.stderr)
        return 2
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    print(f"versions: {versions()}", flush=True)
    redis_endpoint, redis_proc = ensure_redis()
    model = ensure_model(quiet=True)
    results: list[CallResult] = []
    try:
        with_fsdd = sum(bool(held_out(h).fsdd_speakers) for h in heads)
        for head in heads:
            held = held_out(head)
            print(f"held-out speakers ({held.source}): RAVDESS {held.ravdess_actors}, FSDD {held.fsdd_speakers}")
            if not held.ravdess_actors and args.actors:
                print(f"angry callers: RAVDESS actors {args.actors} given on the command line, NOT held out")
            fold_args = argparse.Namespace(**vars(args))
            if head is not None:
                fold_args.angry = len(held.ravdess_actors)
                fold_args.calm = -(-args.calm // max(1, with_fsdd))
            results += place_with_stack(redis_endpoint, model, fold_args, held, head)
    except MaterialMissing as exc:
        print(f"cannot place the calls: {exc}", file=sys.stderr)
        return 2
    finally:
        stop(None, None, redis_proc)
    report = summary(results)
    print("\n" + json.dumps(report), flush=True)
    if args.json:
        calls = [{"kind": r.kind, "who": r.who, **asdict(r.outcome)} for r in results]
        args.json.write_text(json.dumps({"summary": report, "calls": calls}, indent=1))
    return 0


def place_with_stack(
    redis_endpoint: RedisEndpoint, model: Path, args: argparse.Namespace, held: HeldOutCallers, head: Path | None
) -> list[CallResult]:
    """Start the action server and Rasa (serving `head` as the voice head, when given), place the calls, stop both."""
    token = "quality-" + uuid.uuid4().hex[:8]
    action_port, rasa_port = free_port(), free_port()
    prefix = f"toneline-quality-{uuid.uuid4().hex[:6]}"
    env = stack_env(redis_endpoint, action_port=action_port, tracker_prefix=f"{prefix}-tracker", toneline_prefix=prefix)
    env.update(
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN=token,
        TONELINE_TWILIO_API_BASE=f"http://127.0.0.1:{free_port()}",  # nothing there: a transfer is read from Rasa
        TONELINE_TWILIO_PUBLIC_URL=f"http://127.0.0.1:{rasa_port}",
        OMP_NUM_THREADS="1",
    )
    if head is not None:
        env["TONELINE_VOICE_HEAD"] = str(head)
    log_path = Path(os.environ.get("TONELINE_BENCH_LOG", "/tmp/toneline-quality-calls.log"))
    with log_path.open("a") as log:
        actions = rasa = None
        try:
            actions = start_actions(env, action_port, log)
            rasa = start_rasa(env, model, rasa_port, log)
            rasa_token = env.get("TONELINE_RASA_TOKEN")  # when the stack locks Rasa's API
            return asyncio.run(place_all(f"http://127.0.0.1:{rasa_port}", token, args, held, rasa_token))
        finally:
            stop(rasa, actions, None)


if __name__ == "__main__":
    sys.exit(main())
