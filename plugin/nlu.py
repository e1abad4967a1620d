"""`EmotionRecognizer`: the Rasa NLU component that gives every customer turn an emotion.

The first half of the turn service (`plugin.turn.EmotionReader`): the text model
on the message in context, the voice and face estimates a connector put in the
message metadata (`toneline` block), the evidence fusion (`models.fusion.load_fusion`).
The metadata is parsed here, once per turn: the `TurnEmotion` dict goes to the
parse data under `PARSE_KEY` and the turn's identity under `TURN_KEY`
(`plugin.metadata`), where the policy and the handoff action read them.
Agent turns (`role: agent`) are never analysed, and neither is any turn of a customer
who opted out (`plugin.consent`): the consent is read first and, when the customer
opted out, no model runs on the turn (the text model is not called, the connector's
estimates are dropped unread) and the parse data says so under `CONSENT_KEY`.

Add it at the end of the NLU pipeline:

    - name: plugin.nlu.EmotionRecognizer
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.events import BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from models.emotion import TurnEmotion
from models.fusion import Fuser, load_fusion
from models.logs import log_event
from models.text import TextEmotionModel
from plugin import metadata as turn_metadata
from plugin import settings as toneline_settings
from plugin.consent import Reading
from plugin.metadata import CONSENT_KEY, PARSE_KEY, TURN_KEY
from plugin.turn import EmotionReader, TurnService

logger = logging.getLogger(__name__)

__all__ = ["PARSE_KEY", "EmotionRecognizer", "conversation_context", "shared_text_model", "turn_service"]
HEAD_PATH_KEY = "head_path"
FUSION_PATH_KEY = "fusion_path"
THREADS_KEY = "threads"
RUNTIME_KEY = "runtime"
CONFIG_PATH_KEY = "config"  # toneline.yml: where customers' consent is kept (Redis) and the consent intents
# ONNX Runtime runs the same merged net in about half PyTorch's time (docs/benchmarks.md: 11.3 against
# 29.1 ms p95 per message on 2 busy cores, labels identical), which keeps the NLU component inside its
# 25 ms budget. Every door shares this default (AudioHook too), so a turn reads the same on each.
DEFAULT_RUNTIME = "onnx"


def served_text_weights(settings: toneline_settings.Settings) -> str | None:
    """The text weights this deployment serves: its adapted ones when configured (logged), else None (shipped)."""
    weights = settings.adaptation.text_weights()
    if weights is None:
        return None
    log_event(logger, logging.INFO, "toneline.text_model.adapted", weights=str(weights))
    return str(weights)


def shared_text_model(head_path: str | None, threads: int | None, runtime: str = DEFAULT_RUNTIME) -> TextEmotionModel:
    """One text model per process, however many times Rasa builds the graph."""
    # Positional, so that a default left out and the same default passed share one cache entry.
    return _cached_text_model(head_path, threads, runtime)


@functools.lru_cache(maxsize=4)
def _cached_text_model(head_path: str | None, threads: int | None, runtime: str) -> TextEmotionModel:
    started = time.perf_counter()
    model = TextEmotionModel.load(Path(head_path) if head_path else None, threads=threads, runtime=runtime)
    log_event(
        logger,
        logging.INFO,
        "toneline.text_model.loaded",
        model=model.name,
        seconds=round(time.perf_counter() - started, 2),
    )
    return model


def turn_service(
    settings: toneline_settings.Settings,
    head_path: str | None = None,
    threads: int | None = None,
    runtime: str = DEFAULT_RUNTIME,
    fusion_path: str | None = None,
) -> TurnService:
    """The turn service every door gets, from one configuration: the text model (an explicit `head_path`, else
    the deployment's adapted weights, else the shipped ones; loaded on first use, once per process), the fitted
    fusion and the state store on the settings' Redis. Rasa's NLU component and the listen-only AudioHook door
    both build theirs here, so a turn reads the same whichever door it came in by."""
    head = head_path or served_text_weights(settings)
    reader = EmotionReader(load_fusion(fusion_path), lambda: shared_text_model(head, threads, runtime))
    return TurnService.connected(settings, reader)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class EmotionRecognizer(GraphComponent):
    """Per-message text emotion, fused with connector-supplied voice and face estimates."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        # runtime: "onnx" (default) or "torch" (the same net in PyTorch: same labels, about twice the time)
        return {
            HEAD_PATH_KEY: None,
            THREADS_KEY: None,
            FUSION_PATH_KEY: None,
            RUNTIME_KEY: DEFAULT_RUNTIME,
            CONFIG_PATH_KEY: None,
        }

    def __init__(
        self,
        config: Dict[str, Any],
        text_model: TextEmotionModel,
        fusion: Fuser,
        service: TurnService | None = None,
    ) -> None:
        self.config = config
        self.text_model = text_model
        self.fusion = fusion
        self.reader = EmotionReader(fusion, lambda: text_model)
        # Consent only (Redis is reached on the first customer turn, never at training time).
        path = config.get(CONFIG_PATH_KEY)
        self.service = service or TurnService.connected(toneline_settings.load(Path(path) if path else None))

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> EmotionRecognizer:
        path = config.get(CONFIG_PATH_KEY)
        settings = toneline_settings.load(Path(path) if path else None)
        # An explicit head_path wins; else the deployment's adapted weights (adaptation.weights_dir); else shipped.
        # The fitted fusion (models/weights/fusion.json), loaded once per process; the hand-set one without it.
        service = turn_service(
            settings,
            config.get(HEAD_PATH_KEY),
            config.get(THREADS_KEY),
            config.get(RUNTIME_KEY, DEFAULT_RUNTIME),
            config.get(FUSION_PATH_KEY),
        )
        return cls(config, service.reader.text_model(), service.reader.fusion, service)

    def process_training_data(self, training_data: Any) -> Any:
        # Training examples need no emotion: skip the encoder cost at train time.
        return training_data

    def process(self, messages: List[Message], tracker: DialogueStateTracker | None = None) -> List[Message]:
        """Attach a `TurnEmotion` dict to each customer message under `toneline`.

        Rasa passes the conversation's tracker (the parameter name asks its graph
        for it): the turns before the message are the text model's context.
        """
        context = conversation_context(tracker, self.text_model.context_turns)
        for message in messages:
            meta = turn_metadata.parse(message.get("metadata"), message.get("message_id"))
            message.set(TURN_KEY, meta.identity(), add_to_output=True)
            reading = self.consent(message, meta, tracker)
            message.set(CONSENT_KEY, reading.to_dict(), add_to_output=True)
            if reading.opted_out:
                log_event(logger, logging.INFO, "toneline.turn.not_analysed", message_id=message.get("message_id"))
                continue
            turn = self.recognise(message, context, meta)
            if turn is not None:  # a customer's turn, analysed (never an agent's)
                message.set(PARSE_KEY, turn.to_dict(), add_to_output=True)
                self._retain(message, tracker, meta.turn_ref)
        return messages

    def recognise(
        self, message: Message, context: List[str] | None = None, meta: turn_metadata.TurnMetadata | None = None
    ) -> TurnEmotion | None:
        """The fused emotion of one message, or None for agent turns or total failure."""
        message_id = message.get("message_id")
        if meta is None:
            meta = turn_metadata.parse(message.get("metadata"), message_id)
        text = message.get(TEXT)
        return self.reader.read(text if isinstance(text, str) else "", meta, message_id, context or ())

    def _retain(self, message: Message, tracker: DialogueStateTracker | None, voice_ref: str | None) -> None:
        """The turn's words (and where the connector kept its voice features) for adapting the models, when the
        deployment retains them; never for an opted-out customer: this runs only for analysed turns."""
        text = message.get(TEXT)
        if tracker is not None and isinstance(text, str):
            conversation = turn_metadata.bounded_id(tracker.sender_id)
            self.service.retain(conversation, message.get("message_id"), text, voice_ref)

    def consent(
        self, message: Message, meta: turn_metadata.TurnMetadata, tracker: DialogueStateTracker | None
    ) -> Reading:
        """The customer's consent as this message leaves it (read before any model runs on it)."""
        sender = turn_metadata.bounded_id(tracker.sender_id) if tracker is not None else None
        intent = (message.get("intent") or {}).get("name")
        return self.service.consent(meta.customer_id or sender, meta, intent, previous_consent(tracker))


def previous_consent(tracker: DialogueStateTracker | None) -> bool | None:
    """Whether the conversation's last customer turn was opted out (None when no turn says): decides while
    Redis, where the choice is kept, is away."""
    for event in reversed(tracker.events if tracker is not None else []):
        if isinstance(event, UserUttered):
            reading = Reading.from_parse((event.parse_data or {}).get(CONSENT_KEY))
            if reading is not None:
                return reading.opted_out
    return None


def conversation_context(tracker: DialogueStateTracker | None, turns: int) -> List[str]:
    """The last `turns` texts said in this session (customer and bot alike), oldest first.

    Read from the tracker Rasa already holds, so no transcript is stored for it.
    """
    if tracker is None or turns <= 0:
        return []
    said: List[str] = []
    for event in reversed(tracker.events):
        if isinstance(event, SessionStarted):
            break
        if isinstance(event, (UserUttered, BotUttered)) and isinstance(event.text, str) and event.text.strip():
            said.append(event.text)
            if len(said) == turns:
                break
    return said[::-1]
