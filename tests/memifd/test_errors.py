"""One error family: every class has a status on both transports, and the answers clients
see (REST problem bodies, gRPC codes and messages) are those the API documents."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from memifd.api.grpc import status as grpc_status
from memifd.api.rest import problems
from memifd.core import errors
from memifd.core.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidArgumentError,
    LimitExceededError,
    MalformedError,
    MemifdError,
    NotFoundError,
    StreamEndedError,
    UnavailableError,
)

Code = grpc.StatusCode

# (error, REST status, gRPC code when ready, gRPC code while not ready)
CASES: list[tuple[MemifdError, int, grpc.StatusCode, grpc.StatusCode]] = [
    (MemifdError("boom"), 500, Code.INTERNAL, Code.UNAVAILABLE),
    (InvalidArgumentError("queue", "bad"), 422, Code.INVALID_ARGUMENT, Code.INVALID_ARGUMENT),
    (MalformedError("not a pcap file"), 400, Code.INVALID_ARGUMENT, Code.INVALID_ARGUMENT),
    (NotFoundError("interface 'x' not found"), 404, Code.NOT_FOUND, Code.NOT_FOUND),
    (ConflictError("not connected"), 409, Code.FAILED_PRECONDITION, Code.FAILED_PRECONDITION),
    (AlreadyExistsError("exists"), 409, Code.ALREADY_EXISTS, Code.ALREADY_EXISTS),
    (LimitExceededError("max_interfaces"), 507, Code.RESOURCE_EXHAUSTED, Code.RESOURCE_EXHAUSTED),
    (UnavailableError("not running"), 503, Code.UNAVAILABLE, Code.UNAVAILABLE),
    (StreamEndedError("interface deleted"), 409, Code.ABORTED, Code.UNAVAILABLE),
]


def family() -> set[type[MemifdError]]:
    """Every error class the errors module declares."""
    return {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, MemifdError) and cls.__module__ == errors.__name__
    }


def test_both_tables_cover_every_class_and_the_cases_cover_both_tables() -> None:
    assert set(problems.STATUS) == family()
    assert set(grpc_status.STATUS) == family()
    assert {type(error) for error, *_ in CASES} == family()


@pytest.mark.parametrize(("error", "http", "ready", "not_ready"), CASES)
def test_every_class_maps_on_both_transports(
    error: MemifdError, http: int, ready: grpc.StatusCode, not_ready: grpc.StatusCode
) -> None:
    assert problems.status_of(error) == http
    assert grpc_status.status_for(error, True) == (ready, str(error))
    assert grpc_status.status_for(error, False) == (not_ready, str(error))


def test_a_subclass_takes_its_nearest_listed_ancestors_status() -> None:
    class Taken(AlreadyExistsError):
        pass

    assert problems.status_of(Taken("x")) == 409
    assert grpc_status.code_of(Taken("x")) == Code.ALREADY_EXISTS


def test_other_exceptions_are_internal_errors_on_grpc() -> None:
    assert grpc_status.status_for(KeyError("k"), True) == (
        Code.INTERNAL,
        "internal error: KeyError: 'k'",
    )


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            InvalidArgumentError("packets", "packet 0 is 0 bytes, allowed 1..65535"),
            "packets: packet 0 is 0 bytes, allowed 1..65535",
        ),
        (  # a message that starts with its field is not led by it again
            InvalidArgumentError("socket", "socket path 'x' is 200 bytes"),
            "socket path 'x' is 200 bytes",
        ),
        (
            InvalidArgumentError("", "more than 2 packets in one request"),
            "more than 2 packets in one request",
        ),
    ],
)
def test_an_invalid_argument_reads_as_its_field_and_message(
    error: InvalidArgumentError, text: str
) -> None:
    assert str(error) == text
    assert grpc_status.status_for(error, True) == (Code.INVALID_ARGUMENT, text)


def answer(error: MemifdError) -> httpx.Response:
    """What the REST API answers a request whose handler raised ``error``."""
    app = FastAPI()
    problems.install(app)

    @app.get("/raise")
    async def fail() -> None:
        raise error

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://memifd") as client:
            return await client.get("/raise")

    return asyncio.run(get())


@pytest.mark.parametrize(("error", "http"), [(error, http) for error, http, *_ in CASES])
def test_rest_answers_each_class_as_a_problem_with_its_status(
    error: MemifdError, http: int
) -> None:
    response = answer(error)
    body: dict[str, Any] = response.json()
    assert response.status_code == http == body["status"]
    assert response.headers["content-type"] == problems.MEDIA_TYPE
    assert body["instance"] == "/raise"
    if isinstance(error, InvalidArgumentError):
        assert body["detail"] == "queue: bad"
        assert body["errors"] == [
            {"loc": ["queue"], "field": "queue", "msg": "bad", "type": "value_error"}
        ]
    else:
        assert (body["detail"], body["errors"]) == (error.message, [])


def test_rest_names_the_body_when_no_field_is_at_fault() -> None:
    body = answer(InvalidArgumentError("", "more than 2 packets in one request")).json()
    assert body["status"] == 422
    assert body["detail"] == "more than 2 packets in one request"
    assert body["errors"] == [
        {
            "loc": ["body"],
            "field": "",
            "msg": "more than 2 packets in one request",
            "type": "value_error",
        }
    ]
