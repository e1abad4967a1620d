"""A provider's REST API faked by a small aiohttp app in its own thread and event loop (it serves a Rasa
subprocess), for fake_twilio.py and fake_vonage.py."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class ThreadedApp:
    """Subclasses build `app()`; `start()` serves it on 127.0.0.1:`port`, `stop()` ends it."""

    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        raise NotImplementedError

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._runner = web.AppRunner(self.app())
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()

        threading.Thread(target=serve, name=type(self).__name__, daemon=True).start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
