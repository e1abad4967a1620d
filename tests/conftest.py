"""Suite-wide settings: offline model loading, data location, Redis for tests."""

from __future__ import annotations

import dataclasses
import os
import shutil
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

from scripts.redis_cluster import LocalRedisCluster  # noqa: E402
from scripts.stack import RedisEndpoint, StackError, ensure_redis  # noqa: E402
from training.data import data_root  # noqa: E402


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying why."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the labelled data at {path} (set TONELINE_DATA); not part of the repository")
    return path


@pytest.fixture(scope="session")
def redis_endpoint(single_redis: RedisEndpoint) -> RedisEndpoint:
    """The real Redis the tests use (tests/plugin widens it to a Redis Cluster as well)."""
    return single_redis


@pytest.fixture(scope="session")
def single_redis() -> Iterator[RedisEndpoint]:
    """A single Redis: REDIS_URL, the local one, or one started here."""
    try:
        endpoint, proc = ensure_redis(os.environ.get("TONELINE_TEST_REDIS_URL"))
    except StackError as exc:
        pytest.fail(str(exc))
    yield endpoint
    if proc is not None:
        proc.terminate()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A real Redis Cluster (3 masters, a replica each, loopback ports) for the whole run, stopped at its end."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        reason = "redis-server/redis-cli are not installed (Debian package redis-server; scripts/system-deps.sh)"
        if os.environ.get("TONELINE_ALLOW_SKIPS") == "1":
            pytest.skip(reason)
        pytest.fail(reason)
    cluster = LocalRedisCluster.start(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


def cluster_endpoint(cluster: LocalRedisCluster) -> RedisEndpoint:
    first = RedisEndpoint.parse(f"redis://127.0.0.1:{cluster.ports[0]}/0", cluster=True)
    return dataclasses.replace(first, url=cluster.url)  # every node: the comma-separated form plugin.settings reads


@pytest.fixture
def redis_prefix(redis_endpoint: RedisEndpoint) -> Iterator[str]:
    """A fresh key prefix per test; its keys are deleted afterwards (on every node of a cluster)."""
    from plugin.redis_client import connect
    from plugin.settings import RedisSettings

    prefix = f"toneline-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = connect(RedisSettings(url=redis_endpoint.url, cluster=redis_endpoint.cluster), socket_timeout=5)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


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
