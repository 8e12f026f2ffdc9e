"""What REST handlers receive through ``Depends``: the manager, the token check, the
interface name of the path, and the error answers every route documents."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from memifd.api.rest import problems
from memifd.api.rest.guard import TOKEN_PROBLEM
from memifd.core.manager import Manager

_bearer = HTTPBearer(auto_error=False, description="The token memifd was started with.")


async def get_manager(request: Request) -> Manager:
    """The manager this app serves."""
    manager: Manager = request.app.state.manager
    return manager


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse the request unless it carries the configured bearer token (if any)."""
    expected: bytes | None = request.app.state.token
    if expected is None:
        return
    given = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(given, expected):
        raise HTTPException(
            status_code=401, detail=TOKEN_PROBLEM, headers={"WWW-Authenticate": "Bearer"}
        )


ManagerDep = Annotated[Manager, Depends(get_manager)]
NamePath = Annotated[str, Path(description="The interface's name.")]

# OpenAPI entries of the error answers (bodies are problems, see problems.py)
ERRORS: dict[int | str, dict[str, Any]] = {
    401: problems.documented("Missing or wrong bearer token"),
    404: problems.documented("No such interface"),
    409: problems.documented("Conflicts with the current state"),
    422: problems.documented("Invalid field (errors names each field and its limit)"),
    503: problems.documented("The worker is not running, or http_body_memory is full"),
}
BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: problems.documented("The body cannot be parsed"),
    408: problems.documented("The body did not arrive in time"),
    413: problems.documented("The body is larger than the route allows"),
    415: problems.documented("The body is not of the route's media type"),
}
LIMITS: dict[int | str, dict[str, Any]] = {
    507: problems.documented("A resource limit would be passed (names it)"),
}
