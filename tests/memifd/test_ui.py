"""The status page and the offline API docs in a real headless Chromium, against memifd
served by uvicorn with its real manager; Python memif peers and dpdk-testpmd connect."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import memif
import pytest
from memifd.core import pcap
from memifd.core.settings import Settings
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions

from tests.memifd import browser
from tests.memifd.browser import UiServer, cell, row, wait
from tests.memifd.rest_support import memif_clients
from tests.testpmd import TestPmd

TOKEN = "ui-test-token-5d1e"
RING = 12  # room for testpmd's bursts while memifd drains them


@pytest.fixture(scope="module")
def download_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory, download_dir: Path) -> Iterator[WebDriver]:
    missing = browser.available()
    if missing:
        pytest.fail(missing)
    driver = browser.chromium(tmp_path_factory.mktemp("profile"), download_dir)
    yield driver
    driver.quit()


@pytest.fixture
def page(chromium: WebDriver) -> Iterator[WebDriver]:
    """The browser with an empty log; left on a blank page so no stream outlives the test."""
    chromium.get("about:blank")
    browser.log_entries(chromium, "browser")
    browser.requests_sent(chromium)
    yield chromium
    chromium.get("about:blank")


@pytest.fixture
def serve(sock_dir: Path) -> Iterator[Callable[..., UiServer]]:
    servers: list[UiServer] = []

    def make(prefix: str = "", **settings: Any) -> UiServer:
        server = UiServer(Settings(socket_dir=sock_dir, **settings), prefix=prefix)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def create(server: UiServer, name: str, **fields: Any) -> None:
    response = server.api.post("/v1/interfaces", json={"name": name, **fields})
    assert response.status_code == 201, response.text


def open_page(driver: WebDriver, server: UiServer) -> None:
    driver.get(server.url + "/")
    wait(driver, lambda d: browser.text_of(d, "#live") == "live")  # the event stream is up


def test_page_shows_interfaces_and_link_changes_live_without_console_errors(
    page: WebDriver, serve: Callable[..., UiServer], sock_dir: Path
) -> None:
    server = serve()
    create(server, "vnf0", memory={"num_queue_pairs": 2})
    assert 'data-name="vnf0"' in server.api.get("/").text  # rendered by the server
    page.get(server.url + "/")
    wait(page, lambda d: browser.text_of(d, "#live") == "live")
    assert cell(page, "vnf0", "role") == "server"
    assert cell(page, "vnf0", "socket") == str(sock_dir / "memif.sock")
    assert cell(page, "vnf0", "state") == "disconnected"
    assert len(page.find_elements(By.CSS_SELECTOR, '[data-name="vnf0"] .queues tbody tr')) == 2

    create(server, "uplink", role="client", socket="uplink.sock", id=3)
    wait(page, lambda d: cell(d, "uplink", "role") == "client")
    assert cell(page, "uplink", "socket") == str(sock_dir / "uplink.sock")

    with memif_clients(str(sock_dir / "memif.sock"), [0], reconnect_interval=30) as (peer,):
        assert peer.wait_connected(5)
        wait(page, lambda d: cell(d, "vnf0", "state") == "connected")
        peer_cell = cell(page, "vnf0", "peer").split("\n")
        assert peer_cell == ["memif-python", f"py0 · pid {os.getpid()}"]
        assert cell(page, "vnf0", "reason") == "—"
        assert "memif-python" in server.api.get("/").text
    wait(page, lambda d: cell(d, "vnf0", "state") == "disconnected")
    wait(page, lambda d: cell(d, "vnf0", "reason") not in ("", "—"))
    assert cell(page, "vnf0", "peer") == "—"

    browser.screenshot(page, "status-page-links")
    assert browser.off_loopback(browser.resource_urls(page)) == []
    assert browser.off_loopback(browser.requests_sent(page)) == []
    assert browser.console_errors(page) == []


def test_text_from_a_peer_is_shown_as_text(
    page: WebDriver, serve: Callable[..., UiServer], sock_dir: Path
) -> None:
    server = serve()
    create(server, "vnf0")
    page.get(server.url + "/")
    app_name = "<b id=pwn>peer</b>"  # a peer picks its own name
    with memif.Socket(str(sock_dir / "memif.sock"), app_name=app_name) as sock:
        sock.create_interface(memif.Arguments(id=0, role="client", name="<i>"))
        sock.start()
        wait(page, lambda d: cell(d, "vnf0", "state") == "connected")
        assert cell(page, "vnf0", "peer").split("\n")[0] == app_name
        assert page.find_elements(By.ID, "pwn") == []
        rendered = server.api.get("/").text
        assert "&lt;b id=pwn&gt;peer&lt;/b&gt;" in rendered and app_name not in rendered
    assert browser.console_errors(page) == []


def test_create_form_shows_errors_next_to_the_field_and_delete_works(
    page: WebDriver, serve: Callable[..., UiServer]
) -> None:
    server = serve()
    open_page(page, server)
    form = page.find_element(By.ID, "create-form")
    form.find_element(By.NAME, "name").send_keys("new0")
    ring = form.find_element(By.NAME, "memory.log2_ring_size")
    ring.send_keys("20")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    error = '[data-error-for="memory.log2_ring_size"]'
    wait(page, lambda d: browser.text_of(d, error))
    assert "14" in browser.text_of(page, error)  # the limit
    assert ring.get_attribute("aria-invalid") == "true"
    assert browser.text_of(page, '[data-error-for="name"]') == ""
    browser.screenshot(page, "status-page-form-error")

    # a rule across fields names its field in the message
    ring.clear()
    ring.send_keys("11")
    form.find_element(By.NAME, "action").send_keys("xconnect")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(page, lambda d: "required" in browser.text_of(d, '[data-error-for="xconnect_to"]'))
    assert browser.text_of(page, error) == ""
    assert server.api.get("/v1/interfaces").json() == []

    form.find_element(By.NAME, "action").send_keys("drop")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(page, lambda d: row(d, "new0") is not None)
    assert server.api.get("/v1/interfaces/new0").json()["memory"]["log2_ring_size"] == 11
    assert browser.text_of(page, '[data-error-for="xconnect_to"]') == ""

    delete = page.find_element(By.CSS_SELECTOR, '[data-name="new0"] form.delete button')
    delete.click()
    wait(page, expected_conditions.alert_is_present()).accept()
    wait(page, lambda d: row(d, "new0") is None)
    assert server.api.get("/v1/interfaces/new0").status_code == 404
    assert browser.console_errors(page, allowed=("status of 422",)) == []


def test_token_is_asked_for_once_and_kept_for_the_tab(
    page: WebDriver, serve: Callable[..., UiServer]
) -> None:
    server = serve(token=TOKEN)
    create(server, "secret0")
    assert "secret0" not in server.api.get("/", headers={"Authorization": ""}).text
    page.get(server.url + "/")
    login = page.find_element(By.ID, "login")
    wait(page, lambda d: login.is_displayed())
    assert row(page, "secret0") is None

    page.find_element(By.ID, "token").send_keys("wrong-token")
    page.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(page, lambda d: "rejected" in browser.text_of(d, "#login-error"))
    assert login.is_displayed()

    page.find_element(By.ID, "token").send_keys(TOKEN)
    page.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(page, lambda d: row(d, "secret0") is not None)
    assert not login.is_displayed()
    wait(page, lambda d: browser.text_of(d, "#live") == "live")  # streamed with the token

    form = page.find_element(By.ID, "create-form")
    form.find_element(By.NAME, "name").send_keys("secret1")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    conflict = '#create-form [data-error-for="id"]'  # the socket's id 0 is taken
    wait(page, lambda d: "memif.sock" in browser.text_of(d, conflict))
    form.find_element(By.NAME, "id").send_keys("1")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(page, lambda d: row(d, "secret1") is not None)
    assert browser.text_of(page, conflict) == ""

    page.refresh()  # the token stays for the tab
    wait(page, lambda d: row(d, "secret1") is not None and row(d, "secret0") is not None)
    assert not page.find_element(By.ID, "login").is_displayed()

    page.find_element(By.ID, "forget").click()
    wait(page, lambda d: d.find_element(By.ID, "login").is_displayed())
    assert row(page, "secret0") is None
    assert browser.console_errors(page, allowed=("status of 401", "status of 409")) == []


@pytest.mark.interop
def test_testpmd_link_counters_and_capture_download_with_a_token(
    page: WebDriver,
    serve: Callable[..., UiServer],
    sock_dir: Path,
    download_dir: Path,
    testpmd: Callable[..., TestPmd],
) -> None:
    server = serve(token=TOKEN)
    create(server, "pmd", socket="pmd.sock", memory={"log2_ring_size": RING})
    page.get(server.url + "/")
    wait(page, lambda d: d.find_element(By.ID, "login").is_displayed())
    page.find_element(By.ID, "token").send_keys(TOKEN)
    page.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(page, lambda d: cell(d, "pmd", "state") == "disconnected")

    pmd = testpmd(
        socket=str(sock_dir / "pmd.sock"), role="client", forward_mode="txonly", rsize=RING
    )
    wait(page, lambda d: cell(d, "pmd", "state") == "connected", timeout=20)
    assert cell(page, "pmd", "peer") not in ("", "—")
    first = int(wait(page, lambda d: cell(d, "pmd", "rx-packets").replace(",", "")))
    wait(page, lambda d: int(cell(d, "pmd", "rx-packets").replace(",", "")) > first)
    rate = '[data-name="pmd"] tr[data-queue="0"] [data-rate="rx-packets"]'
    wait(page, lambda d: browser.text_of(d, rate) not in ("", "–", "0"), timeout=5)
    assert browser.text_of(page, '[data-name="pmd"] [data-rate="rx-bytes"]') not in ("–", "0")
    browser.screenshot(page, "status-page", full_page=False)

    page.find_element(By.CSS_SELECTOR, '[data-name="pmd"] a[data-action=capture]').click()
    saved = browser.wait_download(download_dir, "pmd.pcap")
    assert len(pcap.read(saved.read_bytes()).packets) == 1000
    wait(page, lambda d: "saved pmd.pcap" in browser.text_of(d, "#notice"))
    pmd.check_alive()
    assert browser.console_errors(page, allowed=("status of 401",)) == []


def test_docs_and_redoc_render_without_internet(
    page: WebDriver, serve: Callable[..., UiServer]
) -> None:
    server = serve()
    for path in ("/docs", "/redoc"):
        text = server.api.get(path).text
        assert "http://" not in text and "https://" not in text, text

    page.get(server.url + "/docs")
    paths = ".opblock-summary-path"
    wait(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, paths)) >= 8)
    shown = {e.get_attribute("data-path") for e in page.find_elements(By.CSS_SELECTOR, paths)}
    assert {"/v1/interfaces", "/v1/interfaces/{name}/capture", "/v1/events"} <= shown
    assert browser.off_loopback(browser.resource_urls(page)) == []
    assert browser.off_loopback(browser.requests_sent(page)) == []
    browser.screenshot(page, "docs-swagger", full_page=False)
    assert browser.console_errors(page) == []

    page.get(server.url + "/redoc")
    wait(page, lambda d: "Create Interface" in d.find_element(By.TAG_NAME, "body").text)
    assert len(page.find_elements(By.CSS_SELECTOR, "[data-section-id]")) >= 8
    # ReDoc's side menu shows its makers' logo, which it would fetch from their CDN
    logo = wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, 'img[alt="redocly logo"]'))
    assert logo[0].get_attribute("src").startswith("data:")
    browser.screenshot(page, "docs-redoc", full_page=False)
    assert browser.off_loopback(browser.resource_urls(page)) == []  # not even tried
    sent = browser.requests_sent(page)
    assert any(url.endswith("/openapi.json") for url in sent)
    assert browser.off_loopback(sent) == []
    assert browser.console_errors(page) == []  # no request refused by the page's own CSP


def test_page_and_docs_work_behind_a_path_prefix(
    page: WebDriver, serve: Callable[..., UiServer]
) -> None:
    server = serve(prefix="/memifd", root_path="/memifd")
    create(server, "vnf0")
    page.get(server.url)  # no trailing slash, as a user types it
    wait(page, lambda d: browser.text_of(d, "#live") == "live")
    assert row(page, "vnf0") is not None
    capture = page.find_element(By.CSS_SELECTOR, '[data-name="vnf0"] a[data-action=capture]')
    assert capture.get_attribute("href") == (
        f"{server.url}/v1/interfaces/vnf0/capture?count=1000&duration=10"
    )

    form = page.find_element(By.ID, "create-form")
    form.find_element(By.NAME, "name").send_keys("vnf1")
    form.find_element(By.NAME, "id").send_keys("1")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(page, lambda d: row(d, "vnf1") is not None)
    page.find_element(By.CSS_SELECTOR, '[data-name="vnf1"] form.delete button').click()
    wait(page, expected_conditions.alert_is_present()).accept()
    wait(page, lambda d: row(d, "vnf1") is None)
    assert [i["name"] for i in server.api.get("/v1/interfaces").json()] == ["vnf0"]
    urls = browser.resource_urls(page)

    page.get(server.url + "/docs")
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    urls += browser.resource_urls(page)
    assert all(url.startswith(server.url) for url in urls), urls
    assert server.proxy is not None and server.proxy.misses == []
    assert browser.console_errors(page) == []


# -- fit, every field, editing, conflicts, capture duration ------------------------------------


def test_page_fits_a_1366_pixel_wide_screen(
    page: WebDriver, serve: Callable[..., UiServer], sock_dir: Path
) -> None:
    server = serve()
    long_name = "uplink-to-the-provider-edge-0001"  # 32 characters, the limit
    deep = "tenants/network-functions/edge-site-a/uplink-to-provider-edge.sock"
    create(server, "vnf0", action="echo", memory={"num_queue_pairs": 4})
    create(server, long_name, role="client", socket=deep, id=4_000_000_000)
    create(
        server, "vnf1", socket="vnf1.sock", action="xconnect", xconnect_to="vnf0", admin_up=False
    )
    size = page.get_window_size()
    page.set_window_size(1366, 768)
    try:
        with memif_clients(str(sock_dir / "memif.sock"), [0]) as (peer,):
            assert peer.wait_connected(5)
            open_page(page, server)
            wait(page, lambda d: cell(d, "vnf0", "state") == "connected")
            wait(page, lambda d: "failed" in cell(d, long_name, "reason"))
            widths = page.execute_script(
                "const root = document.documentElement;"
                "const wrap = document.querySelector('.table-wrap');"
                "return [window.innerWidth, root.clientWidth, root.scrollWidth,"
                " wrap.clientWidth, wrap.scrollWidth];"
            )
            inner, client, scroll, wrap_client, wrap_scroll = widths
            assert inner == 1366
            assert scroll <= client and wrap_scroll <= wrap_client, widths
            actions = page.find_elements(By.CSS_SELECTOR, "#interfaces .row-actions")
            assert all(a.rect["x"] + a.rect["width"] <= client for a in actions)
            browser.screenshot(page, "status-page-1366", full_page=False)
    finally:
        page.set_window_size(size["width"], size["height"])
    assert browser.console_errors(page) == []


def _spec_fields(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> set[str]:
    names = set()
    for key, prop in schema["properties"].items():
        ref = prop.get("$ref") or next(
            (item["$ref"] for item in prop.get("anyOf", []) if "$ref" in item), None
        )
        target = defs.get(ref.rsplit("/", 1)[1]) if ref else None
        if target is not None and "properties" in target:
            names |= _spec_fields(target, defs, f"{prefix}{key}.")
        else:
            names.add(prefix + key)
    return names


def test_the_forms_have_every_field_of_the_api(serve: Callable[..., UiServer]) -> None:
    from html.parser import HTMLParser

    from memifd.core.models import InterfacePatch, InterfaceSpec

    class Fields(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.form = ""
            self.names: dict[str, set[str]] = {}

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            attributes = dict(attrs)
            if tag == "form" and attributes.get("id"):
                self.form = attributes["id"] or ""
            elif tag in ("input", "select") and attributes.get("name") and self.form:
                self.names.setdefault(self.form, set()).add(attributes["name"] or "")

    parser = Fields()
    parser.feed(serve().api.get("/").text)
    spec = InterfaceSpec.model_json_schema()
    assert parser.names["create-form"] == _spec_fields(spec, spec["$defs"])
    assert {"rx_mode", "admin_up", "allowed_uids", "memory.log2_ring_size"} <= parser.names[
        "create-form"
    ]
    assert parser.names["edit-form"] == set(InterfacePatch.model_fields)


def test_create_form_sends_every_field(page: WebDriver, serve: Callable[..., UiServer]) -> None:
    server = serve()
    open_page(page, server)
    form = page.find_element(By.ID, "create-form")
    typed = {
        "name": "full0",
        "socket": "full.sock",
        "id": "7",
        "secret": "s3cret",
        "memory.num_queue_pairs": "2",
        "memory.log2_ring_size": "8",
        "memory.packet_buffer_size": "4096",
        "allowed_uids": "1000, 1001",
        "allowed_gids": "10001",
    }
    for name, text in typed.items():
        form.find_element(By.NAME, name).send_keys(text)
    for name, choice in (
        ("role", "client"),
        ("mode", "ip"),
        ("rx_mode", "polling"),
        ("action", "echo"),
    ):
        form.find_element(By.NAME, name).send_keys(choice)
    form.find_element(By.NAME, "admin_up").click()  # on by default: now off
    form.find_element(By.NAME, "accept_unsealed_regions").click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(page, lambda d: row(d, "full0") is not None)
    got = server.api.get("/v1/interfaces/full0").json()
    assert {
        key: got[key]
        for key in (
            "role",
            "id",
            "mode",
            "rx_mode",
            "action",
            "admin_up",
            "accept_unsealed_regions",
            "allowed_uids",
            "allowed_gids",
        )
    } == {
        "role": "client",
        "id": 7,
        "mode": "ip",
        "rx_mode": "polling",
        "action": "echo",
        "admin_up": False,
        "accept_unsealed_regions": True,
        "allowed_uids": [1000, 1001],
        "allowed_gids": [10001],
    }
    assert got["memory"] == {"num_queue_pairs": 2, "log2_ring_size": 8, "packet_buffer_size": 4096}
    assert got["socket_path"].endswith("/full.sock") and "s3cret" not in json.dumps(got)
    wait(page, lambda d: "admin down" in cell(d, "full0", "state"))

    # a bad item of a list is shown by its field
    form.find_element(By.NAME, "name").send_keys("full1")
    form.find_element(By.NAME, "allowed_gids").send_keys("10001, staff")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    gids_error = '#create-form [data-error-for="allowed_gids"]'
    wait(page, lambda d: "integer" in browser.text_of(d, gids_error))
    assert browser.console_errors(page, allowed=("status of 422",)) == []


def edit(page: WebDriver, name: str) -> WebElement:
    page.find_element(By.CSS_SELECTOR, f'[data-name="{name}"] button[data-action=edit]').click()
    dialog = page.find_element(By.ID, "edit-dialog")
    wait(page, lambda d: dialog.is_displayed())
    return page.find_element(By.ID, "edit-form")


def test_an_interface_can_be_edited(page: WebDriver, serve: Callable[..., UiServer]) -> None:
    server = serve()
    create(server, "vnf0", action="echo")
    create(server, "vnf1", socket="vnf1.sock")
    open_page(page, server)
    form = edit(page, "vnf1")
    assert browser.text_of(page, "#edit-name") == "vnf1"
    values = page.execute_script(
        "const f = document.getElementById('edit-form').elements;"
        "return [f.rx_mode.value, f.action.value, f.xconnect_to.value, f.admin_up.checked];"
    )
    assert values == ["interrupt", "drop", "", True]
    save = form.find_element(By.CSS_SELECTOR, "button[type=submit]")
    error = '#edit-form [data-error-for="xconnect_to"]'

    form.find_element(By.NAME, "action").send_keys("xconnect")
    save.click()
    wait(page, lambda d: "required" in browser.text_of(d, error))
    form.find_element(By.NAME, "xconnect_to").send_keys("nope")
    save.click()
    wait(page, lambda d: "does not exist" in browser.text_of(d, error))
    assert form.find_element(By.NAME, "xconnect_to").get_attribute("aria-invalid") == "true"
    assert server.api.get("/v1/interfaces/vnf1").json()["action"] == "drop"
    browser.screenshot(page, "status-page-edit", full_page=False)

    field = form.find_element(By.NAME, "xconnect_to")
    field.clear()
    field.send_keys("vnf0")
    form.find_element(By.NAME, "rx_mode").send_keys("polling")
    form.find_element(By.NAME, "admin_up").click()
    save.click()
    wait(page, lambda d: not d.find_element(By.ID, "edit-dialog").is_displayed())
    got = server.api.get("/v1/interfaces/vnf1").json()
    assert (got["action"], got["xconnect_to"], got["rx_mode"], got["admin_up"]) == (
        "xconnect",
        "vnf0",
        "polling",
        False,
    )
    wait(page, lambda d: "xconnect" in cell(d, "vnf1", "name"))
    wait(page, lambda d: "admin down" in cell(d, "vnf1", "state"))
    assert "updated vnf1" in browser.text_of(page, "#notice")

    form = edit(page, "vnf1")  # back to drop: an emptied cross-connect is cleared
    form.find_element(By.NAME, "action").send_keys("drop")
    form.find_element(By.NAME, "xconnect_to").clear()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(page, lambda d: not d.find_element(By.ID, "edit-dialog").is_displayed())
    got = server.api.get("/v1/interfaces/vnf1").json()
    assert (got["action"], got["xconnect_to"], got["admin_up"]) == ("drop", None, False)

    form = edit(page, "vnf0")  # cancel changes nothing
    form.find_element(By.NAME, "action").send_keys("drop")
    page.find_element(By.ID, "edit-cancel").click()
    wait(page, lambda d: not d.find_element(By.ID, "edit-dialog").is_displayed())
    assert server.api.get("/v1/interfaces/vnf0").json()["action"] == "echo"
    assert browser.console_errors(page, allowed=("status of 422",)) == []


def test_a_conflict_is_shown_next_to_the_field_it_concerns(
    page: WebDriver, serve: Callable[..., UiServer], sock_dir: Path
) -> None:
    server = serve()
    create(server, "vnf0")
    (sock_dir / "taken.sock").write_text("not a socket")
    open_page(page, server)
    form = page.find_element(By.ID, "create-form")
    submit = form.find_element(By.CSS_SELECTOR, "button[type=submit]")

    def error_of(field: str) -> str:
        return browser.text_of(page, f'#create-form [data-error-for="{field}"]')

    name = form.find_element(By.NAME, "name")
    name.send_keys("vnf0")
    submit.click()
    wait(page, lambda d: "already exists" in error_of("name"))
    assert name.get_attribute("aria-invalid") == "true" and error_of("") == ""

    name.clear()
    name.send_keys("vnf1")  # same socket, role and id 0 as vnf0
    submit.click()
    wait(page, lambda d: "id 0 already exists" in error_of("id"))
    assert error_of("name") == "" and error_of("") == ""

    form.find_element(By.NAME, "socket").send_keys("taken.sock")
    submit.click()
    wait(page, lambda d: "not a socket" in error_of("socket"))
    assert error_of("id") == "" and error_of("") == ""
    browser.screenshot(page, "status-page-conflict", full_page=False)

    form.find_element(By.NAME, "socket").clear()
    form.find_element(By.NAME, "id").send_keys("1")
    submit.click()
    wait(page, lambda d: row(d, "vnf1") is not None)
    assert browser.console_errors(page, allowed=("status of 409",)) == []


def test_capture_link_ends_after_its_duration_on_an_idle_link(
    page: WebDriver, serve: Callable[..., UiServer], download_dir: Path
) -> None:
    server = serve()
    create(server, "idle0")
    open_page(page, server)
    link = page.find_element(By.CSS_SELECTOR, '[data-name="idle0"] a[data-action=capture]')
    assert link.text == "capture 10 s" and "10 seconds" in (link.get_attribute("title") or "")
    started = time.monotonic()
    link.click()
    saved = browser.wait_download(download_dir, "idle0.pcap", timeout=30)
    assert 9 < time.monotonic() - started < 25
    assert pcap.read(saved.read_bytes()).packets == []  # a valid, empty capture
    assert browser.console_errors(page) == []
