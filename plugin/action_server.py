"""The action server, locked: rasa_sdk's app behind a shared secret, on loopback unless told otherwise.

    TONELINE_ACTION_SECRET=... python -m plugin.action_server --actions actions [--host 127.0.0.1] [--port 5055]

rasa_sdk 3.6 has no authentication of its own, and `action_handoff` writes cases
that supervisors act on, so only Rasa may call it. Rasa sends the secret in the
`X-Toneline-Action-Secret` header (`headers` of `action_endpoint` in
endpoints.yml); every route but `/health` answers 401 without it (compared in
constant time). At start-up it also replays handoff cases an earlier process
held while Redis was down (`plugin.outbox`).
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import sys
from pathlib import Path
from typing import Any

from rasa_sdk import utils as sdk_utils
from rasa_sdk.endpoint import create_app, create_argument_parser
from rasa_sdk.plugin import plugin_manager
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from models.logs import log_event
from plugin import settings as toneline_settings

logger = logging.getLogger(__name__)
SECRET_ENV = "TONELINE_ACTION_SECRET"
SECRET_HEADER = "X-Toneline-Action-Secret"
MIN_SECRET_CHARS = 16
OPEN_PATHS = frozenset({"/health"})  # liveness only: says nothing, runs nothing


class SecretError(ValueError):
    """The shared secret is missing or too short to guess."""


def check_secret(secret: str | None) -> str:
    if not secret or len(secret) < MIN_SECRET_CHARS:
        raise SecretError(
            f"set {SECRET_ENV} to a random string of at least {MIN_SECRET_CHARS} characters "
            "(the same value Rasa sends from endpoints.yml); the action server does not run open"
        )
    return secret


def secure(app: Sanic, secret: str) -> Sanic:
    """Refuse every request to `app` but /health that lacks the secret header."""
    expected = check_secret(secret).encode()

    async def authenticate(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS:
            return None
        provided = (request.headers.get(SECRET_HEADER) or "").encode()
        if hmac.compare_digest(provided, expected):
            return None
        log_event(logger, logging.WARNING, "actions.auth.rejected", path=request.path, ip=request.ip)
        return response.json({"error": "unauthorized"}, status=401)

    app.register_middleware(authenticate, "request")
    return app


def replay_held_handoffs(config: Path | None) -> None:
    """Start replaying cases an earlier action server held on disk (nothing to do when none are)."""
    from plugin.handoff import HandoffOutbox
    from plugin.state import StateStore

    settings = toneline_settings.load(config)
    HandoffOutbox(StateStore(settings.redis, settings.state)).start()


def _config_path(value: str | None) -> Path | None:
    chosen = value or os.environ.get(toneline_settings.CONFIG_ENV)
    if chosen:
        return Path(chosen)
    local = Path("toneline.yml")  # the demo runs the action server in rasa_project/
    return local if local.is_file() else None


def build(actions: str, secret: str | None, config: Path | None) -> Sanic:
    """rasa_sdk's app for `actions`, with the secret check and the start-up replay."""
    checked = check_secret(secret)  # before anything loads: a server without a secret never starts
    app = secure(create_app(actions, cors_origins=None), checked)

    async def replay(app: Sanic, loop: Any) -> None:
        replay_held_handoffs(config)

    app.register_listener(replay, "after_server_start")
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    return app


def main(argv: list[str] | None = None) -> int:
    parser: argparse.ArgumentParser = create_argument_parser()
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    parser.add_argument(
        "--toneline-config", default=None, help="toneline.yml (default: $TONELINE_CONFIG, ./toneline.yml)"
    )
    args = parser.parse_args(argv)
    sdk_utils.configure_colored_logging(args.loglevel)
    try:
        app = build(args.actions, os.environ.get(SECRET_ENV), _config_path(args.toneline_config))
    except SecretError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log_event(logger, logging.INFO, "actions.server.starting", host=args.host, port=args.port)
    app.run(args.host, args.port, workers=1, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
