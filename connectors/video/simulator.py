"""A customer's camera without a browser: an aiortc peer that sends given pictures, and a .y4m file writer.

For tests and the benchmark (Chromium plays .y4m files as a fake camera). Pictures are
uint8 grayscale; `face_frame` puts a small face crop into a webcam-sized picture.
"""

from __future__ import annotations

import asyncio
import fractions
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from aiortc import RTCPeerConnection, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from numpy.typing import NDArray

BORDER = 128  # mid-gray around the face
CLOCK_RATE = 90_000  # RTP video clock


def face_frame(face: NDArray[np.uint8], width: int = 320, height: int = 240, side: int = 180) -> NDArray[np.uint8]:
    """A gray camera picture holding `face` upscaled to `side` pixels, centred on mid-gray."""
    import cv2

    frame = np.full((height, width), BORDER, np.uint8)
    side = min(side, width, height)
    y, x = (height - side) // 2, (width - side) // 2
    frame[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    return frame


class PictureTrack(VideoStreamTrack):
    """A camera that sends the given gray pictures in a loop at `fps` (nothing at all when there are none)."""

    def __init__(self, pictures: Sequence[NDArray[np.uint8]], fps: float = 10.0) -> None:
        super().__init__()
        self.pictures = list(pictures)
        self.fps = fps
        self.sent = 0
        self._began: float | None = None

    async def recv(self) -> Any:
        import av

        if self.readyState != "live":
            raise MediaStreamError
        if not self.pictures:
            await asyncio.sleep(3600)  # a camera that never delivers a picture
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._began is None:
            self._began = loop.time()
        await asyncio.sleep(max(0.0, self._began + self.sent / self.fps - loop.time()))
        picture = self.pictures[self.sent % len(self.pictures)]
        frame = av.VideoFrame.from_ndarray(picture, format="gray").reformat(format="yuv420p")
        frame.pts = int(self.sent * CLOCK_RATE / self.fps)
        frame.time_base = fractions.Fraction(1, CLOCK_RATE)
        self.sent += 1
        return frame


async def offer_with(track: PictureTrack | None) -> tuple[RTCPeerConnection, str]:
    """A client peer sending `track` (send-only) and its complete offer (aiortc gathers before returning)."""
    pc = RTCPeerConnection()
    pc.addTransceiver(track if track is not None else "video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


def write_y4m(path: Path, pictures: Sequence[NDArray[np.uint8]], fps: int = 10, hold_s: float = 0.5) -> Path:
    """An uncompressed YUV4MPEG2 (I420) file showing each gray picture for `hold_s` (Chromium's fake camera)."""
    height, width = pictures[0].shape
    chroma = np.full((height // 2) * (width // 2), 128, np.uint8).tobytes()  # gray: no colour
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for picture in pictures:
            for _ in range(max(1, round(hold_s * fps))):
                out.write(b"FRAME\n" + np.ascontiguousarray(picture).tobytes() + chroma + chroma)
    return path
