"""Test helpers: a real headless Chromium driven over WebDriver (Selenium), and reading
the streaming example's page (nothing in here is a test).

Chromium and ChromeDriver are Debian's (``scripts/install-chromium.sh``, which
``scripts/test.sh`` runs); without them the browser tests skip locally and fail under CI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import pytest


def chromium_paths() -> tuple[str, str]:
    """Chromium and ChromeDriver; skip (fail under CI) when they are not installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    fail: Callable[[str], NoReturn] = pytest.fail if os.environ.get("CI") else pytest.skip
    fail("chromium / chromedriver not found: run `bash scripts/install-chromium.sh` (root, apt)")


@contextlib.contextmanager
def headless_chromium() -> Iterator[Any]:
    """A Selenium WebDriver session on a fresh headless Chromium profile."""
    chromium, driver_path = chromium_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download
    profile = tempfile.mkdtemp(prefix="spanhook-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


#: One snapshot of the streaming page, read in a single script call.
PAGE_STATE_JS = """
return {
  status: document.getElementById("status").textContent,
  tokens: Array.from(document.querySelectorAll("#tokens span.token"), s => s.textContent),
  tools: Array.from(document.querySelectorAll("#tools li"), li => li.textContent),
  answer: document.getElementById("answer").textContent,
};
"""


def page_state(driver: Any) -> dict[str, Any]:
    state: dict[str, Any] = driver.execute_script(PAGE_STATE_JS)
    return state


def ask(driver: Any, question: str) -> None:
    """Type the question into the page and press Ask (the page must be connected)."""
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, "question")
    field.clear()
    field.send_keys(question)
    driver.find_element(By.ID, "send").click()


def open_page(driver: Any, url: str, timeout: float = 30.0) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, timeout).until(lambda d: page_state(d)["status"] == "connected")


def watch(
    drivers: Sequence[Any], timeout: float = 60.0
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """Poll every page until all are done or failed; returns (final states, snapshots)
    where each snapshot holds one state per page, taken one right after the other."""
    snapshots: list[list[dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    while True:
        states = [page_state(d) for d in drivers]
        snapshots.append(states)
        if all(s["status"] == "done" or s["status"].startswith("failed") for s in states):
            return states, snapshots
        if time.monotonic() > deadline:
            raise TimeoutError(f"pages not done within {timeout} s: {states}")
        time.sleep(0.02)
