"""`python -m models.evaluate {text,voice,face,turns,fusion,asr} ...`: the evaluation command, by its old name.

The evaluation itself is training code (`training.evaluate`: manifests, metrics, recipes' held-out sets) and is
not part of the runtime. This module stays only because other tools call the command by this name; it imports
the training side lazily, when run, so importing `models` never pulls it in (`tests/architecture` names this
module as one of the two entry-point exceptions).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run `training.evaluate` with these arguments; its exit code (2 for a manifest it cannot read)."""
    from training.evaluate import main as evaluate

    return evaluate(argv)


if __name__ == "__main__":
    sys.exit(main())
