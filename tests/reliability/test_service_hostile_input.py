"""Browsers and hostile names, against ``memifd serve``.

* A web page on another origin (a second local HTTP server), opened in a real
  headless Chromium while memifd runs without a token on loopback, tries to
  inject packets and create an interface with ``no-cors`` and CORS requests:
  memifd refuses every one (415: not the route's media type; the CORS
  preflight is never granted), the memif peer receives nothing and no
  interface appears; the same pcap sent with its media type is injected.
* DNS rebinding: Chromium resolves an attacker's name to 127.0.0.1 and opens
  memifd under it; memifd answers 400 to any Host not on its list, while
  127.0.0.1, localhost and names in ``allowed_hosts`` work.
* Control characters: names and socket values with them (NUL included, abstract
  sockets included) are refused over REST and gRPC; a peer announcing such
  names and reasons is logged on single lines with the characters escaped.
* Config files that nest too deeply, expand aliases without end, or are not
  YAML end memifd with one line on stderr and exit status 2.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from memifd.core import pcap
from memifd.proto.memif.v1 import memif_pb2 as pb
from selenium.webdriver.chrome.webdriver import WebDriver

from tests.memif import hostile_peer as hp
from tests.memifd import browser
from tests.memifd.grpc_support import memif_stub
from tests.memifd.rest_support import Daemon, frame, memif_clients, receive, wait_for
from tests.reliability.service_support import start_daemon, write_config

REBIND_NAME = "rebind.test"

ATTACK_PAGE = """<!doctype html>
<html><head><title>cute cats</title></head><body><pre id="out"></pre><script>
const target = %(target)s;
const packets = Uint8Array.from(atob(%(pcap)s), c => c.charCodeAt(0));
const pcapType = "application/vnd.tcpdump.pcap";
const attempts = {
  "no-cors bytes": () => fetch(target + "/v1/interfaces/vnf0/packets",
      {method: "POST", mode: "no-cors", body: packets}),
  "no-cors pcap blob": () => fetch(target + "/v1/interfaces/vnf0/packets",
      {method: "POST", mode: "no-cors", body: new Blob([packets], {type: pcapType})}),
  "no-cors text/plain": () => fetch(target + "/v1/interfaces/vnf0/packets",
      {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: packets}),
  "no-cors create": () => fetch(target + "/v1/interfaces",
      {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
       body: JSON.stringify({name: "evil", socket: "evil.sock", action: "echo"})}),
  "cors pcap": () => fetch(target + "/v1/interfaces/vnf0/packets",
      {method: "POST", headers: {"Content-Type": pcapType}, body: packets}),
  "cors delete": () => fetch(target + "/v1/interfaces/vnf0", {method: "DELETE"}),
};
(async () => {
  const results = {};
  for (const [name, attempt] of Object.entries(attempts)) {
    try { const r = await attempt(); results[name] = "sent (" + r.type + ")"; }
    catch (e) { results[name] = "failed: " + e; }
  }
  document.getElementById("out").textContent = JSON.stringify(results);
  document.title = "done";
})();
</script></body></html>
"""


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    missing = browser.available()
    if missing:
        pytest.fail(missing)
    driver = browser.chromium(
        tmp_path_factory.mktemp("profile"),
        tmp_path_factory.mktemp("downloads"),
        resolve={REBIND_NAME: "127.0.0.1"},
    )
    yield driver
    driver.quit()


@pytest.fixture
def daemon(sock_dir: Path) -> Iterator[Daemon]:
    """memifd as it starts by default: loopback, no token; access log on."""
    proc = start_daemon(
        sock_dir, args=["--access-log", "--log-level", "info", "--log-format", "text"]
    )
    yield proc
    proc.kill()


class _Page(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def attacker_site() -> Iterator[tuple[str, type[_Page]]]:
    """Another origin: a web server on another loopback port serving one page."""
    handler = type("AttackPage", (_Page,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_cross_origin_page_cannot_inject_or_create(
    chromium: WebDriver, daemon: Daemon, attacker_site: tuple[str, type[_Page]], sock_dir: Path
) -> None:
    site, page = attacker_site
    packets = pcap.write([frame(i) for i in range(8)])
    page.body = (
        ATTACK_PAGE
        % {
            "target": json.dumps(daemon.url),
            "pcap": json.dumps(base64.b64encode(packets).decode()),
        }
    ).encode()
    with daemon.client() as api, memif_clients(str(sock_dir / "vnf0.sock"), [0]) as (peer,):
        assert (
            api.post("/v1/interfaces", json={"name": "vnf0", "socket": "vnf0.sock"}).status_code
            == 201
        )
        assert peer.wait_connected(5)
        chromium.get(site + "/")
        browser.wait(chromium, lambda d: d.title == "done", timeout=20)
        results = json.loads(browser.text_of(chromium, "#out"))
        assert results["cors pcap"].startswith("failed") and results["cors delete"].startswith(
            "failed"
        ), results  # the preflight is refused
        assert receive(peer, 1, timeout=1.0) == []
        assert api.get("/v1/interfaces/vnf0/stats").json()["injected"] == 0
        assert [i["name"] for i in api.get("/v1/interfaces").json()] == ["vnf0"]
        logged = daemon.log().splitlines()
        access = [
            re.findall(r" status=(\d+) ", line)[0]
            for line in logged
            if "memifd.access: POST /v1/interfaces" in line
        ]
        assert access == ["201", "415", "415", "415", "415"], access  # ours, then the page's
        preflights = [line for line in logged if "memifd.access: OPTIONS /v1/" in line]
        assert len(preflights) == 2 and all(" status=405 " in line for line in preflights)
        # the same pcap, sent by a client that names its media type, goes through
        sent = api.post(
            "/v1/interfaces/vnf0/packets",
            content=packets,
            headers={"Content-Type": pcap.MEDIA_TYPE},
        )
        assert sent.json()["accepted"] == 8
        assert len(receive(peer, 8)) == 8


def test_rebound_dns_name_is_refused(chromium: WebDriver, daemon: Daemon) -> None:
    chromium.get(f"http://{REBIND_NAME}:{daemon.http_port}/v1/interfaces")
    shown = browser.text_of(chromium, "body")
    assert "is not allowed" in shown and "allowed_hosts" in shown, shown
    chromium.get(f"http://127.0.0.1:{daemon.http_port}/v1/interfaces")
    assert json.loads(browser.text_of(chromium, "body")) == []
    chromium.get("about:blank")
    for host, status in (
        (f"localhost:{daemon.http_port}", 200),
        ("127.0.0.1", 200),
        ("[::1]:8080", 200),
        ("app.localhost", 200),
        (f"{REBIND_NAME}:{daemon.http_port}", 400),
        ("evil.example", 400),
        ("127.0.0.1.evil.example", 400),
    ):
        response = httpx.get(f"{daemon.url}/healthz", headers={"Host": host}, timeout=5)
        assert response.status_code == status, (host, response.text)


def test_allowed_hosts_adds_names(sock_dir: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "memifd.yaml", [], allowed_hosts=["memifd.internal", "*.pods.example"]
    )
    daemon = start_daemon(sock_dir, config)
    try:
        for host, status in (
            ("memifd.internal", 200),
            ("a.pods.example:80", 200),
            ("pods.example", 400),
            ("memifd.internal.evil", 400),
        ):
            response = httpx.get(f"{daemon.url}/v1/interfaces", headers={"Host": host}, timeout=5)
            assert response.status_code == status, (host, response.text)
    finally:
        daemon.kill()


# -- names ---------------------------------------------------------------------------------------

HOSTILE_NAMES = ["a\nb", "tab\there", "nul\x00", "esc\x1b[31m", "line\u2028sep"]


def test_control_characters_in_names_and_sockets_are_refused(daemon: Daemon) -> None:
    with daemon.client() as api, grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as ch:
        stub = memif_stub(ch)
        for bad in HOSTILE_NAMES:
            for body, field in (
                ({"name": bad}, "name"),
                ({"name": "ok", "socket": f"{bad}.sock"}, "socket"),
                ({"name": "ok", "socket": f"@{bad}"}, "socket"),
                ({"name": "ok", "action": "xconnect", "xconnect_to": bad}, "xconnect_to"),
            ):
                response = api.post("/v1/interfaces", json=body)
                assert response.status_code == 422, (body, response.text)
                assert response.json()["errors"][0]["loc"][:2] == ["body", field]
                with pytest.raises(grpc.RpcError) as excinfo:
                    stub.CreateInterface(
                        pb.CreateInterfaceRequest(
                            spec=pb.InterfaceSpec(
                                name=body["name"],
                                socket=body.get("socket", ""),
                                xconnect_to=body.get("xconnect_to", ""),
                            )
                        ),
                        timeout=10,
                    )
                assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert api.get("/v1/interfaces").json() == []
        socket_error = api.post("/v1/interfaces", json={"name": "ok", "socket": "@a\x00b"})
        assert "U+0000 (NUL) at position 2" in socket_error.text
    log = daemon.log()
    assert "\x1b" not in log and "\x00" not in log


def test_hostile_peer_names_reach_logs_escaped(daemon: Daemon, sock_dir: Path) -> None:
    with daemon.client() as api:
        assert (
            api.post("/v1/interfaces", json={"name": "vnf0", "socket": "h.sock"}).status_code == 201
        )
        app = b"app\n2099-01-01 ERROR forged\x1b"
        name = b"if\r\nFORGED\x00"
        peer = hp.dial(str(sock_dir / "h.sock"))
        memory = hp.ClientMemory(log2=4)
        with hp.closing(peer, memory):
            peer.expect(hp.HELLO)
            peer.send(hp.message(hp.INIT, "HIB24s32s", hp.VERSION, 0, 0, b"", app))
            peer.expect(hp.ACK)
            peer.send(hp.add_region(0, memory.size), [memory.fd])
            peer.expect(hp.ACK)
            for ring in memory.rings:
                peer.send(
                    hp.add_ring(ring.s2m, ring.index, ring.region, ring.offset, ring.log2),
                    [ring.eventfd],
                )
                peer.expect(hp.ACK)
            peer.send(hp.connect(name))
            peer.expect(hp.CONNECTED)
            assert wait_for(lambda: api.get("/v1/interfaces/vnf0").json()["state"] == "connected")
            shown = api.get("/v1/interfaces/vnf0").json()["peer"]
            peer.send(hp.disconnect(1, b"bye\nFORGED reason\x07"))
            assert wait_for(lambda: "FORGED reason" in daemon.log(), timeout=5)
        metrics = api.get("/metrics").text
    assert shown["app_name"] == "app\\n2099-01-01 ERROR forged\\x1b"
    assert shown["name"] == "if\\r\\nFORGED"  # the wire string ends at NUL
    log = daemon.log()
    lines = log.splitlines()
    assert not any(line.startswith(("2099", "FORGED")) for line in lines), log[-2000:]
    # each on the line of its event, escaped (and quoted, in the text format)
    assert any("link up" in line and "2099-01-01 ERROR forged" in line for line in lines)
    assert any("FORGED reason" in line and "bye" in line for line in lines)
    assert all(c.isprintable() or c in "\n" for c in log + metrics)


# -- config files --------------------------------------------------------------------------------

BAD_CONFIGS = {
    "deep": "interfaces: " + "[" * 5000 + "]" * 5000 + "\n",
    "laughs": "".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10) if i else 'x'}]\n" for i in range(9)
    ),
    "not yaml": "socket_dir: [unclosed\n",
    "not settings": "interfaces:\n  - name: a\n    memory: {log2_ring_size: 20}\n"
    '  - name: "b\\e[31m\\n"\n',
    "binary": "\x00\x01\x02",
}


@pytest.mark.parametrize("kind", sorted(BAD_CONFIGS))
def test_bad_config_is_one_clear_line(kind: str, tmp_path: Path, sock_dir: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(BAD_CONFIGS[kind])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "memifd",
            "serve",
            "--config",
            str(config),
            "--socket-dir",
            str(sock_dir),
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("memifd: invalid settings: "), done.stderr[:2000]
    assert len(lines[0]) < 600 and lines[0].isprintable()
    assert str(config) in lines[0] or kind == "not settings"
