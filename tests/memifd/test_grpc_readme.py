"""The gRPC examples of the README, run against memifd's real gRPC server.

grpcurl is not packaged for Debian, so the grpcurl lines are carried out by a
small stand-in that does what grpcurl does with them: it learns the API by
server reflection only (no generated code), turns the ``-d`` JSON into the
request with protobuf's JSON mapping, sends the ``-H`` metadata and calls the
method. The Python example runs as written, in a subprocess; only the address
is the test server's.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.memifd.grpc_support import GrpcEnv, start_env, wait_for
from tests.memifd.rest_support import frame, memif_clients
from tests.readme import block_after

ADDRESS = "127.0.0.1:50051"


@pytest.fixture
def env(sock_dir: Path) -> Iterator[GrpcEnv]:
    environment = start_env(sock_dir)
    try:
        yield environment
    finally:
        environment.close()


def commands(block: str) -> list[list[str]]:
    """The block's command lines, continuation lines joined, split as a shell would."""
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


class Grpcurl:
    """What ``grpcurl -plaintext [-d JSON] [-H HEADER] ADDRESS list|describe|METHOD`` does."""

    def __init__(self, address: str, environ: dict[str, str]) -> None:
        self.address = address
        self.environ = environ

    def run(self, args: list[str]) -> Any:
        data, headers, rest = "{}", [], []
        words = iter(args)
        for word in words:
            if word == "-plaintext":
                continue
            if word == "-d":
                data = next(words)
            elif word == "-H":
                headers.append(self._expand(next(words)))
            else:
                rest.append(word)
        assert rest[0] == ADDRESS, rest
        with grpc.insecure_channel(self.address) as channel:
            pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
            if rest[1:] == ["list"]:
                return ProtoReflectionDescriptorDatabase(channel).get_services()
            if rest[1] == "describe":
                return [m.name for m in pool.FindServiceByName(rest[2]).methods]
            service, _, name = rest[1].partition("/")
            method = pool.FindServiceByName(service).methods_by_name[name]
            request_class = message_factory.GetMessageClass(method.input_type)
            response_class = message_factory.GetMessageClass(method.output_type)
            request = json_format.Parse(data, request_class())
            metadata = tuple((key, value) for key, _, value in (h.partition(": ") for h in headers))
            path = f"/{service}/{name}"
            serialize, deserialize = request_class.SerializeToString, response_class.FromString
            if method.server_streaming:
                stream = channel.unary_stream(path, serialize, deserialize)
                answers = stream(request, metadata=metadata, timeout=20)
                return [json_format.MessageToDict(m) for m in answers]
            unary = channel.unary_unary(path, serialize, deserialize)
            return json_format.MessageToDict(unary(request, metadata=metadata, timeout=20))

    def _expand(self, text: str) -> str:
        for name, value in self.environ.items():
            text = text.replace(f"${name}", value)
        return text


def test_grpcurl_examples(env: GrpcEnv) -> None:
    lines = commands(block_after("#### grpcurl", "text"))
    assert all(line[0] == "grpcurl" for line in lines)
    grpcurl = Grpcurl(env.address, {"MEMIFD_TOKEN": "any-token"})
    answers = iter(lines)

    assert {"memif.v1.Memif", "grpc.health.v1.Health"} <= set(grpcurl.run(next(answers)[1:]))
    assert "Capture" in grpcurl.run(next(answers)[1:])
    created = grpcurl.run(next(answers)[1:])
    assert (created["name"], created["action"]) == ("memif0", "ACTION_ECHO")
    capture = next(answers)[1:]
    with memif_clients(env.socket_path(), [0]) as (peer,):
        assert peer.wait_connected(5)
        result: list[Any] = []
        reader = threading.Thread(target=lambda: result.extend(grpcurl.run(capture)))
        reader.start()
        wait_for(lambda: env.manager.subscription_counts()["capture"] == 1, what="the capture")
        peer.tx_queue(0).send_burst([frame(i) for i in range(5)])  # echoed: 10 packets seen
        reader.join(20)
    assert sum(len(batch["packets"]) for batch in result) == 10
    assert grpcurl.run(next(answers)[1:]) == {"status": "SERVING"}
    listed = grpcurl.run(next(answers)[1:])
    assert [i["name"] for i in listed["interfaces"]] == ["memif0"]
    assert next(answers, None) is None


def test_python_example(env: GrpcEnv) -> None:
    code = block_after("#### From Python", "python").replace(ADDRESS, env.address)
    env.create("memif0")
    with memif_clients(env.socket_path(), [0]) as (peer,):
        assert peer.wait_connected(5)
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_for(lambda: env.manager.subscription_counts()["capture"] == 1, what="capture")
            sent = 0
            while sent < 10_000:  # as fast as the ring takes them
                burst = [frame(sent + i) for i in range(min(256, 10_000 - sent))]
                sent += peer.tx_queue(0).send_burst(burst)
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    printed = out.splitlines()
    assert len(printed) == 10_000
    stamp, length, head = printed[0].split()
    assert int(stamp) > 0 and int(length) == 64 and head == frame(0)[:14].hex()
