"""Distillation: a teacher without segment embeddings, its logits found by turn, and a student pulled towards it."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from models.emotion import LABEL_INDEX
from models.text import EmotionHead, TextEmotionNet, encoder_path, load_tokenizer, mean_pool
from training import data
from training.recipes.text import distill
from training.recipes.text.head import train_head
from training.recipes.text.teacher import Teacher
from training.recipes.text.train import Split, logits_of, train

from .test_text_train_recipe import SAMPLES, args, net

HAPPY = LABEL_INDEX["happy"]


def tiny_mpnet(directory: Path | None = None) -> torch.nn.Module:
    """A small random MPNet (no segment embeddings) over MiniLM's vocabulary; saved with that tokenizer if asked."""
    from transformers import MPNetConfig, MPNetModel

    torch.manual_seed(0)
    config = MPNetConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    model = MPNetModel(config)
    if directory is not None:
        model.save_pretrained(str(directory))
        packaged = encoder_path()
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            shutil.copy(packaged / name, directory / name)
    module: torch.nn.Module = model  # transformers' models are untyped to mypy
    return module


@pytest.fixture(scope="module")
def split() -> Split:
    return Split(load_tokenizer(), SAMPLES, 2, 32)


def test_an_encoder_without_segment_embeddings_reads_the_ids_and_pools_the_message(split: Split) -> None:
    encoder = tiny_mpnet().eval()
    model = TextEmotionNet(encoder, EmotionHead(dim=32, hidden=8)).eval()
    assert not model.segments
    tokenizer = load_tokenizer()
    b = tokenizer.pad([split.with_context[1]], return_tensors="pt")  # a turn with context: segment 1 is present
    assert int(b["token_type_ids"].max()) == 1
    with torch.no_grad():
        got = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        hidden = encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        want = model.head(mean_pool(hidden, b["attention_mask"] * (b["token_type_ids"] == 0)))
    assert torch.allclose(got, want)


def save_teacher(path: Path, keys: list[str], logits: NDArray[Any]) -> Path:
    about = np.array(json.dumps({"encoder": "test"}))
    np.savez(path, keys=np.array(keys), with_context=logits, alone=logits - 1.0, about=about)
    return path


def test_the_teacher_finds_its_logits_by_turn_not_by_position(split: Split, tmp_path: Path) -> None:
    rows = np.arange(len(split) * 7, dtype=np.float32).reshape(len(split), 7)
    # The teacher saw more turns than this student, in another order.
    keys = [*reversed(split.keys), "a turn this student never reads"]
    logits = np.concatenate([rows[::-1], np.zeros((1, 7), dtype=np.float32)])
    teacher = Teacher.load(save_teacher(tmp_path / "t.npz", keys, logits), split.keys, 0.5, 2.0)
    assert np.array_equal(teacher.with_context, rows) and np.array_equal(teacher.alone, rows - 1.0)
    assert Teacher.describe(tmp_path / "t.npz") == {"encoder": "test"}

    other = Split(load_tokenizer(), [*SAMPLES, data.TextSample("A turn the teacher never read.", "neutral")], 2, 32)
    with pytest.raises(SystemExit, match="no logits for 1 of 9"):
        Teacher.load(tmp_path / "t.npz", other.keys, 0.5, 2.0)


def happy_share(split: Split, teacher: Teacher | None) -> float:
    model = net()
    # encoder_only: no scoring, the last state stays (what is compared is the loss, not the selection)
    settings = args(epochs=10, head_lr=2e-2, lr=2e-3, encoder_only=True)
    train(model, load_tokenizer(), split, {"meld_dev": split}, settings, teacher)
    probs = torch.from_numpy(logits_of(model, load_tokenizer(), split.with_context)).softmax(-1)
    return float(probs[:, HAPPY].mean())


def test_distillation_pulls_the_student_towards_the_teacher(split: Split, tmp_path: Path) -> None:
    says_happy = np.zeros((len(split), 7), dtype=np.float32)
    says_happy[:, HAPPY] = 6.0  # a teacher that reads every turn as happy (the labels say so for one in eight)
    path = save_teacher(tmp_path / "happy.npz", split.keys, says_happy)
    labels_only = happy_share(split, None)
    distilled = happy_share(split, Teacher.load(path, split.keys, 1.0, 2.0))
    print(f"happy share: labels only {labels_only:.3f}, distilled {distilled:.3f}")
    assert labels_only < 0.35 < 0.6 < distilled


def test_a_head_refit_is_pulled_towards_its_teacher_too() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(70) % 7  # every class ten times
    x = (rng.normal(size=(70, 384)) + np.eye(7, 384)[y] * 3).astype(np.float32)  # separable by label
    says_happy = np.zeros((70, 7), dtype=np.float32)
    says_happy[:, HAPPY] = 6.0

    def happy(teacher: Teacher | None) -> float:
        state = train_head(x, y, 0.0, [30], seed=0, teacher=teacher)[30]
        head = EmotionHead(dim=384)
        head.load_state_dict(state)
        with torch.no_grad():
            return float(head.eval()(torch.from_numpy(x)).softmax(-1)[:, HAPPY].mean())

    assert happy(None) < 0.3 < 0.6 < happy(Teacher(says_happy, says_happy, 1.0, 2.0))


@pytest.mark.skipif(not (data.data_root() / "text" / "meld").is_dir(), reason="needs ../shared/data/text (MELD)")
def test_the_teacher_recipe_trains_reports_and_writes_logits_a_student_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_mpnet(tmp_path / "teacher")
    out = tmp_path / "teacher.npz"
    argv = ["distill", "--encoder", str(tmp_path / "teacher"), "--logits", str(out), "--limit", "6"]
    argv += ["--dailydialog-repeat", "2", "--epochs", "1", "--batch-size", "4", "--max-tokens", "32", "--threads", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    distill.main()

    saved = np.load(out)
    # MELD x2 and DailyDialog x2 repeat turns: each distinct turn is written once.
    assert len(saved["keys"]) == len(set(saved["keys"].tolist())) == 18
    assert saved["with_context"].shape == saved["alone"].shape == (18, 7)
    about = Teacher.describe(out)
    assert about["encoder"] == "teacher" and 0.0 <= about["selection"]["score"] <= 1.0
    assert set(about["results"]) >= {"meld_test", "dd_heldout", "goemotions_test"}

    # A student with fewer repeats reads the same turns: every one of its rows has a teacher's target.
    student_args = argparse_of(["--limit", "6", "--dailydialog-repeat", "1", "--max-tokens", "32"])
    from training.recipes.text.train import load_splits

    student_split, _, _ = load_splits(load_tokenizer(), student_args)
    teacher = Teacher.load(out, student_split.keys, 0.5, 2.0)
    assert teacher.with_context.shape == (len(student_split), 7)


def argparse_of(argv: list[str]) -> argparse.Namespace:
    from training.recipes.text.train import build_parser

    return build_parser().parse_args(argv)
