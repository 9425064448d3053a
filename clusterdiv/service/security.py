"""Who may talk to the service, and how much: Host/Origin checks, bearer token, body limits, headers.

Pure ASGI middlewares, so each check runs before FastAPI reads or validates a body (a request
without a token is a 401, never a 422; an oversize or stalled body never reaches a parser):

- `HostOriginGuard`: the Host header must name this server (the bound address, loopback names, or
  `--allow-host`), which closes DNS rebinding of a token-less loopback server; a state-changing
  request whose `Origin` (or `Sec-Fetch-Site`) says it comes from another site is refused, which
  closes cross-site form posts (CSRF).
- `TokenGuard`: `Authorization: Bearer <token>` on every `/v1` route. `?access_token=` is accepted
  only on the two HTML pages a browser opens directly (explorer, HTML report), and the uvicorn
  access log never shows it (`redact_access_log`).
- `BodySizeLimit`: 413 over `max_bytes`, declared (Content-Length) or streamed (chunked); 408 when
  the client stops sending a body for `idle_timeout_s` or takes longer than `total_timeout_s`.
- `SecurityHeaders`: nosniff, no framing, no referrer on every response; HTML responses get a
  Content-Security-Policy that allows exactly their own inline scripts (by sha256), nothing remote
  except the CDN FastAPI's /docs page loads Swagger UI from.

The token comes from the environment (`CLUSTERDIV_API_TOKEN`) or settings, never from a command
line where `ps` would show it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import HTTPException, Request, status

HTML_PAGE = re.compile(r"^/v1/jobs/[^/]+/(explorer|report)$")
_TOKEN_IN_QUERY = re.compile(r"(access_token=)[^&\s\"]*", re.IGNORECASE)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
DOCS_CDN = "https://cdn.jsdelivr.net"


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None


def query_token_allowed(path: str, query_string: str, method: str) -> bool:
    """`?access_token=` only where a browser must open a URL without headers: the HTML pages."""
    match = HTML_PAGE.match(path)
    if method != "GET" or match is None:
        return False
    if match.group(1) == "explorer":
        return True
    return parse_qs(query_string).get("format", [""])[-1] == "html"


def token_matches(given: str, token: str) -> bool:
    return bool(given) and secrets.compare_digest(given.encode(), token.encode())


def presented_token(scope: dict[str, Any]) -> str:
    header = _header(scope, b"authorization") or ""
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and given:
        return given.strip()
    query = scope.get("query_string", b"").decode("latin-1")
    if query_token_allowed(scope.get("path", ""), query, scope.get("method", "")):
        return parse_qs(query).get("access_token", [""])[-1]
    return ""


def is_authorized(request: Request, token: str | None) -> bool:
    return token is None or token_matches(presented_token(request.scope), token)


def make_auth_dependency(token: str | None) -> Any:
    """The same check as `TokenGuard`, as a FastAPI dependency: documents the scheme in OpenAPI."""

    async def require_token(request: Request) -> None:
        if not is_authorized(request, token):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return require_token


async def _send_json(send: Any, code: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def split_host(value: str) -> str:
    """`Host` header value without the port, lower-case (`[::1]:8000` -> `::1`)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


class HostOriginGuard:
    """400 for a Host this server does not answer to; 403 for cross-site state-changing requests."""

    def __init__(self, app: Any, *, bind_host: str | None, allowed_hosts: Iterable[str] = ()):
        self.app = app
        extra = {split_host(h) for h in allowed_hosts if h.strip()}
        self.check_host = bool(extra) or (bind_host is not None and bind_host not in WILDCARD_BINDS)
        self.allowed = set(extra) | set(LOOPBACK_NAMES) if self.check_host else set()
        if bind_host and bind_host not in WILDCARD_BINDS:
            self.allowed.add(split_host(bind_host) if not bind_host.startswith("[") else bind_host[1:-1])
            self.allowed.add(bind_host.lower())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = split_host(_header(scope, b"host") or "")
        if self.check_host and host not in self.allowed:
            await _send_json(send, 400, f"invalid Host header {host!r}: this server answers to "
                                        f"{', '.join(sorted(self.allowed))} (add names with --allow-host)")
            return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = _header(scope, b"origin")
            fetch_site = (_header(scope, b"sec-fetch-site") or "").lower()
            cross = fetch_site == "cross-site"
            if origin is not None:
                parsed = urlsplit(origin)
                own = (_header(scope, b"host") or "").strip().lower()
                cross = cross or origin == "null" or parsed.netloc.lower() != own
            if cross:
                await _send_json(send, 403, f"cross-origin request refused (Origin {origin or fetch_site!r} is "
                                            "not this server)")
                return
        await self.app(scope, receive, send)


class TokenGuard:
    """401 on `/v1` without the bearer token, before any body is read or validated."""

    def __init__(self, app: Any, *, token: str | None, prefix: str = "/v1"):
        self.app = app
        self.token = token
        self.prefix = prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (scope["type"] == "http" and self.token is not None
                and (scope["path"] == self.prefix or scope["path"].startswith(self.prefix + "/"))
                and not token_matches(presented_token(scope), self.token)):
            await _send_json(send, 401, "missing or wrong bearer token", [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)


class BodyTooLarge(HTTPException):
    """Raised inside `receive`; an HTTPException, so FastAPI's body parsing passes it on as 413."""

    def __init__(self, limit: int, size: str = "streamed"):
        super().__init__(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                         detail=f"request body {size} exceeds this server's limit of {limit} bytes",
                         headers={"Connection": "close"})


class BodyTimeout(HTTPException):
    def __init__(self, why: str):
        super().__init__(status.HTTP_408_REQUEST_TIMEOUT, detail=f"request body timed out: {why}",
                         headers={"Connection": "close"})


class BodySizeLimit:
    """413 for bodies over `max_bytes`, declared or streamed; 408 for a stalled or endless body."""

    def __init__(self, app: Any, max_bytes: int, idle_timeout_s: float = 30.0, total_timeout_s: float = 300.0):
        self.app = app
        self.max_bytes = max_bytes
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await _send_json(send, 413, f"request body of {int(declared)} bytes exceeds this server's limit of "
                                        f"{self.max_bytes} bytes", [(b"connection", b"close")])
            return
        received = 0
        body_done = False
        started_at = time.monotonic()
        response_started = False

        async def limited_receive() -> Any:
            nonlocal received, body_done
            if body_done:  # after the body only http.disconnect is awaited: no timeout there
                return await receive()
            left = self.total_timeout_s - (time.monotonic() - started_at)
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.001, min(self.idle_timeout_s, left)))
            except asyncio.TimeoutError:
                why = (f"no data for {self.idle_timeout_s:g} s" if left > self.idle_timeout_s
                       else f"not complete after {self.total_timeout_s:g} s")
                raise BodyTimeout(why) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except (BodyTooLarge, BodyTimeout) as exc:  # raised where nothing turned it into a response
            if not response_started:
                await _send_json(send, exc.status_code, str(exc.detail), [(b"connection", b"close")])


NEEDS_EVAL_HEADER = b"x-clusterdiv-webgl"
"""Set (internally, stripped before sending) by routes whose page draws a WebGL map: plotly.js's
scattergl (used above 3000 points) compiles shaders with `new Function`, so only those pages get
'unsafe-eval'. Every other page runs with hashed inline scripts and nothing else."""


def _csp_for(path: str, html: bytes, *, allow_eval: bool = False) -> str:
    hashes = sorted({
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for attrs, body in re.findall(rb"<script(\s[^>]*)?>(.*?)</script>", html, re.DOTALL | re.IGNORECASE)
        if b"src=" not in (attrs or b"").lower()
    })
    docs = path in ("/docs", "/redoc", "/docs/oauth2-redirect")
    script = ["'self'", *hashes] + ([DOCS_CDN] if docs else [])
    if allow_eval:
        script.append("'unsafe-eval'")
    return "; ".join([
        "default-src 'none'",
        "script-src " + " ".join(script),
        "style-src 'self' 'unsafe-inline'" + (f" {DOCS_CDN}" if docs else ""),  # plotly injects <style>
        "img-src 'self' data: blob:" + (" https://fastapi.tiangolo.com" if docs else ""),
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src blob:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ])


class SecurityHeaders:
    """nosniff / DENY / no-referrer everywhere; a per-page CSP on HTML (body buffered to hash it)."""

    COMMON = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
              (b"referrer-policy", b"no-referrer")]

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def wrapped_send(message: Any) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dict(self.COMMON)]
                message = {**message, "headers": headers + self.COMMON}
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    start = message  # hold it until the whole page is there to hash its scripts
                    return
                await send(message)
                return
            if message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                allow_eval = any(k.lower() == NEEDS_EVAL_HEADER for k, _ in start["headers"])
                headers = [(k, v) for k, v in start["headers"]
                           if k.lower() not in (b"content-length", NEEDS_EVAL_HEADER)]
                headers += [(b"content-length", str(len(body)).encode()),
                            (b"content-security-policy",
                             _csp_for(scope["path"], body, allow_eval=allow_eval).encode()),
                            (b"cache-control", b"no-store")]
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, wrapped_send)


class _RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                                for a in record.args)
        if isinstance(record.msg, str) and "access_token=" in record.msg.lower():
            record.msg = _TOKEN_IN_QUERY.sub(r"\1[redacted]", record.msg)
        return True


def redact_access_log() -> None:
    """Never write `?access_token=` values to uvicorn's logs (idempotent)."""
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokens) for f in logger.filters):
            logger.addFilter(_RedactTokens())
