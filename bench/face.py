"""Per-frame cost of the face model: detection, expression, and the ten-view average against one view.

    python -m bench.face [--threads 1] [--repeats 30]

For camera frames of 320x240 and 640x480 (a FER2013 face upscaled into a
mid-gray frame; a blank frame when ../shared/data is absent, which measures
detection only), in one process on the same threads:
- `detect`: the Haar cascade alone (`FaceDetector.largest`);
- `detect + CNN, 1 view`: what a frame would cost with the centre crop only
  (the simplest alternative);
- `detect + CNN, 10 views`: one CNN with the ten-view average (five crops,
  mirrored), the model shipped before the ensemble;
- `shipped`: `FaceEmotionModel.read_frame` as shipped (the ensemble's members,
  each on the ten views, averaged; the same as the row before for a single CNN);
and the CPU share of one video session at `--fps` frames per second.
Prints a markdown table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from functools import partial
from typing import Any, Callable

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from models.face import SIZE, FaceEmotionModel, FaceEnsemble, crop_face, to_gray
from training.data import data_root

SIZES = ((240, 320), (480, 640))


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Mean wall time in ms over `repeats` calls, after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def frame_with_face(shape: tuple[int, int], model: FaceEmotionModel) -> tuple[NDArray[Any], str]:
    """A frame of `shape` holding the first PublicTest face the detector finds there (blank without data)."""
    blank = np.full(shape, 128, np.uint8)
    path = data_root() / "faces" / "fer2013" / "PublicTest.npz"
    if not path.exists():
        return blank, "blank frame (no ../shared/data): detection cost only"
    with np.load(path) as raw:
        faces = raw["images"][:50]
    side = int(shape[0] * 0.6)
    y, x = (shape[0] - side) // 2, (shape[1] - side) // 2
    for i, face in enumerate(faces):
        frame = blank.copy()
        frame[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        if model.detector.largest(frame) is not None:
            return frame, f"FER2013 PublicTest face #{i} in a mid-gray frame"
    return blank, "no face found: detection cost only"


def one_cnn(model: FaceEmotionModel) -> FaceEmotionModel:
    """The shipped model, or the first member of a shipped ensemble, as a model of its own."""
    if not isinstance(model.net, FaceEnsemble):
        return model
    return FaceEmotionModel(model.net.members[0], model.temperature, "one member", model.detector)


def one_view(model: FaceEmotionModel, frame: NDArray[Any]) -> object:
    gray = to_gray(frame)
    box = model.detector.largest(gray)
    if box is None:
        return None
    face = crop_face(gray, box)
    x = torch.from_numpy(face.astype(np.float32) / 255.0)[None, None]
    off = (SIZE - 40) // 2
    with torch.inference_mode():
        return model.net(x[..., off : off + 40, off : off + 40])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--fps", type=float, default=4.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    model = FaceEmotionModel.load()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; threads {args.threads}; {time.strftime('%Y-%m-%d')}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    single_cnn = one_cnn(model)
    members = len(model.net.members) if isinstance(model.net, FaceEnsemble) else 1
    print(f"shipped: {model.name}, {members} CNN(s) x 10 views")
    print(
        "| frame | detect | detect + CNN, 1 view | detect + CNN, 10 views | shipped | shipped / CNN 10 views | "
        f"CPU share of one session at {args.fps:g} fps |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = []
    for shape in SIZES:
        frame, source = frame_with_face(shape, model)
        found = model.read_frame(frame, 0.0) is not None
        detect = timed(partial(model.detector.largest, to_gray(frame)), args.repeats)
        single = timed(partial(one_view, single_cnn, frame), args.repeats)
        ten = timed(partial(single_cnn.read_frame, frame, 0.0), args.repeats)
        full = timed(partial(model.read_frame, frame, 0.0), args.repeats)
        share = full * args.fps / 1000
        rows.append(
            {
                "frame": f"{shape[1]}x{shape[0]}",
                "face_found": found,
                "detect_ms": round(detect, 2),
                "one_view_ms": round(single, 2),
                "ten_views_ms": round(ten, 2),
                "shipped_ms": round(full, 2),
                "cpu_share": round(share, 3),
            }
        )
        print(
            f"| {shape[1]}x{shape[0]} | {detect:.1f} ms | {single:.1f} ms | {ten:.1f} ms | {full:.1f} ms | "
            f"{full / ten:.2f}x | {share * 100:.1f}% of one core |"
        )
    print(f"faces: {source}")
    print(json.dumps({"fps": args.fps, "threads": args.threads, "members": members, "rows": rows}))


if __name__ == "__main__":
    main()
