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
- `header_timeout_protocol`: uvicorn's HTTP protocol with a deadline on the request line and
  headers (uvicorn has none: `timeout_keep_alive` only runs between requests, and is reset by each
  byte), so a connection that sends nothing, or trickles a header every few seconds, is closed.
- `strict_json_loads`: request JSON as RFC 8259 says it is, each violation a 422 naming its field:
  no `NaN`/`Infinity`, no number that overflows to infinity or past 64-bit integers, no repeated
  key, no nesting past `MAX_JSON_DEPTH`. Python's `json` accepts all of these, and a non-finite
  float in a body made the 422 handler itself fail (a 500: it cannot serialise `inf`).

The token comes from the environment (`CLUSTERDIV_API_TOKEN`) or settings, never from a command
line where `ps` would show it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from fastapi import HTTPException, Request, status

HTML_PAGE = re.compile(r"^/v1/jobs/[^/]+/(explorer|report)$")
_QUERY_PARAM = re.compile(r"([?&])([^=&\s\"]*)=([^&\s\"]*)")
TOKEN_PARAM = "access_token"
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
        return parse_qs(query).get(TOKEN_PARAM, [""])[-1]
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


def redact_query(text: str) -> str:
    """`text` with the value of every query parameter that decodes to `access_token` hidden.

    By the decoded name, as `parse_qs` reads it: `access%5Ftoken=` or `%61ccess_token=` is the
    same parameter to the token check, so it must be to the redaction too."""
    def hide(match: re.Match[str]) -> str:
        if unquote_plus(match.group(2)).lower() != TOKEN_PARAM:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}=[redacted]"

    return _QUERY_PARAM.sub(hide, text) if "=" in text else text


class _RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True


def redact_access_log() -> None:
    """Never write `?access_token=` values to uvicorn's logs (idempotent)."""
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokens) for f in logger.filters):
            logger.addFilter(_RedactTokens())


# ------------------------------------------------------------------------------ strict JSON

MAX_JSON_DEPTH = 64  # a job body nests 5 levels; a tail spec a few more
MAX_JSON_ERRORS = 20
_INT64_DIGITS = 19


class _Refused:
    """A JSON literal Python's parser accepts and RFC 8259 does not; kept to name its field."""

    __slots__ = ("literal", "message")

    def __init__(self, literal: str, message: str):
        self.literal, self.message = literal, message


class _RepeatedKeys(dict):  # type: ignore[type-arg]
    """A JSON object that gave a key twice (`dict` keeps the last silently)."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    marked = _RepeatedKeys(obj)
    marked.repeated = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    return marked


def _constant(literal: str) -> _Refused:
    return _Refused(literal, f"{literal} is not valid JSON: send a finite number, or null")


def _shown(literal: str) -> str:
    return literal if len(literal) <= 40 else f"{literal[:20]}...({len(literal)} characters)"


def _float(literal: str) -> float | _Refused:
    value = float(literal)
    if math.isfinite(value):
        return value
    return _Refused(_shown(literal), f"number {_shown(literal)} is out of range: it overflows to infinity")


def _int(literal: str) -> int | _Refused:
    """64-bit integers only: what every consumer of a job (numpy, SQL) holds; a longer literal is
    never converted (Python refuses past 4,300 digits anyway, with a ValueError that read as a 400)."""
    if len(literal.lstrip("-")) <= _INT64_DIGITS and -(2**63) <= (value := int(literal)) < 2**63:
        return value
    return _Refused(_shown(literal), f"integer {_shown(literal)} is out of range: more than 64 bits")


def _error(loc: tuple[Any, ...], message: str, literal: str | None = None) -> dict[str, Any]:
    return {"type": "json_invalid", "loc": list(loc), "msg": message, "input": literal}


def json_problems(value: Any, loc: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Each refused literal, repeated key and over-deep value of a `strict_json_loads` parse, in
    document order (iterative: a deep document cannot exhaust the stack here)."""
    problems: list[dict[str, Any]] = []
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, loc)]
    while stack and len(problems) < MAX_JSON_ERRORS:
        node, where = stack.pop()
        if isinstance(node, _Refused):
            problems.append(_error(where, node.message, node.literal))
            continue
        if not isinstance(node, (dict, list)):
            continue
        if len(where) - len(loc) >= MAX_JSON_DEPTH:
            problems.append(_error(where, f"JSON nested more than {MAX_JSON_DEPTH} levels deep"))
            continue
        if isinstance(node, _RepeatedKeys):
            problems.extend(_error((*where, k), f"key {k!r} appears more than once in this JSON object")
                            for k in dict.fromkeys(node.repeated))
        items = node.items() if isinstance(node, dict) else enumerate(node)
        stack.extend(reversed([(v, (*where, k)) for k, v in items]))
    return problems[:MAX_JSON_ERRORS]


class StrictJSONError(ValueError):
    """Input that is not standard JSON; `errors` are FastAPI-shaped (type, loc, msg, input)."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


def strict_json_loads(data: str | bytes, loc: tuple[Any, ...] = ("body",)) -> Any:
    """`json.loads`, refusing what RFC 8259 refuses (see the module docstring); `StrictJSONError`
    with each problem located under `loc`. Malformed JSON stays `json.JSONDecodeError`."""
    try:
        value = json.loads(data, parse_constant=_constant, parse_float=_float, parse_int=_int,
                           object_pairs_hook=_object)
    except RecursionError:
        raise StrictJSONError([_error(loc, "JSON nested too deeply to parse "
                                           f"(at most {MAX_JSON_DEPTH} levels)")]) from None
    except UnicodeDecodeError as exc:
        raise StrictJSONError([_error(loc, f"JSON is not valid UTF-8 ({exc.reason} at byte offset {exc.start})")]
                              ) from None
    problems = json_problems(value, loc)
    if problems:
        raise StrictJSONError(problems)
    return value


def finite_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by its name, so an error body always serialises
    (Starlette's JSONResponse refuses nan and inf: the error answer itself became a 500)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


# ------------------------------------------------------------------------------ header deadline

def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (the one its `--http auto` picks) with a deadline on the request line
    and headers: 408 and the connection closed when they are not complete `seconds` after it opened,
    or after the previous response on a kept-alive one. Requests whose headers arrived in time are
    never touched: a body has its own limits (`BodySizeLimit`), a slow job has none.

    A protocol class is the one hook uvicorn gives for this (`uvicorn.run(http=...)`); an ASGI
    middleware runs only once the headers are in."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    body = json.dumps({"detail": f"request headers timed out: not complete after {seconds:g} s"}).encode()
    reply = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
             b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    class HeaderDeadline(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
        _deadline: asyncio.TimerHandle | None = None
        _waiting_after: Any = None  # the request cycle current when the deadline was set

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._set_deadline()

        def on_response_complete(self) -> None:
            self._set_deadline()  # before uvicorn starts a pipelined next request, which then counts as in
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._clear_deadline()
            super().connection_lost(exc)

        def _set_deadline(self) -> None:
            self._clear_deadline()
            self._waiting_after = self.cycle
            self._deadline = self.loop.call_later(seconds, self._deadline_passed)

        def _clear_deadline(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _deadline_passed(self) -> None:
            self._deadline = None
            if self.cycle is not self._waiting_after or self.transport.is_closing():
                return  # a request's headers were complete in time: it runs as long as it needs
            self.transport.write(reply)
            self.transport.close()

    return HeaderDeadline
