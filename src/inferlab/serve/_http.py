"""HTTP plumbing shared by every server in inferlab: OpenAI error bodies, limits, API keys.

Every error leaves as OpenAI's shape, whatever raised it, so the official `openai` client maps it
to the right exception class:

    {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens",
               "code": null}}
"""

from __future__ import annotations

import hmac
import inspect
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import Enum
from typing import Any, TypeVar

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidRequestError, OpenAIHTTPError
from ._openapi import ERROR_RESPONSES, PROMETHEUS_TEXT
from ._settings import HttpLimits

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(
    message: str, status: int, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    # A message may quote the request, and text that is not Unicode cannot be sent as JSON.
    message = message.encode("utf-8", "backslashreplace").decode()
    error_type = _ERROR_TYPES.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(
    message: str,
    status: int,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(message, status, param=param, code=code), status, headers)


def _describe_validation_error(exc: RequestValidationError) -> tuple[str, str | None]:
    """The first problem, said plainly: ("max_tokens: Input should be ... 1", "max_tokens")."""
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON: " + str(first.get("ctx", {}).get("error")), None
    if first.get("loc") == ("body",) and first.get("type") != "value_error":
        return "The request body must be a JSON object (Content-Type: application/json).", None
    # Union members show up in the location ("prompt.str"); the field name is what users know.
    # Where it was (body, query, path, header) is plain from the name; leave it out.
    loc = first.get("loc", ())
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    location = [str(p) for p in loc if not _is_type_name(p)]
    param = ".".join(location) or None
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    if first.get("type") == "missing":
        message = "field required"
    return (f"{param}: {message}" if param else message), param


def _is_type_name(part: object) -> bool:
    return isinstance(part, str) and (part in {"str", "int", "float", "bool"} or "[" in part)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, ours or the framework's, an OpenAI-shaped JSON body."""

    async def validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, param = _describe_validation_error(exc)
        return error_response(message, 400, param=param)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(app, request)}
        return error_response(str(exc.detail), exc.status_code, headers=headers)

    async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidRequestError)
        return error_response(exc.message, 400, param=exc.param, code=exc.code)

    async def openai_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OpenAIHTTPError)
        return error_response(
            exc.message, exc.status, param=exc.param, code=exc.code, headers=exc.headers
        )

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not the client's fault: still OpenAI's shape, so clients see a server_error.
        # Starlette logs the traceback after this answer is sent.
        return error_response(f"internal server error ({type(exc).__name__})", 500)

    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(OpenAIHTTPError, openai_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(InvalidRequestError, invalid_request)


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _allowed_methods(app: FastAPI, request: Request) -> str:
    """Every method the path has: `GET, PUT` for /admin/engine.

    subtle: Starlette answers a wrong method with the methods of the first route whose path
    matches, and a GET and a PUT on one path are two routes, so it would say `Allow: GET`.
    Asking the router about each method holds however FastAPI groups its routes inside.
    """
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in app.router.routes
        )
    ]
    return ", ".join(allowed)


def has_api_key(headers: dict[bytes, bytes], api_key: str | None) -> bool:
    """True when no key is configured, or the request carries `Authorization: Bearer <key>`."""
    if api_key is None:
        return True
    given = headers.get(b"authorization", b"")
    return hmac.compare_digest(given, f"Bearer {api_key}".encode())


def api_key_dependency(api_key: str | None) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that lets a request pass only with `Authorization: Bearer <key>`.

    With no key configured every request passes, as with vLLM's `--api-key` left unset.
    It is `async` on purpose: FastAPI runs a plain `def` dependency on a thread pool, a thread
    hop on every request.
    """

    async def require_api_key(request: Request) -> None:
        if not has_api_key(dict(request.scope["headers"]), api_key):
            raise OpenAIHTTPError(
                401,
                "Incorrect or missing API key: send 'Authorization: Bearer <key>'.",
                code="invalid_api_key",
            )

    return require_api_key


class BodySizeLimit:
    """ASGI middleware: refuse request bodies over `max_body_bytes` with a 413.

    Checks Content-Length up front, and also counts the bytes of chunked bodies, so leaving the
    header out does not get round the limit. It reads the body before the app does (FastAPI
    reads it whole anyway) because FastAPI turns any error raised mid-read into a vague 400.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break  # the client went away; let the app see that
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body larger than {self.max_body_bytes} bytes"
        await error_response(message, 413)(scope, receive, send)


async def relay(upstream_call: Awaitable[httpx.Response]) -> Response:
    """An upstream's answer passed through as it is (a proxy's GET /v1/models, say); a 502 in
    OpenAI's shape if the upstream could not be reached."""
    try:
        response = await upstream_call
    except httpx.HTTPError as exc:
        raise OpenAIHTTPError(502, f"the upstream could not be reached ({exc!r})") from exc
    media_type = response.headers.get("content-type")
    return Response(response.content, response.status_code, media_type=media_type)


def retry_after_header(seconds: float) -> str:
    """HTTP's Retry-After takes whole seconds: round up, at least 1."""
    return str(max(1, math.ceil(seconds)))


# ---------------------------------------------------------------------------------------------
# The scaffold every service shares: its lifecycle, its app, and how routes find the service


class ServiceState(str, Enum):
    NEW = "new"  # built; its app can be served
    RUNNING = "running"  # started: by uvicorn's lifespan, or `async with`
    CLOSED = "closed"  # stopped for good: its workers, batchers and engine are shut down


class Lifecycle:
    """Start and stop for a service: uvicorn's lifespan, or `async with service:` in a test.

    A subclass does its own work in `_start()` and `_close()`. Closing twice is harmless;
    starting a closed service raises, since its batchers and engine are gone.
    """

    def __init__(self) -> None:
        self.state = ServiceState.NEW

    async def start(self) -> None:
        if self.state is ServiceState.CLOSED:
            raise RuntimeError(f"this {type(self).__name__} is closed; make a new one")
        if self.state is ServiceState.NEW:
            await self._start()
            self.state = ServiceState.RUNNING

    async def aclose(self) -> None:
        if self.state is not ServiceState.CLOSED:
            self.state = ServiceState.CLOSED
            await self._close()

    async def _start(self) -> None:
        """Start background work (workers, senders); most services start lazily."""

    async def _close(self) -> None:
        """Stop background work and answer whoever still waits."""

    async def __aenter__(self: L) -> L:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


L = TypeVar("L", bound=Lifecycle)


def service_dependency(kind: type[L]) -> Any:
    """`Depends(...)` that hands a route the service its app belongs to.

    Routes live at module level, one set per kind of service; each app keeps its own service
    in `app.state.service`, and only this dependency reads it (notebooks never do). It is
    `async` for the reason `api_key_dependency` is: a plain `def` would cost every request a
    hop to FastAPI's thread pool and back.
    """

    async def the_service(request: Request) -> L:
        service = request.app.state.service
        assert isinstance(service, kind)  # an internal invariant: the app was built for it
        return service

    return Depends(the_service)


def service_app(
    title: str,
    service: Lifecycle,
    *,
    routers: list[APIRouter],
    api_key: str | None,
    max_body_bytes: int,
    http_limits: HttpLimits,
    metrics: Callable[[], bytes | Awaitable[bytes]],
    health: Callable[[], Awaitable[object]] | None = None,
) -> FastAPI:
    """A service's FastAPI app: OpenAI-shaped errors, a body limit, the routers behind the API
    key, `/metrics` behind it too, and `/health` open (load balancers probe it without a key,
    as vLLM's is; `health` adds the service's own check). Its lifespan starts and closes the
    service; `http_limits` travel with the app to whoever hosts it (`hosting.py`)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.aclose()

    # With a key, the API's own description is behind it too: /openapi.json and /docs are
    # served by routes below, with the guard, instead of FastAPI's open defaults.
    app = FastAPI(
        title=title,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )
    app.state.service = service
    app.state.http_limits = http_limits
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_body_bytes=max_body_bytes)
    guard = [Depends(api_key_dependency(api_key))]
    for router in routers:
        app.include_router(router, dependencies=guard)

    @app.get("/openapi.json", dependencies=guard, include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", dependencies=guard, include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=title)

    @app.get("/health")
    async def healthy() -> dict[str, str]:
        if health is not None:
            await health()  # a service's own check: raises (a 503) when it is not healthy
        return {"status": "ok"}

    prometheus = {"content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}}}

    @app.get("/metrics", dependencies=guard, response_class=Response, responses={200: prometheus})
    async def prometheus_metrics() -> Response:
        text = metrics()
        body = await text if inspect.isawaitable(text) else text
        return Response(body, media_type=PROMETHEUS_TEXT)

    return app
