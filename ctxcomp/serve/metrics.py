"""Prometheus metrics of the proxy (``GET /metrics``, text exposition format).

Each app has its own registry. With several worker processes set ``PROMETHEUS_MULTIPROC_DIR``
(an empty directory, the same for all workers): ``/metrics`` then sums every worker's values.
Labels never carry a key or a tenant: only the route, the HTTP status and fixed outcomes.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "ctxcomp_proxy_"
        self.requests = Counter(
            p + "requests",
            "Requests answered, by route and status",
            ["route", "status"],
            registry=r,
        )
        self.duration = Histogram(
            p + "request_seconds",
            "Time from request to the last response byte",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.upstream_ttfb = Histogram(
            p + "upstream_response_seconds",
            "Time until the upstream's response headers",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.compression = Histogram(
            p + "compression_seconds",
            "Time spent compressing one request (worker thread)",
            buckets=_LATENCY,
            registry=r,
        )
        self.outcomes = Counter(
            p + "compressions",
            "Compression outcomes (compressed, skipped, off, error)",
            ["outcome"],
            registry=r,
        )
        self.tokens = Counter(
            p + "prompt_tokens",
            "Prompt tokens (reader tokenizer) before and after",
            ["stage"],
            registry=r,
        )
        self.upstream_errors = Counter(
            p + "upstream_errors", "Upstream failures by kind", ["kind"], registry=r
        )
        self.retries = Counter(p + "upstream_retries", "Upstream requests retried", registry=r)
        self.disconnects = Counter(
            p + "client_disconnects", "Clients gone before the response ended", registry=r
        )
        self.inflight = Gauge(
            p + "inflight_requests",
            "Requests being served",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pipelines = Gauge(
            p + "pipelines_loaded",
            "Compressors loaded (tenant x settings)",
            registry=r,
            multiprocess_mode="livesum",
        )

    def exposition(self) -> tuple[bytes, str]:
        """The text to serve at ``/metrics`` and its content type."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            reg = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)
            return generate_latest(reg), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
