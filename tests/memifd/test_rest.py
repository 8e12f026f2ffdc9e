"""The REST API on real uvicorn (ephemeral loopback port) with a real httpx client
and Python memif peers."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import memif
import memifd
import pytest
from memif import FailureKind
from memifd.core import pcap
from memifd.core.errors import InvalidArgumentError, MalformedError
from memifd.core.settings import Settings

from tests.memif import hostile_peer as hp
from tests.memifd.rest_support import RestServer, frame, memif_clients, receive, wait_for

TOKEN = "rest-test-token-7f3a"


@pytest.fixture
def rest(sock_dir: Path) -> Iterator[RestServer]:
    with RestServer(Settings(socket_dir=sock_dir)) as server:
        yield server


@pytest.fixture
def api(rest: RestServer) -> httpx.Client:
    return rest.client


def create(api: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    response = api.post("/v1/interfaces", json={"name": name, "socket": "r.sock", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def errors(response: httpx.Response) -> list[dict[str, Any]]:
    """The field errors of a 422 problem answer."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    found: list[dict[str, Any]] = response.json()["errors"]
    assert response.json()["detail"] == "; ".join(
        f"{e['field']}: {e['msg']}" if e["field"] else e["msg"] for e in found
    )
    return found


# -- interfaces ------------------------------------------------------------------------------------


def test_create_list_get_delete(api: httpx.Client, sock_dir: Path) -> None:
    body = create(api, "vnf0", secret="hush-hush", role="master", action="echo")
    assert body["role"] == "server" and body["has_secret"] is True
    assert "secret" not in body and "hush-hush" not in json.dumps(body)
    assert body["socket_path"] == str(sock_dir / "r.sock")
    assert body["state"] == "disconnected" and body["stats"]["rx"]["packets"] == 0
    listed = api.get("/v1/interfaces").json()
    assert [i["name"] for i in listed] == ["vnf0"]
    assert api.get("/v1/interfaces/vnf0").json()["action"] == "echo"
    assert api.get("/v1/interfaces/vnf0/stats").json()["tx_queues"][0]["packets"] == 0
    assert api.delete("/v1/interfaces/vnf0").status_code == 204
    assert api.get("/v1/interfaces").json() == []
    missing = api.get("/v1/interfaces/vnf0")
    assert missing.status_code == 404 and "vnf0" in missing.json()["detail"]
    assert api.delete("/v1/interfaces/vnf0").status_code == 404
    assert api.get("/v1/interfaces/vnf0/stats").status_code == 404
    assert not (sock_dir / "r.sock").exists()


def test_dry_run_validates_only(api: httpx.Client, sock_dir: Path) -> None:
    response = api.post("/v1/interfaces?dry_run=true", json={"name": "x", "socket": "d.sock"})
    assert response.status_code == 200 and response.json()["socket_path"].endswith("d.sock")
    assert api.get("/v1/interfaces").json() == []
    assert not (sock_dir / "d.sock").exists()
    created = create(api, "x", socket="d.sock")
    # the preview says it is one, in the body and a header; else it is what a create answers
    preview = response.json()
    assert (preview.pop("dry_run"), response.headers["Memifd-Dry-Run"]) == (True, "true")
    assert preview == created
    assert "dry_run" not in created
    assert "Memifd-Dry-Run" not in api.get("/v1/interfaces/x").headers
    again = api.post("/v1/interfaces?dry_run=true", json={"name": "x", "socket": "d.sock"})
    assert again.status_code == 409


def test_dry_run_refuses_what_create_refuses(api: httpx.Client, sock_dir: Path) -> None:
    (sock_dir / "plain-file").write_text("not a socket")
    create(api, "mine", socket="mine.sock")
    busy = memif.Socket(str(sock_dir / "busy.sock"))
    busy.create_interface(id=0, role="server", name="busy")
    abstract = memif.Socket(f"@memifd-dry-run-{os.getpid()}")
    abstract.create_interface(id=0, role="server", name="busy")
    bodies: list[dict[str, str | int]] = [
        {"socket": "@"},
        {"socket": "plain-file"},
        {"socket": "plain-file/below.sock"},
        {"socket": "busy.sock"},
        {"socket": abstract.path},
        {"socket": "mine.sock", "id": 1},  # memifd's own listener is not "in use"
        {"socket": "mine.sock", "role": "client"},
        {"socket": "new/dir/x.sock"},
        {"socket": "@memifd-free-abstract-name", "role": "client"},
    ]
    try:
        answers = []
        for number, body in enumerate(bodies):
            spec = {"name": f"x{number}", **body}
            tried = api.post("/v1/interfaces?dry_run=true", json=spec)
            assert not (sock_dir / "new").exists() or number > 7  # a dry run creates nothing
            real = api.post("/v1/interfaces", json=spec)
            assert (tried.status_code, real.status_code) in [(200, 201), (409, 409), (422, 422)]
            if real.status_code != 201:
                assert tried.json() == real.json()
            answers.append(real.status_code)
    finally:
        busy.close()
        abstract.close()
    assert answers == [422, 409, 422, 409, 409, 201, 201, 201, 201]


def test_delete_of_an_xconnect_target_is_refused_naming_the_dependents(
    api: httpx.Client,
) -> None:
    create(api, "target")
    create(api, "west", id=1, action="xconnect", xconnect_to="target")
    create(api, "east", id=2, action="xconnect", xconnect_to="target")
    refused = api.delete("/v1/interfaces/target")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        "interface 'target' is the xconnect target of 'west', "
        "'east': change their xconnect_to or delete them first"
    )
    assert api.patch("/v1/interfaces/west", json={"action": "drop", "xconnect_to": None}).is_success
    assert api.delete("/v1/interfaces/east").status_code == 204
    assert api.delete("/v1/interfaces/target").status_code == 204
    assert [i["name"] for i in api.get("/v1/interfaces").json()] == ["west"]


def test_conflicts(api: httpx.Client) -> None:
    create(api, "a", id=5)
    same_name = api.post("/v1/interfaces", json={"name": "a", "socket": "r.sock", "id": 6})
    assert same_name.status_code == 409 and "'a' already exists" in same_name.json()["detail"]
    same_id = api.post("/v1/interfaces", json={"name": "b", "socket": "r.sock", "id": 5})
    assert same_id.status_code == 409 and "id 5" in same_id.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"name": "a", "memory": {"log2_ring_size": 15}}, "log2_ring_size", "14"),
        ({"name": "a", "memory": {"num_queue_pairs": 0}}, "num_queue_pairs", "1"),
        ({"name": "a", "memory": {"packet_buffer_size": 70000}}, "packet_buffer_size", "65535"),
        ({"name": "x" * 33}, "name", "32"),
        ({"name": "bad name"}, "name", "pattern"),
        ({"name": "a", "secret": "s" * 25}, "secret", "24"),
        ({"name": "a", "id": -1}, "id", "0"),
        ({"name": "a", "id": 2**32}, "id", "4294967295"),
        ({"name": "a", "role": "boss"}, "role", "server"),
        ({"name": "a", "mode": "atm"}, "mode", "ethernet"),
        ({"name": "a", "rx_mode": "sometimes"}, "rx_mode", "polling"),
        ({"name": "a", "action": "teleport"}, "action", "xconnect"),
        ({"name": "a", "colour": "red"}, "colour", "Extra inputs"),
        ({"name": "a", "action": "xconnect"}, "body", "xconnect_to: required"),
        ({"name": "a", "action": "xconnect", "xconnect_to": "ghost"}, "xconnect_to", "ghost"),
        ({"name": "a", "socket": "s" * 120}, "socket", "107"),
        ({"socket": "r.sock"}, "name", "required"),
    ],
)
def test_bad_bodies_name_the_field_and_limit(
    api: httpx.Client, body: dict[str, Any], field: str, text: str
) -> None:
    response = api.post("/v1/interfaces", json=body)
    detail = errors(response)
    assert any(field in [str(part) for part in e["loc"]] and text in e["msg"] for e in detail), (
        detail
    )
    assert all("input" not in e for e in detail)
    assert "s" * 25 not in response.text


def test_malformed_json_is_422(api: httpx.Client) -> None:
    response = api.post(
        "/v1/interfaces", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


def test_patch(api: httpx.Client, sock_dir: Path) -> None:
    create(api, "a", id=0)
    create(api, "b", id=1)
    with memif_clients(str(sock_dir / "r.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        body = api.patch("/v1/interfaces/a", json={"action": "echo", "rx_mode": "polling"}).json()
        assert (body["action"], body["rx_mode"]) == ("echo", "polling")
        client.tx_queue(0).send_burst([frame(1)])
        assert receive(client, 1) == [frame(1)]
        body = api.patch("/v1/interfaces/a", json={"action": "xconnect", "xconnect_to": "b"})
        assert body.json()["xconnect_to"] == "b"
        assert errors(api.patch("/v1/interfaces/a", json={"xconnect_to": "a"}))
        assert errors(api.patch("/v1/interfaces/a", json={"xconnect_to": "zz"}))
        assert errors(api.patch("/v1/interfaces/a", json={"name": "renamed"}))
        assert errors(api.patch("/v1/interfaces/a", json={"rx_mode": "often"}))
        assert api.patch("/v1/interfaces/zz", json={"admin_up": False}).status_code == 404
        body = api.patch("/v1/interfaces/a", json={"admin_up": False}).json()
        assert body["admin_up"] is False
        assert client.wait_disconnected(5)
        assert wait_for(lambda: api.get("/v1/interfaces/a").json()["state"] == "disconnected")


def test_list_reflects_traffic_and_state(api: httpx.Client, sock_dir: Path) -> None:
    create(api, "a")
    first = api.get("/v1/interfaces").json()
    assert first == api.get("/v1/interfaces").json()
    with memif_clients(str(sock_dir / "r.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        client.tx_queue(0).send_burst([frame(i) for i in range(7)])

        def seen() -> bool:
            (status,) = api.get("/v1/interfaces").json()
            return bool(status["state"] == "connected" and status["stats"]["action_drops"] == 7)

        assert wait_for(seen)
        (status,) = api.get("/v1/interfaces").json()
        assert status["peer"]["name"] == "py0" and status["peer"]["pid"] == os.getpid()


# -- capture and inject ----------------------------------------------------------------------------


def test_capture_streams_a_pcap(api: httpx.Client, sock_dir: Path) -> None:
    create(api, "a", action="echo")
    with memif_clients(str(sock_dir / "r.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        packets = [frame(i, 80) for i in range(30)]
        with api.stream("GET", "/v1/interfaces/a/capture?count=40&snaplen=50") as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == pcap.MEDIA_TYPE
            client.tx_queue(0).send_burst(packets)
            assert len(receive(client, 30)) == 30
            body = response.read()
        with pytest.raises(InvalidArgumentError, match="was cut to 50 of 80 bytes"):
            pcap.read(body)
        parsed = pcap.read(body, allow_truncated=True)
        assert parsed.linktype == pcap.LINKTYPE_ETHERNET and parsed.snaplen == 50
        assert len(parsed.packets) == 40
        assert set(parsed.packets) == {p[:50] for p in packets}
        rx_only = api.get("/v1/interfaces/a/capture?duration=0.3&direction=rx")
        assert rx_only.status_code == 200
        assert pcap.read(rx_only.content).packets == []


def test_capture_bad_parameters(api: httpx.Client) -> None:
    create(api, "a")
    for query, field in [
        ("count=0", "count"),
        ("count=10000001", "count"),
        ("duration=0", "duration"),
        ("duration=86401", "duration"),
        ("snaplen=70000", "snaplen"),
        ("direction=up", "direction"),
    ]:
        detail = errors(api.get(f"/v1/interfaces/a/capture?{query}"))
        assert detail[0]["loc"] == ["query", field]
    assert api.get("/v1/interfaces/zz/capture?count=1").status_code == 404


def test_capture_of_a_queue_the_interface_lacks_is_refused(api: httpx.Client) -> None:
    create(api, "a", memory={"num_queue_pairs": 2})
    detail = errors(api.get("/v1/interfaces/a/capture?queue=2&duration=2"))
    assert detail == [
        {
            "type": "value_error",
            "loc": ["query", "queue"],
            "field": "queue",
            "msg": "queue 2 is outside 0..1 (interface 'a')",
        }
    ]
    ok = api.get("/v1/interfaces/a/capture?queue=1&duration=0.2")
    assert ok.status_code == 200 and pcap.read(ok.content).packets == []


def test_inject_a_pcap(api: httpx.Client, sock_dir: Path) -> None:
    create(api, "a")
    with memif_clients(str(sock_dir / "r.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        packets = [frame(i, 60 + i) for i in range(20)]
        response = api.post(
            "/v1/interfaces/a/packets",
            content=pcap.write(packets),
            headers={"Content-Type": pcap.MEDIA_TYPE},
        )
        assert response.json() == {"accepted": 20, "ring_full": 0}
        assert receive(client, 20) == packets
        assert wait_for(lambda: api.get("/v1/interfaces/a/stats").json()["injected"] == 20)


def test_inject_errors(api: httpx.Client, sock_dir: Path) -> None:
    create(api, "a")
    api.headers["Content-Type"] = pcap.MEDIA_TYPE
    good = pcap.write([frame(1)])
    not_connected = api.post("/v1/interfaces/a/packets", content=good)
    assert not_connected.status_code == 409 and "not connected" in not_connected.text
    assert api.post("/v1/interfaces/zz/packets", content=good).status_code == 404
    garbage = api.post("/v1/interfaces/a/packets", content=b"GIF89a" + bytes(40))
    assert garbage.status_code == 400 and "magic 0x38464947" in garbage.json()["detail"]
    bad_ng = api.post("/v1/interfaces/a/packets", content=b"\x0a\x0d\x0d\x0a" + bytes(40))
    assert bad_ng.status_code == 400
    assert "block 0 at byte 0: byte-order magic 0x00000000" in bad_ng.json()["detail"]
    short = api.post("/v1/interfaces/a/packets", content=b"\xd4\xc3")
    assert short.status_code == 400 and "global header" in short.json()["detail"]
    truncated = api.post("/v1/interfaces/a/packets", content=good[:-10])
    assert truncated.status_code == 400 and "packet 0: data truncated" in truncated.text
    raw_ip = api.post("/v1/interfaces/a/packets", content=pcap.write([frame(1)], pcap.LINKTYPE_RAW))
    assert "link type 101" in errors(raw_ip)[0]["msg"]
    with memif_clients(str(sock_dir / "r.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        bad_queue = api.post("/v1/interfaces/a/packets?queue=3", content=good)
        assert errors(bad_queue)[0]["loc"] == ["queue"]
        assert errors(api.post("/v1/interfaces/a/packets?queue=-1", content=good))


# -- events, probes, metrics -----------------------------------------------------------------------


def read_events(lines: Iterator[str], until: str) -> list[dict[str, Any]]:
    """Link events up to the first in state ``until``, without "connecting" (its place
    in the sequence is checked by the manager's tests)."""
    found: list[dict[str, Any]] = []
    for line in lines:
        if line.startswith("data: "):
            event = json.loads(line[6:])
            if event["state"] != "connecting":
                found.append(event)
            if event["state"] == until:
                break
    return found


def test_events_stream_link_changes(api: httpx.Client, sock_dir: Path) -> None:
    with api.stream("GET", "/v1/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        create(api, "a")
        with memif_clients(str(sock_dir / "r.sock"), [0]) as (client,):
            assert client.wait_connected(5)
            first = read_events(lines, "connected")
        rest = read_events(lines, "disconnected")
    assert [e["state"] for e in first + rest] == ["connected", "disconnected"]
    assert first[0]["peer"]["name"] == "py0" and first[0]["interface"] == "a"
    assert rest[0]["reason"]


def test_events_of_one_interface(api: httpx.Client, sock_dir: Path) -> None:
    create(api, "a")
    create(api, "b", id=1)
    with api.stream("GET", "/v1/events?interface=b") as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert api.delete("/v1/interfaces/a").status_code == 204
        assert api.delete("/v1/interfaces/b").status_code == 204
        events = read_events(lines, "deleted")
    assert [(e["interface"], e["state"]) for e in events] == [("b", "deleted")]


def test_events_of_an_unknown_interface_are_not_found(api: httpx.Client) -> None:
    with api.stream("GET", "/v1/events?interface=ghost") as response:
        assert response.status_code == 404
        response.read()
        assert response.json()["detail"] == "interface 'ghost' not found"


def test_probes_and_metrics(rest: RestServer, api: httpx.Client, sock_dir: Path) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
    create(api, "a", action="echo")
    with memif_clients(str(sock_dir / "r.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        client.tx_queue(0).send_burst([frame(i) for i in range(3)])
        assert len(receive(client, 3)) == 3
        assert wait_for(lambda: rest.manager.interface_stats("a").forwarded == 3)
        text = api.get("/metrics").text
    assert 'memifd_interface_packets_total{direction="rx",interface="a"} 3.0' in text
    assert 'memifd_queue_packets_total{direction="tx",interface="a",queue="0"} 3.0' in text
    assert 'memifd_interface_forwarded_total{interface="a"} 3.0' in text
    assert 'memifd_interface_link_up{interface="a"} 1.0' in text
    assert 'memifd_subscriptions{kind="capture"} 0.0' in text
    rest.manager.stop()
    assert api.get("/readyz").status_code == 503
    assert api.get("/healthz").status_code == 503


def test_handshake_failures_are_counted_by_reason(
    rest: RestServer, api: httpx.Client, sock_dir: Path
) -> None:
    create(api, "a", secret="right")
    path = str(sock_dir / "r.sock")
    with memif_clients(path, [0], secret="wrong") as (client,):
        assert wait_for(lambda: "secret mismatch" in client.disconnect_reason)
    quitter = hp.dial(path)  # reads HELLO, then leaves without a word
    quitter.expect(hp.HELLO)
    quitter.close()
    assert wait_for(lambda: rest.manager.handshake_failures["peer_closed"] == 1)
    text = api.get("/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("memifd_handshake_failures")]
    assert 'memifd_handshake_failures_total{reason="peer_closed"} 1.0' in lines
    secret = next(line for line in lines if 'reason="secret"' in line)
    assert float(secret.rsplit(" ", 1)[1]) >= 1  # the client retries until it is closed
    assert {line.split('"')[1] for line in lines if "_total{" in line} == {
        kind.value for kind in FailureKind
    }


def test_link_details_show_negotiated_memory_regions_and_rings(
    api: httpx.Client, sock_dir: Path
) -> None:
    create(api, "a", memory={"num_queue_pairs": 2, "log2_ring_size": 8})
    down = api.get("/v1/interfaces/a/link").json()
    assert down == {
        "name": "a",
        "state": "disconnected",
        "memory": None,
        "regions": [],
        "rings": [],
    }
    small = memif.MemoryConfig(num_queue_pairs=1, log2_ring_size=6)
    with memif_clients(str(sock_dir / "r.sock"), [0], memory=small) as (client,):
        assert client.wait_connected(5)
        client.tx_queue(0).send_burst([frame(i) for i in range(5)])
        assert wait_for(lambda: api.get("/v1/interfaces/a/stats").json()["rx"]["packets"] == 5)
        up = api.get("/v1/interfaces/a/link").json()
    assert up["state"] == "connected"
    assert up["memory"] == {"num_queue_pairs": 1, "log2_ring_size": 6, "packet_buffer_size": 2048}
    assert [(r["index"], r["sealed"]) for r in up["regions"]] == [(0, True), (1, True)]
    rx, tx = up["rings"]
    assert (rx["direction"], rx["queue"], rx["size"], rx["head"], rx["tail"]) == ("rx", 0, 64, 5, 5)
    assert (tx["direction"], tx["head"], tx["region"]) == ("tx", 64, 0)
    assert api.get("/v1/interfaces/ghost/link").status_code == 404


def test_metrics_carry_the_build_and_the_process(api: httpx.Client) -> None:
    text = api.get("/metrics").text
    python = ".".join(str(part) for part in sys.version_info[:3])
    assert (
        f'memifd_build_info{{implementation="CPython",python="{python}",'
        f'version="{memifd.__version__}"}} 1.0'
    ) in text
    samples = {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")
    }
    assert {
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "python_info",
        "python_gc_objects_collected_total",
    } <= samples


def test_openapi_documents_every_route(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            ok = [code for code in operation["responses"] if code.startswith("2")]
            assert ok, f"{method} {path} documents no success response"
            content = operation["responses"][ok[0]].get("content")
            assert content or ok[0] == "204", f"{method} {path} has no response model"
    schema = spec["paths"]["/v1/interfaces"]["get"]["responses"]["200"]["content"]
    assert "InterfaceStatus" in json.dumps(schema)
    dry_run = spec["paths"]["/v1/interfaces"]["post"]["responses"]["200"]
    assert "InterfacePreview" in json.dumps(dry_run["content"])
    assert dry_run["headers"]["Memifd-Dry-Run"]["schema"] == {"type": "string", "enum": ["true"]}
    preview = spec["components"]["schemas"]["InterfacePreview"]
    assert preview["properties"]["dry_run"]["const"] is True
    assert set(spec["components"]["schemas"]["InterfaceStatus"]["properties"]) < set(
        preview["properties"]
    )


PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "errors"}


def test_every_error_is_a_problem_document(sock_dir: Path) -> None:
    with RestServer(Settings(socket_dir=sock_dir, token=TOKEN)) as server:
        api = server.client
        create(api, "a")
        pcap_headers = {"Content-Type": pcap.MEDIA_TYPE}
        cases = [
            (httpx.Client(base_url=server.url).get("/v1/interfaces"), 401, []),
            (api.get("/v1/interfaces/ghost"), 404, []),
            (api.get("/no/such/route"), 404, []),
            (api.put("/v1/interfaces/a"), 405, []),
            (api.post("/v1/interfaces", json={"name": "a", "socket": "r.sock"}), 409, []),
            (
                api.post("/v1/interfaces", json={"name": "b", "memory": {"log2_ring_size": 15}}),
                422,
                ["memory.log2_ring_size"],
            ),
            (api.get("/v1/interfaces/a/capture?count=0"), 422, ["count"]),
            (
                api.post("/v1/interfaces/a/packets", content=b"garbage", headers=pcap_headers),
                400,
                [],
            ),
            (
                api.post(
                    "/v1/interfaces/a/packets", content=b"x" * (64 << 20 | 1), headers=pcap_headers
                ),
                413,
                [],
            ),
        ]
        for response, status, fields in cases:
            where = f"{response.request.method} {response.request.url.path}"
            assert response.status_code == status, (where, response.text)
            assert response.headers["content-type"] == "application/problem+json", where
            body = response.json()
            assert set(body) == PROBLEM_KEYS, where
            assert (body["type"], body["status"], body["instance"]) == (
                "about:blank",
                status,
                response.request.url.path,
            ), where
            assert body["title"] == httpx.codes.get_reason_phrase(status), where
            assert isinstance(body["detail"], str) and body["detail"], where
            assert [e["field"] for e in body["errors"]] == fields, where


def test_openapi_names_operations_and_parameters_and_the_error_shape(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    ids = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            ids.append(operation["operationId"])
            assert re.fullmatch(r"[a-z]+([A-Z][a-z]*)*", ids[-1]), (path, method, ids[-1])
            for parameter in operation.get("parameters", []):
                assert parameter.get("description"), (path, method, parameter["name"])
            for code, answer in operation["responses"].items():
                if code.startswith(("4", "5")) and path not in ("/healthz", "/readyz"):
                    assert list(answer["content"]) == ["application/problem+json"], (path, code)
                    schema = answer["content"]["application/problem+json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Problem"}
    assert len(set(ids)) == len(ids)
    assert {
        "createInterface",
        "listInterfaces",
        "getInterfaceStats",
        "captureInterface",
        "injectPackets",
        "watchEvents",
        "getMetrics",
    } <= set(ids)
    problem = spec["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) == PROBLEM_KEYS


def test_events_start_with_the_current_states_when_asked(api: httpx.Client, sock_dir: Path) -> None:
    create(api, "a")
    create(api, "b", id=1)
    with memif_clients(str(sock_dir / "r.sock"), [1]) as (peer,):
        assert peer.wait_connected(5)
        assert wait_for(lambda: api.get("/v1/interfaces/b").json()["state"] == "connected")
        with api.stream("GET", "/v1/events?include_current=true") as stream:
            lines = stream.iter_lines()
            current = [
                json.loads(next(line for line in lines if line.startswith("data: "))[6:])
                for _ in range(2)
            ]
        with api.stream("GET", "/v1/events?include_current=true&interface=b") as stream:
            only_b = json.loads(next(x for x in stream.iter_lines() if x.startswith("data: "))[6:])
    assert [(e["interface"], e["state"]) for e in current] == [
        ("a", "disconnected"),
        ("b", "connected"),
    ]
    assert current[1]["peer"]["name"] == "py1"
    assert (only_b["interface"], only_b["state"]) == ("b", "connected")


# -- auth ------------------------------------------------------------------------------------------


def test_bearer_token_is_required_and_never_echoed(sock_dir: Path) -> None:
    with RestServer(Settings(socket_dir=sock_dir, token=TOKEN)) as server:
        anonymous = httpx.Client(base_url=server.url)
        wrong = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer nope"})
        for client in (anonymous, wrong):
            for method, path in [
                ("GET", "/v1/interfaces"),
                ("POST", "/v1/interfaces"),
                ("GET", "/v1/events"),
                ("GET", "/metrics"),
                ("DELETE", "/v1/interfaces/a"),
            ]:
                response = client.request(method, path)
                assert response.status_code == 401, (method, path)
                assert response.headers["www-authenticate"] == "Bearer"
                assert TOKEN not in response.text
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 200
            client.close()
        assert server.client.get("/v1/interfaces").status_code == 200
        assert server.client.get("/metrics").status_code == 200
        assert TOKEN not in server.client.get("/openapi.json").text


# -- the pcap format -------------------------------------------------------------------------------


def test_pcap_round_trip_and_timestamps() -> None:
    stamp = 1_700_000_000_123_456_789
    data = pcap.global_header(pcap.LINKTYPE_RAW, 100) + pcap.records([(stamp, 300, b"x" * 100)])
    assert data[:4] == bytes.fromhex("4d3cb2a1")  # little-endian nanosecond magic
    assert int.from_bytes(data[24:28], "little") == 1_700_000_000
    assert int.from_bytes(data[28:32], "little") == 123_456_789  # nanoseconds
    parsed = pcap.read(data, allow_truncated=True)
    assert (parsed.linktype, parsed.snaplen, parsed.packets) == (101, 100, [b"x" * 100])


def test_pcap_reads_big_endian_and_nanosecond_files() -> None:
    import struct

    header = struct.pack(">IHHiIII", pcap.MAGIC_NANO, 2, 4, 0, 0, 65535, 1)
    record = struct.pack(">IIII", 1, 999_999_999, 3, 3) + b"abc"
    assert pcap.read(header + record).packets == [b"abc"]
    with pytest.raises(MalformedError, match=r"version 1\.0"):
        pcap.read(struct.pack("<IHHiIII", pcap.MAGIC_MICRO, 1, 0, 0, 0, 65535, 1))
    with pytest.raises(InvalidArgumentError, match="more than 2 packets"):
        pcap.read(pcap.write([b"a", b"b", b"c"]), max_packets=2)
    with pytest.raises(InvalidArgumentError, match="captured length 0"):
        pcap.read(pcap.global_header(1) + struct.pack("<IIII", 0, 0, 0, 0))
