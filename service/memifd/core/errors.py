"""The errors memifd answers requests with: one base, one class per kind of answer.

Core knows no transport: each API maps these classes to its own status codes
(REST in :mod:`memifd.api.rest.problems`, gRPC in :mod:`memifd.api.grpc.status`),
and a class's nearest mapped ancestor decides for a subclass. ``message`` is
meant for people and reaches the client as is.
"""

from __future__ import annotations


class MemifdError(Exception):
    """Base of the errors memifd answers a request with; ``message`` is meant for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(MemifdError):
    """A request field is invalid; ``field`` names it (dotted), "" for the request as a whole.

    ``str()`` is the message led by the field, unless the message already names it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __str__(self) -> str:
        field, message = self.field, self.message
        return f"{field}: {message}" if field and not message.startswith(field) else message


class MalformedError(MemifdError):
    """Input that cannot be parsed at all (a pcap or pcapng body, a protobuf message)."""


class NotFoundError(MemifdError):
    """No interface (or other named thing) of that name."""


class ConflictError(MemifdError):
    """The request clashes with the current state (xconnect references, not connected, ...)."""


class AlreadyExistsError(ConflictError):
    """What the request would create exists (the name, socket/role/id, an exchange)."""


class LimitExceededError(MemifdError):
    """Doing it would pass a resource limit (interfaces, shared memory, fds, request size)."""


class UnavailableError(MemifdError):
    """The worker is not running (not started yet, stopped or stalled)."""


class StreamEndedError(MemifdError):
    """memifd ended a stream (shutdown, interface deleted); ``message`` says why."""
