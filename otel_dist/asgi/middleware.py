"""The request middleware: request ID, response headers, access log, body sizes, unhandled errors.

Pure ASGI (``__call__(scope, receive, send)``): no BaseHTTPMiddleware, no per-request task or queue. It wraps the
application *outside* Starlette's ServerErrorMiddleware (see :func:`otel_dist.asgi.instrument_app`), so it sees
and stamps every response, the 500 that ServerErrorMiddleware writes for an unhandled exception included, and
responses short-circuited by any other middleware. It runs *inside* the server span, so the span is current.
"""

from __future__ import annotations

import signal
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, Final

import structlog
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation
from opentelemetry.trace import INVALID_SPAN

from otel_dist.asgi.access_log import log_request, route_of
from otel_dist.asgi.health import HealthChecks
from otel_dist.asgi.request_id import accept_or_generate, preview
from otel_dist.asgi.server_telemetry import ServerRequest, ServerTelemetry
from otel_dist.bound_metrics import NO_EXEMPLARS
from otel_dist.context import reset_request_id, set_request_id
from otel_dist.scrubbing import Redactor
from otel_dist.settings import REQUEST_ID_KEY, Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = structlog.get_logger("otel_dist.asgi")
TRACERESPONSE: Final = b"traceresponse"
#: Where the merged pull-mode exposition is served when OTEL_DIST_PROMETHEUS_MULTIPROCESS_DIR is set.
METRICS_PATH: Final = "/metrics"


def is_excluded(path: str, excluded: tuple[str, ...]) -> bool:
    """Probe and scrape paths: each excluded path and everything under it."""
    return any(path == p or path.startswith(p + "/") for p in excluded)


#: Set on the scope by the outermost instance: an instrumented app mounted inside another passes requests through.
_NESTED: Final = "otel_dist.request"


class BodySizeMetrics:
    """``http.server.request.body.size`` / ``response.body.size`` for servers whose span mechanism lacks them."""

    def __init__(self, meter_provider: MeterProvider) -> None:
        meter = meter_provider.get_meter("otel_dist.asgi")
        self.request: Histogram = meter.create_histogram(
            "http.server.request.body.size", unit="By", description="Size of HTTP server request bodies."
        )
        self.response: Histogram = meter.create_histogram(
            "http.server.response.body.size", unit="By", description="Size of HTTP server response bodies."
        )

    def record(self, scope: Scope, status: int, request_size: int | None, response_size: int) -> None:
        attributes: dict[str, Any] = {
            "http.request.method": scope.get("method", "_OTHER"),
            "http.response.status_code": status,
            "url.scheme": scope.get("scheme", "http"),
        }
        route = route_of(scope)
        if route is not None:
            attributes["http.route"] = route
        if request_size is not None:
            self.request.record(request_size, attributes, context=NO_EXEMPLARS)
        self.response.record(response_size, attributes, context=NO_EXEMPLARS)


class ActiveRequests:
    """``http.server.active_requests`` for FastAPI's native telemetry: a plain count per (method, scheme), observed
    when metrics are collected, instead of two synchronous measurements per request.

    FastAPI records the same instrument with ``add(+1)`` / ``add(-1)``, each a full SDK measurement (attribute
    validation, hashing, aggregation, exemplar filter: ~6 µs); :func:`otel_dist.asgi.server_spans.tune_native`
    hands it a no-op instrument for that one name. The series are the same: a non-monotonic sum per
    ``http.request.method`` (FastAPI's known methods, else ``_OTHER``) and ``url.scheme``, counting a request from
    its start to its last response message, as FastAPI does.
    """

    _by_provider: ClassVar[weakref.WeakKeyDictionary[Any, ActiveRequests]] = weakref.WeakKeyDictionary()
    _registry_lock: ClassVar = threading.Lock()

    def __init__(self, meter_provider: MeterProvider) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        meter_provider.get_meter("otel_dist.asgi").create_observable_up_down_counter(
            "http.server.active_requests",
            callbacks=[self._observe],
            unit="{request}",
            description="Number of active HTTP server requests.",
        )

    @classmethod
    def of(cls, meter_provider: MeterProvider) -> ActiveRequests:
        """The one counter of ``meter_provider``: the SDK keeps the callback of the first registration only, so
        every app served with these providers shares it."""
        with cls._registry_lock:
            active = cls._by_provider.get(meter_provider)
            if active is None:
                active = cls._by_provider[meter_provider] = cls(meter_provider)
            return active

    def _observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            counts = list(self._counts.items())
        for (method, scheme), count in counts:
            yield Observation(count, {"http.request.method": method, "url.scheme": scheme})

    def enter(self, scope: Scope, known_methods: frozenset[str]) -> tuple[str, str]:
        method = scope.get("method", "")
        key = (method if method in known_methods else "_OTHER", scope.get("scheme", "http"))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
        return key

    def leave(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._counts[key] -= 1


def _is_last_message(message: Message, trailers: bool) -> bool:
    """The message that completes a response (FastAPI's own test for the end of its request telemetry)."""
    kind = message["type"]
    if kind == "http.response.body":
        return not message.get("more_body", False) and not trailers
    if kind == "http.response.trailers":
        return not message.get("more_trailers", False)
    return bool(kind == "http.response.pathsend")


class RequestTelemetryMiddleware:
    """Per request: bind the request ID, stamp the response, write the access line, log an unhandled error; with
    ``server`` (:class:`~otel_dist.asgi.server_telemetry.ServerTelemetry`) also the server span and HTTP metrics."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        body_sizes: BodySizeMetrics | None = None,
        health: HealthChecks | None = None,
        active: tuple[ActiveRequests, frozenset[str]] | None = None,
        *,
        server: ServerTelemetry | None = None,
    ) -> None:
        self.app = app
        self.active = active  # (the counter, the methods the server span mechanism knows by name)
        self.health = health
        self.metrics_dir = Path(settings.prometheus_multiprocess_dir) if settings.prometheus_multiprocess_dir else None
        self.header = settings.request_id_header.encode("latin-1")
        self.excluded = settings.excluded_paths
        self.access_log = settings.access_log
        self.body_sizes = body_sizes
        self.server = server
        self.redactor = Redactor(settings.redact_keys, settings.redact_allow, settings.redact_path_params)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan" and self.health is not None:
                await self.app(scope, _drain_on_sigterm(receive, self.health), send)
            elif kind == "websocket" and self.server is not None and _NESTED not in scope:
                if is_excluded(scope.get("path", ""), self.excluded):
                    scope["fastapi.telemetry"] = None  # mounted FastAPI apps: no span of their own either
                    await self.app(scope, receive, send)
                else:
                    scope[_NESTED] = True
                    await self.server.websocket(self.app, scope, receive, send, scope.get("root_path", ""))
            else:
                await self.app(scope, receive, send)
            return
        if _NESTED in scope:  # an instrumented app mounted in another: the outer one does it all, once
            await self.app(scope, receive, send)
            return
        scope[_NESTED] = True
        root_path = scope.get("root_path", "")
        raw = next((value for name, value in scope["headers"] if name == self.header), None)
        request_id, rejected = accept_or_generate(raw)
        token = set_request_id(request_id)
        path = scope.get("path", "")
        excluded = is_excluded(path, self.excluded)
        server = self.server
        request: ServerRequest | None = None
        if server is None:
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute(REQUEST_ID_KEY, request_id)
        elif excluded:
            span = INVALID_SPAN
            scope["fastapi.telemetry"] = None  # mounted FastAPI apps: no span of their own either
        else:
            request = server.start(scope, request_id, REQUEST_ID_KEY)
            span = request.span
        if rejected is not None:
            _log.warning("request_id.replaced", rejected_length=len(rejected), rejected_preview=preview(rejected))
        started = time.perf_counter()
        status = 500
        response_size = 0
        response_started = False
        trailers = False
        active: ActiveRequests | None = None
        active_key: tuple[str, str] | None = None
        if self.active is not None and not excluded:
            active, known_methods = self.active
            active_key = active.enter(scope, known_methods)
        stamp = [(self.header, request_id.encode("ascii"))]
        context = span.get_span_context()
        if context.is_valid:
            flags = "01" if context.trace_flags.sampled else "00"
            traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags}"
            stamp.append((TRACERESPONSE, traceparent.encode("ascii")))

        capture_responses = server is not None and server.capture is not None and server.capture.responses

        def complete() -> None:
            """The response is complete: the span, the metrics and the access line (a 5xx waits for its cause)."""
            assert request is not None
            assert server is not None
            if status >= 500:
                request.completed = time.perf_counter()
                request.completed_ns = time.time_ns()
                return
            route = server.route(request, scope, root_path)
            duration = server.finish(request, status, _content_length(scope), response_size, route)
            if self.access_log:
                log_request(scope, status, duration, response_size, self.redactor, route=route)

        async def send_stamped(message: Message) -> None:
            nonlocal status, response_size, response_started, trailers, active_key
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                trailers = message.get("trailers", False)
                message["headers"] = [
                    *(h for h in message.get("headers", ()) if h[0].lower() != self.header),
                    *stamp,
                ]
                if request is not None and capture_responses:
                    request.response_headers = message["headers"]
            elif message["type"] == "http.response.body":
                response_size += len(message.get("body", b""))
            await send(message)
            if (active_key is not None or request is not None) and _is_last_message(message, trailers):
                if active is not None and active_key is not None:
                    active.leave(active_key)
                    active_key = None
                if request is not None and not request.finished and request.completed_ns is None:
                    complete()

        app_receive = receive
        if request is not None:

            async def app_receive() -> Message:
                message = await receive()
                if message["type"] == "http.disconnect":
                    request.disconnected = True
                return message

        health = self.health
        try:
            if health is not None and (path == health.prefix or path.startswith(health.prefix + "/")):
                await health(scope, app_receive, send_stamped)
            elif self.metrics_dir is not None and path == METRICS_PATH:
                await _serve_metrics(self.metrics_dir, send_stamped)
            else:
                await self.app(scope, app_receive, send_stamped)
        except Exception as error:
            if request is not None:
                request.error = error
            # ServerErrorMiddleware has already sent the 500; log it once, with the traceback, here (inside the
            # request's context) and do not re-raise: the server would log the same error a second time.
            _log.exception("http.request.unhandled_exception", **{"http.route": route_of(scope)})
            if not response_started:
                raise
        except BaseException as error:  # cancelled (the client went away), or exiting
            if request is not None:
                request.error = error
            raise
        finally:
            if active is not None and active_key is not None:
                active.leave(active_key)
            if request is not None:
                assert server is not None
                if not request.finished:  # a 5xx, an exception, or a response that never completed
                    route = server.route(request, scope, root_path)
                    known = status if response_started else None
                    duration = server.finish(request, known, _content_length(scope), response_size, route)
                    if self.access_log:
                        log_request(scope, status, duration, response_size, self.redactor, route=route)
                server.close(request, scope)
            elif not excluded:
                duration = time.perf_counter() - started
                if self.access_log:
                    log_request(scope, status, duration, response_size, self.redactor)
                if self.body_sizes is not None:
                    self.body_sizes.record(scope, status, _content_length(scope), response_size)
            reset_request_id(token)


async def _serve_metrics(directory: Path, send: Send) -> None:
    """Pull mode across prefork workers: every worker's latest snapshot, merged."""
    from otel_dist.metrics_multiprocess import exposition

    body = exposition(directory)
    headers = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _drain_on_sigterm(receive: Receive, health: HealthChecks) -> Receive:
    """At lifespan start-up, chain a SIGTERM handler that turns readiness to 503 before the server's own.

    Servers (uvicorn) install their signal handlers before the lifespan starts, so ours runs first, then theirs.
    """

    async def wrapped() -> Message:
        message = await receive()
        if message["type"] == "lifespan.startup" and threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGTERM)

            def on_sigterm(signum: int, frame: FrameType | None) -> None:
                health.start_draining()
                if callable(previous):
                    previous(signum, frame)
                elif previous == signal.SIG_DFL:
                    signal.signal(signum, signal.SIG_DFL)
                    signal.raise_signal(signum)

            signal.signal(signal.SIGTERM, on_sigterm)
        return message

    return wrapped


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return 0 if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS") else None
