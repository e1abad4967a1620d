"""Toneline's training side: recipes, data loaders, metrics, evaluation, distillation, adaptation and reports.

A top-level package beside `models/` (not inside it) so that the runtime wheel simply leaves it out
(`pyproject.toml` packages `models`, `plugin` and `connectors` only) and a reader can tell at a glance which
code runs in production. It may import `models`; no runtime module imports it (`tests/architecture`), except
the two command-name entry points `models.evaluate` and `models.adapt`, which do so lazily when run.
"""
