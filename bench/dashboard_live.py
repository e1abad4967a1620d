"""How far behind the live floor is, with many conversations and a steady event rate.

    python -m bench.dashboard_live [--conversations 500] [--rate 20] [--seconds 60]

Starts the dashboard (a subprocess, as deployed) on a private Redis key prefix,
seeds N active conversations, then records `rate` customer turns a second into
random conversations through the real `StateStore`. Two clients watch in the
same run: the dashboard's Server-Sent Events stream, and the simplest
alternative, polling `/api/floor` once a second. Lag = when a client first sees
a turn minus when it was recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import time
import uuid
from typing import Any

import aiohttp

from plugin.routing import Decision, RoutingConfig, TurnRecord, summarize
from plugin.settings import RedisSettings
from plugin.state import ConversationInfo, StateStore
from scripts.stack import base_env, ensure_redis, free_port, start_dashboard, stop

CFG = RoutingConfig()


def record(store: StateStore, conv: str, index: int, at: float) -> None:
    turn = TurnRecord(
        f"{conv}-{index}",
        at,
        random.choice(["neutral", "angry", "happy"]),
        random.uniform(-1, 1),
        random.random(),
        random.random(),
        {"text": 1.0},
        "billing_question",
        negative=random.random(),
    )
    store.record(
        ConversationInfo(conv, conv, "bench"), [turn], summarize([turn], CFG), Decision("neutral", False), now=at
    )


async def watch_sse(session: aiohttp.ClientSession, url: str, lags: list[float], stop_at: float) -> None:
    buffer = b""
    async with session.get(url + "/api/live") as response:
        # Chunks, not readline(): the first message (the whole floor) outgrows readline's 64 kB limit.
        async for chunk in response.content.iter_any():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"data: "):
                    message = json.loads(line[6:])
                    if message["type"] == "conversation":
                        lags.append(time.time() - message["row"]["last_at"])
            if time.time() >= stop_at:
                return


async def watch_polling(session: aiohttp.ClientSession, url: str, lags: list[float], stop_at: float) -> None:
    seen: dict[str, float] = {}
    while time.time() < stop_at:
        async with session.get(url + "/api/floor") as response:
            rows = (await response.json())["conversations"]
        now = time.time()
        for row in rows:
            if seen.get(row["conversation_id"], row["last_at"]) < row["last_at"]:
                lags.append(now - row["last_at"])
            seen[row["conversation_id"]] = row["last_at"]
        await asyncio.sleep(1.0)


async def produce(store: StateStore, convs: list[str], rate: float, stop_at: float) -> int:
    sent, start = 0, time.time()
    while time.time() < stop_at:
        await asyncio.to_thread(record, store, random.choice(convs), sent + 1, time.time())
        sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - time.time()))
    return sent


def summary(lags: list[float]) -> dict[str, float]:
    ordered = sorted(lags)

    def pick(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {
        "n": len(ordered),
        "p50_ms": pick(0.5),
        "p95_ms": pick(0.95),
        "max_ms": round(1000 * ordered[-1], 1),
        "mean_ms": round(1000 * statistics.fmean(ordered), 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    redis_endpoint, _ = ensure_redis()
    prefix = f"toneline-bench-{uuid.uuid4().hex[:8]}"
    store = StateStore(RedisSettings(url=redis_endpoint.url, prefix=prefix, socket_timeout=2.0))
    convs = [f"conv-{i:04d}" for i in range(args.conversations)]
    for conv in convs:
        record(store, conv, 0, time.time())
    port, password = free_port(), uuid.uuid4().hex
    env = base_env(TONELINE_REDIS_URL=redis_endpoint.url, TONELINE_PREFIX=prefix, TONELINE_DASHBOARD_PASSWORD=password)
    log = open(os.devnull, "w")  # noqa: SIM115 - closed in finally
    proc = start_dashboard(env, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        # unsafe=True: keep cookies for an IP-address host (127.0.0.1).
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            await session.post(url + "/login", data={"username": "supervisor", "password": password})
            floor = (await (await session.get(url + "/api/floor")).json())["conversations"]
            stop_at = time.time() + args.seconds
            sse: list[float] = []
            poll: list[float] = []
            watchers = [
                asyncio.create_task(watch_sse(session, url, sse, stop_at)),
                asyncio.create_task(watch_polling(session, url, poll, stop_at)),
            ]
            sent = await produce(store, convs, args.rate, stop_at)
            await asyncio.sleep(1.5)
            for task in watchers:
                task.cancel()
    finally:
        stop(proc)
        log.close()
        keys = list(store.client.scan_iter(match=f"{prefix}:*", count=5000))
        for start in range(0, len(keys), 1000):
            store.client.delete(*keys[start : start + 1000])
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "conversations_on_floor": len(floor),
        "events_sent": sent,
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "sse": summary(sse),
        "polling_1s": summary(poll),
        "ratio_p95_polling_over_sse": round(summary(poll)["p95_ms"] / summary(sse)["p95_ms"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
