"""The issue-18 probes beside the shipped head: richer pooling of the same pass, and a bag of words."""

from __future__ import annotations

import numpy as np
import pytest

from models.checkpoint import Checkpoint
from models.emotion import LABEL_INDEX, LABELS
from models.text import DEFAULT_MODEL, MAX_TOKENS, encode_turn, load_tokenizer, net_from_checkpoint
from training.recipes.text.alternatives import BLOCKS, class_weights, feature_set, lexical_log_probs, pooled_blocks
from training.recipes.text.head import encoder_pooled, logits_with, pooled, train_head


def test_feature_sets_normalise_each_block_and_keep_the_order() -> None:
    rng = np.random.default_rng(0)
    blocks = rng.normal(size=(5, len(BLOCKS), 384)).astype(np.float32) * np.array([1, 10, 100, 1000])[None, :, None]
    x = feature_set(blocks, ("message_l6", "context_l6"))
    assert x.shape == (5, 768)
    np.testing.assert_allclose(np.linalg.norm(x[:, :384], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(x[:, 384:], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        x[:, 384:] * np.linalg.norm(blocks[:, 2], axis=1, keepdims=True), blocks[:, 2], rtol=1e-4
    )


def test_the_first_block_is_what_the_shipped_head_reads_and_no_context_gives_a_zero_block() -> None:
    tokenizer, net = load_tokenizer(), net_from_checkpoint(Checkpoint.load(DEFAULT_MODEL))
    encoded = [
        encode_turn(tokenizer, "Why was I charged twice?", ["Hello, how can I help?"], MAX_TOKENS),
        encode_turn(tokenizer, "I'd like to check my balance.", [], MAX_TOKENS),
    ]
    blocks = pooled_blocks(net, tokenizer, encoded)
    np.testing.assert_allclose(blocks[:, 0], pooled(net, tokenizer, encoded), atol=1e-5)
    assert np.abs(blocks[0, BLOCKS.index("context_l6")]).sum() > 0
    assert not blocks[1, BLOCKS.index("context_l6")].any()
    assert not np.allclose(blocks[:, BLOCKS.index("message_l4")], blocks[:, 0], atol=1e-2)


def test_a_head_trains_on_features_wider_than_the_encoder() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, len(LABELS), size=400)
    x = rng.normal(size=(400, 768)).astype(np.float32)
    x[np.arange(400), y] += 4.0  # a learnable signal in the first columns
    state = train_head(x, y, 0.0, [15], seed=0)[15]
    assert state["net.1.weight"].shape[1] == 768
    assert (logits_with(state, x).argmax(1) == y).mean() > 0.9


def test_the_bag_of_words_learns_word_cues_and_gives_log_probabilities() -> None:
    texts = ["i am furious about this"] * 6 + ["thanks so much this is great"] * 6 + ["check my balance please"] * 6
    y = np.array([LABEL_INDEX["angry"]] * 6 + [LABEL_INDEX["happy"]] * 6 + [LABEL_INDEX["neutral"]] * 6)
    out = lexical_log_probs(texts, y, class_weights(y, 0.5), 4.0, {"probe": ["furious", "great thanks", "balance"]})
    probe = out["probe"]
    np.testing.assert_allclose(np.exp(probe).sum(1), 1.0, rtol=1e-6)
    assert [LABELS[i] for i in probe.argmax(1)] == ["angry", "happy", "neutral"]
    assert np.exp(probe[:, LABEL_INDEX["fearful"]]).max() < 1e-6  # a class the mix lacks is never said


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_class_weights_have_mean_one_and_favour_the_rare_class(power: float) -> None:
    y = np.array([0] * 90 + [3] * 10)
    w = class_weights(y, power)
    assert w.mean() == pytest.approx(1.0)
    assert w[-1] >= w[0] and (w[-1] > w[0]) == (power > 0)


def test_a_stock_encoder_read_without_context_gives_its_package_sentence_embedding() -> None:
    from models.text import MiniLMEncoder, encoder_path
    from training.recipes.text.alternatives import stock_encoder

    tokenizer, encoder = stock_encoder(encoder_path())()
    texts = ["I'd like to check my balance.", "This is the third time I've called about this!"]
    plain = encoder_pooled(encoder, tokenizer, [encode_turn(tokenizer, t, [], MAX_TOKENS) for t in texts])
    np.testing.assert_allclose(plain, MiniLMEncoder().encode(texts), atol=1e-5)
    turn = encode_turn(tokenizer, texts[1], ["You were charged twice."], MAX_TOKENS)
    in_context = encoder_pooled(encoder, tokenizer, [turn])
    assert in_context.shape == (1, 384) and not np.allclose(in_context[0], plain[1], atol=1e-3)


def test_a_tokenizer_without_segment_ids_reads_turns_the_same_way() -> None:
    """MPNet's tokenizer gives no segment ids and its model takes none: the message is still told from its context."""
    import torch
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizer

    from models.text import encoder_path

    tokenizer = MPNetTokenizer(vocab_file=str(encoder_path() / "vocab.txt"))
    assert "token_type_ids" not in tokenizer("hello")
    encoded = encode_turn(tokenizer, "Why was I charged twice?", ["Hello, how can I help?"], MAX_TOKENS)
    message = len(tokenizer("Why was I charged twice?")["input_ids"])
    assert encoded["token_type_ids"] == [0] * message + [1] * (len(encoded["input_ids"]) - message)
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    config.intermediate_size = 64
    alone = encode_turn(tokenizer, "Thanks!", [], MAX_TOKENS)
    x = encoder_pooled(MPNetModel(config).eval(), tokenizer, [encoded, alone])
    assert x.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
