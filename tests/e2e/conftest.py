"""A running demo stack for end-to-end tests: trained model, actions, Rasa, real Redis.

Toneline's state goes to a redis-server of its own (append-only, on a free
port) so a test can stop it mid-conversation and start it again; Rasa's
tracker and lock stores stay on the suite's Redis.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

import pytest
import redis

from plugin.schema import Keys
from scripts.stack import (
    RASA_TOKEN_ENV,
    REPO,
    RedisEndpoint,
    api_url,
    ensure_model,
    free_port,
    stack_env,
    start_actions,
    start_rasa,
    start_redis_server,
    stop,
)

ARTIFACTS = REPO / "test-artifacts"


@dataclass
class StateRedis:
    """Toneline's own Redis for the e2e run, which tests may stop and restart."""

    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = start_redis_server(self.port, self.data_dir)

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None


@dataclass
class ActionServer:
    """The stack's action server, which a test may restart (its held handoff cases must survive)."""

    env: dict[str, str]
    port: int
    log: IO[str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = start_actions(self.env, self.port, self.log)

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None


@dataclass
class Stack:
    """Client side of the running stack."""

    url: str
    prefix: str
    state: StateRedis | None
    state_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    actions: ActionServer | None = None

    def say(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> list[str]:
        return [r.get("text", "") for r in self.post_turn(sender, text, metadata)]

    def post_turn(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One turn to Rasa's REST channel; the bot's messages as the channel returns them."""
        payload: dict[str, Any] = {"sender": sender, "message": text}
        if metadata is not None:
            payload["metadata"] = metadata
        replies: list[dict[str, Any]] = _post(f"{self.url}/webhooks/rest/webhook", payload)
        return replies

    @property
    def token(self) -> str:
        return self.env[RASA_TOKEN_ENV]

    def tracker(self, sender: str) -> dict[str, Any]:
        url = api_url(self.url, f"/conversations/{sender}/tracker", self.token)
        with urllib.request.urlopen(url, timeout=30) as response:
            tracker: dict[str, Any] = json.loads(response.read())
            return tracker

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.state_url, decode_responses=True)

    @property
    def keys(self) -> Keys:
        return Keys(self.prefix)

    def handoffs(self, sender: str) -> list[dict[str, Any]]:
        """The conversation's handoff cases (in its shard's stream, plugin.schema)."""
        entries = self.redis().xrange(self.keys.handoffs(self.keys.shard_of(sender)))
        cases = [json.loads(fields["data"]) for _, fields in entries]
        return [c for c in cases if c["conversation_id"] == sender]


def _post(url: str, payload: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="session")
def stack(redis_endpoint: RedisEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    model = ensure_model(quiet=True)
    state = None
    if shutil.which("redis-server"):
        state = StateRedis(free_port(), tmp_path_factory.mktemp("state-redis"))
        state.start()
    prefix = f"toneline-e2e-{uuid.uuid4().hex[:8]}"
    action_port, rasa_port = free_port(), free_port()
    env = stack_env(
        redis_endpoint,
        action_port=action_port,
        tracker_prefix=f"{prefix}-tracker",
        toneline_redis_url=state.url if state else redis_endpoint.url,
        toneline_prefix=prefix,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "e2e-stack.log"
    with log_path.open("w") as log:
        actions, rasa = ActionServer(env, action_port, log), None
        try:
            actions.start()
            rasa = start_rasa(env, model, rasa_port, log)
            url = f"http://127.0.0.1:{rasa_port}"
            yield Stack(url, prefix, state, env["TONELINE_REDIS_URL"], log_path, env, actions)
        finally:
            stop(rasa)
            actions.stop()
            if state:
                state.stop()
