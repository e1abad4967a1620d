"""`python -m models.adapt corrections.jsonl --out DIR [--force]`: adapting the text head, by its old name.

Adaptation is training code (`training.adapt`) and is not part of the runtime; `make adapt`, the settings'
help and deployments' scripts call the command by this name, so it stays as an entry point that imports the
training side lazily, when run (`tests/architecture` names it as one of the two entry-point exceptions).
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run `training.adapt` with these arguments; its exit code (1 refused, 2 nothing to adapt)."""
    from training.adapt import main as adapt

    return adapt(argv)


if __name__ == "__main__":
    raise SystemExit(main())
