from __future__ import annotations

from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource

from plugin.nlu import EmotionRecognizer


@pytest.fixture(scope="session")
def rasa_context(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalModelStorage, Resource, ExecutionContext]:
    storage = LocalModelStorage(Path(tmp_path_factory.mktemp("model-storage")))
    return storage, Resource("toneline"), ExecutionContext(GraphSchema({}), "test-model")


@pytest.fixture(scope="session")
def recognizer(rasa_context: tuple) -> EmotionRecognizer:
    storage, resource, context = rasa_context
    return EmotionRecognizer.create(EmotionRecognizer.get_default_config(), storage, resource, context)
