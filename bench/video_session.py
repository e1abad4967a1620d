"""CPU share of one video chat session at the chosen frame rate, against the same session with analysis off.

    python -m bench.video_session [--fps 4] [--seconds 30] [--camera-fps 15] [--size 640x480]

One `VideoSession` in this process receives a customer's camera over real WebRTC
(aiortc, VP8) from a second process that plays ten FER2013 faces (from
../shared/data/faces) at webcam size and rate, as `connectors/video/simulator.py`
does in the tests. The arms run one after the other on fresh connections:
- `decode only`: the session reads and decodes every frame but analyses none
  (`VideoSettings(analysis=False)`), the cost of taking the camera at all;
- `analysis at N fps`: the channel as configured: N frames a second converted to
  gray and run through the face model (Haar detection + CNN, one worker thread).
CPU = user + system seconds of this process (all its threads: aiortc's decoder,
the face worker, the event loop) over wall seconds, after a warm-up; the camera
process is not counted. Prints a markdown table and a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import resource
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from numpy.typing import NDArray

from connectors.bot import BotGateway, BotReply
from connectors.video.faces import FaceWorker, weights_path
from connectors.video.frames import CameraAnswer, CameraOffer
from connectors.video.session import VideoSession, VideoSettings
from training.data import data_root

WARMUP_S = 3.0


class QuietBot(BotGateway):
    async def send(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotReply:
        return BotReply(("ok",))


def pictures(width: int, height: int) -> list[NDArray[Any]]:
    from connectors.video.simulator import face_frame

    path = data_root() / "faces" / "fer2013" / "PublicTest.npz"
    if not path.exists():
        raise SystemExit(f"needs FER2013 faces at {path} (set TONELINE_DATA)")
    with np.load(path) as data:
        faces = data["images"][:10]
    return [face_frame(face, width, height, side=min(width, height) * 2 // 3) for face in faces]


def camera(conn: Connection, width: int, height: int, fps: float) -> None:
    """The customer's side, in its own process: send the faces until told to stop."""

    async def run() -> None:
        from aiortc import RTCSessionDescription

        from connectors.video.simulator import PictureTrack, offer_with

        pc, sdp = await offer_with(PictureTrack(pictures(width, height), fps=fps))
        conn.send(sdp)
        answer = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
        await pc.close()

    asyncio.run(run())


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(faces: FaceWorker, settings: VideoSettings, args: argparse.Namespace) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=camera, args=(theirs, args.width, args.height, args.camera_fps), daemon=True)
    proc.start()
    answers: list[str] = []

    async def send(frame: Any) -> bool:
        if isinstance(frame, CameraAnswer):
            answers.append(frame.sdp)
        return True

    loop = asyncio.get_running_loop()
    session = VideoSession(QuietBot(), faces, send, settings)
    try:
        await session.handle(CameraOffer(await loop.run_in_executor(None, ours.recv)))
        ours.send(answers[0])
        while session.frames_received == 0:
            await asyncio.sleep(0.05)
        await asyncio.sleep(WARMUP_S)
        counts0 = (session.frames_received, session.frames_analysed, session.frames_dropped, session.faces_found)
        wall0, cpu0 = time.perf_counter(), cpu_seconds()
        await asyncio.sleep(args.seconds)
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
        counts = (session.frames_received, session.frames_analysed, session.frames_dropped, session.faces_found)
    finally:
        ours.send("stop")
        await session.close()
        proc.join(10)
    received, analysed, dropped, found = (b - a for a, b in zip(counts0, counts))
    return {
        "cpu_share": cpu / wall,
        "received_fps": received / wall,
        "analysed_fps": analysed / wall,
        "dropped": dropped,
        "faces": found,
        "analysed": analysed,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    faces = FaceWorker(weights_path({}), threads=1)
    if await faces.model() is None:
        raise SystemExit(f"needs face weights at {weights_path({})} (or TONELINE_FACE_WEIGHTS)")
    arms: dict[str, dict[str, Any]] = {}
    arms["decode only"] = await measure(faces, VideoSettings(analysis=False), args)
    for fps in args.fps:
        arms[f"analysis at {fps:g} fps"] = await measure(faces, VideoSettings(fps=fps), args)
    faces.shutdown()
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=float, nargs="+", default=[4.0], help="analysis rates to measure")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--camera-fps", type=float, default=15.0)
    parser.add_argument("--size", default="640x480", help="camera picture WIDTHxHEIGHT")
    args = parser.parse_args()
    args.width, args.height = (int(v) for v in args.size.split("x"))
    arms = asyncio.run(main_async(args))
    base = arms["decode only"]["cpu_share"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}")
    print(f"camera: {args.width}x{args.height} at {args.camera_fps:g} fps, VP8; {args.seconds:g} s per arm\n")
    print("| session | CPU (share of one core) | frames decoded/s | analysed/s | faces found | dropped busy | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, arm in arms.items():
        print(
            f"| {name} | {arm['cpu_share']:.1%} | {arm['received_fps']:.1f} | {arm['analysed_fps']:.2f} | "
            f"{arm['faces']} of {arm['analysed']} | {arm['dropped']} | {arm['cpu_share'] / base:.2f}x |"
        )
    print(json.dumps({"bench": "video_session", "args": vars(args), "arms": arms}, default=str))


if __name__ == "__main__":
    main()
