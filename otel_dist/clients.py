"""Client spans for the HTTP clients that are installed, carrying the request ID downstream.

httpx (with opentelemetry-instrumentation-httpx, the ``[httpx]`` extra): a client span per request with the
trace context and baggage injected by the propagators, plus the current request ID in the request-ID header,
so a downstream service (otel-dist or not) logs the same ID.
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
    return instrumentors
