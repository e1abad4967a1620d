"""Video for the video connector tests: real FER2013 faces as camera frames (connectors/video/simulator.py).

Faces come from ../shared/data/faces (skipped with a reason when absent); the face
weights are the ones the channel would load (skipped with a reason when absent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from connectors.video.faces import weights_path
from connectors.video.simulator import PictureTrack, face_frame, offer_with, write_y4m
from tests.conftest import shared_data

__all__ = ["PictureTrack", "face_frame", "face_weights", "fer_faces", "offer_with", "write_y4m"]


def face_weights() -> Path:
    """The face weights the channel would load (TONELINE_FACE_WEIGHTS or the shipped default), or skip."""
    path = weights_path({})
    if not path.exists():
        pytest.skip(f"needs face weights at {path} (train them or set TONELINE_FACE_WEIGHTS)")
    return path


def fer_faces(count: int = 10, start: int = 0) -> list[NDArray[Any]]:
    """`count` different 48x48 faces from FER2013's public test split."""
    with np.load(shared_data("faces", "fer2013", "PublicTest.npz")) as data:
        return [np.array(face, dtype=np.uint8) for face in data["images"][start : start + count]]
