"""The dashboard's API against a real Redis: auth on every route, CSRF, parameters, data."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import AsyncIterator, cast

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from plugin.analytics.app import PASSWORD_ENV, create_app
from plugin.analytics.auth import Supervisors, hash_password, verify_password
from plugin.analytics.data import risk, trend_arrow
from plugin.routing import Decision, RoutingConfig, TurnRecord, summarize
from plugin.settings import from_mapping
from plugin.state import ConversationInfo, StateStore
from scripts.stack import RedisEndpoint

PASSWORD = "correct horse battery staple"


def seed(endpoint: RedisEndpoint, prefix: str) -> str:
    """Two conversations, one escalated with a handoff case; returns the case id."""
    settings = from_mapping({"redis": {"url": endpoint.url, "cluster": endpoint.cluster, "prefix": prefix}}, env={})
    store = StateStore(settings.redis)
    now = time.time()
    for conv, valence, escalate in (("calm", 0.4, False), ("angry", -0.7, True)):
        turns = [
            TurnRecord(
                f"{conv}{i}",
                now - 60 + i,
                "angry" if valence < 0 else "happy",
                valence,
                0.8,
                0.9,
                {"text": 0.6, "voice": 0.4},
                "billing_question",
                "secret words",
            )
            for i in range(3)
        ]
        decision = Decision("calm", escalate, "sharp" if escalate else None, "sharp_negative" if escalate else None)
        store.record(
            ConversationInfo(conv, f"cust-{conv}", "twilio"), turns, summarize(turns, RoutingConfig()), decision
        )
    case = {
        "conversation_id": "angry",
        "customer_id": "cust-angry",
        "channel": "twilio",
        "reason": "sharp",
        "created_at": now,
        "emotion_timeline": [],
        "transcript": [],
    }
    return store.push_handoff(case)


@pytest_asyncio.fixture
async def client(redis_endpoint: RedisEndpoint, redis_prefix: str) -> AsyncIterator[TestClient]:
    redis = {"url": redis_endpoint.url, "cluster": redis_endpoint.cluster, "prefix": redis_prefix}
    settings = from_mapping({"redis": redis}, env={})
    app = create_app(settings, env={PASSWORD_ENV: PASSWORD})
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def signed_in(client: TestClient) -> str:
    response = await client.post("/login", data={"username": "supervisor", "password": PASSWORD}, allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/"
    me = await (await client.get("/api/me")).json()
    return str(me["csrf"])


def test_password_hashes_verify_and_reject() -> None:
    encoded = hash_password("s3cret", iterations=1000)
    assert encoded.startswith("pbkdf2_sha256$1000$") and "s3cret" not in encoded
    assert verify_password("s3cret", encoded) and not verify_password("S3cret", encoded)
    assert not verify_password("s3cret", "garbage") and not verify_password("x", "md5$1$2$3")
    assert not Supervisors({"ann": encoded}).check("bob", "s3cret")


def test_risk_ranks_unhappy_agitated_conversations_first() -> None:
    calm = risk({"ewma_valence": 0.3, "ewma_arousal": 0.3, "negative_streak": 0}, {"valence": 0.3}, False)
    upset = risk({"ewma_valence": -0.6, "ewma_arousal": 0.8, "negative_streak": 3}, {"valence": -0.7}, False)
    handled = risk({"ewma_valence": -0.6, "ewma_arousal": 0.8, "negative_streak": 3}, {"valence": -0.7}, True)
    assert upset > handled > calm == 0
    assert [trend_arrow(t) for t in (0.2, -0.2, 0.01)] == ["up", "down", "flat"]


@pytest.mark.asyncio
async def test_every_route_refuses_a_stranger(client: TestClient) -> None:
    open_paths = {"/login", "/healthz", "/static/{name}"}
    for resource in cast(TestServer, client.server).app.router.resources():
        path = resource.canonical
        if path in open_paths:
            continue
        concrete = re.sub(r"\{[^}]+\}", "1-0", path)
        for method in {route.method for route in resource}:
            response = await client.request(method, concrete, allow_redirects=False)
            assert response.status in (302, 401), f"{method} {path} answered {response.status}"
            assert "conversation" not in await response.text()
    assert (await client.get("/static/vendor/chart-4.4.9.umd.min.js", allow_redirects=False)).status == 302


@pytest.mark.asyncio
async def test_wrong_password_and_cross_site_login_are_refused(client: TestClient) -> None:
    wrong = await client.post("/login", data={"username": "supervisor", "password": "nope"}, allow_redirects=False)
    assert wrong.headers["Location"] == "/login?failed=1"
    cross = await client.post(
        "/login",
        data={"username": "supervisor", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert cross.status == 403
    assert (await client.get("/api/floor", allow_redirects=False)).status == 401


@pytest.mark.asyncio
async def test_posts_need_the_csrf_token(client: TestClient, redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    case_id = seed(redis_endpoint, redis_prefix)
    csrf = await signed_in(client)
    assert (await client.post(f"/api/escalations/{case_id}/claim")).status == 403
    assert (await client.post(f"/api/escalations/{case_id}/claim", headers={"X-CSRF-Token": "forged"})).status == 403
    claimed = await client.post(f"/api/escalations/{case_id}/claim", headers={"X-CSRF-Token": csrf})
    assert claimed.status == 200 and (await claimed.json())["claim"]["agent"] == "supervisor"
    again = await client.post(f"/api/escalations/{case_id}/claim", headers={"X-CSRF-Token": csrf})
    assert again.status == 200, "claiming your own case again is idempotent"
    missing = await client.post("/api/escalations/s00-1-0/claim", headers={"X-CSRF-Token": csrf})
    assert missing.status == 404
    await client.post("/api/logout", headers={"X-CSRF-Token": csrf})
    assert (await client.get("/api/floor", allow_redirects=False)).status == 401


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/escalations?status=closed", "status"),
        ("/api/escalations?limit=abc", "limit"),
        ("/api/escalations?limit=0", "limit"),
        ("/api/history?from=yesterday", "from"),
        ("/api/history?to=2026-13-40", "to"),
        ("/api/history?from=2026-11-23T10:00Z&to=2026-11-22T10:00Z", "from"),
        ("/api/history?from=2020-01-01&to=2026-01-01", "from"),
        ("/api/history.csv?to=x", "to"),
        ("/api/escalations/drop%20table/claim", "case_id"),
        ("/api/conversations/" + "x" * 300, "conversation_id"),
    ],
)
async def test_bad_parameters_get_400_naming_them(client: TestClient, path: str, name: str) -> None:
    csrf = await signed_in(client)
    method = "POST" if path.endswith("/claim") else "GET"
    response = await client.request(method, path, headers={"X-CSRF-Token": csrf})
    assert response.status == 400, await response.text()
    assert name in (await response.json())["error"]


@pytest.mark.asyncio
async def test_floor_conversation_and_history(
    client: TestClient, redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    seed(redis_endpoint, redis_prefix)
    await signed_in(client)
    floor = (await (await client.get("/api/floor")).json())["conversations"]
    assert [row["conversation_id"] for row in floor] == ["angry", "calm"], "riskiest first"
    angry = next(r for r in floor if r["conversation_id"] == "angry")
    assert angry["escalated"] and angry["label"] == "angry" and angry["negative_streak"] == 3
    detail = await (await client.get("/api/conversations/angry")).json()
    assert len(detail["turns"]) == 3 and detail["turns"][0]["weights"] == {"text": 0.6, "voice": 0.4}
    assert "text" not in detail["turns"][0], "transcripts are hidden unless configured"
    assert detail["escalations"][0]["reason"] == "sharp"
    assert (await client.get("/api/conversations/nobody")).status == 404

    for _ in range(50):  # the app's rollup task consumes the event stream in the background
        history = await (await client.get("/api/history")).json()
        if history["total"]["turns"] == 6:
            break
        await asyncio.sleep(0.1)
    assert history["total"] == {
        "turns": 6,
        "negative_turns": 3,
        "negative_share": 0.5,
        "mean_valence": pytest.approx(-0.15),
        "escalations": 1,
    }
    assert history["channels"]["twilio"]["turns"] == 6 and history["labels"] == {"angry": 3, "happy": 3}
    assert sum(h["outcomes"]["escalated"] for h in history["hours"]) == 1
    csv_text = await (await client.get("/api/history.csv")).text()
    assert csv_text.splitlines()[0].startswith("hour,conversations,turns") and ",6," in csv_text


@pytest.mark.asyncio
async def test_live_stream_sends_a_snapshot_then_changes(
    client: TestClient, redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    await signed_in(client)
    response = await client.get("/api/live")
    first = json.loads((await response.content.readline()).decode().removeprefix("data: "))
    assert first["type"] == "snapshot"
    seed(redis_endpoint, redis_prefix)
    seen: set[str] = set()
    while len(seen) < 2:
        line = (await asyncio.wait_for(response.content.readline(), timeout=10)).decode()
        if line.startswith("data: "):
            message = json.loads(line.removeprefix("data: "))
            if message["type"] == "conversation":
                seen.add(message["row"]["conversation_id"])
    assert seen == {"angry", "calm"}
    response.close()
