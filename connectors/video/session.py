"""One browser video chat: text turns to Rasa, and, while the customer consents, their face read each turn.

The session sees frames only (never the page's JSON) and answers through a
`send` callback bound to the serializer and the socket. The camera is an aiortc
peer connection that carries the customer's video and nothing else; a reader
task keeps pulling its frames (aiortc queues them without bound otherwise),
samples `fps` of them a second and hands each to the shared face worker,
dropping frames while it is busy. What is kept is `FaceReading`s (a time and
seven probabilities), never a frame: they are aggregated into the turn's face
estimate when the customer sends a message and discarded then, on opt-out and
at the end of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from connectors.bot import BotGateway
from connectors.video.faces import BadFrame, Busy, FaceWorker
from connectors.video.frames import (
    BotOut,
    CameraAnswer,
    CameraOff,
    CameraOffer,
    CameraStatus,
    ChatIn,
    ErrorOut,
    Hello,
    InboundFrame,
    OutboundFrame,
)
from models.emotion import EmotionEstimate
from models.logs import log_event
from plugin.metadata import TurnMetadata

if TYPE_CHECKING:
    from aiortc import MediaStreamTrack, RTCPeerConnection

    from models.face import FaceReading

logger = logging.getLogger(__name__)
CHANNEL = "video"
Send = Callable[[OutboundFrame], Awaitable[bool]]


@dataclass(frozen=True)
class VideoSettings:
    """Per-session behaviour, shared by all sessions of a channel."""

    fps: float = 4.0  # frames analysed per second (the camera sends more; the rest are read and dropped)
    turn_window_s: float = 10.0  # a turn's face estimate uses at most its last this many seconds
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs; none: host candidates (same host or LAN)
    status_interval_s: float = 0.5  # how often the page hears frames/faces counts
    silent_after_s: float = 5.0  # a camera that has sent no frame by then is reported as silent
    analysis: bool = True  # False: frames are received and decoded but never analysed (the benchmark baseline)
    drain_s: float = 10.0  # at the end, how long turns already sent may still reach Rasa
    disclosure: str | None = None  # the emotion-analysis notice the page shows (toneline.yml); None: none

    def __post_init__(self) -> None:
        if not 0 < self.fps <= 30:
            raise ValueError(f"fps must be in (0, 30], got {self.fps}")
        if self.turn_window_s <= 0:
            raise ValueError(f"turn_window_s must be positive, got {self.turn_window_s}")


class VideoSession:
    """The domain logic of one page: consent, camera, readings, turns."""

    def __init__(
        self,
        bot: BotGateway,
        faces: FaceWorker | None,
        send: Send,
        settings: VideoSettings | None = None,
        session_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        consent: Callable[[str], bool | None] | None = None,
    ) -> None:
        self.settings = settings or VideoSettings()
        self._consent = consent  # whether a customer opted out of emotion analysis (plugin.consent)
        self.session_id = session_id or f"video-{uuid.uuid4().hex[:12]}"
        self.customer_id: str | None = None
        self._bot = bot
        self._faces = faces
        self._send = send
        self._clock = clock
        self._t0 = clock()
        self._turn_start = self._t0
        self._readings: list[FaceReading] = []
        self._pc: RTCPeerConnection | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._generation = 0  # bumped when the camera stops: late results of older frames are thrown away
        self._bad_frame_logged = False
        self._last_status = 0.0
        self.frames_received = 0
        self.frames_analysed = 0
        self.frames_dropped = 0
        self.faces_found = 0
        self.turns = 0
        self._queue: asyncio.Queue[tuple[str, dict[str, Any], EmotionEstimate | None] | None] = asyncio.Queue()
        self._worker = asyncio.create_task(self._turn_loop(), name=f"video-turns-{self.session_id}")

    @property
    def camera_on(self) -> bool:
        return self._pc is not None

    @property
    def readings(self) -> int:
        """How many readings wait for the next turn (for tests and status; never their contents)."""
        return len(self._readings)

    async def handle(self, frame: InboundFrame) -> None:
        """One message from the page."""
        if isinstance(frame, Hello):
            self._hello(frame)
        elif isinstance(frame, ChatIn):
            self.turn(frame.text)
        elif isinstance(frame, CameraOffer):
            await self.start_camera(frame.sdp)
        elif isinstance(frame, CameraOff):
            await self.stop_camera("opt_out")

    def _hello(self, frame: Hello) -> None:
        if self.customer_id is not None and frame.customer_id != self.customer_id:
            log_event(logger, logging.WARNING, "video.session.second_hello", session_id=self.session_id)
            return
        self.customer_id = frame.customer_id
        log_event(
            logger, logging.INFO, "video.session.hello", session_id=self.session_id, customer_id=frame.customer_id
        )

    # --- turns ---------------------------------------------------------------------------------------------

    def turn(self, text: str) -> None:
        """A customer message: its face estimate is fixed now (the turn ends here), Rasa answers in order."""
        face = self._face_estimate()
        self.turns += 1
        self._queue.put_nowait((text, self.metadata(face), face))

    def _face_estimate(self) -> EmotionEstimate | None:
        end = self._clock()
        start = max(self._turn_start, end - self.settings.turn_window_s)
        readings = [r for r in self._readings if start <= r.at <= end]
        self._readings = [r for r in self._readings if r.at > end]
        self._turn_start = end
        if not readings or self._faces is None:
            return None
        return self._faces.aggregate(readings, round(start - self._t0, 3), round(end - self._t0, 3))

    def metadata(self, face: EmotionEstimate | None) -> dict[str, Any]:
        """The turn's metadata for Rasa, in the turn's contract (`plugin.metadata.TurnMetadata`)."""
        customer = self.customer_id or self.session_id
        estimates = () if face is None else (face,)
        disclosed = self.settings.disclosure is not None  # the page showed it: the bot does not repeat it
        return TurnMetadata(
            customer, CHANNEL, estimates=estimates, call_id=self.session_id, disclosed=disclosed
        ).to_dict()

    async def _turn_loop(self) -> None:
        # One turn at a time, in order: replies must not overtake each other.
        while (item := await self._queue.get()) is not None:
            text, metadata, face = item
            try:
                reply = await self._bot.send(self.session_id, text, metadata)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one failed turn must not end the chat
                log_event(logger, logging.ERROR, "video.turn.failed", session_id=self.session_id, error=repr(exc))
                await self._send(ErrorOut("bot_unavailable", "The assistant could not answer; please try again."))
                continue
            log_event(
                logger,
                logging.INFO,
                "video.turn.answered",
                session_id=self.session_id,
                face=face.label if face else None,
                tone=reply.tone,
                handoff=reply.handoff,
            )
            summary = None if face is None else {"label": face.label, "confidence": round(face.confidence, 6)}
            await self._send(BotOut(reply.texts, reply.tone, reply.handoff, summary))

    # --- camera --------------------------------------------------------------------------------------------

    async def start_camera(self, offer_sdp: str) -> None:
        """The customer opted in: answer their offer and read their video until they opt out or it ends."""
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

        if self._pc is not None:
            await self.stop_camera("renegotiated")
        if await self._opted_out():
            # The customer opted out of emotion analysis (on any channel): the camera is not even connected.
            await self._status("opted_out")
            return
        if self.settings.analysis and (self._faces is None or await self._faces.model() is None):
            # Without a face model there is nothing to read the camera for: it is not even connected.
            await self._status("unavailable")
            return
        config = RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in self.settings.ice_servers])
        pc = RTCPeerConnection(config)
        self._pc = pc
        generation = self._generation
        pc.on("track", lambda track: self._on_track(pc, track, generation))
        pc.on("connectionstatechange", lambda: self._on_state(pc))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            if not any(t.kind == "video" for t in pc.getTransceivers()):
                raise ValueError("the offer carries no video")
            await pc.setLocalDescription(await pc.createAnswer())  # aiortc returns once ICE gathering is complete
        except Exception as exc:  # aiortc raises ValueError and others on SDP it cannot use
            log_event(logger, logging.WARNING, "video.camera.bad_offer", session_id=self.session_id, error=repr(exc))
            await self.stop_camera("bad_offer", notify=False)
            await self._send(ErrorOut("bad_offer", "The camera could not be connected; chat goes on without it."))
            return
        if self._pc is not pc:  # opted out while the answer was being made
            return
        self._spawn(self._watch_silence(generation))
        log_event(logger, logging.INFO, "video.camera.on", session_id=self.session_id, fps=self.settings.fps)
        await self._send(CameraAnswer(pc.localDescription.sdp))
        await self._status("on")

    def _on_track(self, pc: RTCPeerConnection, track: MediaStreamTrack, generation: int) -> None:
        # Only the customer's camera is analysed: the first video track. Anything else is read and discarded
        # (an unread aiortc track queues its frames without bound).
        analysed = track.kind == "video" and not any(t.get_name().startswith("video-reader") for t in self._tasks)
        name = "video-reader" if analysed else "video-discard"
        if not analysed:
            log_event(logger, logging.WARNING, "video.camera.extra_track", session_id=self.session_id, kind=track.kind)
        self._spawn(self._read(pc, track, generation, analysed), name=f"{name}-{self.session_id}")

    def _on_state(self, pc: RTCPeerConnection) -> None:
        if pc is self._pc and pc.connectionState in ("failed", "closed"):
            self._spawn(self._lost(pc, f"connection_{pc.connectionState}"))

    async def _read(self, pc: RTCPeerConnection, track: MediaStreamTrack, generation: int, analysed: bool) -> None:
        from aiortc.mediastreams import MediaStreamError

        next_at = 0.0
        while generation == self._generation:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            if not analysed:
                continue
            now = self._clock()
            self.frames_received += 1
            if not self.settings.analysis or now < next_at or self._faces is None:
                continue
            if self._faces.busy:
                self.frames_dropped += 1
                continue
            next_at = now + 1.0 / self.settings.fps
            self._spawn(self._analyse(frame, now, generation))
        if analysed and generation == self._generation:
            await self._lost(pc, "track_ended")

    async def _analyse(self, frame: Any, at: float, generation: int) -> None:
        assert self._faces is not None
        try:
            reading = await self._faces.read(lambda: frame.to_ndarray(format="gray"), at)
        except Busy:
            self.frames_dropped += 1
            return
        except BadFrame as exc:
            self._bad_frame(str(exc))
            return
        except Exception as exc:  # the face model must never take the chat down
            self._bad_frame(repr(exc))
            return
        if generation != self._generation:
            return  # the customer opted out while this frame was in work: its result is not wanted
        self.frames_analysed += 1
        if reading is not None:
            self.add_reading(reading)
        if self._clock() - self._last_status >= self.settings.status_interval_s:
            await self._status("on")

    def add_reading(self, reading: FaceReading) -> None:
        """Keep one analysed frame's reading for the current turn (times on the session's clock)."""
        self.faces_found += 1
        self._readings.append(reading)
        oldest = reading.at - self.settings.turn_window_s  # older readings can never belong to a turn
        if self._readings[0].at < oldest:
            self._readings = [r for r in self._readings if r.at >= oldest]

    def _bad_frame(self, detail: str) -> None:
        self.frames_dropped += 1
        if not self._bad_frame_logged:  # once per session: a camera that sends bad frames sends them all
            self._bad_frame_logged = True
            log_event(logger, logging.WARNING, "video.frame.unusable", session_id=self.session_id, detail=detail)

    async def _watch_silence(self, generation: int) -> None:
        await asyncio.sleep(self.settings.silent_after_s)
        if generation == self._generation and self.frames_received == 0:
            log_event(logger, logging.WARNING, "video.camera.silent", session_id=self.session_id)
            await self._status("silent")

    async def _lost(self, pc: RTCPeerConnection, reason: str) -> None:
        """The peer went away (closed tab, network): stop reading; readings so far still count for the turn."""
        if pc is not self._pc:
            return
        self._pc = None
        self._generation += 1
        log_event(logger, logging.INFO, "video.camera.lost", session_id=self.session_id, reason=reason)
        await self._status("lost")
        await _close_pc(pc)

    async def stop_camera(self, reason: str, notify: bool = True) -> None:
        """Opt-out (or the end): analysis stops at once and every reading is dropped."""
        self._generation += 1
        self._readings.clear()
        pc, self._pc = self._pc, None
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        if pc is not None or reason == "opt_out":  # the page may have closed its peer before the opt-out arrived
            log_event(logger, logging.INFO, "video.camera.off", session_id=self.session_id, reason=reason)
        if pc is not None:
            await _close_pc(pc)
        if notify:
            await self._status("off")

    async def _opted_out(self) -> bool:
        if self._consent is None:
            return False
        customer = self.customer_id or self.session_id
        return bool(await asyncio.get_running_loop().run_in_executor(None, self._consent, customer))

    async def _status(self, state: str) -> None:
        self._last_status = self._clock()
        await self._send(CameraStatus(state, self.frames_analysed, self.faces_found))

    def _spawn(self, coro: Awaitable[Any], name: str | None = None) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log_event(
                logger, logging.ERROR, "video.task.failed", session_id=self.session_id, error=repr(task.exception())
            )

    async def close(self) -> None:
        """End of the page: the camera stops, readings go, turns already sent still reach Rasa (for the record)."""
        await self.stop_camera("closed", notify=False)
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._worker), self.settings.drain_s)
        except asyncio.TimeoutError:
            log_event(logger, logging.WARNING, "video.session.drain_timeout", session_id=self.session_id)
            self._worker.cancel()
        except Exception as exc:
            log_event(logger, logging.ERROR, "video.session.worker_failed", session_id=self.session_id, error=repr(exc))
        log_event(logger, logging.INFO, "video.session.closed", session_id=self.session_id, turns=self.turns)


async def _close_pc(pc: RTCPeerConnection) -> None:
    with contextlib.suppress(Exception):  # closing a half-dead connection may fail on the way; it is closed anyway
        await pc.close()
