"""otel-dist's own server span and HTTP server metrics (``OTEL_DIST_SERVER_SPANS=otel_dist``, the default).

One SERVER span per request, made with the least work around the SDK calls: the W3C (or configured) parent is
extracted from the header fields the propagators read, every attribute known at the start is passed to
``start_span`` (validated once), the span and the request's FastAPI telemetry object become current in one
context attach, and at the end one ``set_attributes`` call adds the route, status and error type. The HTTP
metrics are recorded once per request through attribute sets bound per (method, scheme, protocol version,
route, status, error type) (:mod:`otel_dist.bound_metrics`): ``http.server.request.duration`` while the span is
current (its exemplars link to the trace), ``http.server.request.body.size`` / ``response.body.size`` without
exemplars. ``http.server.active_requests`` is the middleware's count
(:class:`~otel_dist.asgi.middleware.ActiveRequests`).

What FastAPI's native telemetry does and this keeps (the tests compare both, request for request):

* the name ``METHOD /route/template`` (``HTTP`` for methods outside the known set, with
  ``http.request.method_original``; the method alone when no route matched), the route found by FastAPI's own
  routing hooks (mounted apps, included routers, redirects, frontend routes) through the request-telemetry object
  FastAPI's routing fills; for Starlette apps from the matched routes, mounts included;
* the stable HTTP server attributes; ``error.type`` and status ERROR for 5xx, exceptions (qualified class name),
  client disconnects (``ConnectionError``) and incomplete responses (``RuntimeError``); the span and the duration end
  with the last response message (background tasks run after it), except for a 5xx, which waits for the exception
  that caused it so the span names it;
* websockets: one span per connection (``WS /route``, ``network.protocol.name=websocket``), no HTTP metrics;
* operation spans (``OTEL_DIST_FASTAPI_OPERATION_SPANS``) and ``fastapi.telemetry.get_telemetry_data()``, through
  the same request-telemetry object in the context; mounted FastAPI apps do not start a second span;
* ``FastAPI(telemetry={"tracing": False})`` / ``{"metrics": False}``, and no span or duration of ours when the
  contrib ASGI middleware is in the app's stack (it makes its own).

Beyond FastAPI's: ``client.address``, ``user_agent.original``, the exception recorded as a span event, the raw
query string (secret parameters are blanked on the way out, with the path's secret segments, by the span
exporter wrapper in :mod:`otel_dist.traces`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, StatusCode, Tracer

from otel_dist.bound_metrics import NO_EXEMPLARS, Bound, BoundHistogram
from otel_dist.metrics import DURATION_BUCKETS
from otel_dist.span_attributes import SpanAttributeWriter

Scope = MutableMapping[str, Any]

#: The methods kept by name (the others are ``_OTHER`` in metrics, ``HTTP`` in span names): FastAPI's set.
KNOWN_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)
SCOPE_NAME: Final = "otel_dist.asgi"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_HOST_CACHE_LIMIT: Final = 256
#: Attribute sets bound beyond this many are recorded through the public API (the SDK's cardinality limit
#: still decides what is exported; this only bounds our cache).
_BOUND_LIMIT: Final = 4096


def exception_type(error: BaseException) -> str:
    """``error.type`` for an exception: the qualified class name (``builtins`` left out), as FastAPI names it."""
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def fastapi_hooks() -> tuple[type, Any] | None:
    """FastAPI's request-telemetry class and context key, which its routing fills with the selected route.

    Private to FastAPI (>= 0.142): None when they are missing or not shaped as expected, and the route is then
    found from the matched routes as for Starlette apps. ``tests/unit/test_server_telemetry.py`` fails when a
    FastAPI upgrade changes them.
    """
    try:
        from fastapi.telemetry._api import _REQUEST_TELEMETRY_KEY, _RequestTelemetry
    except ImportError:
        return None
    fields = getattr(_RequestTelemetry, "__dataclass_fields__", {})
    if not {"span", "span_method", "tracer", "route", "_mount_prefix", "_exceptions", "data"} <= set(fields):
        return None
    return _RequestTelemetry, _REQUEST_TELEMETRY_KEY


def starlette_route(routes: Iterable[Any], scope: Mapping[str, Any], root_path: str) -> str | None:
    """The template of the route Starlette's routing selects for ``scope`` (matched again, from the top).

    Mount templates are joined with their inner route's (``/sub/items/{item_id}``); a mount that does not route
    further ends in ``/{path}``, as FastAPI names it.
    """
    from starlette.routing import Match, Mount

    partial: tuple[Any, Mapping[str, Any]] | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            return _template(route, {**scope, **child}, root_path)
        if match == Match.PARTIAL and partial is None:
            partial = (route, child)
    if partial is not None and not isinstance(partial[0], Mount):
        return _template(partial[0], {**scope, **partial[1]}, root_path)
    return None


def _template(route: Any, scope: Mapping[str, Any], root_path: str) -> str | None:
    from starlette.routing import Mount

    if isinstance(route, Mount):
        prefix = root_path + route.path
        inner = route.routes
        return (starlette_route(inner, scope, prefix) if inner else None) or f"{prefix}/{{path}}"
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return f"{root_path}{template}" if isinstance(template, str) else None


class HeaderCapture:
    """Request and response headers on the span, as the contrib instrumentations capture them: names matched whole
    and case-insensitively, ``http.request.header.<name>`` (lower case, ``-`` as ``_``) with every value, the values
    of the sanitize names blanked (secret-looking names are blanked again on the way out, by the exporter wrapper)."""

    def __init__(self, request: Iterable[str], response: Iterable[str], sanitize: Iterable[str]) -> None:
        self._request = _any_of(request)
        self._response = _any_of(response)
        self._sanitize = _any_of(sanitize)
        self.responses = self._response is not None

    @staticmethod
    def of(request: Iterable[str], response: Iterable[str], sanitize: Iterable[str]) -> HeaderCapture | None:
        """None when no header is to be captured (the request path then pays nothing)."""
        capture = HeaderCapture(request, response, sanitize)
        return capture if capture._request is not None or capture._response is not None else None

    def request(self, headers: Iterable[tuple[bytes, bytes]]) -> dict[str, list[str]]:
        return self._captured(headers, self._request, "http.request.header.")

    def response(self, headers: Iterable[tuple[bytes, bytes]]) -> dict[str, list[str]]:
        return self._captured(headers, self._response, "http.response.header.")

    def _captured(
        self, headers: Iterable[tuple[bytes, bytes]], names: re.Pattern[str] | None, prefix: str
    ) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        if names is None:
            return found
        for raw_name, raw_value in headers:
            name = raw_name.decode("latin-1")
            if names.fullmatch(name):
                secret = self._sanitize is not None and self._sanitize.search(name) is not None
                value = "[REDACTED]" if secret else raw_value.decode("latin-1")
                found.setdefault(prefix + name.lower().replace("-", "_"), []).append(value)
        return found


def _any_of(patterns: Iterable[str]) -> re.Pattern[str] | None:
    patterns = tuple(patterns)
    return re.compile("|".join(patterns), re.IGNORECASE) if patterns else None


class ServerRequest:
    """One request's telemetry state, between :meth:`ServerTelemetry.start` and :meth:`ServerTelemetry.finish`."""

    __slots__ = (
        "completed",
        "completed_ns",
        "context",
        "disconnected",
        "error",
        "fastapi",
        "finished",
        "method",
        "response_headers",
        "scheme",
        "span",
        "span_method",
        "started",
        "token",
        "version",
    )
    context: Context
    method: str
    scheme: str
    span: Span
    span_method: str
    started: float
    version: str

    def __init__(self) -> None:
        self.completed: float | None = None  # a 5xx waits for its exception: when its response completed
        self.completed_ns: int | None = None
        self.disconnected = False
        self.error: BaseException | None = None
        self.fastapi: Any = None  # FastAPI's request-telemetry object (the route, the exceptions it saw)
        self.finished = False
        self.response_headers: Any = None  # kept for the header capture only
        self.token: object = None


class ServerTelemetry:
    """The server span and HTTP metrics of one app; :class:`~otel_dist.asgi.middleware.RequestTelemetryMiddleware`
    calls :meth:`start` and :meth:`finish` around each request (and :meth:`websocket` for a connection)."""

    def __init__(
        self,
        tracer: Tracer | None,
        meter_provider: MeterProvider | None,
        *,
        fastapi: bool,
        operation_spans: bool,
        routes: Callable[[], Iterable[Any]],
        capture: HeaderCapture | None = None,
        writer: SpanAttributeWriter | None = None,
        fast_metrics: bool = True,
    ) -> None:
        self.tracer = tracer
        self._writer = writer
        self.capture = capture if tracer is not None else None
        self.metrics = meter_provider is not None
        self.known_methods = KNOWN_METHODS
        self._routes = routes
        hooks = fastapi_hooks() if fastapi else None
        self._request_telemetry: Any = hooks[0] if hooks else None
        self._request_telemetry_key: Any = hooks[1] if hooks else None
        self._operation_tracer = tracer if operation_spans else None
        self._hosts: dict[bytes | None, dict[str, Any]] = {}
        self._textmap: Any = None
        self._fields: frozenset[bytes] = frozenset()
        self._bound: dict[tuple[Any, ...], tuple[Bound, Bound, Bound]] = {}
        if meter_provider is not None:
            meter = meter_provider.get_meter(SCOPE_NAME)
            self._duration = BoundHistogram(
                fast=fast_metrics,
                histogram=meter.create_histogram(
                    "http.server.request.duration",
                    unit="s",
                    description="Duration of HTTP server requests.",
                    explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
                ),
            )
            self._request_size = BoundHistogram(
                fast=fast_metrics,
                histogram=meter.create_histogram(
                    "http.server.request.body.size", unit="By", description="Size of HTTP server request bodies."
                ),
            )
            self._response_size = BoundHistogram(
                fast=fast_metrics,
                histogram=meter.create_histogram(
                    "http.server.response.body.size", unit="By", description="Size of HTTP server response bodies."
                ),
            )

    # -- the request's start ---------------------------------------------------------------------------------

    def _parent(self, headers: Iterable[tuple[bytes, bytes]]) -> Context | None:
        """The extracted parent context, or None when no header a propagator reads is present."""
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:  # configure() set it; a user may replace it later
            self._textmap = textmap
            self._fields = frozenset(field.lower().encode("latin-1") for field in textmap.fields)
        wanted = self._fields
        carrier: dict[str, str] | None = None
        for name, value in headers:
            if name in wanted:
                key = name.decode("latin-1")
                text = value.decode("latin-1")
                carrier = carrier or {}
                carrier[key] = f"{carrier[key]},{text}" if key in carrier else text  # RFC 9110 field combination
        return propagate.extract(carrier) if carrier else None

    def _server_address(self, host: bytes | None, scope: Scope) -> dict[str, Any]:
        """``server.address``/``server.port`` from the Host header (else the socket), cached per header value."""
        found = self._hosts.get(host)
        if found is not None:
            return found
        found = _server_address(host, scope)
        if len(self._hosts) >= _HOST_CACHE_LIMIT:
            self._hosts.clear()
        self._hosts[host] = found
        return found

    def start(self, scope: Scope, request_id: str | None, request_id_key: str) -> ServerRequest:
        """Start the span (current from here on) and the clock of one HTTP request."""
        request = ServerRequest()
        original = scope.get("method", "")
        method = original if original in KNOWN_METHODS else "_OTHER"
        request.method = method
        request.scheme = scheme = scope.get("scheme", "http")
        request.version = version = scope.get("http_version", "1.1")
        request.span_method = span_method = method if method != "_OTHER" else "HTTP"
        tracer = self.tracer
        parent: Context | None = None
        if tracer is not None:
            host: bytes | None = None
            agent: bytes | None = None
            headers = scope.get("headers", ())
            for name, value in headers:
                if name == b"host":
                    host = value
                elif name == b"user-agent":
                    agent = value
            parent = self._parent(headers)
            attributes: dict[str, Any] = {
                "http.request.method": method,
                "url.scheme": scheme,
                "url.path": scope.get("path", ""),
                "network.protocol.version": version,
                **self._server_address(host, scope),
            }
            query = scope.get("query_string")
            if query:
                attributes["url.query"] = query.decode("latin-1")
            if method != original:
                attributes["http.request.method_original"] = original
            client = scope.get("client")
            if client:
                attributes["client.address"] = client[0]
            if agent is not None:
                attributes["user_agent.original"] = agent.decode("latin-1")
            if request_id is not None:
                attributes[request_id_key] = request_id
            if self.capture is not None:
                attributes.update(self.capture.request(headers))
            writer = self._writer
            if writer is not None and writer.direct:
                request.span = span = tracer.start_span(span_method, parent, SpanKind.SERVER)
                writer.write(span, attributes)
            else:
                request.span = span = tracer.start_span(span_method, parent, SpanKind.SERVER, attributes)
        else:
            request.span = span = INVALID_SPAN
        context = trace.set_span_in_context(span, parent) if tracer is not None else otel_context.get_current()
        context = self._with_fastapi_telemetry(request, scope, context)
        if tracer is not None or request.fastapi is not None:
            request.token = otel_context.attach(context)
        request.context = context
        request.started = time.perf_counter()
        return request

    def _with_fastapi_telemetry(self, request: ServerRequest, scope: Scope, context: Context) -> Context:
        """``context`` with FastAPI's request-telemetry object for this request (its routing fills in the route),
        when the app is a FastAPI app; also on the scope, so mounted FastAPI apps start no span of their own."""
        request_telemetry = self._request_telemetry
        if request_telemetry is None:
            return context
        request.fastapi = fastapi = request_telemetry(
            span=None,  # FastAPI's routing would rename the span on every route it selects: named once, at the end
            span_method=request.span_method,
            tracer=self._operation_tracer,
            _mount_prefix=scope.get("app_root_path", scope.get("root_path", "")).rstrip("/"),
        )
        scope["fastapi.telemetry"] = fastapi
        return otel_context.set_value(self._request_telemetry_key, fastapi, context)

    # -- the request's end -----------------------------------------------------------------------------------

    def route(self, request: ServerRequest, scope: Scope, root_path: str) -> str | None:
        """The route template of the request (after routing)."""
        if request.fastapi is not None:
            route: str | None = request.fastapi.route
            return route
        leaf = scope.get("route")
        if leaf is None:  # nothing matched (404)
            return None
        if scope.get("root_path", "") == root_path and not hasattr(leaf, "routes"):  # no mount on the way
            template = getattr(leaf, "path_format", None)
            return f"{root_path}{template}" if isinstance(template, str) else None
        return starlette_route(self._routes(), {**scope, "root_path": root_path}, root_path)

    def finish(
        self,
        request: ServerRequest,
        status: int | None,
        request_size: int | None,
        response_size: int,
        route: str | None,
    ) -> float:
        """End the span and record the metrics, once: at the last response message, or after the app for a 5xx,
        an exception or an incomplete response. Returns the duration (to the response's completion)."""
        request.finished = True
        ended = request.completed if request.completed is not None else time.perf_counter()
        duration = max(0.0, ended - request.started)
        error = request.error
        if error is None and request.fastapi is not None and request.fastapi._exceptions:
            error = request.fastapi._exceptions[-1]  # seen by FastAPI's ExceptionTelemetryMiddleware
        error_type: str | None = None
        if error is not None:
            error_type = exception_type(error)
        elif status is None:
            error_type = "ConnectionError" if request.disconnected else "RuntimeError"
        elif status >= 500:
            error_type = str(status)
        span = request.span
        if span is not INVALID_SPAN:
            end: dict[str, Any] = {}
            if route is not None:
                end["http.route"] = route
                span.update_name(f"{request.span_method} {route}")
            if status is not None:
                end["http.response.status_code"] = status
            if self.capture is not None and request.response_headers is not None:
                end.update(self.capture.response(request.response_headers))
            if error_type is not None:
                end["error.type"] = error_type
                span.set_status(StatusCode.ERROR)
                if error is not None:
                    span.record_exception(error)
            if self._writer is not None:
                self._writer.write(span, end)
            else:
                span.set_attributes(end)
        if self.metrics:
            self._record(
                request,
                status=status,
                route=route,
                error_type=error_type,
                duration=duration,
                request_size=request_size,
                response_size=response_size,
            )
        if span is not INVALID_SPAN:
            span.end(request.completed_ns)
        return duration

    def _record(
        self,
        request: ServerRequest,
        *,
        status: int | None,
        route: str | None,
        error_type: str | None,
        duration: float,
        request_size: int | None,
        response_size: int,
    ) -> None:
        key = (request.method, request.scheme, request.version, route, status, error_type)
        bound = self._bound.get(key)
        if bound is None:
            attributes: dict[str, Any] = {
                "http.request.method": request.method,
                "url.scheme": request.scheme,
                "network.protocol.version": request.version,
            }
            if route is not None:
                attributes["http.route"] = route
            if status is not None:
                attributes["http.response.status_code"] = status
            if error_type is not None:
                attributes["error.type"] = error_type
            bound = (
                self._duration.bind(attributes),
                self._request_size.bind(attributes),
                self._response_size.bind(attributes),
            )
            if len(self._bound) < _BOUND_LIMIT:
                self._bound[key] = bound
        self._duration.record(duration, bound[0], request.context)  # the span's context: exemplars
        if request_size is not None:
            self._request_size.record(request_size, bound[1], NO_EXEMPLARS)
        self._response_size.record(response_size, bound[2], NO_EXEMPLARS)

    def close(self, request: ServerRequest, scope: Scope) -> None:
        """Detach the request's context (in the task that attached it) and forget FastAPI's object."""
        fastapi = request.fastapi
        if fastapi is not None:
            fastapi.data = None
            fastapi._exceptions.clear()
            scope.pop("fastapi.telemetry", None)
        if request.token is not None:
            otel_context.detach(request.token)  # type: ignore[arg-type]

    # -- websockets ------------------------------------------------------------------------------------------

    async def websocket(self, app: Any, scope: Scope, receive: Any, send: Any, root_path: str) -> None:
        """One span per websocket connection, as FastAPI makes it (no HTTP metrics)."""
        tracer = self.tracer
        if tracer is None and self._request_telemetry is None:
            await app(scope, receive, send)
            return
        request = ServerRequest()
        request.span_method = "WS"
        span: Span = INVALID_SPAN
        parent: Context | None = None
        if tracer is not None:
            headers = scope.get("headers", ())
            host = next((value for name, value in headers if name == b"host"), None)
            parent = self._parent(headers)
            attributes = {
                "url.scheme": scope.get("scheme", "ws"),
                "network.protocol.name": "websocket",
                **self._server_address(host, scope),
            }
            span = tracer.start_span("WS", parent, SpanKind.SERVER, attributes)
        request.span = span
        context = trace.set_span_in_context(span, parent) if tracer is not None else otel_context.get_current()
        request.token = otel_context.attach(self._with_fastapi_telemetry(request, scope, context))
        error: BaseException | None = None
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            error = None if _normal_disconnect(exc) else exc
            raise
        finally:
            if span is not INVALID_SPAN:
                route = self.route(request, scope, root_path)
                if route is not None:
                    span.update_name(f"WS {route}")
                    span.set_attribute("http.route", route)
                if error is not None:
                    span.set_attribute("error.type", exception_type(error))
                    span.set_status(StatusCode.ERROR)
                    span.record_exception(error)
                span.end()
            self.close(request, scope)


def _normal_disconnect(error: BaseException) -> bool:
    from starlette.websockets import WebSocketDisconnect

    return isinstance(error, WebSocketDisconnect) and error.code in (1000, 1001)


def _server_address(host: bytes | None, scope: Scope) -> dict[str, Any]:
    """FastAPI's reading of the authority: the Host header (a bad one gives nothing), else the server socket."""
    from urllib.parse import urlsplit

    if host is not None:
        try:
            url = urlsplit("//" + host.decode("latin-1"))
            address, port = url.hostname, url.port
        except ValueError:
            return {}
        if url.username is not None or url.path or url.query or url.fragment:
            return {}
        if port is None:
            port = _DEFAULT_PORTS.get(scope.get("scheme", "http"))
    else:
        address, port = scope.get("server") or (None, None)
    if address is None:
        return {}
    found: dict[str, Any] = {"server.address": address}
    if port is not None:
        found["server.port"] = port
    return found
