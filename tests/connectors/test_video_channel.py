"""The video channel's socket handling: bad messages answered and survived, oversized ones closed, drops cleaned up.

Runs `VideoInput.serve` on an in-memory WebSocket (the duck type Sanic's has: recv, send, close).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from connectors.bot import BotGateway, BotReply
from connectors.transport import TOO_BIG, WebSocketTransport
from connectors.video.channel import VideoInput, settings_from
from connectors.video.faces import FaceWorker
from connectors.video.session import VideoSettings


class MemorySocket:
    """A server-side WebSocket fed from a queue; `None` in the queue is the peer going away."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.outbox: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    async def recv(self) -> str | bytes | None:
        return await self.inbox.get()

    async def send(self, data: str) -> None:
        self.outbox.append(json.loads(data))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)

    def types(self) -> list[str]:
        return [m["type"] for m in self.outbox]


class EchoBot(BotGateway):
    def __init__(self) -> None:
        self.metadata: list[dict[str, Any]] = []

    async def send(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotReply:
        self.metadata.append(metadata)
        return BotReply((f"echo {text}",))


async def serve(messages: list[str | bytes | None], tmp_path: Path, replies: int = 0) -> tuple[MemorySocket, EchoBot]:
    """Feed `messages`, wait for `replies` bot messages, then drop the connection."""
    channel = VideoInput(VideoSettings(), FaceWorker(tmp_path / "no-weights.pt"))
    socket, bot = MemorySocket(), EchoBot()
    for message in messages:
        socket.inbox.put_nowait(message)
    served = asyncio.ensure_future(channel.serve(WebSocketTransport(socket, "video"), bot))
    for _ in range(200):
        if served.done() or socket.types().count("bot") >= replies:
            break
        await asyncio.sleep(0.05)
    socket.inbox.put_nowait(None)
    await asyncio.wait_for(served, 10)
    channel.faces.shutdown()
    return socket, bot


def chat(text: str) -> str:
    return json.dumps({"type": "chat", "text": text})


@pytest.mark.asyncio
async def test_bad_messages_get_an_error_and_the_chat_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    hello = '{"type":"hello","customer_id":"c-7"}'
    socket, bot = await serve([hello, "{oops", '{"type":"dance"}', b"\x00", chat("hello")], tmp_path, replies=1)
    assert socket.types()[0] == "ready" and socket.outbox[0]["face"] is False
    errors = [m["code"] for m in socket.outbox if m["type"] == "error"]
    assert errors == ["malformed_json", "unknown_type", "unexpected_binary"]
    reply = {"type": "bot", "texts": ["echo hello"], "tone": "neutral", "handoff": False, "face": None}
    assert socket.outbox[-1] == reply
    assert bot.metadata[0]["toneline"]["customer_id"] == "c-7" and "face" not in bot.metadata[0]["toneline"]
    assert caplog.text.count("video.ws.bad_message") == 3 and "{oops" not in caplog.text.split("detail=")[0]


@pytest.mark.asyncio
async def test_an_oversized_message_closes_the_socket_with_a_reason(tmp_path: Path) -> None:
    socket, bot = await serve([chat("x" * (70 * 1024)), chat("never read")], tmp_path)
    assert socket.closed == (TOO_BIG, "oversized_message")
    assert bot.metadata == []


@pytest.mark.asyncio
async def test_a_dropped_socket_ends_the_session_and_rasa_still_gets_what_was_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    socket, bot = await serve([chat("one"), None], tmp_path)
    assert len(bot.metadata) == 1 and "bot" not in socket.types()  # the page was gone before the reply
    assert "video.ws.disconnected" in caplog.text and "video.session.closed" in caplog.text


def test_settings_come_from_credentials() -> None:
    settings = settings_from({"fps": 2, "turn_window_s": "6", "ice_servers": ["stun:stun.example.com:3478"]})
    assert (settings.fps, settings.turn_window_s, settings.ice_servers) == (2.0, 6.0, ("stun:stun.example.com:3478",))
    with pytest.raises(ValueError, match="fps"):
        settings_from({"fps": "fast"})
    with pytest.raises(ValueError, match="fps"):
        settings_from({"fps": 0.0001 - 1})


def test_face_weights_env_wins_over_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from connectors.video.faces import weights_path

    monkeypatch.setenv("MY_FACE", str(tmp_path / "env.pt"))
    assert weights_path({"face_weights_env": "MY_FACE", "face_weights": "creds.pt"}) == tmp_path / "env.pt"
    monkeypatch.delenv("MY_FACE")
    assert weights_path({"face_weights_env": "MY_FACE", "face_weights": "creds.pt"}) == Path("creds.pt")
