"""Barge-in: how soon the bot stops talking when a Twilio caller talks over it, by barge-in mode.

    python -m bench.barge_in [--interruptions 8] [--modes words speech]

Starts the action server and Rasa with the Toneline channels (as `make demo`
does), then for each mode places one simulated Twilio call
(connectors/twilio/simulator.py) in which the caller asks something, waits for
the reply's audio to start playing, lets it play `--talk-over-after` seconds
and then talks over it with another sentence. Measured per interruption: from
the caller's first interrupting frame sent to the `clear` received (the bot's
queued audio dropped at the provider). Speech is real: RAVDESS sentences from
../shared/data when present, else espeak-ng (the clips of bench.telephony).

The modes (`barge_in` in the channel's credentials.yml block): `words`, the
simple way, stops the bot once the interrupting turn is cut and Whisper heard
words in it; `speech`, the default, stops it as soon as the VAD hears speech.
Prints both tables and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from bench.telephony import TOKEN, caller_clips, pct, twilio_stack
from connectors.twilio.simulator import place_call
from scripts.stack import free_port, start_actions, start_rasa, stop


async def interruptions(url: str, clips: list[NDArray[Any]], n: int, after: float) -> tuple[list[float], int]:
    """Stop times of `n` interruptions in one call, and how many replies ended before the caller could talk over."""
    call = await place_call(url, TOKEN, caller=f"+1555{random.randint(0, 9999999):07d}")
    stops: list[float] = []
    too_short = 0
    try:
        await call.silence(0.6)
        await call.hear_opening()  # the notice cannot be interrupted: the interruptions are of replies
        for i in range(n):
            reply = await call.say(clips[i % len(clips)], then_silence=0.1)
            deadline = time.monotonic() + 20
            while reply.first_audio_at is None and time.monotonic() < deadline:
                await call.silence(0.02)  # the line carries silence, as a provider's stream does
            await call.silence(after)
            if not call.playing:
                too_short += 1
                continue
            cleared = len(call.cleared_at)
            started = time.monotonic()  # the interrupting clip is trimmed to its speech: its first frame is speech
            interrupting = await call.say(clips[(i + 1) % len(clips)], then_silence=1.0)
            while len(call.cleared_at) == cleared and time.monotonic() < started + 10:
                await asyncio.sleep(0.005)
            if len(call.cleared_at) > cleared:
                stops.append(call.cleared_at[cleared] - started)
            await call.wait_reply(interrupting, timeout=20, quiet=0.3)
            await call.wait_played()
    finally:
        await call.hang_up()
    return stops, too_short


def run_mode(env: dict[str, str], model: Path, mode: str, args: argparse.Namespace, log: Any) -> list[float]:
    rasa_port = free_port()
    env = dict(env, TONELINE_TWILIO_PUBLIC_URL=f"http://127.0.0.1:{rasa_port}", TONELINE_TWILIO_BARGE_IN=mode)
    rasa = start_rasa(env, model, rasa_port, log)
    try:
        url = f"http://127.0.0.1:{rasa_port}"

        async def measure() -> tuple[list[float], int]:
            clips, source = await caller_clips()
            await interruptions(url, clips, 1, args.talk_over_after)  # warm-up: first Rasa parse, model caches
            print(f"\n## barge_in: {mode} (speech: {source})", flush=True)
            return await interruptions(url, clips, args.interruptions, args.talk_over_after)

        stops, too_short = asyncio.run(measure())
    finally:
        stop(rasa)
    print("| interruptions | bot stopped | p50 | p95 | max |\n|---|---|---|---|---|")
    done = args.interruptions - too_short
    worst = max(stops) * 1000 if stops else float("nan")
    p50, p95 = pct(stops, 50) * 1000, pct(stops, 95) * 1000
    print(f"| {done} | {len(stops)} of {done} | {p50:.0f} ms | {p95:.0f} ms | {worst:.0f} ms |", flush=True)
    if too_short:
        print(f"({too_short} replies had finished playing before the caller talked over them)")
    return stops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interruptions", type=int, default=8)
    parser.add_argument("--modes", nargs="+", choices=["words", "speech"], default=["words", "speech"])
    parser.add_argument("--talk-over-after", type=float, default=0.3, help="seconds of the reply before the caller")
    args = parser.parse_args()
    random.seed(7)
    env, model, action_port, redis_proc = twilio_stack()
    log_path = Path(os.environ.get("TONELINE_BENCH_LOG", "/tmp/toneline-bench-barge-in.log"))
    with log_path.open("w") as log:
        actions = None
        try:
            actions = start_actions(env, action_port, log)
            results = {mode: run_mode(env, model, mode, args, log) for mode in args.modes}
        finally:
            stop(actions, redis_proc)
    if len(results) == 2 and results["words"] and results["speech"]:
        words, speech = results["words"], results["speech"]
        print("\n| | p50 | p95 |\n|---|---|---|")
        print(f"| words / speech | {pct(words, 50) / pct(speech, 50):.2f}x | {pct(words, 95) / pct(speech, 95):.2f}x |")


if __name__ == "__main__":
    main()
