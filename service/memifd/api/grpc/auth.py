"""The bearer-token check of the gRPC API: a server interceptor.

With a token configured, every call but those of the exempt services (health
checks) needs the metadata ``authorization: Bearer <token>``; a call without it is
refused from its metadata alone, before grpcio reads its request message.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

import grpc

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class TokenAuth(grpc.ServerInterceptor):
    """Rejects calls without the right bearer token (calls of ``exempt`` services pass)."""

    def __init__(self, token: str, exempt: Iterable[str] = ()) -> None:
        self._token = token.encode()
        self._exempt = tuple(f"/{service}/" for service in exempt)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None or details.method.startswith(self._exempt):
            return handler
        problem = self._problem(dict(details.invocation_metadata).get("authorization"))
        return handler if problem is None else _denied(handler, problem)

    def _problem(self, value: str | bytes | None) -> str | None:
        if value is None:
            return "missing metadata 'authorization: Bearer <token>'"
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        scheme, _, token = text.partition(" ")
        if scheme.lower() != "bearer":
            return "authorization metadata must be 'Bearer <token>'"
        if not hmac.compare_digest(token.strip().encode(), self._token):
            return "invalid token"
        return None


def _denied(handler: Handler, problem: str) -> Handler:
    """A handler that fails with UNAUTHENTICATED without reading the request.

    It is request-streaming whatever the method: grpcio reads a unary request in
    full (up to the receive limit) before calling its handler, but hands a
    streaming handler an iterator it never has to touch.
    """

    def deny(requests: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)

    if handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            deny, response_serializer=handler.response_serializer
        )
    return grpc.stream_unary_rpc_method_handler(
        deny, response_serializer=handler.response_serializer
    )
