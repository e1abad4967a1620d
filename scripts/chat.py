"""Chat with the running demo bot in the terminal, seeing Toneline's view of each turn.

python -m scripts.chat [--url http://localhost:5005] [--sender me] [--token T]

The tracker is read through Rasa's HTTP API, which needs its token: --token,
TONELINE_RASA_TOKEN, or the one `make demo` saved for this user.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
import uuid
from typing import Any
from urllib.parse import quote

from plugin.metadata import PARSE_KEY, SlotNames
from scripts.stack import RASA_TOKEN_ENV, TOKEN_FILE, api_url


def _token(given: str | None) -> str:
    """--token, else TONELINE_RASA_TOKEN, else the one `make demo` left in the cache (mode 0600)."""
    token = given or os.environ.get(RASA_TOKEN_ENV)
    if not token and TOKEN_FILE.is_file():
        token = TOKEN_FILE.read_text().strip()
    if not token:
        raise SystemExit(f"error: no Rasa API token: start `make demo` first, or set {RASA_TOKEN_ENV}")
    return token


def _request(url: str, payload: dict[str, Any] | None = None) -> object:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.loads(response.read())


def describe(tracker: dict[str, Any]) -> str:
    """One line: the fused emotion of the latest turn, its weights, and the tone slot."""
    emotion = (tracker.get("latest_message") or {}).get(PARSE_KEY)
    slots = tracker.get("slots") or {}
    tone_slot = SlotNames().tone
    if not emotion:
        return f"[toneline] no emotion for this turn; tone={slots.get(tone_slot)}"
    weights = ", ".join(f"{k} {v:.2f}" for k, v in emotion.get("weights", {}).items())
    return (
        f"[toneline] {emotion['label']} (p={emotion['confidence']:.2f}, valence {emotion['valence']:+.2f}, "
        f"arousal {emotion['arousal']:.2f}; weights: {weights}) -> tone={slots.get(tone_slot)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=f"http://localhost:{os.environ.get('TONELINE_RASA_PORT', 5005)}")
    parser.add_argument("--sender", default=f"chat-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--token", default=None, help=f"Rasa API token (default: ${RASA_TOKEN_ENV} or make demo's)")
    args = parser.parse_args()
    token = _token(args.token)
    print(f"Chatting as '{args.sender}'. Empty line or Ctrl-D to quit.")
    for line in sys.stdin if not sys.stdin.isatty() else iter(lambda: input("you> "), ""):
        text = line.strip()
        if not text:
            break
        replies = _request(f"{args.url}/webhooks/rest/webhook", {"sender": args.sender, "message": text})
        for reply in replies if isinstance(replies, list) else []:
            print(f"bot> {reply.get('text', reply)}")
        tracker = _request(api_url(args.url, f"/conversations/{quote(args.sender)}/tracker", token))
        print(describe(tracker))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (EOFError, KeyboardInterrupt):
        sys.exit(0)
