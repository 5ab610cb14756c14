"""Operators find and read runs: search attributes in the visibility API, and the Temporal UI
itself in headless Chromium (Debian's package, driven by Selenium; nothing is downloaded)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid

from temporalio.client import Client

from studio.api import Studio
from tests.conftest import require
from tests.test_catalogue_operations import png_bytes

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


async def count(client: Client, query: str, expected: int, timeout: float = 15.0) -> int:
    """Visibility is eventually consistent: wait for the expected count (or report what is there)."""
    deadline = time.monotonic() + timeout
    found = -1
    while time.monotonic() < deadline:
        found = len([w async for w in client.list_workflows(query)])
        if found == expected:
            break
        await asyncio.sleep(0.3)
    return found


async def test_search_attributes_find_exactly_the_expected_runs(
    studio: Studio, client: Client
) -> None:
    user = f"u42-{uuid.uuid4().hex[:6]}"
    photo = png_bytes()
    ups = [
        await studio.generate_image_upscale(photo, user_id=user, target_resolution=r)
        for r in ("2k", "4k")
    ]
    await studio.generate_image("not an upscale", user_id=user)

    query = f'StudioUser="{user}" AND StudioOperation="upscale"'
    assert await count(client, query, 2) == 2
    found = {w.id async for w in client.list_workflows(query)}
    assert found == {u.workflow_id for u in ups}
    assert await count(client, f'StudioUser="{user}" AND StudioStatus="succeeded"', 3) == 3
    assert await count(client, f'StudioUser="{user}" AND StudioModel="image-upscaler"', 2) == 2

    description = await client.get_workflow_handle(ups[0].workflow_id).describe()
    assert ups[0].workflow_id.startswith(f"upscale-{user}-"), (
        "readable ids: operation, user, short id"
    )
    summary = await description.static_summary()
    assert summary == f"upscale 2k · wavespeed-ai/image-upscaler · user {user}"


async def test_the_temporal_ui_shows_the_run_and_its_summary(studio: Studio, settings) -> None:
    require(
        bool(CHROMIUM and CHROMEDRIVER),
        "Chromium or ChromeDriver is not on PATH",
        "bash scripts/bootstrap.sh as root (apt-get install chromium chromium-driver)",
    )
    user = f"ui-{uuid.uuid4().hex[:6]}"
    result = await studio.generate_image("a lighthouse for the UI test", user_id=user)
    summary = f"text to image · wavespeed-ai/qwen-image/text-to-image · user {user}"
    url = f"{settings.temporal_ui_url}/namespaces/default/workflows/{result.workflow_id}"
    wanted = (summary, "succeeded", result.prediction_ids[0])
    page, metadata = await asyncio.to_thread(_render_retrying, url, result.workflow_id, wanted)
    assert result.workflow_id in page and "COMPLETED" in page and "ImageOperation" in page
    assert summary in metadata, metadata[:2000]
    assert "succeeded" in metadata and result.prediction_ids[0] in metadata, (
        "current details say what happened"
    )


def _render_retrying(
    url: str, workflow_id: str, wanted: tuple[str, ...], tries: int = 3
) -> tuple[str, str]:
    """``_render`` in a fresh browser up to ``tries`` times: a WebDriver error (Chromium failing
    to start on a loaded machine, the UI re-rendering an iframe under us) is the browser's, not
    the UI's answer. The page's content is still asserted by the caller; the last error is raised.
    """
    from selenium.common.exceptions import WebDriverException

    for attempt in range(1, tries + 1):
        try:
            return _render(url, workflow_id, wanted)
        except WebDriverException as exc:
            if attempt == tries:
                raise
            print(f"WebDriver error on try {attempt}, retrying: {exc.msg or exc!r}")
    raise AssertionError("unreachable")


def _frame_texts(driver) -> list[str]:  # type: ignore[no-untyped-def]
    """The text of every iframe; one the UI replaced while we read it is skipped this round."""
    from selenium.common.exceptions import (
        NoSuchFrameException,
        StaleElementReferenceException,
    )

    frames = []
    for frame in driver.find_elements("tag name", "iframe"):
        try:
            driver.switch_to.frame(frame)
            frames.append(driver.execute_script("return document.body.innerText"))
        except (StaleElementReferenceException, NoSuchFrameException):
            pass
        finally:
            driver.switch_to.default_content()
    return frames


def _render(url: str, workflow_id: str, wanted: tuple[str, ...]) -> tuple[str, str]:
    """The run's page text, and the text of its User Metadata tab (summary and details), read
    until every ``wanted`` text is there (the iframes render one by one) or 30 s pass."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={profile}",):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)

    def text(d) -> str:  # type: ignore[no-untyped-def]
        return d.execute_script("return document.body.innerText")

    try:
        driver.set_page_load_timeout(30)
        driver.get(url)
        WebDriverWait(driver, 30).until(
            lambda d: workflow_id in text(d) and "User Metadata" in text(d)
        )
        page = text(driver)
        tab = driver.find_element("xpath", "//*[normalize-space(text())='User Metadata']")
        driver.execute_script("arguments[0].click()", tab)
        # The UI renders summary, details and current details as Markdown in sandboxed iframes.
        WebDriverWait(driver, 30).until(lambda d: d.find_elements("id", "user-metadata-summary"))
        frames: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
            any(text in f for f in frames) for text in wanted
        ):
            frames = _frame_texts(driver)
            time.sleep(0.3)
        return page, "\n".join(frames)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--window-size=1400,2000",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
