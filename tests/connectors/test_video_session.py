"""The video session with aiortc on both sides in-process: real FER2013 faces, the real face model.

The bot is a recording `BotGateway` (the Rasa side is covered end to end in test_video_e2e.py).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from numpy.typing import NDArray

from connectors.bot import BotGateway, BotReply
from connectors.video.faces import FaceWorker
from connectors.video.frames import CameraAnswer, CameraOff, CameraOffer, CameraStatus, ChatIn, ErrorOut, Hello
from connectors.video.session import VideoSession, VideoSettings
from tests.connectors.video_fixtures import PictureTrack, face_frame, face_weights, fer_faces, offer_with

pytestmark = pytest.mark.data


class RecordingBot(BotGateway):
    """Answers every turn with one line and keeps what it was sent."""

    def __init__(self) -> None:
        self.turns: list[tuple[str, str, dict[str, Any]]] = []
        self.answered = asyncio.Event()

    async def send(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotReply:
        self.turns.append((sender_id, text, metadata))
        self.answered.set()
        return BotReply((f"you said {text}",), "calm")

    def toneline(self, turn: int = -1) -> dict[str, Any]:
        toneline: dict[str, Any] = self.turns[turn][2]["toneline"]
        return toneline


class Page:
    """The page's end: what the server sent, and the client's peer connection."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.pc: RTCPeerConnection | None = None

    async def send(self, frame: Any) -> bool:
        self.sent.append(frame)
        if isinstance(frame, CameraAnswer) and self.pc is not None:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=frame.sdp, type="answer"))
        return True

    def statuses(self) -> list[str]:
        return [f.state for f in self.sent if isinstance(f, CameraStatus)]


@pytest.fixture(scope="module")
def worker() -> Iterator[FaceWorker]:
    faces = FaceWorker(face_weights())
    yield faces
    faces.shutdown()


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def open_camera(session: VideoSession, page: Page, track: PictureTrack | None) -> RTCPeerConnection:
    page.pc, sdp = await offer_with(track)
    await session.handle(CameraOffer(sdp))
    return page.pc


async def answered(session: VideoSession, bot: RecordingBot, text: str) -> dict[str, Any]:
    bot.answered.clear()
    await session.handle(ChatIn(text))
    await asyncio.wait_for(bot.answered.wait(), 10)
    return bot.toneline()


def faces_track() -> PictureTrack:
    return PictureTrack([face_frame(face) for face in fer_faces(10)], fps=10)


@pytest.mark.asyncio
async def test_faces_in_view_give_the_turn_a_face_estimate_and_nothing_outlives_it(worker: FaceWorker) -> None:
    bot, page = RecordingBot(), Page()
    session = VideoSession(bot, worker, page.send, VideoSettings(fps=4))
    await session.handle(Hello("c-42"))
    client = await open_camera(session, page, faces_track())
    try:
        await until(lambda: session.faces_found >= 3)
        block = await answered(session, bot, "my internet is down again")
        assert block["channel"] == "video" and block["role"] == "customer" and block["customer_id"] == "c-42"
        face = block["face"]
        assert face["modality"] == "face" and abs(sum(face["probs"].values()) - 1) < 1e-3
        assert 0 < face["confidence"] <= 1 and face["end"] > face["start"] >= 0
        assert session.readings == 0, "readings are discarded when the turn is sent"
        assert "on" in page.statuses() and any(isinstance(f, CameraStatus) and f.faces > 0 for f in page.sent)
        # Sampling: about fps analysed frames a second out of the camera's 10.
        assert session.frames_analysed <= session.frames_received
    finally:
        await session.close()
        await client.close()
    assert not session.camera_on and session.readings == 0


@pytest.mark.asyncio
async def test_opting_out_stops_analysis_at_once_and_drops_the_readings(worker: FaceWorker) -> None:
    bot, page = RecordingBot(), Page()
    session = VideoSession(bot, worker, page.send, VideoSettings(fps=4))
    client = await open_camera(session, page, faces_track())
    try:
        await until(lambda: session.faces_found >= 2)
        await session.handle(CameraOff())
        assert not session.camera_on and session.readings == 0
        analysed = session.frames_analysed
        await asyncio.sleep(1.0)
        assert session.frames_analysed == analysed, "no frame is analysed after the opt-out"
        assert "face" not in await answered(session, bot, "hello")
        assert page.statuses()[-1] == "off"
        await until(lambda: client.connectionState == "closed" or client.iceConnectionState in ("closed", "failed"))
    finally:
        await session.close()
        await client.close()


@pytest.mark.asyncio
async def test_a_peer_that_vanishes_mid_turn_keeps_the_readings_so_far(
    worker: FaceWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bot, page = RecordingBot(), Page()
    session = VideoSession(bot, worker, page.send, VideoSettings(fps=4))
    client = await open_camera(session, page, faces_track())
    try:
        await until(lambda: session.faces_found >= 2)
        await client.close()  # the tab closed: no opt-out message ever comes
        await until(lambda: not session.camera_on, timeout=15)
        assert "lost" in page.statuses()
        assert "face" in await answered(session, bot, "are you still there")
    finally:
        await session.close()
    assert "video.camera.lost" in caplog.text and "video.task.failed" not in caplog.text


@pytest.mark.asyncio
async def test_a_camera_that_sends_nothing_degrades_to_text(worker: FaceWorker) -> None:
    bot, page = RecordingBot(), Page()
    session = VideoSession(bot, worker, page.send, VideoSettings(fps=4, silent_after_s=1.0))
    client = await open_camera(session, page, PictureTrack([]))
    try:
        await until(lambda: "silent" in page.statuses(), timeout=10)
        block = await answered(session, bot, "hello")
        assert "face" not in block and session.frames_received == 0
        assert bot.turns[-1][1] == "hello"
    finally:
        await session.close()
        await client.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("pictures", "logged"),
    [
        ([np.full((30, 50), 128, np.uint8)], "video.frame.unusable"),  # odd and smaller than a face
        ([np.random.default_rng(0).integers(0, 255, (240, 320), dtype=np.uint8)], None),  # no face in view
    ],
    ids=["50x30-frames", "no-face-in-view"],
)
async def test_frames_without_a_usable_face_give_no_face_estimate(
    worker: FaceWorker, caplog: pytest.LogCaptureFixture, pictures: list[NDArray[Any]], logged: str | None
) -> None:
    caplog.set_level(logging.INFO)
    bot, page = RecordingBot(), Page()
    session = VideoSession(bot, worker, page.send, VideoSettings(fps=4))
    client = await open_camera(session, page, PictureTrack(pictures))
    try:
        await until(lambda: session.frames_received >= 8)
        await asyncio.sleep(0.5)
        assert "face" not in await answered(session, bot, "hello")
        assert session.faces_found == 0
    finally:
        await session.close()
        await client.close()
    if logged:
        assert caplog.text.count(logged) == 1, "logged once per session, not per frame"
    assert "video.task.failed" not in caplog.text


@pytest.mark.asyncio
async def test_an_unusable_offer_is_refused_and_the_chat_goes_on(worker: FaceWorker) -> None:
    bot, page = RecordingBot(), Page()
    session = VideoSession(bot, worker, page.send, VideoSettings())
    await session.handle(CameraOffer("v=0\r\nthis is not sdp\r\n"))
    assert any(isinstance(f, ErrorOut) and f.code == "bad_offer" for f in page.sent)
    assert not session.camera_on
    assert "face" not in await answered(session, bot, "hello")
    await session.close()


@pytest.mark.asyncio
async def test_without_face_weights_the_camera_is_not_connected_and_chat_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot, page = RecordingBot(), Page()
    missing = FaceWorker(tmp_path / "missing.pt")
    session = VideoSession(bot, missing, page.send, VideoSettings())
    client = await open_camera(session, page, PictureTrack([face_frame(fer_faces(1)[0])]))
    try:
        assert page.statuses() == ["unavailable"] and not session.camera_on
        assert "face" not in await answered(session, bot, "hello")
        assert "video.face_model.unavailable" in caplog.text
    finally:
        await session.close()
        await client.close()
        missing.shutdown()


class Clock:
    """A session clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reading(at: float, label: int) -> Any:
    from models.face import FaceReading

    probs = [0.02] * 7
    probs[label] = 0.88
    return FaceReading(at, tuple(probs))


@pytest.mark.asyncio
async def test_a_turn_covers_the_readings_since_the_last_turn_capped_to_the_window(worker: FaceWorker) -> None:
    await worker.model()
    bot, page, clock = RecordingBot(), Page(), Clock()
    session = VideoSession(bot, worker, page.send, VideoSettings(turn_window_s=10), clock=clock)
    for t in range(0, 30, 2):  # happy for 20 s, then angry for the last 10 s
        session.add_reading(reading(clock.now + t, 1 if t < 20 else 3))
    clock.now += 30
    assert session.readings <= 6, "readings older than the window are not even kept"
    face = (await answered(session, bot, "first"))["face"]
    assert face["label"] == "angry" and face["start"] == 20.0 and face["end"] == 30.0
    clock.now += 3  # the next turn starts where the last one ended, not 10 s back
    session.add_reading(reading(clock.now - 1, 1))
    face = (await answered(session, bot, "second"))["face"]
    assert face["label"] == "happy" and face["start"] == 30.0 and face["end"] == 33.0
    assert session.readings == 0
    clock.now += 5
    assert "face" not in await answered(session, bot, "third"), "no readings in the span: no face estimate"
    await session.close()


@pytest.mark.asyncio
async def test_a_customer_who_opted_out_never_has_the_camera_read(worker: FaceWorker) -> None:
    bot, page = RecordingBot(), Page()
    opted_out = {"cust-v": True}
    session = VideoSession(bot, worker, page.send, VideoSettings(), consent=opted_out.get)
    await session.handle(Hello("cust-v"))
    client = await open_camera(session, page, faces_track())
    try:
        assert page.statuses() == ["opted_out"] and not session.camera_on
        await asyncio.sleep(0.5)
        assert session.frames_analysed == 0 and session.readings == 0
        assert "face" not in await answered(session, bot, "hello")
    finally:
        await session.close()
        await client.close()
