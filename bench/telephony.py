"""Concurrent Twilio calls against the demo bot: end of caller speech to first reply audio.

    python -m bench.telephony [--calls 1 2 4 6 8] [--turns 3] [--speed 1.0] [--early both|on|off]
    python -m bench.telephony --soak 600 --calls 20     # N callers calling again and again for SECONDS

Starts the action server and Rasa with the Toneline channels (as `make demo`
does), then for each N places N simulated Twilio calls at once (staggered over
a second) that stream caller speech in real time as 20 ms mu-law frames, line
silence in between, exactly as Twilio does (connectors/twilio/simulator.py).
Speech is real: RAVDESS sentences from ../shared/data when present, else
espeak-ng. Each clip is trimmed to its speech, so latency = first reply media
frame received minus the moment the caller's last spoken frame was sent; it
includes the VAD's end-of-turn silence (450 ms), Whisper, Rasa with Toneline,
and TTS. A caller speaks again only once the bot's reply has played, as
callers do (no barge-in), so the bot synthesises every reply whole. Every level
of the sweep runs (a level over 1 s does not stop it); per level it prints
p50/p95/max, the turns answered and the share of turns that carried a voice
estimate (read back from Rasa's tracker: under load the call core may skip the
voice head), then `largest N with p95 < 1 s: N`, counting only levels where
every turn was answered.

`--soak SECONDS` keeps `--calls` callers calling one call after another for
that long, then prints the turns answered and unanswered, the voice share, the
error lines in the server log and Rasa's resident memory after the warm-up and
at the end (growth in %).

`--early both` (the default) runs the sweep twice in the same run, first with
the Whisper pass started only when the turn is cut (the simple way), then with
it started 200 ms into the pause (`prepare_silence_ms`, the default), and
prints the latency ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.quality_calls import fetch_tracker, trimmed
from connectors.speech.tts import EspeakEngine, Prosody
from connectors.twilio.simulator import place_call, turn_reports
from models.audio import load
from scripts.stack import ensure_model, ensure_redis, free_port, stack_env, start_actions, start_rasa, stop
from training.data import data_root

TOKEN = "bench-" + uuid.uuid4().hex[:8]
ESPEAK_LINES = ["Hello, is anyone there?", "I have a question about my bill.", "My internet is down again."]


async def caller_clips() -> tuple[list[NDArray[Any]], str]:
    root = data_root() / "speech" / "ravdess"
    files = sorted(root.glob("Actor_0[1-4]/03-01-0[12]-01-0*-01-*.flac"))[:8] if root.exists() else []
    if files:
        # Cut at a share of each clip's peak: RAVDESS speech peaks at 0.03 to 0.11, so a fixed level kept fragments.
        return [trimmed(load(f)) for f in files], f"RAVDESS ({len(files)} neutral/calm clips)"
    engine = EspeakEngine("en-us+m3", {"neutral": Prosody(150, 45)})
    return [trimmed(await engine.synthesize(t)) for t in ESPEAK_LINES], "espeak-ng en-us+m3"


@dataclass
class CallTiming:
    """One call's turns: the latency of each reply heard, how many turns were said, how many had a voice estimate."""

    latencies: list[float] = field(default_factory=list)
    said: int = 0
    with_voice: int = 0
    heard: int = 0  # customer turns Rasa recorded


@dataclass(frozen=True)
class Target:
    url: str
    rasa_token: str | None


async def one_call(target: Target, clips: list[NDArray[Any]], turns: int, speed: float, delay: float) -> CallTiming:
    await asyncio.sleep(delay)
    call = await place_call(target.url, TOKEN, caller=f"+1555{random.randint(0, 9999999):07d}", speed=speed)
    timing = CallTiming()
    try:
        await call.silence(0.6)
        await call.hear_opening()  # the emotion-analysis notice is not a reply: it is not timed
        for i in range(turns):
            reply = await call.say(clips[(i + random.randint(0, 99)) % len(clips)], then_silence=2.0)
            timing.said += 1
            await call.wait_reply(reply, timeout=20, quiet=0.3)
            await call.wait_played()  # the caller lets the bot finish: the whole reply is synthesised, as in a call
            if reply.first_audio_at is not None:
                timing.latencies.append((reply.first_audio_at - call.speech_ended_at[-1]) * speed)
    finally:
        await call.hang_up()
    reports = turn_reports(await fetch_tracker(target.url, call.call_sid, target.rasa_token))
    timing.heard, timing.with_voice = len(reports), sum(r.voice is not None for r in reports)
    return timing


async def level(target: Target, clips: list[NDArray[Any]], n: int, turns: int, speed: float) -> list[CallTiming]:
    return list(
        await asyncio.gather(*(one_call(target, clips, turns, speed, random.uniform(0, 1.0)) for _ in range(n)))
    )


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def voice_share(calls: list[CallTiming]) -> float:
    heard = sum(c.heard for c in calls)
    return sum(c.with_voice for c in calls) / heard if heard else float("nan")


async def sweep(target: Target, levels: list[int], turns: int, speed: float) -> dict[int, list[float]]:
    clips, source = await caller_clips()
    print(f"speech: {source}; {turns} turns per call; speed {speed}x real time", flush=True)
    print(
        "| concurrent calls | turns answered | p50 | p95 | max | voice estimate |\n|---|---|---|---|---|---|",
        flush=True,
    )
    best, results = 0, {}
    await level(target, clips, 1, 1, speed)  # warm-up: first Rasa parse and model caches
    for n in levels:
        calls = await level(target, clips, n, turns, speed)
        lat = results[n] = [x for c in calls for x in c.latencies]
        expected = n * turns
        p50, p95 = pct(lat, 50), pct(lat, 95)
        worst = max(lat) if lat else float("nan")
        row = f"| {n} | {len(lat)} of {expected} | {p50 * 1000:.0f} ms | {p95 * 1000:.0f} ms | {worst * 1000:.0f} ms "
        print(row + f"| {voice_share(calls):.0%} |", flush=True)
        if p95 < 1.0 and len(lat) == expected:
            best = max(best, n)
    print(f"largest N with p95 < 1 s: {best}", flush=True)
    return results


async def soak(
    target: Target, callers: int, seconds: float, turns: int, speed: float, rasa_pid: int, log: Path
) -> None:
    """`callers` callers, each placing one call after another until `seconds` have passed."""
    clips, source = await caller_clips()
    await level(target, clips, 1, 1, speed)  # warm-up, so the first RSS reading includes the loaded models
    rss_start, started, log_from = rss_mb(rasa_pid), time.monotonic(), log.stat().st_size
    print(f"soak: {callers} callers for {seconds:.0f} s; speech: {source}; Rasa RSS after warm-up {rss_start:.0f} MB")

    async def caller() -> list[CallTiming]:
        done = []
        while time.monotonic() - started < seconds:
            done.append(await one_call(target, clips, turns, speed, random.uniform(0, 1.0)))
        return done

    calls = [c for batch in await asyncio.gather(*(caller() for _ in range(callers))) for c in batch]
    lat = [x for c in calls for x in c.latencies]
    said = sum(c.said for c in calls)
    rss_end = rss_mb(rasa_pid)
    print(f"calls {len(calls)}, turns said {said}, answered {len(lat)}, unanswered {said - len(lat)}")
    print(
        f"p50 {pct(lat, 50) * 1000:.0f} ms, p95 {pct(lat, 95) * 1000:.0f} ms, voice estimate {voice_share(calls):.0%}"
    )
    print(f"Rasa RSS {rss_start:.0f} -> {rss_end:.0f} MB ({(rss_end / rss_start - 1) * 100:+.1f} %)", flush=True)
    with log.open() as handle:  # the server's lines during the soak only (start-up warnings are not the soak's)
        handle.seek(log_from)
        errors = [line.rstrip() for line in handle if " ERROR " in line or "Traceback" in line]
    print(f"error lines in the server log during the soak ({log}): {len(errors)}", *errors[:10], sep="\n")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (Rasa's workers), from /proc."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def _children(pid: int) -> list[int]:
    try:
        direct = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [c for d in direct for c in (d, *_children(d))]


def run_mode(
    env: dict[str, str], model: Path, early: bool, args: argparse.Namespace, log: Any
) -> dict[int, list[float]]:
    rasa_port = free_port()
    env = dict(env, TONELINE_TWILIO_PUBLIC_URL=f"http://127.0.0.1:{rasa_port}")
    env["TONELINE_TWILIO_PREPARE_SILENCE_MS"] = "default" if early else "off"
    when = "200 ms into the pause" if early else "when the turn is cut"
    print(f"\n## Whisper pass started {when}", flush=True)
    rasa = start_rasa(env, model, rasa_port, log)
    target = Target(f"http://127.0.0.1:{rasa_port}", env.get("TONELINE_RASA_TOKEN"))
    try:
        if args.soak:
            asyncio.run(soak(target, args.calls[0], args.soak, args.turns, args.speed, rasa.pid, Path(log.name)))
            return {}
        return asyncio.run(sweep(target, args.calls, args.turns, args.speed))
    finally:
        stop(rasa)


def print_ratios(off: dict[int, list[float]], on: dict[int, list[float]]) -> None:
    print("\n| concurrent calls | p50 cut / early | p95 cut / early |\n|---|---|---|")
    for n in sorted(set(off) & set(on)):
        print(f"| {n} | {pct(off[n], 50) / pct(on[n], 50):.2f}x | {pct(off[n], 95) / pct(on[n], 95):.2f}x |")


def twilio_stack() -> tuple[dict[str, str], Path, int, Any]:
    """What a Twilio bench runs against: the stack's environment (own Redis prefixes, a Twilio token only the
    bench knows), the demo model, the action server's port and the Redis process started (None if one answered)."""
    redis_endpoint, redis_proc = ensure_redis()
    model = ensure_model(quiet=True)
    action_port = free_port()
    prefix = f"toneline-bench-{uuid.uuid4().hex[:6]}"
    env = stack_env(redis_endpoint, action_port=action_port, tracker_prefix=f"{prefix}-tracker", toneline_prefix=prefix)
    env.update(
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN=TOKEN,
        TONELINE_TWILIO_API_BASE=f"http://127.0.0.1:{free_port()}",  # nothing there: the bench never hands off
        OMP_NUM_THREADS="1",
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}", flush=True)
    return env, model, action_port, redis_proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 2, 4, 6, 8])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--early", choices=["both", "on", "off"], default="both")
    parser.add_argument("--soak", type=float, default=0.0, metavar="SECONDS", help="soak with --calls callers")
    args = parser.parse_args()
    if args.soak and (len(args.calls) != 1 or args.early == "both"):
        parser.error("--soak takes one --calls level and --early on or off")
    random.seed(7)
    env, model, action_port, redis_proc = twilio_stack()
    log_path = Path(os.environ.get("TONELINE_BENCH_LOG", "/tmp/toneline-bench-telephony.log"))
    modes = {"both": [False, True], "on": [True], "off": [False]}[args.early]
    with log_path.open("w") as log:
        actions = None
        try:
            actions = start_actions(env, action_port, log)
            results = {early: run_mode(env, model, early, args, log) for early in modes}
        finally:
            stop(actions, redis_proc)
    if len(results) == 2:
        print_ratios(results[False], results[True])


if __name__ == "__main__":
    main()
