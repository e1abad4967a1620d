"""Chat with the running demo bot in the terminal, seeing Toneline's view of each turn.

python -m scripts.chat [--url http://localhost:5005] [--sender me]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
import uuid


def _request(url: str, payload: dict | None = None) -> object:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.loads(response.read())


def describe(tracker: dict) -> str:
    """One line: the fused emotion of the latest turn, its weights, and the tone slot."""
    emotion = (tracker.get("latest_message") or {}).get("toneline")
    slots = tracker.get("slots") or {}
    if not emotion:
        return f"[toneline] no emotion for this turn; tone={slots.get('toneline_tone')}"
    weights = ", ".join(f"{k} {v:.2f}" for k, v in emotion.get("weights", {}).items())
    return (
        f"[toneline] {emotion['label']} (p={emotion['confidence']:.2f}, valence {emotion['valence']:+.2f}, "
        f"arousal {emotion['arousal']:.2f}; weights: {weights}) -> tone={slots.get('toneline_tone')}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=f"http://localhost:{os.environ.get('TONELINE_RASA_PORT', 5005)}")
    parser.add_argument("--sender", default=f"chat-{uuid.uuid4().hex[:8]}")
    args = parser.parse_args()
    print(f"Chatting as '{args.sender}'. Empty line or Ctrl-D to quit.")
    for line in sys.stdin if not sys.stdin.isatty() else iter(lambda: input("you> "), ""):
        text = line.strip()
        if not text:
            break
        replies = _request(f"{args.url}/webhooks/rest/webhook", {"sender": args.sender, "message": text})
        for reply in replies if isinstance(replies, list) else []:
            print(f"bot> {reply.get('text', reply)}")
        print(describe(_request(f"{args.url}/conversations/{args.sender}/tracker")))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (EOFError, KeyboardInterrupt):
        sys.exit(0)
