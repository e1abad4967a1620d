from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource

from plugin.nlu import EmotionRecognizer
from scripts.stack import RedisEndpoint
from tests.conftest import cluster_endpoint

# The tests of Toneline's state (store, policy, outbox, handoff, turn service, dashboard) run against a single Redis
# and against a real Redis Cluster: the same code, the same key layout (plugin.schema).
BACKENDS = ["single", "cluster"]


@pytest.fixture(scope="session", params=BACKENDS)
def redis_endpoint(request: pytest.FixtureRequest) -> RedisEndpoint:
    if request.param == "cluster":
        return cluster_endpoint(request.getfixturevalue("redis_cluster"))
    endpoint: RedisEndpoint = request.getfixturevalue("single_redis")
    return endpoint


@pytest.fixture(scope="session")
def rasa_context(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalModelStorage, Resource, ExecutionContext]:
    storage = LocalModelStorage(Path(tmp_path_factory.mktemp("model-storage")))
    return storage, Resource("toneline"), ExecutionContext(GraphSchema({}), "test-model")


@pytest.fixture(scope="session")
def recognizer(rasa_context: tuple[Any, ...]) -> EmotionRecognizer:
    storage, resource, context = rasa_context
    return EmotionRecognizer.create(EmotionRecognizer.get_default_config(), storage, resource, context)
