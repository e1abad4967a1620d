"""A distillation teacher's logits, found by turn, and the loss that reads them (issue 18).

Knowledge distillation (Hinton et al., 2015): besides the label, a student also
matches a larger fine-tuned model's distribution at a temperature, which says
how alike the classes of a turn are (a complaint that is half angry, half sad)
where a one-hot label says only which one won. `training.recipes.text.distill`
writes the teacher's logits on every training turn, keyed by turn; the LoRA
recipe (`train.py --teacher`) and the head recipe (`head.py --teacher`) read them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from training import data


def turn_key(sample: data.TextSample, context: Sequence[str]) -> str:
    """Which turn a row is: its text, the turns it is read with and its label."""
    row = "\t".join([sample.text, " | ".join(context), sample.label])
    return hashlib.sha1(row.encode("utf-8")).hexdigest()


def soft_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at `temperature`, times T^2 so that its gradients weigh like the label loss's."""
    s = student.float() / temperature
    t = teacher.float() / temperature
    kl = torch.nn.functional.kl_div(s.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction="batchmean")
    return kl * temperature**2


def teacher_logits(path: Path, keys: Sequence[str]) -> tuple[NDArray[Any], NDArray[Any]]:
    """A teacher's logits (with context, alone) of the turns `keys` names, in their order.

    A teacher trained on more turns serves any subset or repeat of them; a turn it never
    read stops the run with how many are missing.
    """
    saved = np.load(path)
    index = {str(k): i for i, k in enumerate(saved["keys"])}
    missing = sum(k not in index for k in keys)
    if missing:
        raise SystemExit(f"--teacher {path} has no logits for {missing} of {len(keys)} training turns")
    rows = [index[k] for k in keys]
    return saved["with_context"][rows], saved["alone"][rows]


@dataclass(frozen=True)
class Teacher:
    """A teacher's logits laid out in a student's rows, with and without context, and how much they weigh."""

    with_context: NDArray[Any]
    alone: NDArray[Any]
    weight: float
    temperature: float

    @classmethod
    def load(cls, path: Path, keys: Sequence[str], weight: float, temperature: float) -> Teacher:
        """The rows `keys` name, weighing `weight` in the loss at `temperature`."""
        return cls(*teacher_logits(path, keys), weight, temperature)

    @staticmethod
    def describe(path: Path) -> dict[str, Any]:
        """What the teacher was (its encoder, data, selection scores): recorded in the student's json."""
        about: dict[str, Any] = json.loads(str(np.load(path)["about"]))
        return about

    def loss(
        self, student: torch.Tensor, rows: Sequence[int] | NDArray[Any], alone: Sequence[bool] | None = None
    ) -> torch.Tensor:
        """The soft loss of these rows of the batch; `alone` marks rows read without their context."""
        picked = self.with_context[rows]
        if alone is not None:
            picked = np.where(np.array(alone)[:, None], self.alone[rows], picked)
        return soft_loss(student, torch.from_numpy(picked).to(student.device), self.temperature)
