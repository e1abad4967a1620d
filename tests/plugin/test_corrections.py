"""Supervisors' corrections through the dashboard's API against a real Redis: validation, what is stored
(and what only with retention and consent), agreement per week and modality, the administrator's erasure."""

from __future__ import annotations

import json
import time
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from plugin.analytics.app import PASSWORD_ENV, create_app
from plugin.corrections import BadCorrection, CorrectionRequest, VoiceRetainer, agreement, week_of
from plugin.redis_client import connect
from plugin.routing import Decision, RoutingConfig, TurnRecord, summarize
from plugin.schema import CustKey, Keys
from plugin.settings import from_mapping
from plugin.state import ConversationInfo, StateStore
from scripts.stack import RedisEndpoint

PASSWORD = "correct horse battery staple"
MODALITIES = {"text": {"label": "angry", "confidence": 0.8}, "voice": {"label": "neutral", "confidence": 0.7}}


def settings_for(endpoint: RedisEndpoint, prefix: str, retain: bool) -> Any:
    return from_mapping(
        {
            "redis": {"url": endpoint.url, "cluster": endpoint.cluster, "prefix": prefix},
            "adaptation": {"retain": retain, "retention_days": 30},
            "analytics": {"administrators": ["supervisor"]},
        },
        env={},
    )


def seed(settings: Any, customer: str = "cust-1", conversation: str = "conv-1") -> StateStore:
    """A conversation of three turns read angry by the text and neutral by the voice, the last escalated."""
    store = StateStore(settings.redis)
    turns = [
        TurnRecord(
            f"m{i}",
            time.time(),
            "angry",
            -0.6,
            0.7,
            0.8,
            {"text": 0.7, "voice": 0.3},
            "billing_question",
            None,
            0.8,
            MODALITIES,
        )
        for i in range(3)
    ]
    store.record(
        ConversationInfo(conversation, customer, "twilio"),
        turns,
        summarize(turns, RoutingConfig()),
        Decision("calm", True, "sharp", "sharp_negative"),
    )
    # As the NLU keeps the words (naming the connector's turn ref) and the call core the voice statistics.
    store.retain(conversation, "m1", {"text": "where is my refund", "voice_ref": "ref1"}, 3600)
    VoiceRetainer(store, settings.adaptation)(conversation, "ref1", [0.1, 0.2])
    return store


@pytest_asyncio.fixture
async def make_client() -> AsyncIterator[Any]:
    clients: list[TestClient] = []

    async def build(settings: Any) -> tuple[TestClient, str]:
        client = TestClient(TestServer(create_app(settings, env={PASSWORD_ENV: PASSWORD})))
        await client.start_server()
        clients.append(client)
        await client.post("/login", data={"username": "supervisor", "password": PASSWORD}, allow_redirects=False)
        me = await (await client.get("/api/me")).json()
        assert me["admin"] is True
        return client, str(me["csrf"])

    yield build
    for client in clients:
        await client.close()


@pytest.mark.parametrize(
    "body",
    [
        "not an object",
        {"kind": "emotion", "verdict": "right"},
        {"message_id": "m1", "kind": "mood", "verdict": "right"},
        {"message_id": "m1", "kind": "emotion", "verdict": "needed"},
        {"message_id": "m1", "kind": "emotion", "verdict": "wrong"},
        {"message_id": "m1", "kind": "emotion", "verdict": "wrong", "label": "furious"},
        {"message_id": "m1" * 200, "kind": "escalation", "verdict": "needed"},
    ],
)
def test_bad_corrections_are_refused_naming_the_field(body: Any) -> None:
    with pytest.raises(BadCorrection):
        CorrectionRequest.parse("conv-1", body)


@pytest.mark.asyncio
async def test_a_correction_keeps_who_when_the_readings_and_retained_material_only_when_allowed(
    redis_endpoint: RedisEndpoint, redis_prefix: str, make_client: Any
) -> None:
    for retain in (False, True):
        settings = settings_for(redis_endpoint, f"{redis_prefix}-{retain}", retain)
        seed(settings)
        client, csrf = await make_client(settings)
        body = {"message_id": "m1", "kind": "emotion", "verdict": "wrong", "label": "neutral"}
        url = "/api/conversations/conv-1/corrections"
        assert (await client.post(url, json=body)).status == 403, "CSRF"
        before = time.time()
        response = await client.post(url, json=body, headers={"X-CSRF-Token": csrf})
        assert response.status == 200, await response.text()
        raw = connect(settings.redis).hget(
            Keys(f"{redis_prefix}-{retain}").cust("cust-1", CustKey.CORRECTIONS), "conv-1|m1|emotion"
        )
        stored = json.loads(raw)
        assert stored["by"] == "supervisor" and stored["at"] >= before and stored["label"] == "neutral"
        assert stored["model"]["label"] == "angry" and stored["modalities"] == MODALITIES
        assert stored["expires_at"] == pytest.approx(stored["at"] + 30 * 86400)
        assert ("retained" in stored) is retain
        if retain:
            assert stored["retained"] == {"text": "where is my refund", "voice_features": [0.1, 0.2]}
        assert "retained" not in await response.json(), "training material never goes back to the page"
        missing = await client.post(url, json={**body, "message_id": "m9"}, headers={"X-CSRF-Token": csrf})
        assert missing.status == 404


@pytest.mark.asyncio
async def test_an_opted_out_customer_s_words_are_never_retained(
    redis_endpoint: RedisEndpoint, redis_prefix: str, make_client: Any
) -> None:
    settings = settings_for(redis_endpoint, redis_prefix, True)
    store = seed(settings)
    store.client.hset(
        Keys(redis_prefix).cust("cust-1", CustKey.CONSENT), mapping={"opted_out": "1", "at": "1", "source": "intent"}
    )
    client, csrf = await make_client(settings)
    body = {"message_id": "m1", "kind": "emotion", "verdict": "right"}
    stored = await (
        await client.post("/api/conversations/conv-1/corrections", json=body, headers={"X-CSRF-Token": csrf})
    ).json()
    raw = json.loads(store.client.hget(Keys(redis_prefix).cust("cust-1", CustKey.CORRECTIONS), "conv-1|m1|emotion"))
    assert "retained" not in raw and stored["label"] == "angry"
    floor = await (await client.get("/api/floor")).json()
    assert floor["conversations"][0]["opted_out"] is True


@pytest.mark.asyncio
async def test_agreement_per_week_and_modality_and_escalations(
    redis_endpoint: RedisEndpoint, redis_prefix: str, make_client: Any
) -> None:
    settings = settings_for(redis_endpoint, redis_prefix, False)
    seed(settings)
    client, csrf = await make_client(settings)
    url = "/api/conversations/conv-1/corrections"
    for body in (
        {"message_id": "m0", "kind": "emotion", "verdict": "wrong", "label": "neutral"},
        {"message_id": "m1", "kind": "emotion", "verdict": "right"},
        {"message_id": "m2", "kind": "escalation", "verdict": "not_needed"},
    ):
        assert (await client.post(url, json=body, headers={"X-CSRF-Token": csrf})).status == 200
    weeks = (await (await client.get("/api/agreement")).json())["weeks"]
    assert [w["week"] for w in weeks] == [week_of(time.time())]
    by = weeks[0]["by"]
    assert by["fused"] == {"n": 2, "agreement": 0.5} and by["text"] == {"n": 2, "agreement": 0.5}
    assert by["voice"] == {"n": 2, "agreement": 0.5} and by["escalation"] == {"n": 1, "agreement": 0.0}


def test_agreement_drifts_week_by_week() -> None:
    week = 7 * 86400
    items = [{"kind": "emotion", "at": 1.8e9, "label": "angry", "model": {"label": "angry"}, "modalities": {}}]
    items += [
        {"kind": "emotion", "at": 1.8e9 + week, "label": "neutral", "model": {"label": "angry"}, "modalities": {}}
    ]
    items += [{"kind": "emotion", "at": float("nan")}, {"kind": "emotion"}]
    weeks = agreement(items)["weeks"]
    assert [w["by"]["fused"]["agreement"] for w in weeks] == [1.0, 0.0]


@pytest.mark.asyncio
async def test_only_administrators_erase_and_the_floor_forgets_the_customer(
    redis_endpoint: RedisEndpoint, redis_prefix: str, make_client: Any
) -> None:
    settings = settings_for(redis_endpoint, redis_prefix, False)
    seed(settings)
    client, csrf = await make_client(settings)
    redis_section = {"url": redis_endpoint.url, "cluster": redis_endpoint.cluster, "prefix": redis_prefix}
    plain = from_mapping({"redis": redis_section}, env={})
    other, other_csrf = TestClient(TestServer(create_app(plain, env={PASSWORD_ENV: PASSWORD}))), ""
    await other.start_server()
    try:
        await other.post("/login", data={"username": "supervisor", "password": PASSWORD}, allow_redirects=False)
        other_csrf = (await (await other.get("/api/me")).json())["csrf"]
        refused = await other.post("/api/customers/cust-1/erase", headers={"X-CSRF-Token": other_csrf})
        assert refused.status == 403
    finally:
        await other.close()
    erased = await client.post("/api/customers/cust-1/erase", headers={"X-CSRF-Token": csrf})
    report = await erased.json()
    assert erased.status == 200 and report["conversations"] == ["conv-1"]
    assert (await (await client.get("/api/floor")).json())["conversations"] == []
