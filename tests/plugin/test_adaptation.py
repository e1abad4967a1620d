"""Adaptation from supervisors' corrections, on a simulated deployment (`tests/models/deployment.py`: a
customer base whose plain requests the shipped text model reads as angry or sad).

200 corrections are made through the dashboard's correction store on turns recorded in a real Redis (with
retention on, so the words are kept), exported as production exports them, and adapted by
`python -m models.adapt`; then the runtime serves the adapted weights from `adaptation.weights_dir`, and
customers of the deployment the refit never saw are read with half the errors or fewer, while every
standard evaluation set stays within 2 points of macro-F1. Rollback is `weights_dir: ""`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.emotion import LABELS
from models.text import DEFAULT_MODEL, TextEmotionModel
from plugin.corrections import CorrectionRequest, CorrectionStore, export
from plugin.nlu import served_text_weights
from plugin.redis_client import connect_async
from plugin.routing import Decision, RoutingConfig, TurnRecord, summarize
from plugin.schema import Keys
from plugin.settings import AdaptationSettings, RedisSettings, Settings, SettingsError
from plugin.state import ConversationInfo, StateStore
from scripts.stack import RedisEndpoint
from tests.conftest import shared_data
from tests.models.deployment import Turn, customers
from training import adapt

REPO = Path(__file__).resolve().parents[2]
RETAIN = AdaptationSettings(retain=True, retention_days=30)


def errors(model: TextEmotionModel, turns: list[Turn]) -> float:
    read = model.predict_batch([t.text for t in turns])
    return sum(e.label != t.label for e, t in zip(read, turns)) / len(turns)


def record_and_correct(endpoint: RedisEndpoint, prefix: str, turns: list[Turn], shipped: TextEmotionModel) -> int:
    """Each turn recorded as the shipped model read it, its words retained, and corrected by a supervisor."""
    store = StateStore(RedisSettings(url=endpoint.url, cluster=endpoint.cluster, prefix=prefix))
    requests = []
    for i, (turn, reading) in enumerate(zip(turns, shipped.predict_batch([t.text for t in turns]))):
        conversation, message = f"{turn.customer_id}-chat", f"m{i}"
        record = TurnRecord(message, time.time(), reading.label, reading.valence, reading.arousal, reading.confidence)
        info = ConversationInfo(conversation, turn.customer_id, "rest")
        store.record(info, [record], summarize([record], RoutingConfig()), Decision("neutral", False))
        store.retain(conversation, message, {"text": turn.text}, 3600)
        verdict = "right" if reading.label == turn.label else "wrong"
        requests.append(
            CorrectionRequest(conversation, message, "emotion", verdict, None if verdict == "right" else turn.label)
        )

    async def correct_all() -> int:
        async with connect_async(store.settings) as client:
            corrections = CorrectionStore(client, Keys(prefix), RETAIN)
            done = [await corrections.correct(r, "supervisor-1") for r in requests]
        return sum(d is not None for d in done)

    return asyncio.run(correct_all())


def test_corrections_are_split_by_customer_and_bad_lines_are_skipped(tmp_path: Path) -> None:
    turns = customers(40, 3, seed=5)
    split = adapt.split_by_customer([adapt.Correction(t.customer_id, t.text, t.label) for t in turns], 0.25, 35)
    assert split.train and split.held_out
    assert not {r.customer_id for r in split.train} & {r.customer_id for r in split.held_out}
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"customer_id": "a", "text": "hi", "label": "neutral"}\nnot json\n{"text": "x"}\n'
        '{"customer_id": "b", "text": "", "label": "neutral"}\n{"customer_id": "c", "text": "x", "label": "rage"}\n'
    )
    rows, skipped = adapt.read_corrections(path)
    assert [r.customer_id for r in rows] == ["a"] and skipped == 4


def test_the_head_adaptation_refits_is_the_one_the_runtime_reads() -> None:
    from models.checkpoint import Checkpoint

    checkpoint = Checkpoint.load(DEFAULT_MODEL)
    embed, _ = adapt.embedder(checkpoint)
    texts = [t.text for t in customers(5, 4, seed=9)]
    heads = adapt.predict(adapt.head_of(checkpoint), embed(texts, [()] * len(texts)))
    runtime = TextEmotionModel.load(runtime="torch").predict_batch(texts)
    assert [LABELS[int(i)] for i in heads] == [e.label for e in runtime]


def test_the_adapted_checkpoint_keeps_the_parent_s_sentiment_branch(tmp_path: Path) -> None:
    import torch

    from models.checkpoint import Checkpoint

    shipped = Checkpoint.load(DEFAULT_MODEL)
    branch = {"sentiment.head.out.weight": torch.arange(6.0).reshape(3, 2)}
    spec = {"depth": 1, "hidden": 2, "adapter": {"r": 4}}
    parent = Checkpoint(
        {**shipped.state_dict, **branch},
        shipped.labels,
        shipped.temperature,
        {**shipped.arch, "sentiment": spec},
        shipped.info,
    )
    head = adapt.head_copy(adapt.head_of(parent))
    with torch.no_grad():
        next(iter(head.parameters())).add_(1.0)  # a refit head: different from the parent's
    outcome = adapt.AdaptOutcome(counts={}, held_out={})
    written = Checkpoint.load(adapt.write(tmp_path, parent, head, DEFAULT_MODEL, "0" * 16, outcome, adapt.Options()))
    assert written.arch["sentiment"] == spec
    assert torch.equal(written.state_dict["sentiment.head.out.weight"], branch["sentiment.head.out.weight"])
    assert set(written.state_dict) == set(parent.state_dict)
    refit, before = (next(iter(adapt.head_of(c).parameters())) for c in (written, parent))
    assert not torch.equal(refit, before), "only the head is replaced"


def test_a_broken_weights_dir_stops_start_up_and_empty_is_the_shipped_model(tmp_path: Path) -> None:
    assert served_text_weights(Settings()) is None
    with pytest.raises(SettingsError, match="weights_dir"):
        AdaptationSettings(weights_dir=str(tmp_path)).text_weights()
    (tmp_path / "manifest.json").write_text('{"text": "missing.pt"}')
    with pytest.raises(SettingsError, match="missing.pt"):
        AdaptationSettings(weights_dir=str(tmp_path)).text_weights()


@pytest.mark.data
def test_200_corrections_halve_the_errors_on_new_customers_and_keep_the_standard_sets(
    redis_endpoint: RedisEndpoint, redis_prefix: str, tmp_path: Path
) -> None:
    shared_data("text", "meld")
    shipped = TextEmotionModel.load(runtime="torch")
    deployment = customers(50, 4, seed=1)  # 200 corrected turns of 50 customers
    assert record_and_correct(redis_endpoint, redis_prefix, deployment, shipped) == 200
    store = StateStore(RedisSettings(url=redis_endpoint.url, cluster=redis_endpoint.cluster, prefix=redis_prefix))
    rows = export(store.client, Keys(redis_prefix))
    assert len(rows) == 200
    corrections, out = tmp_path / "corrections.jsonl", tmp_path / "adapted"
    corrections.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "models.adapt", str(corrections), "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["corrections"] == 200 and manifest["parent"]["sha256_16"]
    held = manifest["held_out_error_rate"]
    assert held["after"] <= held["before"] / 2, held
    for name, scores in manifest["standard_macro_f1"].items():
        assert scores["before"] - scores["after"] <= 0.02, (name, scores)
    # The runtime serves the directory; customers the refit never saw are read with half the errors or fewer.
    weights = served_text_weights(Settings(adaptation=AdaptationSettings(weights_dir=str(out))))
    assert weights == str(out / "text.pt")
    adapted = TextEmotionModel.load(Path(weights), runtime="torch")
    unseen = customers(40, 3, seed=2)
    before, after = errors(shipped, unseen), errors(adapted, unseen)
    assert before >= 0.3, "the simulated deployment must be misread by the shipped model"
    assert after <= before / 2, (before, after)
    print(
        f"\nheld-out corrections {held}; unseen customers {before:.3f} -> {after:.3f}; {manifest['standard_macro_f1']}"
    )
    # A bar nothing can pass: refused, nothing written; forced, written and the manifest says so.
    strict = adapt.Options(max_drop=-1.0)
    refused = adapt.adapt(corrections, DEFAULT_MODEL, tmp_path / "strict", strict)
    assert set(refused.refused) == set(manifest["standard_macro_f1"]) and refused.written is None
    assert not (tmp_path / "strict").exists()
    strict.force = True
    forced = adapt.adapt(corrections, DEFAULT_MODEL, tmp_path / "forced", strict)
    assert forced.written is not None and json.loads((tmp_path / "forced" / "manifest.json").read_text())["forced"]
