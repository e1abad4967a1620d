"""Facial expression: OpenCV face detection plus a small CNN trained on FER2013.

Detection is OpenCV's frontal-face Haar cascade from `cv2.data` (ships in the
PyPI wheel, nothing is fetched). The expression classifier is an ensemble of
compact VGG-style CNNs over 48x48 grayscale faces, trained here
(`training/recipes/face/`); their weights (about 7 MB in float16) live in
`models/weights/`. Outputs follow the canonical `LABELS` directly.

Pipeline per frame: `preprocess` (grayscale, largest face, square crop with
margin, 48x48) -> `forward` (each CNN on five crops and their mirror images,
all logits averaged) -> `postprocess` (temperature, probabilities). `aggregate` turns
the per-frame probabilities inside one customer turn into one face
`EmotionEstimate`. Nothing of the face is kept: callers hold probabilities,
never frames or crops.

Load once per process (`FaceEmotionModel.load()`); the public methods are
thread-safe. Callers run them off the event loop.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from models.checkpoint import Checkpoint
from models.emotion import LABELS, EmotionEstimate, Modality, canonical_label

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "face_cnn.pt"
SIZE = 48  # FER2013 faces
CROP = 40  # the CNN sees random 40x40 crops in training, five fixed ones at inference
FACE_MARGIN = 0.1  # FER2013 crops are a little looser than the cascade's box
MAX_SIDE = 4096  # larger frames are refused, not resized: a camera does not send them


class FaceError(ValueError):
    """A frame that cannot be analysed as an image."""


def canonical_classes(names: Sequence[str]) -> list[int]:
    """Index into `LABELS` for each class name (FER2013 spelling or canonical); raises on an unknown name."""
    out = []
    for name in names:
        label = canonical_label(str(name))
        if label is None:
            raise FaceError(f"unknown expression class {name!r}")
        out.append(LABELS.index(label))
    return out


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FaceCNN(nn.Module):
    """Four VGG-style stages (two 3x3 convolutions each, batch norm), global pooling, dropout, linear."""

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 128), dropout: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, cout in enumerate(channels):
            layers += _block(cin, cout) + _block(cout, cout)
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, len(LABELS))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) float in [0, 1] -> (N, 7) logits in `LABELS` order."""
        logits: torch.Tensor = self.head(self.features((x - 0.5) / 0.25))
        return logits


class FaceEnsemble(nn.Module):
    """Several `FaceCNN`s trained apart (different seeds), their logits averaged.

    Independently trained nets err on different faces, so the mean is more accurate than any of
    them (the card has the numbers); one temperature is fitted on the averaged logits.
    """

    def __init__(self, members: Sequence[FaceCNN]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)


def build_net(arch: dict[str, Any]) -> nn.Module:
    """The network a checkpoint's `arch` describes: one `FaceCNN`, or an ensemble of `members` of them."""
    channels, dropout = tuple(arch["channels"]), float(arch.get("dropout", 0.3))
    members = int(arch.get("members", 0))  # 0: a single net, saved before ensembles existed
    if members == 0:
        return FaceCNN(channels=channels, dropout=dropout)
    return FaceEnsemble([FaceCNN(channels=channels, dropout=dropout) for _ in range(members)])


def net_from(checkpoint: Checkpoint) -> nn.Module:
    """The network of a saved checkpoint with its weights, in eval mode."""
    net = build_net(checkpoint.arch)
    # Ensembles are stored in float16 (half the bytes in git); the nets compute in float32.
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in checkpoint.state_dict.items()})
    return net.eval()


def five_crops(faces: torch.Tensor, crop: int = CROP) -> torch.Tensor:
    """(N, 1, S, S) -> (10, N, 1, crop, crop): centre and corners, each also mirrored."""
    s = faces.shape[-1]
    o = (s - crop) // 2
    corners = [(o, o), (0, 0), (0, s - crop), (s - crop, 0), (s - crop, s - crop)]
    views = [faces[..., y : y + crop, x : x + crop] for y, x in corners]
    return torch.stack(views + [v.flip(-1) for v in views])


class FaceDetector:
    """The largest frontal face in a grayscale frame (OpenCV Haar cascade, offline).

    Frames wider than `detect_width` are searched on a downscaled copy (the cascade's cost grows
    with the pixel count; a customer's face fills much of a webcam frame) and the box is mapped
    back, so the crop still comes from the full-resolution frame.
    """

    def __init__(self, min_face: int = 40, detect_width: int = 320) -> None:
        import cv2

        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"could not load the face cascade {path}")
        self.min_face = min_face
        self.detect_width = detect_width

    def largest(self, gray: NDArray[np.uint8]) -> tuple[int, int, int, int] | None:
        """(x, y, w, h) of the largest face in `gray`'s own pixels, or None."""
        import cv2

        scale = min(1.0, self.detect_width / gray.shape[1])
        small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        min_side = max(24, int(self.min_face * scale))
        faces = self._cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: int(f[2]) * int(f[3]))
        return tuple(int(round(v / scale)) for v in (x, y, w, h))  # type: ignore[return-value]


def to_gray(frame: NDArray[Any]) -> NDArray[np.uint8]:
    """uint8 grayscale of an (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA frame; raises `FaceError` otherwise."""
    import cv2

    image = np.asarray(frame)
    if image.dtype != np.uint8:
        raise FaceError(f"frames must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_RGB2GRAY if image.shape[2] == 3 else cv2.COLOR_RGBA2GRAY
        image = cv2.cvtColor(np.ascontiguousarray(image), code)
    if image.ndim != 2:
        raise FaceError(f"a frame must be (H, W), (H, W, 3) or (H, W, 4), got shape {tuple(np.shape(frame))}")
    h, w = image.shape
    if min(h, w) < SIZE or max(h, w) > MAX_SIDE:
        raise FaceError(f"frame size {w}x{h} is outside {SIZE}..{MAX_SIDE} pixels per side")
    return np.ascontiguousarray(image)


def crop_face(
    gray: NDArray[np.uint8], box: tuple[int, int, int, int], margin: float = FACE_MARGIN
) -> NDArray[np.uint8]:
    """A square 48x48 crop around `box`, widened by `margin`, clamped to the frame."""
    import cv2

    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    cx, cy = x + w / 2, y + h / 2
    x0 = int(round(min(max(cx - side / 2, 0), max(gray.shape[1] - side, 0))))
    y0 = int(round(min(max(cy - side / 2, 0), max(gray.shape[0] - side, 0))))
    face = gray[y0 : y0 + side, x0 : x0 + side]
    return np.asarray(cv2.resize(face, (SIZE, SIZE), interpolation=cv2.INTER_AREA), dtype=np.uint8)


@dataclass(frozen=True)
class FaceReading:
    """One analysed frame: its time and the expression probabilities (never the image)."""

    at: float
    probs: tuple[float, ...]


class FaceEmotionModel:
    """Frames or face crops -> expression probabilities; load once, thread-safe."""

    def __init__(self, net: nn.Module, temperature: float, name: str, detector: FaceDetector | None = None) -> None:
        self.net = net.eval()
        self.temperature = temperature
        self.name = name
        self.detector = detector or FaceDetector()
        self._lock = threading.Lock()  # torch modules and the cascade are not re-entrant

    @classmethod
    def load(cls, path: Path | None = None, threads: int | None = None) -> FaceEmotionModel:
        if threads:
            torch.set_num_threads(threads)
        checkpoint = Checkpoint.load(path or DEFAULT_WEIGHTS)
        net = net_from(checkpoint)
        name = f"face-cnn@{checkpoint.info.get('version', 'dev')}"
        return cls(net, checkpoint.temperature, name)

    def preprocess(self, frame: NDArray[Any]) -> NDArray[np.uint8] | None:
        """The 48x48 crop of the largest face in `frame`, or None when no face is in view."""
        gray = to_gray(frame)
        box = self.detector.largest(gray)
        return None if box is None else crop_face(gray, box)

    @torch.inference_mode()
    def forward(self, faces: NDArray[np.uint8]) -> NDArray[np.float32]:
        """(N, 48, 48) uint8 faces -> (N, 7) logits, averaged over ten views."""
        x = torch.from_numpy(np.ascontiguousarray(faces, dtype=np.float32) / 255.0)[:, None]
        views = five_crops(x)
        logits = self.net(views.reshape(-1, *views.shape[2:])).reshape(views.shape[0], x.shape[0], -1)
        return np.asarray(logits.mean(dim=0).numpy(), np.float32)

    def postprocess(self, logits: NDArray[np.float32]) -> NDArray[np.floating[Any]]:
        scaled = logits / self.temperature
        probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        return np.asarray(probs / probs.sum(axis=1, keepdims=True))

    def predict_faces(self, faces: NDArray[Any]) -> NDArray[np.floating[Any]]:
        """Probabilities (N, 7) for face crops already cut to 48x48 (as in FER2013)."""
        faces = np.asarray(faces)
        if faces.ndim != 3 or faces.shape[1:] != (SIZE, SIZE) or faces.dtype != np.uint8:
            raise FaceError(f"faces must be uint8 (N, {SIZE}, {SIZE}), got {faces.dtype} {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, len(LABELS)))
        with self._lock:
            return self.postprocess(self.forward(faces))

    def read_frame(self, frame: NDArray[Any], at: float) -> FaceReading | None:
        """One frame -> its reading, or None without a face. Raises `FaceError` on a frame that is not an image."""
        with self._lock:
            face = self.preprocess(frame)
            if face is None:
                return None
            probs = self.postprocess(self.forward(face[None]))[0]
        return FaceReading(at, tuple(float(p) for p in probs))

    def aggregate(
        self, readings: Sequence[FaceReading], start: float | None = None, end: float | None = None
    ) -> EmotionEstimate | None:
        """One face estimate for a turn: the mean of its frames' probabilities (None without any)."""
        if not readings:
            return None
        probs = np.mean([r.probs for r in readings], axis=0)
        # Few frames are weak evidence: confidence grows with the frames seen, up to 5.
        confidence = float(probs.max()) * min(1.0, len(readings) / 5)
        return EmotionEstimate.from_probs(
            Modality.FACE, probs, confidence=confidence, start=start, end=end, model=self.name
        )
