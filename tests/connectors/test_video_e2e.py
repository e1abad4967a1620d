"""The video chat page end to end: headless Chromium with a fake camera showing real faces, the real demo bot.

Chromium (Debian's `chromium`) plays a .y4m file built from ten FER2013 faces as its
camera. The customer opts in, waits until the server reports expression readings,
types a message and gets the bot's reply; the turn's parse data in Rasa's tracker
then holds a face estimate with a fusion weight. Declining the camera leaves no face
estimate and the chat still works. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.browser import CHROMIUM
from tests.browser import CHROMIUM_ARGS as BROWSER_ARGS
from tests.connectors.conftest import ARTIFACTS, VoiceStack
from tests.connectors.video_fixtures import face_frame, face_weights, fer_faces, write_y4m

pytestmark = [pytest.mark.e2e, pytest.mark.data]
CHROMIUM_ARGS = [*BROWSER_ARGS, "--use-fake-device-for-media-stream"]
FACES_BEFORE_TYPING = 3


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten different real faces, each held 0.5 s, 320x240 on mid-gray, 10 fps, I420 (not in the repository)."""
    face_weights()  # skip early, with the reason, when the channel would have no face model
    pictures = [face_frame(face) for face in fer_faces(10)]
    return write_y4m(tmp_path_factory.mktemp("camera") / "faces.y4m", pictures, fps=10, hold_s=0.5)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (`apt-get install chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def open_page(playwright: Any, stack: VoiceStack, args: list[str]) -> tuple[Any, Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + args, headless=True)
    page = browser.new_page(viewport={"width": 900, "height": 900})
    page.set_default_timeout(30_000)
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.goto(f"{stack.url}/webhooks/toneline_video/")
    page.wait_for_selector("#status:has-text('Connected')")
    page.console_lines = console
    return browser, page


def say(page: Any, text: str) -> None:
    bot_messages = page.locator(".msg.bot")
    before = bot_messages.count()
    page.fill("#text", text)
    page.click("#send")
    page.wait_for_function(f"document.querySelectorAll('.msg.bot').length > {before}")


def last_user_event(stack: VoiceStack, session_id: str) -> dict[str, Any]:
    events = [e for e in stack.tracker(session_id)["events"] if e["event"] == "user"]
    assert events, "the turn reached Rasa"
    event: dict[str, Any] = events[-1]
    return event


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"video-{name}.png"), full_page=True)
    (ARTIFACTS / f"video-{name}-console.log").write_text("\n".join(page.console_lines))


def test_a_customer_who_turns_the_camera_on_gets_a_face_estimate_in_the_turn(
    voice_stack: VoiceStack, playwright: Any, camera_file: Path
) -> None:
    browser, page = open_page(
        playwright, voice_stack, ["--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={camera_file}"]
    )
    try:
        page.click("#camera-on")
        page.wait_for_function(f"Number(document.body.dataset.faces || 0) >= {FACES_BEFORE_TYPING}", timeout=90_000)
        shot(page, "1-camera-on")
        say(page, "Hello, my internet has been down all day")
        shot(page, "2-reply-with-face")
        session_id = page.evaluate("document.body.dataset.session")
        event = last_user_event(voice_stack, session_id)
        turn = event["parse_data"]["toneline"]
        face = [e for e in turn["estimates"] if e["modality"] == "face"]
        # The face is fused, not masked (typed text: the voice is). Its Shapley share of the label
        # may be 0 when a low-confidence expression does not change what the words say (seen in CI).
        assert face and "face" in turn["weights"] and "voice" not in turn["weights"], turn
        assert event["metadata"]["toneline"]["channel"] == "video"
        assert page.locator(".msg.meta", has_text="expression this turn").count() == 1

        page.click("#camera-off")  # opt-out: the server drops the camera at once
        page.wait_for_selector("#camera-status:has-text('Camera off')")
        page.wait_for_timeout(500)
        assert f"video.camera.off session_id={session_id} reason=opt_out" in voice_stack.log()
        say(page, "thanks")
        assert "face" not in last_user_event(voice_stack, session_id)["metadata"]["toneline"]
        shot(page, "3-camera-off")
    finally:
        shot(page, "last-camera")
        browser.close()


def test_a_customer_who_declines_the_camera_still_chats_without_a_face_estimate(
    voice_stack: VoiceStack, playwright: Any
) -> None:
    with urllib.request.urlopen(f"{voice_stack.url}/webhooks/toneline_video/health", timeout=10) as response:
        assert json.loads(response.read()) == {"status": "ok", "face": True}
    # No fake-UI flag: the browser's permission prompt is dismissed, as when the customer says no.
    browser, page = open_page(playwright, voice_stack, [])
    try:
        # The customer is told before anything is read (EU AI Act Art. 50(3)), camera or not.
        notice = page.locator("#disclosure")
        assert notice.is_visible() and "automated emotion recognition" in notice.inner_text()
        page.click("#camera-on")
        page.wait_for_selector("#camera-status:has-text('Camera not used')")
        say(page, "Hello, I have a question about my bill")
        shot(page, "4-declined")
        session_id = page.evaluate("document.body.dataset.session")
        event = last_user_event(voice_stack, session_id)
        assert "face" not in event["metadata"]["toneline"]
        turn = event["parse_data"]["toneline"]
        assert all(e["modality"] != "face" for e in turn["estimates"]) and "face" not in turn["weights"]
        assert page.locator(".msg.bot").count() >= 1
    finally:
        shot(page, "last-declined")
        browser.close()
