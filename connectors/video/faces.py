"""The face model, shared by all video sessions of a process: loaded once, lazily, in one worker thread.

`FaceEmotionModel.read_frame` is serialised by a lock, so a pool of one thread is
all the parallelism it has; frames that arrive while it is busy are dropped, not
queued (a queue would only grow, and old frames are worth nothing to a live turn).
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from models.logs import log_event

if TYPE_CHECKING:  # models.face imports torch: only when a channel actually loads the model
    from models.emotion import EmotionEstimate
    from models.face import FaceEmotionModel, FaceReading

logger = logging.getLogger(__name__)
WEIGHTS_ENV = "TONELINE_FACE_WEIGHTS"
FrameSource = Callable[[], NDArray[np.uint8]]


def weights_path(credentials: dict[str, Any]) -> Path:
    """The face weights: the env variable named by `face_weights_env` (or TONELINE_FACE_WEIGHTS), else
    `face_weights` from credentials.yml, else the shipped default. The environment wins."""
    from models.face import DEFAULT_WEIGHTS

    env = os.environ.get(str(credentials.get("face_weights_env") or WEIGHTS_ENV), "")
    return Path(env or str(credentials.get("face_weights") or DEFAULT_WEIGHTS))


class Busy(Exception):
    """The worker is analysing another frame: this one is dropped (backpressure)."""


class BadFrame(ValueError):
    """A frame the model cannot use as an image (`models.face.FaceError`: too small, too large, wrong type)."""


class FaceWorker:
    """One face model and one thread for every session of the process."""

    def __init__(self, weights: Path | None = None, threads: int = 1) -> None:
        self.weights = weights
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toneline-face")
        self._model: FaceEmotionModel | None = None
        self._loading: asyncio.Future[FaceEmotionModel | None] | None = None
        self._busy = False
        self.unavailable = False

    @property
    def busy(self) -> bool:
        return self._busy

    async def model(self) -> FaceEmotionModel | None:
        """The loaded `FaceEmotionModel`, or None when its weights are missing or broken (chat goes on)."""
        if self._model is not None or self.unavailable:
            return self._model
        if self._loading is None:
            self._loading = asyncio.get_running_loop().run_in_executor(self._executor, self._load)
        self._model = await asyncio.shield(self._loading)
        self.unavailable = self._model is None
        return self._model

    def _load(self) -> FaceEmotionModel | None:
        from models.face import DEFAULT_WEIGHTS, FaceEmotionModel

        path = self.weights or DEFAULT_WEIGHTS
        if not path.exists():
            log_event(logger, logging.WARNING, "video.face_model.unavailable", weights=str(path), reason="missing")
            return None
        try:
            model = FaceEmotionModel.load(path, threads=self.threads)
        except Exception as exc:  # a broken file costs the face stream, never the chat
            log_event(logger, logging.ERROR, "video.face_model.unavailable", weights=str(path), reason=repr(exc))
            return None
        log_event(logger, logging.INFO, "video.face_model.loaded", weights=str(path), model=model.name)
        return model

    async def read(self, source: FrameSource, at: float) -> FaceReading | None:
        """The `FaceReading` of one frame (None without a face); raises `Busy` while another frame is in work,
        `models.face.FaceError` on a frame that is no usable image. `source` converts the frame in the worker."""
        model = await self.model()
        if model is None:
            return None
        if self._busy:
            raise Busy()
        self._busy = True
        future = self._executor.submit(_read, model, source, at)
        # Free only when the thread is done, even if the awaiting session was cancelled meanwhile.
        future.add_done_callback(self._idle)
        return await asyncio.wrap_future(future)

    def _idle(self, _: object) -> None:
        self._busy = False

    def aggregate(self, readings: Sequence[FaceReading], start: float, end: float) -> EmotionEstimate | None:
        """One face `EmotionEstimate` for a turn's readings (cheap: a mean of a few probability vectors)."""
        return None if self._model is None else self._model.aggregate(readings, start, end)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _read(model: FaceEmotionModel, source: FrameSource, at: float) -> FaceReading | None:
    from models.face import FaceError

    try:
        return model.read_frame(source(), at)
    except FaceError as exc:
        raise BadFrame(str(exc)) from None
