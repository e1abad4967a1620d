"""Single-use records shared by replicas: a token used on one is refused on every other, also after an outage."""

from __future__ import annotations

import time

from plugin.settings import RedisSettings
from plugin.single_use import SingleUse
from plugin.state import StateStore
from scripts.stack import RedisEndpoint, free_port


def replica(endpoint: RedisEndpoint, prefix: str, url: str | None = None) -> SingleUse:
    settings = RedisSettings(url=url or endpoint.url, cluster=endpoint.cluster, prefix=prefix, retry_after_seconds=0.0)
    return SingleUse(StateStore(settings), "vonage_stream")


def test_a_token_used_on_one_replica_is_refused_on_another(redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    first, second = replica(redis_endpoint, redis_prefix), replica(redis_endpoint, redis_prefix)
    until = time.time() + 60
    assert first.first_use("sig-1", until)
    assert not second.first_use("sig-1", until), "a replay to another replica"
    assert not first.first_use("sig-1", until)
    assert second.first_use("sig-2", until)
    assert not first.first_use("sig-3", time.time() - 1), "an expired token is never accepted"


def test_what_one_replica_remembered_during_an_outage_reaches_redis_when_it_is_back(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    cut_off = replica(redis_endpoint, redis_prefix, url=nowhere)
    until = time.time() + 60
    assert cut_off.first_use("sig-1", until), "with Redis away, this process's memory stands in"
    assert not cut_off.first_use("sig-1", until), "...and refuses a replay to the same replica"
    cut_off._store = replica(redis_endpoint, redis_prefix).store  # Redis answers again (the same process)
    assert cut_off.first_use("sig-2", until)
    other = replica(redis_endpoint, redis_prefix)
    assert not other.first_use("sig-1", until), "the token used during the outage is now refused everywhere"
