"""Server spans and HTTP duration metrics: one mechanism per app, chosen deliberately (``OTEL_DIST_SERVER_SPANS``).

* ``otel_dist`` (the default): our own layer for every Starlette/FastAPI app, in the request middleware
  (:mod:`otel_dist.asgi.server_telemetry`); FastAPI's native telemetry is switched off for the app, its routing
  hooks still name the span.

``native``:

* FastAPI with native telemetry (>= 0.142): its own server span (named from the route template, covering the
  whole middleware stack, 500s included) and ``http.server.request.duration`` / ``active_requests``. We hand it
  our providers, switch off what would duplicate or fight our pipeline (its own OTLP exporters under
  FASTAPI_OTEL_AUTO_CONFIGURE, its log records — our access and error lines carry the same facts once — and,
  by default, the per-operation spans users find noisy), and exclude probe paths.
* Anything else (Starlette, older FastAPI, other ASGI apps): the contrib ``OpenTelemetryMiddleware`` outermost,
  without its per-message ``http send``/``http receive`` spans. It records the body-size metrics too.
"""

from __future__ import annotations

import re
from typing import Any, Final

from opentelemetry.metrics import NoOpUpDownCounter

from otel_dist.asgi.middleware import ASGIApp, is_excluded
from otel_dist.asgi.server_telemetry import SCOPE_NAME, HeaderCapture, ServerTelemetry
from otel_dist.bootstrap import Telemetry
from otel_dist.span_attributes import SpanAttributeWriter


def has_native_telemetry(app: Any) -> bool:
    """True for a FastAPI app that carries its own OpenTelemetry support."""
    return isinstance(getattr(app, "_telemetry", None), dict) and hasattr(app, "_native_telemetry")


class _Delegate:
    """Everything of the wrapped object, except what the subclass overrides."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _MeterWithoutActiveRequests(_Delegate):
    def create_up_down_counter(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == ACTIVE_REQUESTS:
            return NoOpUpDownCounter(name, *args, **kwargs)
        return self._inner.create_up_down_counter(name, *args, **kwargs)


class _MeterProviderWithoutActiveRequests(_Delegate):
    """The MeterProvider FastAPI gets: ``http.server.active_requests`` is counted by our middleware instead
    (:class:`~otel_dist.asgi.middleware.ActiveRequests`), every other instrument is FastAPI's own."""

    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        return _MeterWithoutActiveRequests(self._inner.get_meter(*args, **kwargs))


ACTIVE_REQUESTS: Final = "http.server.active_requests"


def native_known_methods(app: Any) -> frozenset[str]:
    """The HTTP methods FastAPI's telemetry keeps by name (the others are ``_OTHER``)."""
    known = getattr(getattr(app, "_native_telemetry", None), "_known_methods", None)
    return known if isinstance(known, frozenset) else _KNOWN_METHODS


def tune_native(app: Any, telemetry: Telemetry) -> bool:
    """Point FastAPI's native telemetry at our providers and settings (before its lifespan starts).

    Returns whether it records HTTP metrics (then the middleware counts the active requests for it).
    """
    settings = telemetry.settings
    excluded = settings.excluded_paths
    config = app._telemetry
    config.update(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=_MeterProviderWithoutActiveRequests(telemetry.meter_provider),
        # FastAPI(telemetry={"tracing": False}) stays off: the application chose it.
        tracing=config.get("tracing", True) and telemetry.tracer_provider is not None,
        metrics=config.get("metrics", True) and "metrics" in settings.enabled_signals,
        logs=False,
        operation_spans=settings.operation_spans,
        auto_configure=False,
        exclude=lambda scope: is_excluded(scope.get("path", ""), excluded),
    )
    return bool(config["metrics"])


_KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"})


def route_template(app: Any, scope: Any) -> str | None:
    """The template of the route ``app`` will match for ``scope``, found before routing runs."""
    from starlette.routing import Match

    for route in getattr(app, "routes", ()):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            path = getattr(route, "path", None)
            return f"{scope.get('root_path', '')}{path}" if path is not None else None
    return None


def span_details(app: Any) -> Any:
    """The contrib middleware names the span before routing; give it the route template, not the raw path."""

    def details(scope: Any) -> tuple[str, dict[str, str]]:
        method = scope.get("method", "")
        method = method if method in _KNOWN_METHODS else "HTTP"
        route = route_template(app, scope) if scope.get("type") == "http" else None
        if route is None:
            return method, {}
        return f"{method} {route}", {"http.route": route}

    return details


def contrib_middleware(application: Any, app: ASGIApp, telemetry: Telemetry) -> ASGIApp:
    """Wrap ``app`` (the built stack of ``application``) in the contrib ASGI middleware, from our settings."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.util.http import ExcludeList

    paths = telemetry.settings.excluded_paths
    excluded = ExcludeList([rf"^[a-z]+://[^/]+{re.escape(p)}(?:[/?]|$)" for p in paths]) if paths else None
    wrapped: ASGIApp = OpenTelemetryMiddleware(
        app,
        excluded_urls=excluded,
        default_span_details=span_details(application),
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        exclude_spans=["receive", "send"],
        http_capture_headers_server_request=list(telemetry.settings.capture_request_headers),
        http_capture_headers_server_response=list(telemetry.settings.capture_response_headers),
        http_capture_headers_sanitize_fields=list(telemetry.settings.capture_headers_sanitize),
    )
    return wrapped


#: On a FastAPI app: its own telemetry choices (``FastAPI(telemetry={...})``), read before we switched it off.
_CHOICES: Final = "_otel_dist_telemetry_choices"


def _contrib_in_stack(stack: Any) -> bool:
    """The contrib ASGI middleware inside the built stack (FastAPIInstrumentor.instrument_app, or added by
    hand): it makes the server span and the duration itself, so ours stay off (as FastAPI's native ones do)."""
    seen: set[int] = set()
    while stack is not None and id(stack) not in seen:
        seen.add(id(stack))
        cls = type(stack)
        if cls.__module__ == "opentelemetry.instrumentation.asgi" and cls.__name__ == "OpenTelemetryMiddleware":
            return True
        stack = getattr(stack, "app", None)
    return False


def own_server_telemetry(app: Any, stack: Any, telemetry: Telemetry) -> ServerTelemetry:
    """Our server span and HTTP metrics for ``app`` (``OTEL_DIST_SERVER_SPANS=otel_dist``).

    A FastAPI app keeps its own choices: ``telemetry={"tracing": False}`` means no span, ``{"metrics": False}``
    no HTTP metrics; its native telemetry is switched off (ours replaces it), its routing still reports the route.
    """
    settings = telemetry.settings
    tracing = metrics = True
    native = has_native_telemetry(app)
    if native:
        config = app._telemetry
        choices = getattr(app, _CHOICES, None)
        if choices is None:  # the stack may be built again: the choices are the app's, not what we set
            choices = (config.get("tracing", True), config.get("metrics", True))
            setattr(app, _CHOICES, choices)
        tracing, metrics = choices
        config.update(tracing=False, metrics=False, logs=False, operation_spans=False, auto_configure=False)
    if _contrib_in_stack(stack):
        tracing = metrics = False
    provider = telemetry.tracer_provider
    tracer = provider.get_tracer(SCOPE_NAME) if tracing and provider is not None else None
    meters = telemetry.meter_provider if metrics and "metrics" in settings.enabled_signals else None
    return ServerTelemetry(
        tracer,
        meters,
        fastapi=native,
        operation_spans=settings.operation_spans,
        routes=lambda: getattr(app, "routes", ()),
        capture=HeaderCapture.of(
            settings.capture_request_headers, settings.capture_response_headers, settings.capture_headers_sanitize
        ),
        writer=SpanAttributeWriter(provider, settings.fast_recording) if tracer is not None else None,
        fast_metrics=settings.fast_recording,
    )
