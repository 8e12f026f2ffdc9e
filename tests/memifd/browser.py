"""Headless Chromium driven by selenium, and memifd served to it for real.

Chromium and chromedriver come from Debian (packages ``chromium`` and
``chromium-driver``); every host name resolves to nothing but ``localhost``, as
in a cluster without internet access, so a page that needs a CDN stays blank.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from memifd.core.settings import Settings
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.memifd.rest_support import RestServer, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def available() -> str | None:
    """None when Chromium and chromedriver are installed, else what is missing."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        packages = "install the Debian packages chromium and chromium-driver"
        return f"{', '.join(missing)} not found: {packages}"
    return None


def chromium(profile: Path, downloads: Path, resolve: dict[str, str] | None = None) -> WebDriver:
    """A headless Chromium with a fresh profile that saves downloads to ``downloads``;
    ``resolve`` maps host names to addresses (every other name resolves to nothing)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    mapped = "".join(f"MAP {name} {address}, " for name, address in (resolve or {}).items())
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        f"--user-data-dir={profile}",
        f"--host-resolver-rules={mapped}MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
        },
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    return driver


def log_entries(driver: WebDriver, log: str) -> list[dict[str, Any]]:
    """What the browser wrote to ``log`` ("browser", "performance") since the last read."""
    entries: list[dict[str, Any]] = driver.get_log(log)  # type: ignore[no-untyped-call]
    return entries


def console_errors(driver: WebDriver, allowed: tuple[str, ...] = ()) -> list[str]:
    """SEVERE browser log entries since the last call, less those containing an allowed text."""
    return [
        entry["message"]
        for entry in log_entries(driver, "browser")
        if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in allowed)
    ]


def resource_urls(driver: WebDriver) -> list[str]:
    """The page's own URL and every resource it loaded (or tried to)."""
    urls: list[str] = driver.execute_script(
        "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)]"
    )
    return urls


def requests_sent(driver: WebDriver) -> list[str]:
    """URLs the browser sent a request to since the last call (from the DevTools network
    log), less those it blocked before sending (a Content-Security-Policy, say)."""
    sent: dict[str, str] = {}
    blocked: set[str] = set()
    for entry in log_entries(driver, "performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            sent[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.loadingFailed" and params.get("blockedReason"):
            blocked.add(params["requestId"])
    return [url for request, url in sent.items() if request not in blocked]


def off_loopback(urls: list[str]) -> list[str]:
    """URLs that went anywhere but this machine (data: and blob: URLs stay in the page)."""
    return [
        url
        for url in urls
        if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname not in LOOPBACK
    ]


def wait(driver: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = 10.0) -> Any:
    """The first truthy value of ``condition(driver)``; fails with a TimeoutException."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def text_of(driver: WebDriver, css: str) -> str:
    """Text of the first element matching ``css``, or "" when there is none.

    Read in one script call: the page re-renders its table every second, so an
    element found first and read later may already be gone.
    """
    text = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css
    )
    return str(text).strip()


def row(driver: WebDriver, name: str) -> WebElement | None:
    """The table row of interface ``name``, if shown."""
    found = driver.find_elements("css selector", f'#interfaces tr[data-name="{name}"]')
    return found[0] if found else None


def cell(driver: WebDriver, name: str, field: str) -> str:
    """Text of one field of an interface's row ("" when the row is missing)."""
    return text_of(driver, f'#interfaces tr[data-name="{name}"] [data-field="{field}"]')


def screenshot(driver: WebDriver, name: str, full_page: bool = True) -> Path:
    """Save the page as ``tests/artifacts/<name>.png`` (the whole page by default)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    size = driver.get_window_size()
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], max(size["height"], int(height) + 20))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(size["width"], size["height"])
    return path


def wait_download(directory: Path, name: str, timeout: float = 20.0) -> Path:
    """The finished download ``name`` in ``directory``."""
    path = directory / name
    partial = directory / f"{name}.crdownload"
    if not wait_for(lambda: path.exists() and not partial.exists(), timeout, 0.1):
        raise TimeoutError(f"{name} was not downloaded; {sorted(directory.iterdir())}")
    return path


class StripPrefix:
    """What an ingress with a rewrite rule does in front of memifd: it passes only requests
    under ``prefix`` and removes the prefix (memifd knows it from ``root_path``).
    Requests outside the prefix get 404 and are recorded in ``misses``."""

    def __init__(self, app: ASGIApp, root_path: str, prefix: str) -> None:
        self.app = app
        self.root_path = root_path
        self.prefix = prefix
        self.misses: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asked = scope["path"][len(self.root_path) :]  # uvicorn put root_path in front
        if asked != self.prefix and not asked.startswith(self.prefix + "/"):
            self.misses.append(asked)
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"outside the prefix"})
            return
        path = self.root_path + (asked[len(self.prefix) :] or "/")
        await self.app({**scope, "path": path, "raw_path": path.encode()}, receive, send)


class UiServer(RestServer):
    """memifd as ``memifd serve`` runs it (real manager, uvicorn with the settings' root
    path), on an ephemeral loopback port; with ``prefix``, behind a :class:`StripPrefix`
    proxy. ``url`` is where a browser finds it, ``api`` a client for the REST API at the
    same place (with the token, if any)."""

    def __init__(self, settings: Settings, prefix: str = "") -> None:
        self.proxy: StripPrefix | None = None

        def behind_proxy(app: ASGIApp) -> ASGIApp:
            self.proxy = StripPrefix(app, settings.root_path, prefix)
            return self.proxy

        super().__init__(settings, prefix, behind_proxy if prefix else None)
        self.api = self.client
