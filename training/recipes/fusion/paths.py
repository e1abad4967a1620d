"""Where the fusion recipe caches what it computes (outside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE = Path(os.environ.get("TONELINE_CACHE", Path.home() / ".cache" / "toneline")) / "fusion"
