"""The service's ASGI guard: API keys, the request-body limits (its size and the time it may
take to arrive), request metrics, and unhandled errors logged redacted (never re-raised to the
server's own logger)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import traceback
from collections.abc import Sequence

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from es_semantic.redact import redact
from es_semantic.service.metrics import ServiceMetrics

log = logging.getLogger("es_semantic.service")
# open without a key: the health checks, the static playground page (it asks for the key),
# the API's schema and its docs page; they hold no data
OPEN_ROUTES = ("/", "/healthz", "/readyz", "/docs", "/openapi.json")


class Guard:
    """Plain ASGI middleware (no per-request task or streaming wrapper, unlike
    ``@app.middleware``). CORS, when on, wraps it: preflights never reach the key check."""

    def __init__(self, app: ASGIApp, *, api_keys: Sequence[str], max_body_bytes: int,
                 metrics: ServiceMetrics, secrets: Sequence[str],
                 max_body_seconds: float = 30) -> None:  # fmt: skip
        self.app, self.api_keys, self.max_body = app, tuple(api_keys), max_body_bytes
        self.max_seconds = max_body_seconds
        self.metrics, self.secrets = metrics, list(secrets)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope)
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        if self.api_keys and scope["path"] not in OPEN_ROUTES and not self._authorized(request):
            await _answer(401, "missing or wrong API key", scope, receive, sending)
        else:
            body = await self._read_body(request, receive)
            if isinstance(body, tuple):
                await _answer(*body, scope, receive, sending)
            else:
                await self._run(scope, body, receive, sending, status)
        self.metrics.request(_route_label(request), status["code"], time.perf_counter() - started)

    async def _run(self, scope: Scope, body: list[Message], receive: Receive, send: Send,
                   status: dict[str, int]) -> None:  # fmt: skip
        """The app on the buffered body; an unhandled error is logged redacted, answered 500."""

        async def replay() -> Message:
            return body.pop(0) if body else await receive()

        started = {"response": False}

        async def sending(message: Message) -> None:
            started["response"] = True
            await send(message)

        try:
            await self.app(scope, replay, sending)
        except Exception as exc:  # the last stop: the server's logger would print it raw
            where = f"{scope.get('method')} {scope.get('path')}"
            trace = "".join(traceback.format_exception(exc))
            log.error("unhandled error in %s: %s", where, redact(trace, self.secrets))
            if not started["response"]:
                await _answer(500, f"internal error ({type(exc).__name__}); see the service log",
                              scope, replay, send)  # fmt: skip
            status["code"] = 500

    async def _read_body(self, request: Request, receive: Receive) -> list[Message] | tuple[
            int, str]:  # fmt: skip
        """The request's messages, or the refusal: 413 past ``max_body_bytes`` (a declared
        Content-Length over it before reading), 408 when the body is not in within
        ``max_body_seconds`` (a client that stalls would hold its connection for ever)."""
        too_big = 413, f"request body over {self.max_body} bytes: send less per request"
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return too_big
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return []
        messages: list[Message] = []
        size = 0
        deadline = asyncio.get_running_loop().time() + self.max_seconds
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(left, 0))
            except asyncio.TimeoutError:
                return 408, (f"request body not received within {self.max_seconds:g} s: send "
                             "it whole, or raise serve --max-body-seconds")  # fmt: skip
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_body:
                return too_big
            if not message.get("more_body", False):
                return messages

    def _authorized(self, request: Request) -> bool:
        given = request.headers.get("x-api-key") or ""
        bearer = request.headers.get("authorization") or ""
        if bearer.lower().startswith("bearer "):
            given = given or bearer[7:].strip()
        # constant-time against every key (no early exit that would time the match)
        matches = [hmac.compare_digest(given.encode(), key.encode()) for key in self.api_keys]
        return bool(given) and any(matches)


async def _answer(status: int, message: str, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"error": message}, status)(scope, receive, send)


def _route_label(request: Request) -> str:
    """The route's template (``/indices/{index}/search``), never the raw path: index names
    would make the metric's label set grow without bound."""
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback (for loggers the service does not
    own, such as uvicorn's)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = redact(text, self.secrets), ()
        return True
