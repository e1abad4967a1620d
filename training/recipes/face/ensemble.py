"""Average several trained face CNNs into one shipped model.

    python -m training.recipes.face.ensemble MEMBER.pt MEMBER.pt [...] [--out models/weights/face_cnn.pt]

Each member is a checkpoint written by `training.recipes.face.train` (same channels,
different `--seed`). All must have held out the same selection set (the same
`--split-seed`), so the ensemble's temperature is fitted on faces none of them
trained on. Prints every member's and the ensemble's PublicTest report (ten views)
and saves the ensemble, its weights stored in float16 (the nets compute in float32).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import cast

import numpy as np
import torch

from models.checkpoint import Checkpoint
from models.emotion import LABELS
from models.face import DEFAULT_WEIGHTS, FaceCNN, FaceEnsemble, net_from
from training.metrics import evaluate, expected_calibration_error
from training.recipes.calibration import fit_temperature, softmax
from training.recipes.face.train import SELECTION_SHARE, held_out_seed, load_fer, predict_logits, stratified_split


def load_members(paths: list[Path]) -> tuple[list[FaceCNN], list[Checkpoint]]:
    checkpoints = [Checkpoint.load(p) for p in paths]
    if len({held_out_seed(c.info) for c in checkpoints}) != 1:
        raise SystemExit(
            "members held out different selection sets (split seeds differ): retrain with one --split-seed"
        )
    if len({tuple(c.arch["channels"]) for c in checkpoints}) != 1 or any("members" in c.arch for c in checkpoints):
        raise SystemExit("members must be single CNNs with the same channels")
    return [cast(FaceCNN, net_from(c)) for c in checkpoints], checkpoints


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("members", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-export", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    nets, checkpoints = load_members(args.members)
    images, labels = load_fer("Training")
    test_x, test_y = load_fer("PublicTest")
    _, calib_idx = stratified_split(labels, SELECTION_SHARE, held_out_seed(checkpoints[0].info))
    calib = [predict_logits(net, images[calib_idx], views=True) for net in nets]
    test = [predict_logits(net, test_x, views=True) for net in nets]
    members = []
    for path, logits in zip(args.members, test):
        accuracy = float((logits.argmax(1) == test_y).mean())
        members.append({"file": path.name, "accuracy": round(accuracy, 4)})
        print(f"member {path.name}: PublicTest accuracy {accuracy:.4f} (ten views)")
    calib_logits, test_logits = np.mean(calib, axis=0), np.mean(test, axis=0)
    temperature = fit_temperature(calib_logits, labels[calib_idx])
    report = evaluate([LABELS[i] for i in test_y], [LABELS[i] for i in test_logits.argmax(1)])
    print(f"\n== FER2013 PublicTest ({len(test_y)} faces), ensemble of {len(nets)}, ten views ==\n{report.render()}")
    summary = {
        **report.headline(),
        "members": members,
        "calibration_set_accuracy": round(float((calib_logits.argmax(1) == labels[calib_idx]).mean()), 4),
        "temperature": round(temperature, 4),
        "ece_before": round(expected_calibration_error(softmax(test_logits), test_y), 4),
        "ece_after": round(expected_calibration_error(softmax(test_logits / temperature), test_y), 4),
    }
    print(json.dumps(summary))
    if args.no_export:
        return
    ensemble = FaceEnsemble(nets)
    state = {k: v.half() if v.is_floating_point() else v for k, v in ensemble.state_dict().items()}
    first = checkpoints[0]
    arch = {**first.arch, "members": len(nets)}
    info = {
        "version": time.strftime("%Y%m%d"),
        "data": first.info["data"],
        "epochs": first.info["epochs"],
        "precision": first.info.get("precision", "fp32"),
        "seeds": [c.info["seed"] for c in checkpoints],
        "split_seed": held_out_seed(first.info),
        "publictest": summary,
    }
    Checkpoint(state, LABELS, temperature, arch, info).save(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
