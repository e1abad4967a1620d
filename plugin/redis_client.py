"""The one place a Redis client for Toneline's state is made: a single node or a Redis Cluster.

`RedisSettings.cluster` (toneline.yml's `redis.cluster`, or `TONELINE_REDIS_CLUSTER=1`)
picks `redis.cluster.RedisCluster` (`redis.asyncio.cluster.RedisCluster` for the
dashboard), with `url` naming any node (or several, comma-separated, so that a
process starting while one of them is down still finds the cluster): the client
learns the others and the slot map from it and follows a failover. Everything else in Toneline is the same code on
both: the key layout (`plugin.schema`) keeps every multi-key operation in one slot.
"""

from __future__ import annotations

from typing import Any, Union
from urllib.parse import urlparse

import redis
import redis.asyncio
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

from plugin.settings import RedisSettings

SyncClient = Union[redis.Redis, RedisCluster]
AsyncClient = Union[redis.asyncio.Redis, AsyncRedisCluster]

# Errors that mean "Redis (or the part of the cluster owning this slot) is away now", not "this request is wrong":
# a master that died and whose replica is not yet promoted answers CLUSTERDOWN or nothing at all.
UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.ReadOnlyError,
)


def is_unavailable(exc: BaseException) -> bool:
    """True for an outage, including a cluster that cannot be reached at all when the client first connects."""
    if isinstance(exc, UNAVAILABLE):
        return True
    # redis-py raises this bare class (not a RedisError) when no startup node answers or the slot map cannot be
    # read yet; a request whose keys span slots raises it too, and that is a bug, not an outage.
    return type(exc) is redis.exceptions.RedisClusterException and "same key slot" not in str(exc)


def connect(settings: RedisSettings, socket_timeout: float | None = None) -> SyncClient:
    """A synchronous client (the policy, the action server, the doors); short timeouts come from `settings`."""
    timeout = settings.socket_timeout if socket_timeout is None else socket_timeout
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "decode_responses": True,
    }
    if settings.cluster:
        # One retry pass after a refresh of the slot map: enough to follow a MOVED after failover, short enough
        # that a policy never stalls Rasa's turn (the breaker and the disk outbox cover the rest).
        first, *more = node_urls(settings.url)
        nodes = [ClusterNode(host, port) for host, port in map(_host_port, more)]
        return RedisCluster.from_url(first, startup_nodes=nodes or None, cluster_error_retry_attempts=1, **options)
    return redis.Redis.from_url(settings.url, **options)


def node_urls(url: str) -> list[str]:
    """The node URLs of a cluster setting: one, or several separated by commas. A process that starts while the
    one node it names is down (a master being replaced) cannot learn the cluster from it; naming two or three
    nodes lets it start from another."""
    return [part.strip() for part in url.split(",") if part.strip()]


def _host_port(url: str) -> tuple[str, int]:
    parts = urlparse(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def connect_async(settings: RedisSettings, socket_timeout: float = 5.0, connect_timeout: float = 2.0) -> AsyncClient:
    """An asyncio client (the dashboard): the same choice of single node or cluster."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "decode_responses": True,
    }
    if settings.cluster:
        first, *more = node_urls(settings.url)
        nodes = [AsyncClusterNode(host, port) for host, port in map(_host_port, more)]
        return AsyncRedisCluster.from_url(first, startup_nodes=nodes or None, **options)
    return redis.asyncio.Redis.from_url(settings.url, **options)


async def execute_on_key_node(client: AsyncClient, key: str, *command: Any) -> Any:
    """Run `command` (which touches `key`) where `key` lives: redis-py 4.6's asyncio cluster client cannot find
    the key of a command with a subcommand (XGROUP CREATE) and refuses to send it anywhere."""
    if isinstance(client, AsyncRedisCluster):
        await client.initialize()  # the slot map is read on first use; a no-op once it has been
        return await client.execute_command(*command, target_nodes=client.get_node_from_key(key))
    return await client.execute_command(*command)
