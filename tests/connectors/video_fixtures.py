"""Video for the video connector tests: real FER2013 faces as camera frames, an aiortc camera peer, a .y4m file.

Faces come from ../shared/data/faces (skipped with a reason when absent); they are
upscaled into a mid-gray frame, as a face fills part of a webcam picture.
"""

from __future__ import annotations

import asyncio
import fractions
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
from aiortc import RTCPeerConnection, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError

from connectors.video.faces import weights_path
from tests.conftest import shared_data

WIDTH, HEIGHT = 320, 240
FACE_SIDE = 180
BORDER = 128  # mid-gray around the face


def face_weights() -> Path:
    """The face weights the channel would load (TONELINE_FACE_WEIGHTS or the shipped default), or skip."""
    path = weights_path({})
    if not path.exists():
        pytest.skip(f"needs face weights at {path} (train them or set TONELINE_FACE_WEIGHTS)")
    return path


def fer_faces(count: int = 10, start: int = 0) -> list[np.ndarray]:
    """`count` different 48x48 faces from FER2013's public test split."""
    with np.load(shared_data("faces", "fer2013", "PublicTest.npz")) as data:
        return [np.array(face, dtype=np.uint8) for face in data["images"][start : start + count]]


def face_frame(face: np.ndarray, width: int = WIDTH, height: int = HEIGHT, side: int = FACE_SIDE) -> np.ndarray:
    """A gray camera picture holding `face` upscaled to `side` pixels, centred on mid-gray."""
    import cv2

    frame = np.full((height, width), BORDER, np.uint8)
    side = min(side, width, height)
    y, x = (height - side) // 2, (width - side) // 2
    frame[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    return frame


class PictureTrack(VideoStreamTrack):
    """A camera that sends the given gray pictures in a loop at `fps` (nothing at all when there are none)."""

    def __init__(self, pictures: Sequence[np.ndarray], fps: float = 10.0) -> None:
        super().__init__()
        self.pictures = list(pictures)
        self.fps = fps
        self.sent = 0
        self._start: float | None = None

    async def recv(self) -> Any:
        import av

        if self.readyState != "live":
            raise MediaStreamError
        if not self.pictures:
            await asyncio.sleep(3600)  # a camera that never delivers a picture
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self.sent / self.fps
        await asyncio.sleep(max(0.0, due - loop.time()))
        picture = self.pictures[self.sent % len(self.pictures)]
        frame = av.VideoFrame.from_ndarray(picture, format="gray").reformat(format="yuv420p")
        frame.pts = int(self.sent * 90_000 / self.fps)
        frame.time_base = fractions.Fraction(1, 90_000)
        self.sent += 1
        return frame


async def offer_with(track: PictureTrack | None) -> tuple[RTCPeerConnection, str]:
    """A client peer sending `track` (send-only) and its complete offer (aiortc gathers before returning)."""
    pc = RTCPeerConnection()
    if track is not None:
        pc.addTransceiver(track, direction="sendonly")
    else:
        pc.addTransceiver("video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


def write_y4m(path: Path, pictures: Sequence[np.ndarray], fps: int = 10, hold_s: float = 0.5) -> Path:
    """An uncompressed YUV4MPEG2 (I420) file showing each gray picture for `hold_s` (for Chromium's fake camera)."""
    height, width = pictures[0].shape
    chroma = np.full((height // 2) * (width // 2), 128, np.uint8).tobytes()  # gray: no colour
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for picture in pictures:
            for _ in range(max(1, round(hold_s * fps))):
                out.write(b"FRAME\n" + np.ascontiguousarray(picture).tobytes() + chroma + chroma)
    return path
