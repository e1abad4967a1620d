"""Routing rules: from a conversation's emotion state to a tone and an escalation.

Pure functions of plain data, so they can be tested exhaustively and read out
to a supervisor: `decide(state, config) -> Decision`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from models.emotion import TurnEmotion

TONES = ("empathetic", "calm", "neutral", "upbeat")


def message_key(message_id: Any, ts: Any) -> str:
    """A turn's id in the records: Rasa's message id, or its timestamp where a message came without one.

    `str(None)` would give every such turn the same id "None", so a later turn would
    look already recorded and the handoff case would name no real message.
    """
    if message_id not in (None, ""):
        return str(message_id)
    return f"at-{float(ts):.6f}" if isinstance(ts, (int, float)) else "unknown"


@dataclass(frozen=True)
class TurnRecord:
    """What the state store keeps of one customer turn (no transcript unless configured)."""

    message_id: str
    ts: float
    label: str
    valence: float
    arousal: float
    confidence: float
    weights: Mapping[str, float] = field(default_factory=dict)
    intent: str | None = None
    text: str | None = None
    # Probability of the negative labels together. None only for records written
    # before it existed; the rules then fall back to the top label's confidence.
    negative: float | None = None
    # Each modality's own reading of the turn (label, confidence): what supervisors' corrections are compared
    # with, per modality. Empty for records written before it existed.
    modalities: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_parse(
        cls, emotion: Any, message_id: str, ts: float, intent: str | None = None, text: str | None = None
    ) -> TurnRecord:
        """The one factory of a turn's record: from the fused turn as it travels in Rasa's parse data (JSON,
        `TurnEmotion.to_dict`), parsed here once. The policy, the handoff action and the doors without Rasa all
        build records here, so a record is the same on every channel, to the digit. Raises `InvalidEstimate`
        for a block that is not a turn's emotion."""
        from models.emotion import TurnEmotion  # routing stays importable without the models at type-check time

        return cls.of(TurnEmotion.from_dict(emotion), message_id, ts, intent, text)

    @classmethod
    def of(
        cls, emotion: TurnEmotion, message_id: str, ts: float, intent: str | None = None, text: str | None = None
    ) -> TurnRecord:
        """The record of a fused turn (the transcript only when the caller keeps transcripts)."""
        return cls(
            message_id=message_id,
            ts=ts,
            label=emotion.label,
            valence=emotion.valence,
            arousal=emotion.arousal,
            confidence=emotion.effective_confidence,
            weights=dict(emotion.weights),
            intent=intent,
            text=text,
            negative=emotion.negative,
            modalities={
                e.modality.value: {"label": e.label, "confidence": round(e.confidence, 4)} for e in emotion.estimates
            },
        )

    @property
    def negativity(self) -> float:
        """How sure we are that the customer is unhappy in this turn."""
        return self.confidence if self.negative is None else self.negative

    def to_dict(self) -> dict[str, Any]:
        out = {
            "message_id": self.message_id,
            "ts": self.ts,
            "label": self.label,
            "valence": round(self.valence, 4),
            "arousal": round(self.arousal, 4),
            "confidence": round(self.confidence, 4),
            "weights": dict(self.weights),
            "intent": self.intent,
        }
        if self.negative is not None:
            out["negative"] = round(self.negative, 4)
        if self.text is not None:
            out["text"] = self.text
        if self.modalities:
            out["modalities"] = {name: dict(reading) for name, reading in self.modalities.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TurnRecord:
        return cls(
            message_id=str(data["message_id"]),
            ts=float(data["ts"]),
            label=str(data["label"]),
            valence=float(data["valence"]),
            arousal=float(data["arousal"]),
            confidence=float(data["confidence"]),
            weights=dict(data.get("weights") or {}),
            intent=data.get("intent"),
            text=data.get("text"),
            negative=None if data.get("negative") is None else float(data["negative"]),
            modalities=dict(data.get("modalities") or {}),
        )


@dataclass(frozen=True)
class ConversationState:
    """A conversation's recorded turns plus its escalation and the customer's past."""

    conversation_id: str
    customer_id: str
    turns: tuple[TurnRecord, ...] = ()
    escalated_at_turn: int | None = None
    previous_escalations: int = 0


@dataclass(frozen=True)
class RoutingConfig:
    """Thresholds of the routing rules; valence in [-1, 1], arousal in [0, 1].

    The two confidences are probabilities that the turn is negative (the negative
    labels together, `TurnRecord.negativity`), not the top label's probability.
    """

    negative_valence: float = -0.25
    min_confidence: float = 0.35
    sustained_turns: int = 3
    # Sustained also counts `sustained_turns` negative turns among the last `sustained_window` (3 of the last 4),
    # so a turn read neutral between angry ones does not reset it; = sustained_turns: only an unbroken run counts.
    sustained_window: int = 4
    sharp_valence: float = -0.55
    # Between disgust (0.6) and anger (0.9): an anger/disgust mix is an outburst too; a sad one is not.
    sharp_arousal: float = 0.65
    sharp_confidence: float = 0.7
    sudden_drop: float = 1.0
    cooldown_turns: int = 5
    repeat_customer_discount: int = 1
    ewma_alpha: float = 0.5
    trend_window: int = 4
    empathetic_valence: float = -0.2
    calm_arousal: float = 0.6
    upbeat_valence: float = 0.4

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> RoutingConfig:
        """Build from YAML data; unknown keys and wrong types fail with the key's name."""
        data = dict(data or {})
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown routing settings {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {}
        for key, raw in data.items():
            default = getattr(cls, key)
            try:
                values[key] = type(default)(raw)
            except (TypeError, ValueError):
                raise ValueError(f"routing setting '{key}' must be {type(default).__name__}, got {raw!r}") from None
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.sustained_turns < 1:
            raise ValueError("routing setting 'sustained_turns' must be at least 1")
        if self.sustained_window < self.sustained_turns:
            raise ValueError("routing setting 'sustained_window' must be at least 'sustained_turns'")
        if not 0 < self.ewma_alpha <= 1:
            raise ValueError("routing setting 'ewma_alpha' must lie in (0, 1]")
        if self.trend_window < 2:
            raise ValueError("routing setting 'trend_window' must be at least 2")


@dataclass(frozen=True)
class Summary:
    """Derived view of a conversation's turns (never stored: always recomputed)."""

    n_turns: int
    ewma_valence: float
    ewma_arousal: float
    trend: float
    negative_streak: int
    negative_recent: int  # negative turns among the last `sustained_window`
    peak_negative_valence: float
    peak_arousal: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Decision:
    """What to do after this turn: the reply tone and whether to hand over, and why."""

    tone: str
    escalate: bool
    reason: str | None = None
    rule: str | None = None
    # The summary the rules decided on, so that recording the turn does not summarise the turns a second time.
    summary: Summary | None = field(default=None, compare=False, repr=False)


def is_negative(turn: TurnRecord, config: RoutingConfig) -> bool:
    return turn.valence <= config.negative_valence and turn.negativity >= config.min_confidence


def negative_streak(turns: Sequence[TurnRecord], config: RoutingConfig) -> int:
    streak = 0
    for turn in reversed(turns):
        if not is_negative(turn, config):
            break
        streak += 1
    return streak


def negative_recent(turns: Sequence[TurnRecord], config: RoutingConfig) -> int:
    """How many of the last `sustained_window` turns are negative."""
    return sum(is_negative(turn, config) for turn in turns[-config.sustained_window :])


def trend(values: Sequence[float]) -> float:
    """Least-squares slope per turn (positive: improving)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def ewma(values: Sequence[float], alpha: float) -> float:
    if not values:
        return 0.0
    acc = values[0]
    for value in values[1:]:
        acc = alpha * value + (1 - alpha) * acc
    return acc


def summarize(turns: Sequence[TurnRecord], config: RoutingConfig) -> Summary:
    valences = [t.valence for t in turns]
    return Summary(
        n_turns=len(turns),
        ewma_valence=ewma(valences, config.ewma_alpha),
        ewma_arousal=ewma([t.arousal for t in turns], config.ewma_alpha),
        trend=trend(valences[-config.trend_window :]),
        negative_streak=negative_streak(turns, config),
        negative_recent=negative_recent(turns, config),
        peak_negative_valence=min(valences, default=0.0),
        peak_arousal=max((t.arousal for t in turns), default=0.0),
    )


def choose_tone(summary: Summary, config: RoutingConfig) -> str:
    """Empathetic when low, calm when low and agitated, upbeat when clearly positive."""
    if summary.n_turns == 0:
        return "neutral"
    if summary.ewma_valence <= config.empathetic_valence:
        return "calm" if summary.ewma_arousal >= config.calm_arousal else "empathetic"
    if summary.ewma_valence >= config.upbeat_valence:
        return "upbeat"
    return "neutral"


def _required_streak(state: ConversationState, config: RoutingConfig) -> int:
    # A customer already escalated in an earlier conversation gets a person sooner.
    discount = config.repeat_customer_discount if state.previous_escalations > 0 else 0
    return max(1, config.sustained_turns - discount)


def _escalation(state: ConversationState, summary: Summary, config: RoutingConfig) -> tuple[str, str] | None:
    last = state.turns[-1]
    streak_needed = _required_streak(state, config)
    if summary.negative_streak >= streak_needed:
        labels = ", ".join(t.label for t in state.turns[-summary.negative_streak :])
        return (
            "sustained_negative",
            f"sustained negative emotion: {summary.negative_streak} negative turns in a row ({labels})",
        )
    if summary.negative_recent >= streak_needed and is_negative(last, config):
        # Mostly negative with a calmer-reading turn in between (angry, neutral, angry, angry): as sustained.
        recent = state.turns[-config.sustained_window :]
        labels = ", ".join(t.label if is_negative(t, config) else f"({t.label})" for t in recent)
        share = f"{summary.negative_recent} of the last {len(recent)} turns negative"
        return "sustained_share", f"sustained negative emotion: {share} ({labels})"
    if (
        last.valence <= config.sharp_valence
        and last.arousal >= config.sharp_arousal
        and last.negativity >= config.sharp_confidence
    ):
        return "sharp_negative", (
            f"sharp negative emotion: {last.label}, negative with probability {last.negativity:.2f}, "
            f"valence {last.valence:+.2f}, arousal {last.arousal:.2f}"
        )
    if len(state.turns) >= 2:
        before = ewma([t.valence for t in state.turns[:-1]], config.ewma_alpha)
        if before - last.valence >= config.sudden_drop and is_negative(last, config):
            return "sudden_drop", f"sudden drop in mood: valence {before:+.2f} -> {last.valence:+.2f} ({last.label})"
    return None


def _cooling_down(state: ConversationState, config: RoutingConfig) -> bool:
    """The `cooldown_turns` turns after an escalation cannot escalate again (six angry turns: one escalation)."""
    if state.escalated_at_turn is None:
        return False
    return len(state.turns) - state.escalated_at_turn <= config.cooldown_turns


def decide(state: ConversationState, config: RoutingConfig) -> Decision:
    """Apply the routing rules to the state after its latest turn."""
    summary = summarize(state.turns, config)
    tone = choose_tone(summary, config)
    if not state.turns or _cooling_down(state, config):
        return Decision(tone=tone, escalate=False, summary=summary)
    found = _escalation(state, summary, config)
    if found is None:
        return Decision(tone=tone, escalate=False, summary=summary)
    rule, reason = found
    return Decision(tone=tone, escalate=True, reason=reason, rule=rule, summary=summary)
