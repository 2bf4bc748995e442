"""The model server behind the proxy: one pooled httpx client, timeouts, safe retries.

A request is retried only when it cannot have reached the upstream: the connection could
not be opened (``ConnectError``/``ConnectTimeout``). A ``GET`` (``/v1/models``) is also
retried after any transport failure before a response arrived. A ``POST`` is never re-sent
once its bytes may have left: a completion must not be generated (and billed) twice.
Failures become :class:`UpstreamError` with the status the client gets (502, 503, 504).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import anyio
import httpx

from .config import AUTH_HEADERS, ServeConfig
from .metrics import Metrics
from .tenancy import Tenancy

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_REQUEST_DROP = HOP_BY_HOP | {"host", "content-length", "accept-encoding", "expect"}
_RESPONSE_DROP = HOP_BY_HOP | {"content-length", "date", "server"}
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


class UpstreamError(Exception):
    """The upstream could not be reached or failed; ``status`` is what the client gets."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def classify(exc: httpx.HTTPError, timeouts: httpx.Timeout) -> UpstreamError:
    """A client-facing error for an httpx failure (no URL, header or key in the message)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return UpstreamError(
            504,
            "connect_timeout",
            f"the upstream did not accept a connection within {timeouts.connect} s",
        )
    if isinstance(exc, httpx.ConnectError):
        return UpstreamError(
            502, "connect", "the upstream is unreachable (connection refused or failed)"
        )
    if isinstance(exc, httpx.PoolTimeout):
        return UpstreamError(
            503, "pool_timeout", f"no upstream connection became free within {timeouts.pool} s"
        )
    if isinstance(exc, httpx.ReadTimeout):
        return UpstreamError(
            504, "read_timeout", f"the upstream sent nothing for {timeouts.read} s"
        )
    if isinstance(exc, httpx.WriteTimeout):
        return UpstreamError(
            504, "write_timeout", f"the request could not be sent within {timeouts.write} s"
        )
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return UpstreamError(
            502,
            "disconnected",
            "the upstream closed the connection before the response was complete",
        )
    return UpstreamError(502, "transport", f"upstream request failed ({type(exc).__name__})")


class Upstream:
    """The pooled client and how requests and responses cross it."""

    def __init__(self, config: ServeConfig, metrics: Metrics, tenancy: Tenancy) -> None:
        self.config = config
        self.metrics = metrics
        self.tenancy = tenancy
        self.timeouts = httpx.Timeout(
            connect=config.connect_timeout,
            read=config.read_timeout,
            write=config.write_timeout,
            pool=config.pool_timeout,
        )
        self.client = httpx.AsyncClient(
            timeout=self.timeouts,
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_keepalive,
                keepalive_expiry=config.keepalive_expiry,
            ),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def url(self, route: str, path: str, query: str) -> str:
        """``/v1/<rest>`` on the proxy -> ``<upstream base>/<rest>``."""
        rest = path[3:] if path.startswith("/v1/") else path
        return self.config.upstream_for(route) + rest + (f"?{query}" if query else "")

    def headers(self, client: Iterable[tuple[str, str]], route: str) -> list[tuple[str, str]]:
        """Client headers minus hop-by-hop and ctxcomp's own, with the right auth."""
        out = []
        for name, value in client:
            if name in _REQUEST_DROP or name.startswith("x-ctxcomp-"):
                continue
            if name in AUTH_HEADERS and not self.tenancy.pass_through:
                continue  # configured mode: the client's key never reaches the upstream
            out.append((name, value))
        out.append(("accept-encoding", "identity"))  # bytes pass as is: no re-encoding
        out.extend(self.tenancy.upstream_auth(self.config.auth_header_for(route)))
        return out

    async def open(
        self, method: str, url: str, headers: list[tuple[str, str]], content: bytes | None
    ) -> httpx.Response:
        """Send the request; the response (headers read, body not yet) or UpstreamError."""
        request = self.client.build_request(method, url, headers=headers, content=content)
        attempt = 0
        while True:
            try:
                return await self.client.send(request, stream=True)
            except httpx.HTTPError as exc:
                err = classify(exc, self.timeouts)
                self.metrics.upstream_errors.labels(err.kind).inc()
                unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                safe = unsent or (
                    method in IDEMPOTENT
                    and isinstance(exc, httpx.TransportError)
                    and not isinstance(exc, httpx.PoolTimeout)
                )
                if not safe or attempt >= self.config.retries:
                    raise err from None
                attempt += 1
                self.metrics.retries.inc()
                await anyio.sleep(self.config.retry_backoff * 2 ** (attempt - 1))


def response_headers(resp: httpx.Response) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers a client gets (raw bytes, order kept)."""
    return [
        (k.lower(), v)
        for k, v in resp.headers.raw
        if k.lower().decode("latin-1") not in _RESPONSE_DROP
    ]


def is_sse(resp: httpx.Response) -> bool:
    return resp.headers.get("content-type", "").lower().startswith("text/event-stream")


async def read_body(resp: httpx.Response, limit: int, timeouts: httpx.Timeout) -> bytes:
    """A whole (non-streaming) response body, as sent; UpstreamError on failure or excess."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in resp.aiter_raw():
            size += len(chunk)
            if size > limit:
                raise UpstreamError(
                    502, "too_large", f"the upstream response exceeds max_response_bytes={limit}"
                )
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise classify(exc, timeouts) from None
    return b"".join(chunks)


def _event_end(buf: bytes) -> int:
    """Length of the prefix of ``buf`` that ends at an SSE event boundary (0: none)."""
    return max(
        buf.rfind(b"\n\n") + 2 if b"\n\n" in buf else 0,
        buf.rfind(b"\r\n\r\n") + 4 if b"\r\n\r\n" in buf else 0,
        buf.rfind(b"\r\r") + 2 if b"\r\r" in buf else 0,
    )


async def sse_chunks(resp: httpx.Response, timeouts: httpx.Timeout) -> AsyncIterator[bytes]:
    """The upstream's event stream as it arrives, released at event boundaries: if the
    upstream fails mid-event the client never holds half an event (UpstreamError then)."""
    encoded = resp.headers.get("content-encoding", "identity").lower() != "identity"
    buf = b""
    try:
        async for chunk in resp.aiter_raw():
            if encoded:  # compressed bytes have no visible boundaries: pass them on
                yield chunk
                continue
            buf += chunk
            end = _event_end(buf)
            if end:
                yield buf[:end]
                buf = buf[end:]
    except httpx.HTTPError as exc:
        raise classify(exc, timeouts) from None
    if buf:
        yield buf  # the stream ended without a final blank line: pass what came
