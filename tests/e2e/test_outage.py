"""An escalation decided while Toneline's Redis is down reaches Redis once it is back, exactly once.

The policy (in Rasa) and the handoff action (in the action server) hold their
writes on disk (plugin.outbox) and replay them in the background; a restart of
the action server in between must not lose the handoff case.
"""

from __future__ import annotations

import time
import uuid
from typing import Callable

import pytest

from plugin.schema import ConvKey, CustKey
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

ANGRY = [
    "I was charged twice this month and I'm not happy about it",
    "This is ridiculous, I've called three times and nobody has fixed it!",
    "I'm absolutely furious, this is the worst service I have ever had!",
    "I am so angry right now, you people are useless!",
    "This is a disgrace, I hate dealing with you!",
    "I'm furious, fix it now!",
]


def handed_off(stack: Stack, who: str) -> bool:
    events = stack.tracker(who)["events"]
    return any(e["event"] == "action" and e.get("name") == "action_handoff" for e in events)


def escalate_during_outage(stack: Stack, who: str, between: Callable[[], None] = lambda: None) -> None:
    """Anger the bot into a handoff with Toneline's Redis stopped; `between` runs before Redis returns."""
    assert stack.state is not None
    assert stack.say(who, "Hi, I have a question about my bill")
    stack.state.stop()
    try:
        for text in ANGRY:
            assert stack.say(who, text), "the bot keeps answering while Redis is down"
            if handed_off(stack, who):
                break
        else:
            pytest.fail("no handoff while Redis was down")
        between()
    finally:
        stack.state.start()


def wait_for(check: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return check()


def assert_escalation_recorded_once(stack: Stack, who: str) -> None:
    redis, keys = stack.redis(), stack.keys
    meta_key = keys.conv(who, ConvKey.META)
    assert wait_for(lambda: bool(redis.hget(meta_key, "escalation_reason"))), "escalation state replayed"
    assert wait_for(lambda: len(stack.handoffs(who)) == 1), "handoff case replayed without further traffic"
    reason = redis.hget(meta_key, "escalation_reason")
    assert reason and redis.hget(meta_key, "escalation_rule")
    assert redis.sismember(keys.cust(who, CustKey.ESCALATED), who), "the customer's 'escalated before' mark"
    (case,) = stack.handoffs(who)
    assert case["reason"] == reason and case["customer_id"] == who
    assert stack.say(who, "ok, thanks") is not None  # traffic after recovery adds no second copy
    time.sleep(1.0)
    assert redis.llen(keys.conv(who, ConvKey.ESCALATIONS)) == 1
    assert len(stack.handoffs(who)) == 1
    events = [f for _, f in redis.xrange(keys.events(keys.shard_of(who))) if f.get("conversation_id") == who]
    assert [f["type"] for f in events].count("escalation") == 1
    turn_events = [f["data"] for f in events if f["type"] == "turn"]
    assert len(turn_events) == len(set(turn_events)) == redis.llen(keys.conv(who, ConvKey.TURNS)), "no turn twice"


def test_an_escalation_during_a_redis_outage_is_in_redis_after_recovery(stack: Stack) -> None:
    if stack.state is None:
        pytest.skip("needs `redis-server` on PATH to stop and restart Toneline's Redis")
    who = f"e2e-outage-{uuid.uuid4().hex[:8]}"
    escalate_during_outage(stack, who)
    assert_escalation_recorded_once(stack, who)
    assert "toneline.outbox.held" in stack.log_path.read_text()


def test_it_survives_an_action_server_restart_during_the_outage(stack: Stack) -> None:
    if stack.state is None:
        pytest.skip("needs `redis-server` on PATH to stop and restart Toneline's Redis")
    assert stack.actions is not None
    actions = stack.actions
    who = f"e2e-restart-{uuid.uuid4().hex[:8]}"

    def restart_actions() -> None:
        actions.stop()  # the handoff case is only on disk now
        actions.start()

    escalate_during_outage(stack, who, restart_actions)
    assert_escalation_recorded_once(stack, who)
