"""The key layout costs a Redis Cluster no extra round trips: a turn is the same few commands on both."""

from __future__ import annotations

from bench.redis_per_turn import Counted, drive
from plugin.settings import RedisSettings
from plugin.state import StateStore
from scripts.stack import RedisEndpoint


def test_a_turn_costs_the_same_round_trips_on_a_cluster_as_on_one_redis(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    store = StateStore(RedisSettings(url=redis_endpoint.url, cluster=redis_endpoint.cluster, prefix=redis_prefix))
    drive(store, 4, 4)  # connections and, on a cluster, the slot map
    counted = Counted(store.client)
    drive(store, 40, 4)
    # Per turn: the customer's past (1), the conversation's script (1), the customer's script (1); each of the
    # four conversations of ten turns escalates at its 4th and 8th turn and writes a handoff case (1 each):
    # the same on a single Redis and on the cluster.
    assert counted.sent == 40 * 3 + 4 * 2
