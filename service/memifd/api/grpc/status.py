"""The gRPC status code of each memifd error, and of anything else a call ends with."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc

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

#: The status code of each error class (every subclass of MemifdError is listed).
STATUS: dict[type[MemifdError], grpc.StatusCode] = {
    MemifdError: Code.INTERNAL,
    InvalidArgumentError: Code.INVALID_ARGUMENT,
    MalformedError: Code.INVALID_ARGUMENT,
    NotFoundError: Code.NOT_FOUND,
    ConflictError: Code.FAILED_PRECONDITION,
    AlreadyExistsError: Code.ALREADY_EXISTS,
    LimitExceededError: Code.RESOURCE_EXHAUSTED,
    UnavailableError: Code.UNAVAILABLE,
    StreamEndedError: Code.ABORTED,
}

#: Classes answered with UNAVAILABLE instead while memifd is not ready (shutting down):
#: the client should retry elsewhere or later.
UNAVAILABLE_WHEN_NOT_READY: frozenset[type[MemifdError]] = frozenset(
    {MemifdError, StreamEndedError}
)


def code_of(exc: MemifdError, ready: bool = True) -> grpc.StatusCode:
    """The status code of ``exc``: its class's, else its nearest listed ancestor's."""
    for kind in type(exc).__mro__:
        code = STATUS.get(kind)
        if code is not None:
            if not ready and kind in UNAVAILABLE_WHEN_NOT_READY:
                return Code.UNAVAILABLE
            return code
    return Code.INTERNAL


def status_for(exc: BaseException, ready: bool) -> tuple[grpc.StatusCode, str]:
    """The status code and message a call ending with ``exc`` reports."""
    if isinstance(exc, MemifdError):
        return code_of(exc, ready), str(exc)
    return Code.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


@contextlib.contextmanager
def fields_under(prefix: str) -> Iterator[None]:
    """Name the fields of an :class:`InvalidArgumentError` raised in the block as the
    request does: ``field`` becomes ``prefix.field``."""
    try:
        yield
    except InvalidArgumentError as exc:
        if not exc.field or " " in exc.field:  # not a field name
            raise InvalidArgumentError(prefix, exc.message) from None
        message = exc.message.removeprefix(f"{exc.field}: ")
        raise InvalidArgumentError(f"{prefix}.{exc.field}", message) from None
