"""Every REST error as one shape: RFC 9457 problem details (``application/problem+json``).

``{"type": "about:blank", "title": "Not Found", "status": 404, "detail": "interface 'x'
not found", "instance": "/v1/interfaces/x", "errors": []}``. ``detail`` is one sentence
for people; ``errors`` lists the fields at fault (``loc`` as FastAPI names it, ``field``
as the body or query spells it, ``msg``, ``type``), empty when no field is. The input
is never echoed: it may hold a secret.
"""

from __future__ import annotations

import http
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

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

MEDIA_TYPE = "application/problem+json"

#: The HTTP status of each error class (every subclass of MemifdError is listed).
STATUS: dict[type[MemifdError], int] = {
    MemifdError: 500,
    InvalidArgumentError: 422,
    MalformedError: 400,
    NotFoundError: 404,
    ConflictError: 409,
    AlreadyExistsError: 409,
    LimitExceededError: 507,
    UnavailableError: 503,
    StreamEndedError: 409,
}


def status_of(exc: MemifdError) -> int:
    """The HTTP status of ``exc``: its class's, else its nearest listed ancestor's."""
    for kind in type(exc).__mro__:
        code = STATUS.get(kind)
        if code is not None:
            return code
    return 500


class FieldError(BaseModel):
    """One field at fault."""

    loc: list[str | int] = Field(description='Where: ["body", "memory", "log2_ring_size"].')
    field: str = Field(description="The field as the request spells it: memory.log2_ring_size.")
    msg: str = Field(description="What is wrong, with the limit.")
    type: str = Field(description="A machine-readable kind of error: less_than_equal, ...")


class Problem(BaseModel):
    """An error answer (RFC 9457)."""

    type: str = Field(default="about:blank", description="about:blank: see title and status.")
    title: str = Field(description="The HTTP status phrase.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong, for people.")
    instance: str = Field(description="The path of the request.")
    errors: list[FieldError] = Field(
        default_factory=list, description="The fields at fault (422); empty otherwise."
    )


def response(
    instance: str,
    status: int,
    detail: str,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A problem response about the request for path ``instance`` (also an ASGI app, for
    middleware that answers before routing)."""
    body = Problem(
        title=http.HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=instance,
        errors=list(errors),
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status,
        headers=dict(headers or {}),
        media_type=MEDIA_TYPE,
    )


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    """Pydantic's or FastAPI's error dicts as :class:`FieldError` (without the input)."""
    found = []
    for error in errors:
        loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
        named = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        found.append(
            FieldError(
                loc=loc,
                field=".".join(str(part) for part in named),
                msg=message,
                type=str(error.get("type", "value_error")),
            )
        )
    return found


def summary(errors: Sequence[FieldError]) -> str:
    """The field errors as one sentence."""
    return "; ".join(f"{e.field}: {e.msg}" if e.field else e.msg for e in errors)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(
        jsonable_encoder(
            [{k: v for k, v in e.items() if k not in ("input", "url", "ctx")} for e in exc.errors()]
        )
    )
    return response(request.url.path, 422, summary(errors), errors)


async def _memifd_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MemifdError)
    code = status_of(exc)
    if isinstance(exc, InvalidArgumentError):  # a field, or with no field the whole body
        loc: list[str | int] = [exc.field] if exc.field else ["body"]
        error = FieldError(loc=loc, field=exc.field, msg=exc.message, type="value_error")
        return response(request.url.path, code, summary([error]), [error])
    return response(request.url.path, code, exc.message)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else http.HTTPStatus(exc.status_code).phrase
    return response(request.url.path, exc.status_code, detail, headers=exc.headers)


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as a problem, and document the shape in its OpenAPI."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(MemifdError, _memifd_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


def documented(description: str) -> dict[str, Any]:
    """An OpenAPI response entry whose body is a :class:`Problem`."""
    return {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def add_schemas(schema: dict[str, Any]) -> dict[str, Any]:
    """Put :class:`Problem` and :class:`FieldError` into an OpenAPI document's components."""
    defs = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(defs.pop("$defs", {}))
    schemas["Problem"] = defs
    return schema
