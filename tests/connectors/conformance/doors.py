"""Toneline's provider doors (Twilio, Vonage) mounted as Rasa mounts input channels, with no bot behind them.

`python -m tests.connectors.conformance.doors PORT` serves them on 127.0.0.1:PORT, configured from the
environment exactly as in production (TWILIO_AUTH_TOKEN, TONELINE_TWILIO_PUBLIC_URL, VONAGE_SIGNATURE_SECRET,
SANIC_PROXIES_COUNT, ...). Rasa's own `configure_app` builds the Sanic app and registers the channels under
/webhooks/; the speech runtime is the tests' fake (the doors are what is tested: nothing here reaches a model).
"""

from __future__ import annotations

import sys
from typing import Any

from rasa.core.run import configure_app

from connectors.speech.runtime import RuntimeSettings, SpeechRuntime
from connectors.twilio.channel import TwilioMediaStreamsInput
from connectors.vonage.channel import VonageVoiceInput
from tests.connectors.fakes import FakeRecognizer, FakeTts


def channels() -> list[Any]:
    runtime = SpeechRuntime(RuntimeSettings(), tts=FakeTts(), loader=lambda _: FakeRecognizer([]))
    doors = [TwilioMediaStreamsInput.from_credentials({}), VonageVoiceInput.from_credentials({})]
    for door in doors:
        door._runtime = runtime
    return doors


def main(port: int) -> None:
    app = configure_app(input_channels=channels(), enable_api=False, port=port)
    app.run(host="127.0.0.1", port=port, workers=1, access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]))
