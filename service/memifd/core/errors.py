"""The errors memifd's core raises to API clients: one base, one class per kind of answer.

Core knows no transport: each API maps these classes to its own status codes
(REST in :mod:`memifd.api.rest.problems`, gRPC in :mod:`memifd.api.grpc.status`).
``message`` is meant for people and reaches the client as is.
"""

from __future__ import annotations


class MemifdError(Exception):
    """Base of the errors memifd answers a request with; ``message`` is meant for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(MemifdError):
    """A request field is invalid; ``field`` names it (dotted, "" for the whole request)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(MemifdError):
    """No interface (or other named thing) of that name."""


class ConflictError(MemifdError):
    """The request clashes with the current state (name or socket/role/id taken, ...)."""


class LimitExceededError(MemifdError):
    """Doing it would pass a resource limit (interfaces, shared memory, fds)."""


class UnavailableError(MemifdError):
    """The worker is not running (not started yet, stopped or stalled)."""
