"""ASGI/FastAPI integration: request IDs, server spans, HTTP metrics, access log, error responses, health.

``otel_dist.configure(app=app)`` or ``otel_dist.instrument_app(app)`` applies it to one app; under the
``opentelemetry-instrument`` wrapper every Starlette/FastAPI app is instrumented when it builds its middleware
stack. Either way the result is the same, and applying it twice changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Final, TypeVar

from otel_dist.asgi.access_log import UVICORN_ACCESS_LOGGER
from otel_dist.asgi.errors import internal_error_handler
from otel_dist.asgi.health import HealthChecks, disk_space_check
from otel_dist.asgi.middleware import ActiveRequests, BodySizeMetrics, RequestTelemetryMiddleware
from otel_dist.asgi.server_spans import (
    contrib_middleware,
    has_native_telemetry,
    native_known_methods,
    own_server_telemetry,
    tune_native,
)
from otel_dist.bootstrap import Telemetry

__all__ = ["HealthChecks", "disk_space_check", "instrument_app", "instrument_starlette_class"]

App = TypeVar("App")
_MARK: Final = "_otel_dist_instrumented"  # on an app instance
_CLASS_MARK: Final = "_otel_dist_class_patched"  # on the Starlette class


def _wrap_stack(app: Any, stack: Any, telemetry: Telemetry, health: HealthChecks | None = None) -> Any:
    """Put our middleware outside the built stack (outside ServerErrorMiddleware) and pick the span mechanism."""
    if health is not None:
        health.bind_metrics(telemetry.meter_provider)
    if telemetry.settings.server_spans == "otel_dist":
        server = own_server_telemetry(app, stack, telemetry)
        active = (ActiveRequests.of(telemetry.meter_provider), server.known_methods) if server.metrics else None
        return RequestTelemetryMiddleware(stack, telemetry.settings, None, health, active, server=server)
    native = has_native_telemetry(app)
    native_metrics = tune_native(app, telemetry) if native else False
    body_sizes = BodySizeMetrics(telemetry.meter_provider) if native else None
    active = (ActiveRequests.of(telemetry.meter_provider), native_known_methods(app)) if native_metrics else None
    wrapped = RequestTelemetryMiddleware(stack, telemetry.settings, body_sizes, health, active)
    return wrapped if native else contrib_middleware(app, wrapped, telemetry)


def _prepare(app: Any, telemetry: Telemetry) -> None:
    handlers = getattr(app, "exception_handlers", None)
    if isinstance(handlers, dict) and not ({500, Exception} & set(handlers)):
        handlers[Exception] = internal_error_handler
    if telemetry.settings.access_log:
        logging.getLogger(UVICORN_ACCESS_LOGGER).disabled = True  # our access line replaces uvicorn's


def instrument_app(app: App, telemetry: Telemetry | None = None, *, health: HealthChecks | None = None) -> App:
    """Instrument a Starlette or FastAPI ``app`` (call :func:`otel_dist.configure` first). Returns ``app``.

    ``health``: serve these checks under their prefix (``/health``, ``/health/ready``, ``/health/<name>``).
    """
    from otel_dist import bootstrap

    telemetry = telemetry or bootstrap.current()
    if telemetry is None:
        raise RuntimeError("otel_dist.instrument_app(app) needs otel_dist.configure() to have run first")
    if getattr(app, _MARK, False):
        return app
    if not hasattr(app, "build_middleware_stack"):
        raise TypeError(f"instrument_app() supports Starlette and FastAPI applications, not {type(app).__name__}")
    original = app.build_middleware_stack
    setattr(app, _MARK, True)
    _prepare(app, telemetry)

    def build_middleware_stack() -> Any:
        return _wrap_stack(app, original(), telemetry, health)

    app.build_middleware_stack = build_middleware_stack
    app.middleware_stack = None  # type: ignore[attr-defined]  # rebuilt, wrapped, on the next call
    return app


def instrument_starlette_class(telemetry: Telemetry) -> None:
    """Instrument every Starlette/FastAPI app of the process when it builds its stack (the wrapper's path).

    FastAPI overrides ``build_middleware_stack``, so each class that defines one is patched.
    """
    import importlib.util

    from starlette.applications import Starlette

    classes: list[Any] = [Starlette]
    if importlib.util.find_spec("fastapi") is not None:
        from fastapi import FastAPI

        classes.append(FastAPI)
    for cls in classes:
        if "build_middleware_stack" in vars(cls) and not vars(cls).get(_CLASS_MARK, False):
            _patch_class(cls, telemetry)


def _patch_class(cls: Any, telemetry: Telemetry) -> None:
    original = cls.build_middleware_stack

    def build_middleware_stack(self: Any) -> Any:
        if getattr(self, _MARK, False):  # instrument_app() wraps this app itself
            return original(self)
        _prepare(self, telemetry)  # before the stack is built: it reads the exception handlers
        return _wrap_stack(self, original(self), telemetry)

    cls.build_middleware_stack = build_middleware_stack
    setattr(cls, _CLASS_MARK, True)
