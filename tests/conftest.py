"""Suite-wide settings: offline model loading, data location, Redis for tests."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
# Writes held while Redis is down (plugin.outbox) go to a folder of this run, not the user's cache.
os.environ.setdefault("TONELINE_OUTBOX_DIR", tempfile.mkdtemp(prefix="toneline-outbox-"))

from models.data import data_root  # noqa: E402
from scripts.stack import RedisEndpoint, StackError, ensure_redis  # noqa: E402


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying why."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the labelled data at {path} (set TONELINE_DATA); not part of the repository")
    return path


@pytest.fixture(scope="session")
def redis_endpoint() -> Iterator[RedisEndpoint]:
    """The real Redis the tests use: REDIS_URL, the local one, or one started here."""
    try:
        endpoint, proc = ensure_redis(os.environ.get("TONELINE_TEST_REDIS_URL"))
    except StackError as exc:
        pytest.fail(str(exc))
    yield endpoint
    if proc is not None:
        proc.terminate()


@pytest.fixture
def redis_prefix(redis_endpoint: RedisEndpoint) -> Iterator[str]:
    """A fresh key prefix per test; its keys are deleted afterwards."""
    import redis

    prefix = f"toneline-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_endpoint.url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


def _drop_unimportable_lazy_modules() -> None:
    """Forget speechbrain's lazy stand-ins for optional integrations that cannot import.

    Hypothesis reads `__file__` of every module in `sys.modules` to mine constants;
    on a speechbrain `LazyModule` that attribute access imports the target, and the
    k2 integration (k2 is not installed) raises, which Hypothesis reports as a flaky
    test. Unloaded stand-ins are only removed from `sys.modules`: the packages keep
    their attributes, and a real `import` of them still works.
    """
    import sys

    if "speechbrain" not in sys.modules:
        return
    from speechbrain.utils.importutils import LazyModule

    for name, module in list(sys.modules.items()):
        if isinstance(module, LazyModule) and module.lazy_module is None:
            del sys.modules[name]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
        _drop_unimportable_lazy_modules()
