"""Rasa's ticket lock shared by replicas: tickets issued at the same moment by two processes never collide."""

from __future__ import annotations

import threading
import uuid

import pytest
from rasa.core.lock_store import RedisLockStore
from rasa.utils.endpoints import EndpointConfig

from plugin.lock_store import AtomicRedisLockStore
from scripts.stack import RedisEndpoint


def tickets_issued_at_once(stores: list[RedisLockStore], conversation: str, per_store: int) -> list[int]:
    start, issued, guard = threading.Barrier(len(stores) * per_store), [], threading.Lock()

    def take(store: RedisLockStore) -> None:
        start.wait()
        ticket = store.issue_ticket(conversation)
        with guard:
            issued.append(ticket)

    threads = [threading.Thread(target=take, args=(s,)) for s in stores for _ in range(per_store)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return issued


def config(endpoint: RedisEndpoint, prefix: str) -> EndpointConfig:
    return EndpointConfig(url=endpoint.host, port=endpoint.port, db=endpoint.db, key_prefix=prefix)


@pytest.fixture
def lock_prefix() -> str:
    return f"locktest{uuid.uuid4().hex[:10]}"  # Rasa takes letters and digits only


def test_two_replicas_issuing_tickets_at_once_get_distinct_ones(single_redis: RedisEndpoint, lock_prefix: str) -> None:
    replicas = [AtomicRedisLockStore(config(single_redis, lock_prefix)) for _ in range(2)]
    issued = tickets_issued_at_once(replicas, "c-1", per_store=8)
    assert sorted(issued) == list(range(16))
    lock = replicas[0].get_lock("c-1")
    assert lock is not None and len(lock.tickets) == 16
    for ticket in issued:
        replicas[ticket % 2].cleanup("c-1", ticket)
    assert replicas[1].get_lock("c-1") is None, "the last one out deletes the lock"


def test_rasa_s_own_lock_store_is_what_collides(single_redis: RedisEndpoint, lock_prefix: str) -> None:
    """Why the atomic one exists: Rasa 3.6's read-change-write hands two replicas the same ticket."""
    replicas = [
        RedisLockStore(host=single_redis.host, port=single_redis.port, key_prefix=lock_prefix) for _ in range(2)
    ]
    collided = any(
        len(set(issued)) < len(issued)
        for issued in (tickets_issued_at_once(replicas, f"c-{n}", per_store=8) for n in range(5))
    )
    assert collided, "Rasa's RedisLockStore no longer races: plugin.lock_store may be unnecessary"
