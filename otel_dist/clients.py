"""Client telemetry for the client libraries that are installed: HTTP, databases, caches.

* httpx (with opentelemetry-instrumentation-httpx, the ``[httpx]`` extra): a client span per request with the
  trace context and baggage injected by the propagators, plus the current request ID in the request-ID header,
  so a downstream service (otel-dist or not) logs the same ID; and the ``http.client.request.duration``
  histogram (stable HTTP semantic conventions).
* SQLAlchemy: pool, query and slow-query telemetry (:mod:`otel_dist.db`).
* redis (with opentelemetry-instrumentation-redis, the ``[redis]`` extra): a client span per command
  (:mod:`otel_dist.cache`).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from otel_dist.bootstrap import Telemetry
from otel_dist.context import get_request_id


def _request_id_hook(header: str) -> tuple[Any, Any]:
    def add_header(_span: Any, request: Any) -> None:
        request_id = get_request_id()
        if request_id is not None and request.headers is not None and header not in request.headers:
            request.headers[header] = request_id

    async def add_header_async(span: Any, request: Any) -> None:
        add_header(span, request)

    return add_header, add_header_async


def instrument_clients(telemetry: Telemetry) -> list[Any]:
    """Instrument every supported client library that is installed; returns the instrumentors (to undo)."""
    instrumentors: list[Any] = []
    if importlib.util.find_spec("httpx") and importlib.util.find_spec("opentelemetry.instrumentation.httpx"):
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        hook, async_hook = _request_id_hook(telemetry.settings.request_id_header)
        instrumentor = HTTPXClientInstrumentor()
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            request_hook=hook,
            async_request_hook=async_hook,
        )
        instrumentors.append(instrumentor)
    if importlib.util.find_spec("sqlalchemy"):
        from otel_dist.db import instrument_sqlalchemy

        instrumentors.append(
            instrument_sqlalchemy(
                telemetry.tracer_provider, telemetry.meter_provider, telemetry.settings.db_slow_query_threshold
            )
        )
    from otel_dist.cache import instrument_redis

    redis = instrument_redis(telemetry.tracer_provider, telemetry.meter_provider)
    if redis is not None:
        instrumentors.append(redis)
    return instrumentors
