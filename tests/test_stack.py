"""`make demo`'s environment: the documented Redis split, and secrets generated unless given."""

from __future__ import annotations

import pytest

from scripts.stack import RedisEndpoint, api_url, redact, stack_env

TRACKER = RedisEndpoint.parse("redis://:pw@10.0.0.1:6379/2")


def test_toneline_state_follows_toneline_redis_url_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TONELINE_REDIS_URL", "redis://10.0.0.9:6380/0")
    monkeypatch.setenv("TONELINE_PREFIX", "acme")
    env = stack_env(TRACKER, action_port=5055)
    assert env["TONELINE_REDIS_URL"] == "redis://10.0.0.9:6380/0" and env["TONELINE_PREFIX"] == "acme"
    assert env["TONELINE_TRACKER_REDIS_HOST"] == "10.0.0.1" and env["TONELINE_TRACKER_REDIS_DB"] == "2"
    explicit = stack_env(TRACKER, action_port=5055, toneline_redis_url="redis://x:1/0", toneline_prefix="t")
    assert (explicit["TONELINE_REDIS_URL"], explicit["TONELINE_PREFIX"]) == ("redis://x:1/0", "t")


def test_without_toneline_redis_url_state_shares_rasas_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TONELINE_REDIS_URL", raising=False)
    monkeypatch.delenv("TONELINE_PREFIX", raising=False)
    env = stack_env(TRACKER, action_port=5055)
    assert env["TONELINE_REDIS_URL"] == TRACKER.url and env["TONELINE_PREFIX"] == "toneline"


def test_secrets_are_generated_per_run_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TONELINE_RASA_TOKEN", raising=False)
    monkeypatch.delenv("TONELINE_ACTION_SECRET", raising=False)
    first, second = stack_env(TRACKER, action_port=1), stack_env(TRACKER, action_port=1)
    for name in ("TONELINE_RASA_TOKEN", "TONELINE_ACTION_SECRET"):
        assert len(first[name]) >= 24 and first[name] != second[name]
    monkeypatch.setenv("TONELINE_RASA_TOKEN", "chosen-token")
    assert stack_env(TRACKER, action_port=1)["TONELINE_RASA_TOKEN"] == "chosen-token"


def test_urls_for_people_and_tools() -> None:
    assert redact(TRACKER.url) == "redis://:***@10.0.0.1:6379/2"
    assert api_url("http://h:5005", "/status", "a b") == "http://h:5005/status?token=a+b"
