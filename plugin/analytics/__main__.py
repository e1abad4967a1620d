"""Run the supervisor dashboard, or hash a supervisor password for toneline.yml.

python -m plugin.analytics serve [--config rasa_project/toneline.yml] [--host H] [--port P]
python -m plugin.analytics hash-password          # reads the password from stdin
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from aiohttp import web

from plugin import settings as toneline_settings
from plugin.analytics.app import create_app
from plugin.analytics.auth import hash_password

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "rasa_project" / "toneline.yml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m plugin.analytics", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the dashboard")
    serve.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    sub.add_parser("hash-password", help="print a hash for analytics.supervisors")
    args = parser.parse_args(argv)
    if args.command == "hash-password":
        password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        print(hash_password(password))
        return 0
    try:
        settings = toneline_settings.load(args.config)
    except toneline_settings.SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    host, port = args.host or settings.analytics.host, args.port or settings.analytics.port
    web.run_app(
        create_app(settings),
        host=host,
        port=port,
        print=lambda _: print(f"dashboard on http://{host}:{port}/", flush=True),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
