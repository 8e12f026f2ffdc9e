"""How a gRPC call ends when something goes wrong: the exceptions the servicer raises and
the status code and message each error becomes (:func:`status_for`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from memifd.api.grpc.convert import InvalidArgument
from memifd.core.manager import (
    ConflictError,
    InvalidArgumentError,
    LimitExceededError,
    ManagerError,
    NotFoundError,
    UnavailableError,
)

if TYPE_CHECKING:
    from memifd.core.manager import Manager


class StreamEnded(Exception):
    """The manager ended a stream (shutdown, interface deleted)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Status(Exception):
    """End the call with this status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@contextlib.contextmanager
def fields_under(prefix: str) -> Iterator[None]:
    """Name the fields of the manager's :class:`InvalidArgumentError` as the request does."""
    try:
        yield
    except InvalidArgumentError as exc:
        if not exc.field or " " in exc.field:  # not a field name
            raise InvalidArgument(prefix, exc.message) from None
        message = exc.message.removeprefix(f"{exc.field}: ")
        raise InvalidArgument(f"{prefix}.{exc.field}", message) from None


def status_for(exc: BaseException, manager: Manager) -> tuple[grpc.StatusCode, str]:
    """The status code and message a call ending with ``exc`` reports."""
    if isinstance(exc, Status):
        return exc.code, exc.message
    if isinstance(exc, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, InvalidArgumentError):
        field = getattr(exc, "field", "") or ""
        message = exc.message
        if field and not message.startswith(field):
            message = f"{field}: {message}"
        return grpc.StatusCode.INVALID_ARGUMENT, message
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND, exc.message
    if isinstance(exc, ConflictError):
        return grpc.StatusCode.FAILED_PRECONDITION, exc.message
    if isinstance(exc, UnavailableError):
        return grpc.StatusCode.UNAVAILABLE, exc.message
    if isinstance(exc, LimitExceededError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message
    if isinstance(exc, StreamEnded):
        code = grpc.StatusCode.UNAVAILABLE if not manager.ready else grpc.StatusCode.ABORTED
        return code, exc.reason
    if isinstance(exc, ManagerError):
        code = grpc.StatusCode.UNAVAILABLE if not manager.ready else grpc.StatusCode.INTERNAL
        return code, exc.message
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
