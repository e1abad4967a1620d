"""A running stack for the connector tests: the trained demo bot in Rasa with the Toneline channels,
its action server, a real Redis under a unique prefix, and a fake Twilio REST API."""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
import yaml

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
    stop,
)
from tests.connectors.fake_twilio import FakeTwilioRest
from tests.connectors.fake_vonage import FakeVonageRest, key_pair

ARTIFACTS = REPO / "test-artifacts"
ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "test-auth-token-" + uuid.uuid4().hex[:8]
AUDIOHOOK_API_KEY = "audiohook-key-" + uuid.uuid4().hex[:8]
AUDIOHOOK_SECRET = base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
VONAGE_SECRET = "vonage-signature-secret-" + uuid.uuid4().hex
VONAGE_APPLICATION = str(uuid.uuid4())
VONAGE_HANDOFF_NUMBER = "15550123"


@dataclass
class VoiceStack:
    """Client side of the running stack."""

    url: str
    prefix: str
    redis_url: str
    twilio: FakeTwilioRest
    vonage: FakeVonageRest
    log_path: Path
    token: str

    def tracker(self, sender: str) -> dict[str, Any]:
        url = api_url(self.url, f"/conversations/{sender}/tracker", self.token)
        with urllib.request.urlopen(url, timeout=30) as response:
            tracker: dict[str, Any] = json.loads(response.read())
            return tracker

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def audiohook_env() -> dict[str, str]:
    """The AudioHook channel's secrets, and a Toneline config that stores transcripts (so tests can read them)."""
    config = yaml.safe_load((REPO / "rasa_project" / "toneline.yml").read_text())
    config.setdefault("privacy", {})["store_transcripts"] = True
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "audiohook-toneline.yml"
    path.write_text(yaml.safe_dump(config))
    return {
        "TONELINE_AUDIOHOOK_API_KEY": AUDIOHOOK_API_KEY,
        "TONELINE_AUDIOHOOK_CLIENT_SECRET": AUDIOHOOK_SECRET,
        "TONELINE_AUDIOHOOK_CONFIG": str(path),
    }


def vonage_env(api: FakeVonageRest, private_key: str, public_url: str) -> dict[str, str]:
    """The Vonage channel's secrets (a key pair made for this run) and the fake Voice API."""
    ARTIFACTS.mkdir(exist_ok=True)
    key_path = ARTIFACTS / "vonage-test-application.key"  # a throwaway key, generated per run
    key_path.write_text(private_key)
    key_path.chmod(0o600)
    return {
        "VONAGE_SIGNATURE_SECRET": VONAGE_SECRET,
        "VONAGE_APPLICATION_ID": VONAGE_APPLICATION,
        "VONAGE_PRIVATE_KEY_PATH": str(key_path),
        "TONELINE_VONAGE_PUBLIC_URL": public_url,
        "TONELINE_VONAGE_API_BASE": api.url,
        "TONELINE_VONAGE_HANDOFF_NUMBER": VONAGE_HANDOFF_NUMBER,
    }


# One stack for the whole connector package: starting Rasa costs ~45 s on two cores.
@pytest.fixture(scope="package")
def voice_stack(redis_endpoint: RedisEndpoint) -> Iterator[VoiceStack]:
    model = ensure_model(quiet=True)
    twilio = FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN, port=free_port())
    twilio.start()
    private_key, public_key = key_pair()
    vonage = FakeVonageRest(VONAGE_APPLICATION, public_key, port=free_port())
    vonage.start()
    prefix = f"toneline-voice-{uuid.uuid4().hex[:8]}"
    action_port, rasa_port = free_port(), free_port()
    env = stack_env(redis_endpoint, action_port=action_port, tracker_prefix=f"{prefix}-tracker", toneline_prefix=prefix)
    env.update(
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TONELINE_TWILIO_API_BASE=twilio.url,
        TONELINE_TWILIO_PUBLIC_URL=f"http://127.0.0.1:{rasa_port}",
        OMP_NUM_THREADS="1",
    )
    env.update(audiohook_env())
    env.update(vonage_env(vonage, private_key, f"http://127.0.0.1:{rasa_port}"))
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "connectors-stack.log"
    with log_path.open("w") as log:
        actions = rasa = None
        try:
            actions = start_actions(env, action_port, log)
            rasa = start_rasa(env, model, rasa_port, log)
            url = f"http://127.0.0.1:{rasa_port}"
            token = env[RASA_TOKEN_ENV]
            yield VoiceStack(url, prefix, env["TONELINE_REDIS_URL"], twilio, vonage, log_path, token)
        finally:
            stop(rasa, actions)
            twilio.stop()
            vonage.stop()
            client = redis.Redis.from_url(redis_endpoint.url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
