"""An escalation an agent call's turn decides while Redis is down reaches Redis after a restart, with its case."""

from __future__ import annotations

import time

from plugin.routing import RoutingConfig
from plugin.settings import RedisSettings, Settings
from plugin.turn import ConversationLog, TurnService
from scripts.stack import RedisEndpoint, free_port
from tests.plugin.test_turn_service import INFO, WORDS, voice


def test_an_escalation_decided_during_an_outage_is_replayed_by_the_next_process(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    routing = RoutingConfig(sharp_confidence=0.5)  # the angry voice escalates at once
    down = Settings(redis=RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", prefix=redis_prefix), routing=routing)
    outcome = TurnService.connected(down).turn(ConversationLog(INFO), WORDS, voice(), "s:1.0")
    assert outcome is not None and outcome.decision.escalate and not outcome.stored and outcome.case_id is None
    # The process ends; the next one, with Redis reachable, replays what was held on disk.
    up = Settings(redis=RedisSettings(url=redis_endpoint.url, prefix=redis_prefix, retry_after_seconds=0.05))
    service = TurnService.connected(up)
    service.start()
    store = service.store
    assert store is not None
    deadline = time.monotonic() + 10

    def cases() -> list[object]:
        return [case for _, case in store.handoff_cases() if case["conversation_id"] == INFO.conversation_id]

    while not (store.meta(INFO.conversation_id).get("escalation_reason") and cases()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.meta(INFO.conversation_id)["escalation_reason"] == outcome.decision.reason
    assert store.previous_escalations(INFO.customer_id, "another-call") == 1
    assert len(store.escalations(INFO.conversation_id)) == 1 and len(cases()) == 1
