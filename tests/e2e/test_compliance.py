"""Issue 35 end to end on the running demo stack (Rasa, action server, Redis) and the dashboard in Chromium:
the disclosure comes first, an opt-out stops the analysis and shows on the dashboard, a supervisor's
correction lands in Redis with its fields, and an administrator's erasure leaves nothing naming the customer."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from plugin import settings as toneline_settings
from plugin.schema import CustKey, Keys
from scripts.stack import RASA_DIR, free_port, start_dashboard, stop
from tests.e2e.conftest import ARTIFACTS, Stack
from tests.e2e.test_dashboard import Dashboard, browser, shot, sign_in  # noqa: F401 (the browser fixture)
from tests.plugin.test_erasure import mentions

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def admin_dashboard(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """The dashboard with the demo's settings, its supervisor an administrator."""
    config = yaml.safe_load((RASA_DIR / "toneline.yml").read_text())
    config["analytics"]["administrators"] = ["supervisor"]
    path = Path(tmp_path_factory.mktemp("compliance")) / "toneline.yml"
    path.write_text(yaml.safe_dump(config))
    password = secrets.token_urlsafe(9)
    port = free_port()
    env = {**stack.env, "TONELINE_DASHBOARD_PASSWORD": password}
    with (ARTIFACTS / "e2e-compliance-dashboard.log").open("w") as log:
        proc = start_dashboard(env, port, log, config=path)
        try:
            yield Dashboard(f"http://127.0.0.1:{port}", password)
        finally:
            stop(proc)


@pytest.fixture
def page(browser: object, admin_dashboard: Dashboard) -> Iterator[object]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1500, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("dialog", lambda dialog: dialog.accept())  # the erasure's confirmation
    yield page
    context.close()


def user_events(stack: Stack, sender: str) -> list[dict[str, Any]]:
    return [e for e in stack.tracker(sender)["events"] if e["event"] == "user"]


def test_the_disclosure_is_a_chat_s_first_message_and_is_not_repeated(stack: Stack) -> None:
    notice = toneline_settings.load(RASA_DIR / "toneline.yml", env={}).disclosure.for_channel("rest")
    who = f"disclose-{uuid.uuid4().hex[:8]}"
    first = stack.say(who, "Hello, I have a question about my bill")
    assert notice and first[0] == notice and len(first) >= 2, first
    assert notice not in stack.say(who, "my internet is down again")
    # A connector that gave the notice itself says so in the turn's metadata: the bot does not repeat it.
    phone = stack.say(
        f"disclosed-{uuid.uuid4().hex[:8]}", "Hello", {"toneline": {"channel": "twilio", "disclosed": True}}
    )
    assert notice not in phone


def test_an_opt_out_stops_the_analysis_shows_on_the_dashboard_and_corrections_and_erasure_work(
    stack: Stack, admin_dashboard: Dashboard, page: object
) -> None:
    from playwright.sync_api import expect

    who = f"optout-{uuid.uuid4().hex[:8]}"
    stack.say(who, "Hello, I have a question about my bill")
    stack.say(who, "My internet has been slow since yesterday")  # not angry enough to hand the conversation over
    assert "toneline" in user_events(stack, who)[-1]["parse_data"], "analysed before the opt-out"
    said = stack.say(who, "stop the emotion detection")
    assert any("emotion detection is off" in s for s in said), said
    after = stack.say(who, "I am furious, this is the worst service ever, you people are useless")
    assert after, "no emotion, so no emotion rule: the bot answers instead of handing over"
    for event in user_events(stack, who)[-2:]:
        assert "toneline" not in event["parse_data"], "no emotion after the opt-out"
        assert event["parse_data"]["toneline_consent"]["opted_out"] is True
    state = stack.redis()
    assert state.hget(Keys(stack.prefix).cust(who, CustKey.CONSENT), "opted_out") == "1"
    assert re.search(r"toneline\.turn\.not_analysed", stack.log_path.read_text())

    sign_in(page, admin_dashboard)
    row = page.locator(f'tr[data-conversation="{who}"]')  # type: ignore[attr-defined]
    expect(row.locator(".emotion")).to_have_text("not analysed (opted out)")
    row.click()
    expect(page.locator("#detail-summary")).to_contain_text("not analysed (opted out)")  # type: ignore[attr-defined]
    turns = page.locator("#turns-table tbody tr")  # type: ignore[attr-defined]
    expect(turns).to_have_count(2)  # the two analysed turns; nothing after the opt-out
    complaint = turns.nth(1)
    complaint.locator("select.right-label").select_option("sad")
    complaint.locator("button.mark-wrong").click()
    expect(complaint.locator(".correction-note")).to_have_text("wrong: sad (supervisor)")
    turns.nth(0).locator("button.mark-right").click()
    expect(turns.nth(0).locator(".correction-note")).to_have_text(re.compile(r"^right \(supervisor\)$"))
    shot(page, "6-corrections")
    stored = {f: json.loads(v) for f, v in state.hgetall(Keys(stack.prefix).cust(who, CustKey.CORRECTIONS)).items()}
    assert len(stored) == 2
    wrong = next(c for c in stored.values() if c["verdict"] == "wrong")
    assert wrong["label"] == "sad" and wrong["by"] == "supervisor" and wrong["at"] > 0
    assert wrong["model"]["label"] and "text" in wrong["modalities"] and wrong["expires_at"] > wrong["at"]
    assert "retained" not in wrong, "the demo does not retain material for adaptation"

    page.click("button[data-tab=agreement]")  # type: ignore[attr-defined]
    expect(page.locator("#agreement-table td[data-source=fused]").first).to_contain_text("of")  # type: ignore[attr-defined]
    shot(page, "7-agreement")

    page.click("button[data-tab=floor]")  # type: ignore[attr-defined]
    row.click()
    page.click("#erase-customer")  # type: ignore[attr-defined]
    expect(page.locator("#erase-report")).to_contain_text("Erased 1 conversation(s)")  # type: ignore[attr-defined]
    assert mentions(state, stack.prefix, who) == [], "nothing of the customer is left in Toneline's Redis"
