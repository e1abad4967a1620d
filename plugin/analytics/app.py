"""The dashboard's aiohttp application: pages, JSON API, Server-Sent Events, auth.

Every route but the login page, its stylesheet and the health check needs a
session; API routes answer 401, pages redirect to /login. POSTs need the
session's CSRF token in `X-CSRF-Token` (the login form: a same-origin check).
Bad query parameters answer 400 with the parameter's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from aiohttp import web

from models.logs import log_event
from plugin.analytics.auth import Session, Sessions, Supervisors, hash_password
from plugin.analytics.data import Dashboard
from plugin.analytics.live import LiveHub
from plugin.analytics.rollups import Rollups
from plugin.corrections import BadCorrection, CorrectionRequest, CorrectionStore, agreement
from plugin.erasure import Eraser
from plugin.redis_client import AsyncClient, connect_async
from plugin.schema import Keys
from plugin.settings import Settings
from plugin.state import StateStore

logger = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "toneline_session"
PUBLIC = {"/login", "/healthz", "/static/app.css"}
PASSWORD_ENV = "TONELINE_DASHBOARD_PASSWORD"

SETTINGS = web.AppKey("settings", Settings)
REDIS: web.AppKey[AsyncClient] = web.AppKey("redis", AsyncClient)  # type: ignore[arg-type]  # a Union
DASHBOARD = web.AppKey("dashboard", Dashboard)
SESSIONS = web.AppKey("sessions", Sessions)
SUPERVISORS = web.AppKey("supervisors", Supervisors)
HUB = web.AppKey("hub", LiveHub)
CORRECTIONS = web.AppKey("corrections", CorrectionStore)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadParameter(web.HTTPBadRequest):
    """A query parameter that cannot be used; the body names it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(
            text=json.dumps({"error": f"bad parameter '{name}': {problem}"}), content_type="application/json"
        )


# -- middleware ----------------------------------------------------------------
@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC:
        return await handler(request)
    session = await request.app[SESSIONS].get(request.cookies.get(COOKIE))
    if session is None:
        if request.path.startswith("/api/"):
            raise web.HTTPUnauthorized(text=json.dumps({"error": "sign in first"}), content_type="application/json")
        raise web.HTTPFound("/login")
    if request.method not in ("GET", "HEAD") and request.headers.get("X-CSRF-Token") != session.csrf:
        raise web.HTTPForbidden(
            text=json.dumps({"error": "missing or wrong CSRF token"}), content_type="application/json"
        )
    request["session"] = session
    return await handler(request)


def session_of(request: web.Request) -> Session:
    session: Session = request["session"]
    return session


# -- pages -----------------------------------------------------------------------
async def login_page(request: web.Request) -> web.StreamResponse:
    if request.method == "GET":
        return web.FileResponse(STATIC / "login.html")
    origin = request.headers.get("Origin")
    if origin and origin.split("://", 1)[-1] != request.host:
        raise web.HTTPForbidden(text="cross-site sign-in refused")
    form = await request.post()
    username, password = str(form.get("username", ""))[:100], str(form.get("password", ""))[:200]
    supervisors = request.app[SUPERVISORS]
    if not await asyncio.get_running_loop().run_in_executor(None, supervisors.check, username, password):
        log_event(logger, logging.WARNING, "toneline.analytics.login.failed", username=username, remote=request.remote)
        raise web.HTTPFound("/login?failed=1")
    token, _ = await request.app[SESSIONS].create(username)
    response = web.HTTPFound("/")
    settings = request.app[SETTINGS].analytics
    response.set_cookie(
        COOKIE,
        token,
        max_age=settings.session_ttl_seconds,
        httponly=True,
        samesite="Strict",
        secure=settings.cookie_secure,
        path="/",
    )
    log_event(logger, logging.INFO, "toneline.analytics.login", username=username)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(COOKIE)
    if token:
        await request.app[SESSIONS].delete(token)
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = (STATIC / name).resolve()
    if STATIC not in path.parents or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path)


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True})


# -- API ---------------------------------------------------------------------------
async def me(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    analytics = request.app[SETTINGS].analytics
    admin = session.username in analytics.administrators
    body = {"username": session.username, "csrf": session.csrf, "idle_seconds": analytics.idle_seconds, "admin": admin}
    return web.json_response(body)


async def floor(request: web.Request) -> web.StreamResponse:
    return web.json_response({"now": time.time(), "conversations": await request.app[DASHBOARD].floor()})


async def conversation(request: web.Request) -> web.StreamResponse:
    conversation_id = request.match_info["conversation_id"]
    if len(conversation_id) > 256:
        raise BadParameter("conversation_id", "longer than 256 characters")
    found = await request.app[DASHBOARD].conversation(conversation_id)
    if found is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "no such conversation"}), content_type="application/json")
    if not request.app[SETTINGS].privacy.store_transcripts:
        for turn in found["turns"]:
            turn.pop("text", None)
    found["corrections"] = await request.app[CORRECTIONS].of_conversation(conversation_id, found["customer_id"])
    for item in found["corrections"]:
        item.pop("retained", None)  # training material, never shown
    return web.json_response(found)


async def correct(request: web.Request) -> web.StreamResponse:
    """A supervisor marks a turn's emotion right or wrong, or an escalation needed or not needed."""
    conversation_id = request.match_info["conversation_id"]
    if len(conversation_id) > 256:
        raise BadParameter("conversation_id", "longer than 256 characters")
    try:
        parsed = CorrectionRequest.parse(conversation_id, await _json_body(request))
    except BadCorrection as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": str(exc)}), content_type="application/json") from None
    by = session_of(request).username
    record = await request.app[CORRECTIONS].correct(parsed, by)
    if record is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "no such turn"}), content_type="application/json")
    log_event(
        logger,
        logging.INFO,
        "toneline.analytics.corrected",
        conversation_id=conversation_id,
        kind=parsed.kind,
        verdict=parsed.verdict,
        by=by,
    )
    record.pop("retained", None)
    return web.json_response(record)


async def agreement_view(request: web.Request) -> web.StreamResponse:
    """Supervisors' agreement with the models per ISO week: fused, each modality, escalations."""
    return web.json_response(agreement(await request.app[CORRECTIONS].all()))


async def erase(request: web.Request) -> web.StreamResponse:
    """An administrator erases one customer's data (GDPR Art. 17); the report says what was removed."""
    session = session_of(request)
    settings = request.app[SETTINGS]
    if session.username not in settings.analytics.administrators:
        raise web.HTTPForbidden(text=json.dumps({"error": "administrators only"}), content_type="application/json")
    customer_id = request.match_info["customer_id"]
    if not customer_id or len(customer_id) > 256:
        raise BadParameter("customer_id", "empty or longer than 256 characters")
    store = StateStore(settings.redis, settings.state)
    try:
        report = await asyncio.get_running_loop().run_in_executor(None, Eraser(store).erase, customer_id)
    finally:
        store.client.close()
    log_event(logger, logging.WARNING, "toneline.analytics.erased", customer_id=customer_id, by=session.username)
    return web.json_response(report.to_dict())


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be JSON"}), content_type="application/json"
        ) from None


async def escalations(request: web.Request) -> web.StreamResponse:
    status = request.query.get("status", "open")
    if status not in ("open", "claimed", "all"):
        raise BadParameter("status", "expected open, claimed or all")
    limit = int_param(request, "limit", 200, 1, 1000)
    return web.json_response({"escalations": await request.app[DASHBOARD].escalations(status, limit)})


async def claim(request: web.Request) -> web.StreamResponse:
    case_id = request.match_info["case_id"]
    if request.app[DASHBOARD].keys.parse_case_id(case_id) is None:
        raise BadParameter("case_id", "not a case id")
    agent = session_of(request).username
    result = await request.app[DASHBOARD].claim(case_id, agent)
    if result is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "no such case"}), content_type="application/json")
    if result["agent"] != agent:
        return web.json_response({"error": "already claimed", "claim": result}, status=409)
    request.app[HUB].broadcast({"type": "claim", "case_id": case_id, "claim": result})
    log_event(logger, logging.INFO, "toneline.analytics.case.claimed", case_id=case_id, agent=agent)
    return web.json_response({"case_id": case_id, "claim": result})


async def history(request: web.Request) -> web.StreamResponse:
    start, end = history_window(request)
    return web.json_response(await request.app[DASHBOARD].history(start, end))


async def history_csv(request: web.Request) -> web.StreamResponse:
    start, end = history_window(request)
    data = await request.app[DASHBOARD].history(start, end)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "hour",
            "conversations",
            "turns",
            "negative_turns",
            "negative_share",
            "mean_valence",
            "escalations",
            "escalated",
            "resolved",
            "active",
        ]
    )
    for row in data["hours"]:
        o = row["outcomes"]
        writer.writerow(
            [
                row["hour"],
                row["conversations"],
                row["turns"],
                row["negative_turns"],
                row["negative_share"],
                row["mean_valence"],
                row["escalations"],
                o["escalated"],
                o["resolved"],
                o["active"],
            ]
        )
    name = f"toneline-history-{datetime.fromtimestamp(start, timezone.utc):%Y%m%d%H}.csv"
    return web.Response(
        text=out.getvalue(), content_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


async def live(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: a snapshot of the floor, then every change."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    hub = request.app[HUB]
    queue = hub.subscribe()
    try:
        await _send(
            response, {"type": "snapshot", "now": time.time(), "conversations": await request.app[DASHBOARD].floor()}
        )
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), timeout=15)
            except asyncio.TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            await _send(response, message)
            if message["type"] == "overflow":
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(queue)
    return response


async def _send(response: web.StreamResponse, message: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(message)}\n\n".encode())


# -- parameters ------------------------------------------------------------------
def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, "not an integer") from None
    if not low <= value <= high:
        raise BadParameter(name, f"must lie in [{low}, {high}]")
    return value


def time_param(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadParameter(name, "expected an ISO 8601 time such as 2026-11-23T10:00Z") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def history_window(request: web.Request) -> tuple[float, float]:
    now = time.time()
    end = time_param(request, "to", now + 1)
    start = time_param(request, "from", end - 24 * 3600)
    if start >= end:
        raise BadParameter("from", "must be before 'to'")
    if end - start > request.app[SETTINGS].analytics.max_history_hours * 3600:
        raise BadParameter("from", f"window longer than {request.app[SETTINGS].analytics.max_history_hours} hours")
    return start, end


# -- wiring ------------------------------------------------------------------------
def supervisors_from(settings: Settings, env: dict[str, str] | os._Environ[str]) -> Supervisors:
    hashes = dict(settings.analytics.supervisors)
    if env.get(PASSWORD_ENV):
        hashes["supervisor"] = hash_password(env[PASSWORD_ENV])
    return Supervisors(hashes)


async def _background(app: web.Application) -> AsyncIterator[None]:
    stop = asyncio.Event()
    settings = app[SETTINGS]
    redis_settings = settings.redis
    rollups = Rollups(
        app[REDIS], redis_settings.prefix, settings.routing, redis_settings.ttl_seconds, redis_settings.shards
    )
    tasks = [asyncio.create_task(app[HUB].run(stop)), asyncio.create_task(rollups.run(stop))]
    yield
    stop.set()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await app[REDIS].close()


def create_app(settings: Settings, env: dict[str, str] | os._Environ[str] | None = None) -> web.Application:
    """The dashboard app; no supervisor configured means nobody can sign in (logged)."""
    env = os.environ if env is None else env
    client = connect_async(settings.redis)
    dashboard = Dashboard(client, settings.redis.prefix, settings.analytics.idle_seconds, settings.redis.shards)
    app = web.Application(middlewares=[auth_middleware], client_max_size=64 * 1024)
    app[SETTINGS], app[REDIS], app[DASHBOARD] = settings, client, dashboard
    app[SESSIONS] = Sessions(client, settings.redis.prefix, settings.analytics.session_ttl_seconds)
    app[SUPERVISORS] = supervisors_from(settings, env)
    app[HUB] = LiveHub(client, dashboard)
    app[CORRECTIONS] = CorrectionStore(client, Keys(settings.redis.prefix, settings.redis.shards), settings.adaptation)
    if not app[SUPERVISORS].hashes:
        log_event(
            logger,
            logging.WARNING,
            "toneline.analytics.no_supervisors",
            hint=f"set {PASSWORD_ENV} or analytics.supervisors in toneline.yml",
        )
    app.cleanup_ctx.append(_background)
    app.router.add_get("/", index)
    app.router.add_route("*", "/login", login_page)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/static/{name:.+}", static_file)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/floor", floor)
    app.router.add_get("/api/live", live)
    app.router.add_get("/api/conversations/{conversation_id}", conversation)
    app.router.add_get("/api/escalations", escalations)
    app.router.add_post("/api/escalations/{case_id}/claim", claim)
    app.router.add_get("/api/history", history)
    app.router.add_get("/api/history.csv", history_csv)
    app.router.add_post("/api/conversations/{conversation_id}/corrections", correct)
    app.router.add_get("/api/agreement", agreement_view)
    app.router.add_post("/api/customers/{customer_id}/erase", erase)
    return app
