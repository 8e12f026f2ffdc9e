"""A debug log line for every gRPC call: method, status code, duration and peer.

A server interceptor wraps each handler (when debug logging is on as the call
arrives) and logs on logger ``memifd.grpc`` once the call has ended, however
it ended: returned, aborted with a status, raised, or ended by the client
(cancelled, or its deadline passed: a handler that stops because the call is
no longer active is logged with that status, as the client saw it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

import grpc

from memifd.api.rest.access import printable

log = logging.getLogger("memifd.grpc")

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class _Call:
    """One call's bookkeeping; :meth:`done` logs it (once)."""

    def __init__(self, method: str, context: grpc.ServicerContext) -> None:
        self.method = method
        self.context = context
        self.start = time.monotonic()
        self.peer = context.peer()  # asked now: once the call is over it may be gone
        self.raised = False  # by the handler: UNKNOWN unless it set a status first
        self.cancelled = False  # the client went away (or its deadline passed) first
        self.finished = False  # the handler returned or raised
        self.logged = False

    def done(self) -> None:
        if self.logged:
            return
        self.logged = True
        # grpcio's server context has code() and details(); the type stubs lack them
        code = self.context.code()  # type: ignore[attr-defined]
        if code is None and (self.cancelled or not self.finished):
            remaining = self.context.time_remaining()
            expired = remaining is not None and remaining <= 0
            code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
        elif code is None:
            code = grpc.StatusCode.UNKNOWN if self.raised else grpc.StatusCode.OK
        status = code.name if isinstance(code, grpc.StatusCode) else str(code)
        fields: dict[str, Any] = {
            "method": self.method,
            "status": status,
            "duration_ms": round((time.monotonic() - self.start) * 1000, 1),
            "peer": self.peer,
        }
        details = self.context.details()  # type: ignore[attr-defined]
        if details:
            text = details.decode(errors="replace") if isinstance(details, bytes) else details
            fields["details"] = printable(text)
        log.debug("gRPC %s %s", self.method, status, extra=fields)


def _unary_response(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        call = _Call(method, context)
        context.add_callback(call.done)
        try:
            response = behavior(request, context)
        except BaseException:
            call.raised = True
            raise
        finally:
            call.finished = True
        call.cancelled = not context.is_active()
        return response

    return handle


def _stream_response(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        call = _Call(method, context)
        context.add_callback(call.done)
        try:
            yield from behavior(request, context)
        except GeneratorExit:
            call.cancelled = True
            raise
        except BaseException:
            call.raised = True
            raise
        finally:
            call.finished = True
        call.cancelled = not context.is_active()

    return handle


class CallLog(grpc.ServerInterceptor):
    """Logs every call at debug level; costs nothing while debug is off."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None or not log.isEnabledFor(logging.DEBUG):
            return handler
        method = details.method
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _unary_response(handler.unary_unary, method), **kwargs
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _unary_response(handler.stream_unary, method), **kwargs
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _stream_response(handler.unary_stream, method), **kwargs
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _stream_response(handler.stream_stream, method), **kwargs
            )
        return handler
