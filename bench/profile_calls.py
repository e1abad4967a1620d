"""Where a call's CPU goes: a sampling profile of the running Rasa server under N concurrent Twilio calls.

    pip install py-spy            # any environment; or set PY_SPY=/path/to/py-spy
    python -m bench.profile_calls [--calls 1 4 12] [--turns 3] [--rate 100] [--json out.json]

Starts the action server and Rasa with the Toneline channels (as `bench.telephony` does), then for each level
places N simulated Twilio calls at once (real RAVDESS speech, 20 ms mu-law frames in real time, the caller
waiting for each reply) while `py-spy record` samples the Rasa process (every thread, native frames off: time
in torch, CTranslate2 or numpy counts for the Python frame that called it). Each sample is put in one bucket by
the innermost frame a rule recognises (the Whisper encoder, the decoder, the voice head, the text model, the VAD,
the codec, the call core's frame handling, Rasa's own turn processing, ...).

Prints, per level: the buckets' shares of the busy samples (threads waiting are left out), the mean number of
busy threads (busy samples / rate / seconds: 1.0 is one core's worth), the turns answered and their latency
(p50/p95, end of caller speech to the first reply frame, as `bench.telephony` measures it). A sampling profiler
on the real server, not timers in the code: nothing in Toneline is changed to be measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.telephony import Target, caller_clips, level, pct, twilio_stack
from scripts.stack import free_port, start_actions, start_rasa, stop

# (bucket, substrings of a frame's file or function); the innermost frame that matches one decides the bucket, and
# the rules are tried in this order for that frame.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Whisper encoder (voice features + ASR)", ("models/voice/encoder", "models/whisper", "models/listen")),
    ("Whisper decoder (ASR)", ("models/asr", "ctranslate2", "faster_whisper")),
    ("voice head", ("models/voice/",)),
    ("text model", ("models/text", "transformers/", "onnxruntime")),
    ("fusion", ("models/fusion",)),
    ("VAD and turn cutting", ("silero", "models/turns")),
    ("codec and resampling (per frame)", ("connectors/speech/codec", "audioop", "soxr", "resample")),
    ("TTS (espeak-ng)", ("connectors/speech/tts",)),
    ("policy, routing, state, Redis", ("plugin/policy", "plugin/routing", "plugin/state", "plugin/schema", "redis/")),
    ("Toneline NLU component", ("plugin/nlu", "plugin/turn", "plugin/metadata")),
    ("call core and sockets (per frame)", ("connectors/call", "connectors/receive", "connectors/twilio", "websockets")),
    ("Rasa turn processing (tracker, policies, actions)", ("rasa/", "sqlalchemy", "aiohttp")),
    ("HTTP server (sanic)", ("sanic/",)),
    ("speech runtime (queueing turns to the models)", ("connectors/speech/runtime", "connectors/speech/recognizer")),
    ("event loop and threads", ("asyncio/", "concurrent/futures", "threading.py", "selectors.py")),
)


# py-spy cannot always tell a thread waiting in native code from one working: these leaves are waits (an executor
# thread blocked on its queue, uvloop's loop in its poll with no Python frame above Sanic's serve, a lock).
IDLE_LEAVES = ("concurrent/futures/thread.py:81", "sanic/server/runners.py", "threading.py", "selectors.py", "queue.py")
IDLE = "idle (waiting)"


def bucket_of(frames: list[str]) -> str:
    """`frames` from the root to the leaf, each 'function (path:line)'."""
    if frames and any(leaf in frames[-1] for leaf in IDLE_LEAVES):
        return IDLE
    for frame in reversed(frames):
        for name, needles in RULES:
            if any(n in frame for n in needles):
                return name
    return "other"


def read_collapsed(path: Path) -> Counter[str]:
    """py-spy's raw (collapsed) output: 'frame;frame;... count' per line -> samples per bucket."""
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[bucket_of(stack.split(";"))] += int(n)
    return counts


def py_spy() -> str:
    found = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if not found:
        sys.exit("py-spy not found: `pip install py-spy` (any environment) or set PY_SPY=/path/to/py-spy")
    return found


async def profiled_level(
    target: Target, pid: int, n: int, turns: int, rate: int, out: Path
) -> tuple[list[float], int, float]:
    """Latencies, turns said and seconds of one level, with py-spy recording the server meanwhile."""
    clips, _ = await caller_clips()
    recorder = subprocess.Popen(
        [py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.monotonic()
    try:
        calls = await level(target, clips, n, turns, 1.0)
    finally:
        seconds = time.monotonic() - started
        recorder.send_signal(2)  # SIGINT: py-spy writes what it has
        recorder.wait(timeout=60)
    return [x for c in calls for x in c.latencies], sum(c.said for c in calls), seconds


def report(n: int, counts: Counter[str], rate: int, seconds: float, lat: list[float], said: int) -> dict[str, Any]:
    idle = counts.pop(IDLE, 0)
    total = sum(counts.values())
    busy = total / rate / seconds if seconds else float("nan")
    print(
        f"\n## {n} concurrent calls: {len(lat)} of {said} turns answered, p50 {pct(lat, 50) * 1000:.0f} ms, "
        f"p95 {pct(lat, 95) * 1000:.0f} ms; {total} busy samples ({idle} idle left out) over {seconds:.0f} s = "
        f"{busy:.2f} busy threads"
    )
    print("| where | share of samples |\n|---|---|")
    for name, count in counts.most_common():
        print(f"| {name} | {count / total:.1%} |")
    return {
        "calls": n,
        "turns_said": said,
        "answered": len(lat),
        "p50_ms": round(pct(lat, 50) * 1000),
        "p95_ms": round(pct(lat, 95) * 1000),
        "seconds": round(seconds, 1),
        "busy_threads": round(busy, 3),
        "shares": {k: round(v / total, 4) for k, v in counts.most_common()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 4, 12])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--rate", type=int, default=100, help="samples a second")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    py_spy()
    random.seed(7)
    env, model, action_port, redis_proc = twilio_stack()
    rasa_port = free_port()
    env = dict(env, TONELINE_TWILIO_PUBLIC_URL=f"http://127.0.0.1:{rasa_port}")
    log_path = Path(os.environ.get("TONELINE_BENCH_LOG", "/tmp/toneline-bench-profile.log"))
    results = []
    with log_path.open("w") as log, tempfile.TemporaryDirectory() as tmp:
        actions = rasa = None
        try:
            actions = start_actions(env, action_port, log)
            rasa = start_rasa(env, model, rasa_port, log)
            target = Target(f"http://127.0.0.1:{rasa_port}", env.get("TONELINE_RASA_TOKEN"))
            clips, _ = asyncio.run(caller_clips())
            asyncio.run(level(target, clips, 1, 1, 1.0))  # warm-up: the models are loaded before the first level
            for n in args.calls:
                out = Path(tmp) / f"profile-{n}-{uuid.uuid4().hex[:6]}.txt"
                lat, said, seconds = asyncio.run(profiled_level(target, rasa.pid, n, args.turns, args.rate, out))
                results.append(report(n, read_collapsed(out), args.rate, seconds, lat, said))
        finally:
            stop(rasa, actions, redis_proc)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
