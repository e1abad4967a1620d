"""Structured log lines: an event name plus key=value fields, readable in any formatter.

Never pass raw audio, frames or full transcripts as fields.
"""

from __future__ import annotations

import json
import logging
from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, str) and value and " " not in value and "=" not in value:
        return value
    return json.dumps(value, default=str)


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `event k=v ...`; fields also go to `extra` for JSON log handlers."""
    if not logger.isEnabledFor(level):
        return
    text = " ".join([event, *(f"{k}={_fmt(v)}" for k, v in fields.items())])
    logger.log(level, text, extra={"event": event, "fields": fields})
