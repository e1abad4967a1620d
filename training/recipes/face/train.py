"""Train the facial expression CNN on FER2013.

    python -m training.recipes.face.train [--epochs 40] [--threads 1] [--precision bf16]
                                        [--seed 13] [--teacher ENSEMBLE.pt]
                                        [--out models/weights/face_cnn.pt]

Data (from $TONELINE_DATA, default ../shared/data): faces/fer2013/Training.npz,
split 90/10 (stratified, seeded) into training and a calibration/selection set;
PublicTest.npz is the reported held-out set, never tuned on. Labels map to the
canonical set (angry, disgusted, fearful, happy, sad, surprised, neutral).

Augmentation (on the fly, per batch): random 40x40 crops of the 48x48 faces,
horizontal flips, small rotations and scalings, brightness/contrast jitter and
random erasing. AdamW with a one-cycle schedule, label smoothing, the epoch
with the best calibration-set accuracy is kept, then a temperature is fitted on
that set. Inference averages ten views (five crops, mirrored).

`--teacher` distils from a trained net or ensemble (`training.recipes.face.ensemble`):
the loss mixes the labels' cross-entropy with the KL divergence to the teacher's
softened logits on the same augmented views (`--kd-weight`, `--kd-temperature`).

`--precision bf16` trains under bfloat16 autocast (weights and optimiser stay
float32, so the exported file and inference are unchanged). On CPUs with AMX or
AVX512-BF16 it roughly halves the cost of an epoch; elsewhere it is slower than
float32, which stays the default. The network is kept channels-last either way
(oneDNN's fast layout for these convolutions).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from tqdm import tqdm

from models.checkpoint import Checkpoint
from models.emotion import LABELS
from models.face import CROP, DEFAULT_WEIGHTS, FaceCNN, canonical_classes, five_crops, net_from
from training.data import data_root
from training.metrics import evaluate, expected_calibration_error
from training.recipes.calibration import fit_temperature, softmax

RUNS = Path(os.environ.get("TONELINE_CACHE", Path.home() / ".cache" / "toneline")) / "face-runs"
SELECTION_SHARE = 0.1  # of Training, held out for model selection and the temperature


def load_fer(split: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """(images (N, 48, 48) uint8, canonical label indices (N,)) of a FER2013 split."""
    path = data_root() / "faces" / "fer2013" / f"{split}.npz"
    with np.load(path, allow_pickle=False) as raw:
        mapping = np.array(canonical_classes([str(c) for c in raw["classes"]]))
        return raw["images"].astype(np.uint8), mapping[raw["labels"].astype(int)]


def stratified_split(y: NDArray[Any], fraction: float, seed: int) -> tuple[NDArray[Any], NDArray[Any]]:
    rng = np.random.default_rng(seed)
    held = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[: math.ceil(fraction * (y == c).sum())] for c in np.unique(y)]
    )
    mask = np.zeros(len(y), bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(N, 1, 48, 48) in [0, 1] -> (N, 1, 40, 40) augmented views."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * math.radians(20)
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    flip = torch.rand(n, generator=generator) < 0.5
    theta[flip, 0, :] *= -1
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = nn.functional.grid_sample(x, grid, padding_mode="border", align_corners=False)
    top, left = torch.randint(0, x.shape[-1] - CROP + 1, (2,), generator=generator).tolist()
    x = x[..., top : top + CROP, left : left + CROP]
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.4
    bias = (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.2
    x = ((x - 0.5) * gain + 0.5 + bias).clamp(0, 1)
    erase = torch.rand(n, generator=generator) < 0.25
    if erase.any():
        y0, x0 = torch.randint(0, CROP - 12, (2,), generator=generator).tolist()
        x[erase, :, y0 : y0 + 12, x0 : x0 + 12] = torch.rand(1, generator=generator).item()
    return x


def as_input(images: NDArray[Any]) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]


@torch.inference_mode()
def predict_logits(net: FaceCNN, images: NDArray[Any], views: bool, batch: int = 512) -> NDArray[Any]:
    """Logits of the centre crop, or the mean over the ten inference views."""
    net.eval()
    out = []
    for i in range(0, len(images), batch):
        x = as_input(images[i : i + batch])
        v = five_crops(x) if views else five_crops(x)[:1]
        out.append(net(v.reshape(-1, *v.shape[2:])).reshape(v.shape[0], x.shape[0], -1).mean(0))
    return torch.cat(out).numpy()


def held_out_seed(info: dict[str, Any]) -> int:
    """The `--split-seed` whose selection faces a checkpoint (its `info`) never trained on."""
    # Weights from before --split-seed split with --seed.
    for key in ("split_seed", "seed"):
        if key in info:
            return int(info[key])
    raise SystemExit("the face checkpoint names no split seed: which faces it held out is unknown")


def load_teacher(path: Path, split_seed: int) -> nn.Module:
    """A trained net or ensemble to distil from; it must have held out the same selection set."""
    checkpoint = Checkpoint.load(path)
    held = held_out_seed(checkpoint.info)
    if held != split_seed:
        raise SystemExit(f"{path} held out the selection split of seed {held}, not {split_seed}: its faces leak")
    net: nn.Module = net_from(checkpoint).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return net


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence to the teacher's softened distribution, scaled by T^2 (Hinton et al., 2015)."""
    log_p = nn.functional.log_softmax(student / temperature, dim=1)
    q = nn.functional.softmax(teacher / temperature, dim=1)
    return nn.functional.kl_div(log_p, q, reduction="batchmean") * temperature**2


def snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights in the default layout (training keeps them channels-last)."""
    return {k: v.clone(memory_format=torch.contiguous_format) for k, v in net.state_dict().items()}


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    images, labels = load_fer("Training")
    test_x, test_y = load_fer("PublicTest")
    train_idx, calib_idx = stratified_split(labels, SELECTION_SHARE, args.split_seed)
    if args.limit:  # a quick smoke run of the whole recipe
        train_idx, calib_idx, test_x, test_y = (
            train_idx[: args.limit],
            calib_idx[: args.limit],
            test_x[:500],
            test_y[:500],
        )
    x_train, y_train = as_input(images[train_idx]), torch.from_numpy(labels[train_idx]).long()
    counts = np.bincount(labels[train_idx], minlength=len(LABELS)).astype(float)
    weights = torch.tensor((counts.sum() / np.maximum(counts, 1)) ** 0.3, dtype=torch.float32)
    net = FaceCNN(channels=args.channels, dropout=args.dropout)
    net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # the stubs omit memory_format
    bf16 = args.precision == "bf16"
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * math.ceil(len(train_idx) / args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss(weight=weights / weights.mean(), label_smoothing=0.1)
    generator = torch.Generator().manual_seed(args.seed)
    teacher = load_teacher(args.teacher, args.split_seed) if args.teacher else None
    best = (-1.0, 0, snapshot(net))
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        net.train()
        order = torch.randperm(len(train_idx), generator=generator)
        bar = tqdm(range(0, len(order), args.batch), desc=f"epoch {epoch}/{args.epochs}", unit="batch", leave=False)
        total = 0.0
        for i in bar:
            idx = order[i : i + args.batch]
            views = augment(x_train[idx], generator).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = net(views).float()
                loss = loss_fn(logits, y_train[idx])
                if teacher is not None:
                    with torch.no_grad():
                        soft = teacher(views).float()
                    kd = distillation_loss(logits, soft, args.kd_temperature)
                    loss = (1 - args.kd_weight) * loss + args.kd_weight * kd
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.item() * len(idx)
        calib_acc = float((predict_logits(net, images[calib_idx], views=False).argmax(1) == labels[calib_idx]).mean())
        print(f"epoch {epoch}: loss {total / len(order):.4f}, calibration-set accuracy {calib_acc:.4f}", flush=True)
        if calib_acc > best[0]:
            best = (calib_acc, epoch, snapshot(net))
    net.load_state_dict(best[2])
    calib_logits = predict_logits(net, images[calib_idx], views=True)
    temperature = fit_temperature(calib_logits, labels[calib_idx])
    test_logits = predict_logits(net, test_x, views=True)
    report = evaluate([LABELS[i] for i in test_y], [LABELS[i] for i in test_logits.argmax(1)])
    print(f"\n== FER2013 PublicTest ({len(test_y)} faces), best epoch {best[1]}, ten views ==\n{report.render()}")
    ece_before = expected_calibration_error(softmax(test_logits), test_y)
    ece_after = expected_calibration_error(softmax(test_logits / temperature), test_y)
    centre = float((predict_logits(net, test_x, views=False).argmax(1) == test_y).mean())
    summary = {
        **report.headline(),
        "centre_crop_accuracy": round(centre, 4),
        "calibration_set_accuracy": round(best[0], 4),
        "best_epoch": best[1],
        "temperature": round(temperature, 4),
        "ece_before": round(ece_before, 4),
        "ece_after": round(ece_after, 4),
        "minutes": round((time.time() - started) / 60, 1),
    }
    print(json.dumps(summary))
    info = {
        "version": time.strftime("%Y%m%d"),
        "data": "FER2013 Training (90%), calibration 10% of Training, reported on PublicTest",
        "epochs": args.epochs,
        "precision": args.precision,
        "seed": args.seed,
        "split_seed": args.split_seed,
        **(
            {"teacher": args.teacher.name, "kd_weight": args.kd_weight, "kd_temperature": args.kd_temperature}
            if args.teacher
            else {}
        ),
        "publictest": summary,
    }
    arch = {"channels": list(args.channels), "dropout": args.dropout}
    if not args.no_export:
        Checkpoint(best[2], LABELS, temperature, arch, info).save(args.out)
        print(f"saved {args.out}")
    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / f"run-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps({**info, "arch": arch}, indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--channels", type=int, nargs=4, default=[32, 64, 128, 256])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast, for AMX CPUs")
    parser.add_argument("--seed", type=int, default=13, help="initialisation, order and augmentation")
    # Kept apart from --seed so that ensemble members trained with different seeds share one
    # selection set: the ensemble's temperature is then fitted on faces none of them trained on.
    parser.add_argument("--split-seed", type=int, default=13, help="the 90/10 selection split")
    parser.add_argument("--teacher", type=Path, help="distil from this trained net or ensemble (same --split-seed)")
    parser.add_argument("--kd-weight", type=float, default=0.7, help="share of the distillation term in the loss")
    parser.add_argument("--kd-temperature", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--limit", type=int, default=0, help="train on this many faces only (smoke run)")
    train(parser.parse_args(argv))


if __name__ == "__main__":
    main()
