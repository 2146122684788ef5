"""The /ui page in headless Chromium (Debian's `chromium`, driven by Playwright) against the local stack.

UI_SCREENSHOT=docs/ui.png saves the finished page there (the README shows it); otherwise into the test's
temporary directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import ROOT, LocalStack

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "Debian's chromium is not installed (apt-get install -y --no-install-recommends chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")

TEXT = "Hyvää huomenta! Tänään on kaunis päivä, ja aurinko paistaa."
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            # Root in a container has no user namespace for the sandbox; audio plays without a device.
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A fresh page, the console errors it logs, and the origins it requests."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    origins: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page: {e}"))
    page.on("request", lambda r: origins.append("{0.scheme}://{0.netloc}".format(urlsplit(r.url))))
    page.on("response", lambda r: errors.append(f"http {r.status}: {r.url}") if r.status >= 400 else None)
    yield page, errors, origins
    context.close()


def _current_task_id(page: Any) -> str:
    return str(page.text_content("#task-id")).strip()


def test_type_a_key_and_a_text_then_listen(
    local_stack: LocalStack, page: tuple[Any, list[str], list[str]], tmp_path: Path
) -> None:
    page, errors, origins = page
    page.set_default_timeout(TIMEOUT_MS)

    # Given: the page, and the key typed once
    page.goto(f"{local_stack.url}/ui")
    page.fill("#key", local_stack.key)
    page.click("#key-save")
    page.wait_for_function("() => document.querySelectorAll('#language option').length >= 3")

    # When: a text is submitted in Finnish
    page.fill("#text", TEXT)
    page.select_option("#language", "fin")
    page.click("#submit")

    # Then: the task runs to done and its audio loads into the player, from the bucket's presigned URL
    page.wait_for_function("() => document.getElementById('status').textContent === 'done'")
    page.wait_for_function(
        "() => { const a = document.getElementById('player');"
        " return a.readyState >= 3 && a.duration > 0 && !a.error; }"
    )
    task_id = _current_task_id(page)
    player_src = page.eval_on_selector("#player", "a => a.currentSrc")
    assert player_src.startswith(f"{local_stack.moto_url}/")
    assert page.eval_on_selector("#progress", "p => p.value === p.max")
    assert page.is_visible("#download-link")

    # And: it is in the recent tasks of this key
    row = f"#tasks tr[data-id='{task_id}']"
    page.wait_for_selector(row)
    assert page.text_content(f"{row} td.status") == "done"

    # And: playing it highlights the word being spoken (the task has speech marks)
    page.wait_for_selector("#transcript .word")
    assert "".join(page.locator("#transcript").all_text_contents()) == TEXT
    page.eval_on_selector("#player", "a => a.play()")
    page.wait_for_function("() => document.getElementById('player').currentTime > 0.3")
    page.wait_for_selector("#transcript .word.current")
    page.eval_on_selector("#player", "a => { a.pause(); a.currentTime = 0.4; }")
    page.wait_for_function("() => document.querySelectorAll('#transcript .word.current').length === 1")

    screenshot = Path(os.environ.get("UI_SCREENSHOT") or tmp_path / "ui.png")
    page.screenshot(
        path=str(ROOT / screenshot if not screenshot.is_absolute() else screenshot), full_page=True
    )

    # And: the key was kept in the browser; a reload lists the task without typing it again
    page.reload()
    page.wait_for_selector(row)
    assert "saved" in str(page.text_content("#key-state"))
    assert page.input_value("#key") == ""  # never shown back

    # Nothing went wrong, and nothing but the API and the bucket was asked for anything
    assert errors == [], "\n".join(errors)
    assert set(origins) <= {local_stack.url, local_stack.moto_url}
    assert local_stack.key not in "".join(origins)


def test_a_wrong_key_says_so_without_console_errors_from_the_page(
    local_stack: LocalStack, page: tuple[Any, list[str], list[str]]
) -> None:
    page, errors, _ = page
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{local_stack.url}/ui")
    page.fill("#key", "tts_not_a_key_of_this_stack_0000")
    page.click("#key-save")

    page.wait_for_function("() => document.getElementById('error').textContent.includes('refused the key')")

    # The browser itself logs the 401 response; the page's own code throws nothing
    unexpected = [e for e in errors if not e.startswith(("http 401:", "console: Failed to load resource"))]
    assert unexpected == []
    assert any(e.startswith("http 401:") for e in errors)
