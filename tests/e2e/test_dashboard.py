"""The supervisor dashboard in headless Chromium, fed by real conversations through the demo bot."""

from __future__ import annotations

import csv
import io
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Iterator

import pytest

from scripts.stack import free_port, start_dashboard, stop
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.conftest import ARTIFACTS, Stack

pytestmark = pytest.mark.e2e


@dataclass
class Dashboard:
    url: str
    password: str


@pytest.fixture(scope="module")
def dashboard(stack: Stack) -> Iterator[Dashboard]:
    password = secrets.token_urlsafe(9)
    port = free_port()
    env = {**stack.env, "TONELINE_DASHBOARD_PASSWORD": password}
    with (ARTIFACTS / "e2e-dashboard.log").open("w") as log:
        proc = start_dashboard(env, port, log)
        try:
            yield Dashboard(f"http://127.0.0.1:{port}", password)
        finally:
            stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (`apt-get install chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: object, dashboard: Dashboard) -> Iterator[object]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def sign_in(page: object, dashboard: Dashboard) -> None:
    page.goto(dashboard.url + "/")  # type: ignore[attr-defined]
    assert page.url.endswith("/login")  # type: ignore[attr-defined]
    page.fill("#password", dashboard.password)  # type: ignore[attr-defined]
    page.click("#sign-in")  # type: ignore[attr-defined]
    page.wait_for_url(dashboard.url + "/")  # type: ignore[attr-defined]
    page.wait_for_selector("#live-status:has-text('live')")  # type: ignore[attr-defined]


def shot(page: object, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_a_supervisor_follows_a_conversation_live_claims_it_and_exports_history(
    stack: Stack, dashboard: Dashboard, page: object
) -> None:
    from playwright.sync_api import expect

    sign_in(page, dashboard)
    who = f"dash-{uuid.uuid4().hex[:8]}"
    stack.say(who, "Hello, I have a question about my bill")
    row = page.locator(f'tr[data-conversation="{who}"]')  # type: ignore[attr-defined]
    expect(row).to_be_visible()
    expect(row.locator(".status")).to_have_text("bot")
    page.evaluate("window.__noReload = true")  # type: ignore[attr-defined]
    shot(page, "1-floor")

    stack.say(who, "I am so angry right now, you people are useless!")
    expect(row.locator(".emotion")).to_contain_text("angry")
    expect(row.locator(".status")).to_have_text("escalated")
    assert page.evaluate("window.__noReload") is True, "the page must update without a reload"  # type: ignore[attr-defined]
    shot(page, "2-floor-angry")

    row.click()
    turns = page.locator("#turns-table tbody tr")  # type: ignore[attr-defined]
    expect(turns).to_have_count(2)
    expect(turns.nth(1)).to_contain_text("escalated:")
    expect(turns.nth(1)).to_contain_text("text 1.00")
    # How surely the turn is negative (the negative labels together): what the routing rules read.
    expect(turns.nth(1).locator("td").nth(6)).to_have_text(re.compile(r"^(0\.9\d|1\.00)$"))
    expect(turns.nth(0).locator("td").nth(6)).to_have_text(re.compile(r"^0\.[0-4]\d$"))
    expect(page.locator("#timeline-chart")).to_be_visible()  # type: ignore[attr-defined]
    shot(page, "3-timeline")

    page.click("button[data-tab=escalations]")  # type: ignore[attr-defined]
    card = page.locator(f'.case[data-conversation="{who}"]')  # type: ignore[attr-defined]
    expect(card).to_contain_text("sharp negative emotion: angry, negative with probability 0.9")
    card.locator("button.claim").click()
    expect(card).to_have_count(0)  # claimed cases leave the open queue
    page.select_option("#escalation-status", "claimed")  # type: ignore[attr-defined]
    expect(card.locator("button.claim")).to_have_text("claimed by supervisor")
    expect(card.locator("button.claim")).to_be_disabled()
    shot(page, "4-escalations")

    page.click("button[data-tab=history]")  # type: ignore[attr-defined]
    expect(page.locator("#channel-table tbody tr").first).to_contain_text("rest")  # type: ignore[attr-defined]
    with page.expect_download() as download_info:  # type: ignore[attr-defined]
        page.click("#csv-link")  # type: ignore[attr-defined]
    with open(download_info.value.path(), encoding="utf-8") as handle:
        text = handle.read()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and set(rows[0]) >= {"hour", "conversations", "turns", "escalations", "escalated", "resolved"}
    assert sum(int(r["turns"]) for r in rows) >= 2 and sum(int(r["escalations"]) for r in rows) >= 1
    shot(page, "5-history")


def test_signed_out_pages_show_no_data(dashboard: Dashboard, page: object) -> None:
    for path in ("/", "/api/floor", "/api/history", "/api/escalations", "/api/live"):
        response = page.request.get(dashboard.url + path, max_redirects=0)  # type: ignore[attr-defined]
        assert response.status in (302, 401), path
        assert "conversation" not in response.text(), path
    page.goto(dashboard.url + "/login")  # type: ignore[attr-defined]
    page.fill("#password", "wrong")  # type: ignore[attr-defined]
    page.click("#sign-in")  # type: ignore[attr-defined]
    page.wait_for_selector("#failed:visible")  # type: ignore[attr-defined]
