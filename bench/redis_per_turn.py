"""Toneline's Redis load per customer turn, on a single Redis and on a Redis Cluster, in one run.

    python -m bench.redis_per_turn [--turns 200] [--conversations 20]

Drives the policy's own write path (`StateStore.record` with the batch of recent
turns, the customer's past read before deciding) and, on the escalated turns, the
handoff case, against a redis-server started here and a local Redis Cluster (3
masters, a replica each; scripts.redis_cluster). Counts on the servers, from
INFO commandstats and INFO stats (summed over the masters of the cluster): the
commands run in all (the commands inside the Lua scripts too) and the bytes in
and out; on the client: the commands it sent (round trips; EVAL is one) and its
wall time per turn. Replication to the cluster's
replicas is not counted (it is the masters' own traffic).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from plugin.routing import Decision, RoutingConfig, TurnRecord, summarize
from plugin.settings import RedisSettings, StateSettings
from plugin.state import ConversationInfo, StateStore
from scripts.redis_cluster import LocalRedisCluster
from scripts.stack import free_port, start_redis_server, stop

SCRIPTED = {"eval", "evalsha"}


def server_counts(ports: list[int]) -> dict[str, int]:
    """Calls per command and network bytes, summed over the Redis servers on `ports`."""
    totals: dict[str, int] = {"bytes_in": 0, "bytes_out": 0}
    for port in ports:
        client = redis.Redis(port=port, decode_responses=True)
        for name, stats in client.info("commandstats").items():
            command = name.removeprefix("cmdstat_")
            totals[command] = totals.get(command, 0) + int(stats["calls"])
        net = client.info("stats")
        totals["bytes_in"] += int(net["total_net_input_bytes"])
        totals["bytes_out"] += int(net["total_net_output_bytes"])
        client.close()
    return totals


def drive(store: StateStore, turns: int, conversations: int) -> float:
    """`turns` customer turns spread over `conversations`; every fourth turn of a conversation escalates."""
    logs: dict[int, list[TurnRecord]] = {}
    started = time.perf_counter()
    for n in range(turns):
        conv = n % conversations
        log = logs.setdefault(conv, [])
        log.append(TurnRecord(f"m{n}", time.time(), "angry", -0.6, 0.7, 0.8, {"text": 0.7, "voice": 0.3}, "billing"))
        info = ConversationInfo(f"bench-conv-{conv}", f"bench-cust-{conv}", "twilio")
        store.previous_escalations(info.customer_id, info.conversation_id)
        escalate = len(log) % 4 == 0
        decision = Decision("calm", escalate, "negative" if escalate else None, "sustained" if escalate else None)
        store.record(info, log, summarize(log, RoutingConfig()), decision)
        if escalate:
            store.push_handoff({"conversation_id": info.conversation_id, "dedupe_key": f"{conv}-{len(log)}"})
    return time.perf_counter() - started


class Counted:
    """Counts the commands a client sends (its round trips), around the client's own `execute_command`."""

    def __init__(self, client: Any) -> None:
        self.sent = 0
        self._send = client.execute_command
        client.execute_command = self

    def __call__(self, *args: Any, **options: Any) -> Any:
        self.sent += 1
        return self._send(*args, **options)


def measure(name: str, settings: RedisSettings, ports: list[int], turns: int, conversations: int) -> dict[str, Any]:
    store = StateStore(settings, StateSettings())
    drive(store, conversations, conversations)  # warm-up: connections, slot map
    counted = Counted(store.client)
    before = server_counts(ports)
    seconds = drive(store, turns, conversations)
    after = server_counts(ports)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after if k not in ("info",)}
    # The INFO calls of this measurement itself are not Toneline's.
    delta.pop("info", None)
    in_scripts = sum(v for k, v in delta.items() if k in SCRIPTED)
    per_turn = {
        "round_trips": counted.sent / turns,
        "eval_calls": in_scripts / turns,
        "commands_in_all": sum(v for k, v in delta.items() if k not in ("bytes_in", "bytes_out")) / turns,
        "bytes_in": delta["bytes_in"] / turns,
        "bytes_out": delta["bytes_out"] / turns,
        "client_ms": 1000 * seconds / turns,
    }
    return {"backend": name, "turns": turns, "per_turn": {k: round(v, 2) for k, v in per_turn.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--conversations", type=int, default=20)
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="toneline-bench-redis-"))
    port = free_port()
    single = start_redis_server(port)
    cluster = LocalRedisCluster.start(base / "cluster")
    try:
        prefix = f"bench-{int(time.time())}"
        results = [
            measure(
                "single",
                RedisSettings(url=f"redis://127.0.0.1:{port}/0", prefix=prefix),
                [port],
                args.turns,
                args.conversations,
            ),
            measure(
                "cluster",
                RedisSettings(url=cluster.url, cluster=True, prefix=prefix),
                cluster.masters(),
                args.turns,
                args.conversations,
            ),
        ]
    finally:
        stop(single)
        cluster.stop()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
