"""An escalation the AudioHook recorder decides while Redis is down reaches Redis after a restart."""

from __future__ import annotations

import time

from connectors.audiohook.recorder import EmotionRecorder
from plugin.routing import RoutingConfig
from plugin.settings import RedisSettings, Settings
from plugin.state import StateStore
from scripts.stack import RedisEndpoint, free_port
from tests.connectors.test_audiohook_recorder import INFO, hearing


def test_an_escalation_decided_during_an_outage_is_replayed_by_the_next_process(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    routing = RoutingConfig(sharp_confidence=0.5)  # the angry voice escalates at once
    down = Settings(redis=RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", prefix=redis_prefix), routing=routing)
    recorder = EmotionRecorder(down, StateStore(down.redis, down.state))
    recorded = recorder.turn(INFO, [], hearing(), "s:1.0")
    assert recorded is not None and recorded.decision.escalate and not recorded.stored
    # The process ends; the next one, with Redis reachable, replays what was held on disk.
    up = Settings(redis=RedisSettings(url=redis_endpoint.url, prefix=redis_prefix, retry_after_seconds=0.05))
    store = StateStore(up.redis, up.state)
    EmotionRecorder(up, store)
    deadline = time.monotonic() + 10
    while not store.meta(INFO.conversation_id).get("escalation_reason") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.meta(INFO.conversation_id)["escalation_reason"] == recorded.decision.reason
    assert store.previous_escalations(INFO.customer_id, "another-call") == 1
    assert len(store.escalations(INFO.conversation_id)) == 1
