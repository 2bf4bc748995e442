"""The ASGI app: OpenAI and Anthropic routes in front of an upstream model server.

Per request: check the headers (content type, size, client key), read the body within
``max_body_bytes``, compress it (worker threads), send it upstream, and relay the response
as it comes (status, headers and body untouched; event streams chunk by chunk) with
``x-ctxcomp-*`` headers added. The client's disconnection is watched throughout: when the
client goes, the upstream request is cancelled and its connection closed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import ctxcomp

from .config import ROUTES, ServeConfig
from .engine import Engine, Outcome
from .metrics import Metrics
from .responses import error_body, outcome_headers, stream_error_event
from .tenancy import Tenancy, client_key
from .upstream import Upstream, UpstreamError, is_sse, read_body, response_headers, sse_chunks

log = logging.getLogger("ctxcomp.serve")


class _Gone(Exception):
    """The client disconnected while the request body was being read."""


class Proxy:
    """Shared state of one app: config, engine, upstream client, tenancy, metrics."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.tenancy = Tenancy(config)
        self.engine = Engine(config, on_pipeline=self.metrics.pipelines.set)
        self.upstream = Upstream(config, self.metrics, self.tenancy)


class Exchange:
    """One client request: the state needed to answer it, and its log line."""

    def __init__(self, scope: Scope, send: Send, route: str) -> None:
        self.scope, self.send, self.route = scope, send, route
        self.started = False
        self.done = False  # the last body byte was sent
        self.status = 0
        self.outcome: Outcome | None = None
        self.namespace: str | None = None

    async def respond(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        h = [(b"content-type", b"application/json"), *(headers or [])]
        h = [*h, (b"content-length", str(len(body)).encode())]
        await self.start(status, h)
        await self.body(body, more=False)

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started, self.status = True, status
        extra = outcome_headers(self.outcome, self.namespace)
        await self.send(
            {"type": "http.response.start", "status": status, "headers": headers + extra}
        )

    async def body(self, chunk: bytes, *, more: bool) -> None:
        await self.send({"type": "http.response.body", "body": chunk, "more_body": more})
        self.done = not more

    async def error(self, status: int, message: str, type_: str, code: str | None = None) -> None:
        if not self.started:
            await self.respond(status, error_body(message, type_, code))


class Endpoint:
    """The ASGI app of one proxied route (POST: compressed; GET: passed through)."""

    def __init__(self, proxy: Proxy, route: str, compress: bool) -> None:
        self.proxy, self.route, self.compress = proxy, route, compress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        p = self.proxy
        t0 = time.perf_counter()
        ex = Exchange(scope, send, self.route)
        p.metrics.inflight.inc()
        gone = False
        try:
            headers = Headers(scope=scope)
            key = client_key(
                (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]
            )
            if not p.tenancy.allowed(key):
                await ex.error(
                    401,
                    "missing or unknown API key for this proxy",
                    "authentication_error",
                    "invalid_api_key",
                )
                return
            ex.namespace = p.tenancy.namespace(key) if self.compress else None
            body = b""
            if self.compress:
                if not await self._check_request(ex, headers):
                    return
                try:
                    body = await _read_body(receive, p.config.max_body_bytes)
                except _Gone:
                    gone = True
                    return
                except ValueError:
                    await self._too_large(ex)
                    return
            async with anyio.create_task_group() as tg:
                flag: list[bool] = []
                tg.start_soon(_watch_disconnect, receive, tg.cancel_scope, flag)
                await self._serve(ex, headers, body)
                tg.cancel_scope.cancel()
            gone = bool(flag) and not ex.done
        except Exception:  # never leave a client without an answer
            log.exception("ctxcomp serve: unexpected failure on %s", self.route)
            if not ex.started:
                await ex.respond(500, error_body("internal proxy error", "server_error"))
        finally:
            p.metrics.inflight.dec()
            self._account(ex, t0, gone)

    async def _check_request(self, ex: Exchange, headers: Headers) -> bool:
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            await ex.error(
                415,
                f"content type must be application/json, got {ctype or 'none'!r}",
                "invalid_request_error",
                "unsupported_media_type",
            )
            return False
        length = headers.get("content-length")
        if (
            length is not None
            and length.isdigit()
            and int(length) > self.proxy.config.max_body_bytes
        ):
            await self._too_large(ex)
            return False
        return True

    async def _too_large(self, ex: Exchange) -> None:
        limit = self.proxy.config.max_body_bytes
        msg = f"request body exceeds the limit of {limit} bytes"
        await ex.error(413, msg, "invalid_request_error", "body_too_large")

    async def _serve(self, ex: Exchange, headers: Headers, body: bytes) -> None:
        p = self.proxy
        content: bytes | None = None
        if self.compress:
            try:
                ex.outcome = o = await p.engine.process(
                    self.route, body, headers, ex.namespace or ""
                )
            except ctxcomp.InputError as exc:
                await ex.error(400, str(exc), "invalid_request_error", "invalid_request")
                return
            self._record(o)
            if o.fail:
                budget = isinstance(o.error, (ctxcomp.BudgetError, ctxcomp.InputError))
                await ex.error(
                    422 if budget else 500,
                    f"compression failed: {o.reason}",
                    "compression_error",
                    "compression_failed",
                )
                return
            content = o.body
        scope = ex.scope
        url = p.upstream.url(
            self.route, scope["path"], scope.get("query_string", b"").decode("latin-1")
        )
        up_headers = p.upstream.headers(
            ((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]),
            self.route,
        )
        t_up = time.perf_counter()
        try:
            resp = await p.upstream.open(scope["method"], url, up_headers, content)
        except UpstreamError as exc:
            await ex.error(exc.status, exc.message, "upstream_error", exc.kind)
            return
        try:
            p.metrics.upstream_ttfb.labels(self.route).observe(time.perf_counter() - t_up)
            await self._relay(ex, resp)
        finally:
            with anyio.CancelScope(shield=True):  # close even when cancelled (client gone)
                await resp.aclose()

    async def _relay(self, ex: Exchange, resp: Any) -> None:
        p = self.proxy
        headers = response_headers(resp)
        if is_sse(resp) and ex.scope["method"] != "HEAD":
            await ex.start(resp.status_code, headers)
            try:
                async for chunk in sse_chunks(resp, p.upstream.timeouts):
                    await ex.body(chunk, more=True)
            except UpstreamError as exc:
                log.warning("ctxcomp serve: upstream stream failed on %s: %s", self.route, exc.kind)
                event = stream_error_event(self.route, exc.message, exc.kind)
                await ex.body(event, more=True)
            await ex.body(b"", more=False)
            return
        try:
            data = await read_body(resp, p.config.max_response_bytes, p.upstream.timeouts)
        except UpstreamError as exc:
            await ex.error(exc.status, exc.message, "upstream_error", exc.kind)
            return
        await ex.start(resp.status_code, [*headers, (b"content-length", str(len(data)).encode())])
        await ex.body(data, more=False)

    def _record(self, o: Outcome) -> None:
        m = self.proxy.metrics
        m.outcomes.labels(o.status).inc()
        if o.status in ("compressed", "error"):
            m.compression.observe(o.compression_ms / 1000)
        if o.tokens_before is not None:
            m.tokens.labels("before").inc(o.tokens_before)
            m.tokens.labels("after").inc(
                o.tokens_after if o.tokens_after is not None else o.tokens_before
            )

    def _account(self, ex: Exchange, t0: float, gone: bool) -> None:
        m = self.proxy.metrics
        dt = time.perf_counter() - t0
        status = str(ex.status) if ex.started else "disconnected"
        m.requests.labels(self.route, status).inc()
        m.duration.labels(self.route).observe(dt)
        if gone:
            m.disconnects.inc()
        o = ex.outcome
        # never a key, a query string or a body: route, status, sizes, the tenant's hash
        log.info(
            "%s %s -> %s %.1f ms ctxcomp=%s tokens=%s->%s tenant=%s%s",
            ex.scope["method"],
            self.route,
            status,
            dt * 1000,
            o.status if o else "-",
            o.tokens_before if o else "-",
            o.tokens_after if o else "-",
            ex.namespace or "-",
            " (client disconnected)" if gone else "",
        )


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise _Gone
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ValueError("too large")
        chunks.append(chunk)
        if not msg.get("more_body", False):
            return b"".join(chunks)


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope, flag: list[bool]) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            flag.append(True)
            scope.cancel()
            return


class _RedactQuery(logging.Filter):
    """httpx logs each request's URL at INFO: drop its query string (it may hold a key)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _QUERY.sub("?<redacted>", a) if isinstance(a, str) else a
                for a in (str(x) if type(x).__name__ == "URL" else x for x in record.args)
            )
        return True


_QUERY = re.compile(r"\?[^\s\"]*")


def redact_httpx_logs() -> None:
    """Install the query redaction on httpx's logger (once per process)."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactQuery) for f in logger.filters):
        logger.addFilter(_RedactQuery())


def create_app(config: ServeConfig) -> Starlette:
    """The proxy as an ASGI app (run it with uvicorn, or ``ctxcomp serve``)."""
    proxy = Proxy(config)
    redact_httpx_logs()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if config.preload:
            await proxy.engine.preload(proxy.tenancy.shared_namespace)
        try:
            yield
        finally:
            await proxy.upstream.aclose()
            proxy.engine.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": ctxcomp.__version__})

    async def metrics(request: Request) -> Response:
        body, ctype = proxy.metrics.exposition()
        return Response(body, media_type=ctype)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            msg = f"unknown route {request.url.path!r}: ctxcomp serves {', '.join(ROUTES)}, /v1/models, /healthz and /metrics"
        elif exc.status_code == 405:
            msg = f"method {request.method} is not allowed on {request.url.path}"
        else:
            msg = str(exc.detail)
        return Response(
            error_body(msg, "invalid_request_error", str(exc.status_code)),
            exc.status_code,
            headers=exc.headers,
            media_type="application/json",
        )

    routes = [Route(r, Endpoint(proxy, r, compress=True), methods=["POST"]) for r in ROUTES]
    passthrough = Endpoint(proxy, "/v1/models", compress=False)
    routes += [
        Route("/v1/models", passthrough, methods=["GET"]),
        Route("/v1/models/{model:path}", passthrough, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    app.state.proxy = proxy
    return app
