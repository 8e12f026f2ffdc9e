"""gRPC method handlers for the servicer's methods: parse the request bytes, call the method,
turn an exception into the call's status, serialise the answer.

Requests arrive as raw bytes and are parsed here, so a malformed message is an
INVALID_ARGUMENT like any other bad input. The method table comes from the service's
descriptor: RPC ``GetLinkDetails`` calls the servicer's ``get_link_details`` with a
``GetLinkDetailsRequest`` (or an iterator of them for a request stream).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeAlias, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from memifd.core.errors import LimitExceededError, MalformedError

# Requests larger than this are refused before they are parsed; request streams carry
# packets (Inject, Exchange) and are held only to the server's receive limit.
MAX_REQUEST_BYTES = 64 << 10

M = TypeVar("M", bound=Message)
Context: TypeAlias = grpc.ServicerContext
StatusOf = Callable[[BaseException], tuple[grpc.StatusCode, str]]
HandlerFactory = Callable[..., "grpc.RpcMethodHandler[Any, Any]"]

_FACTORIES: dict[tuple[bool, bool], HandlerFactory] = {
    # (request streaming, response streaming)
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def parse(cls: type[M], raw: bytes, limit: int | None = MAX_REQUEST_BYTES) -> M:
    """``raw`` as a ``cls`` message; too large or malformed ends the call."""
    if limit is not None and len(raw) > limit:
        raise LimitExceededError(
            f"{cls.DESCRIPTOR.name} of {len(raw)} bytes exceeds the limit of {limit} bytes"
        )
    try:
        return cls.FromString(raw)
    except DecodeError as exc:
        raise MalformedError(f"malformed {cls.DESCRIPTOR.full_name}: {exc}") from None


def _parse_stream(cls: type[M], raws: Iterator[bytes]) -> Iterator[M]:
    for raw in raws:
        yield parse(cls, raw, None)


def _serialize(message: Message | bytes) -> bytes:
    """Responses are messages, or bytes already encoded (packet batches)."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def method_handler(
    method: Callable[[Any, Context], Any],
    request_class: type[Message],
    status_of: StatusOf,
    *,
    request_streaming: bool,
    response_streaming: bool,
) -> grpc.RpcMethodHandler[Any, Any]:
    """The handler of one RPC: it calls ``method(request or requests, context)``."""

    def requests(raw: Any) -> Any:
        if request_streaming:
            return _parse_stream(request_class, raw)
        return parse(request_class, raw)

    def abort(context: Context, exc: BaseException) -> NoReturn:
        if isinstance(exc, grpc.RpcError):
            raise exc  # from the request stream: the client is gone
        code, message = status_of(exc)
        context.abort(code, message)

    def answer(raw: Any, context: Context) -> Any:
        try:
            return method(requests(raw), context)
        except Exception as exc:
            abort(context, exc)

    def answers(raw: Any, context: Context) -> Iterator[Any]:
        try:
            yield from method(requests(raw), context)
        except Exception as exc:
            abort(context, exc)

    factory = _FACTORIES[request_streaming, response_streaming]
    return factory(answers if response_streaming else answer, response_serializer=_serialize)


def _method_name(rpc: str) -> str:
    """The servicer's method for an RPC: ``GetLinkDetails`` -> ``get_link_details``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", rpc).lower()


def add_service(
    servicer: object, service: ServiceDescriptor, status_of: StatusOf, server: grpc.Server
) -> None:
    """Serve every RPC of ``service`` on ``server`` with the method of ``servicer``."""
    handlers = {
        rpc.name: method_handler(
            getattr(servicer, _method_name(rpc.name)),
            message_factory.GetMessageClass(rpc.input_type),
            status_of,
            request_streaming=rpc.client_streaming,
            response_streaming=rpc.server_streaming,
        )
        for rpc in service.methods
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
