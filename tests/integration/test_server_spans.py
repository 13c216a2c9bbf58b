"""OTEL_DIST_SERVER_SPANS=otel_dist (our server-span layer) against FastAPI's native telemetry (``native``).

The same requests go through the same app under each mechanism, to a real OTLP receiver; the server spans and the
``http.server.request.duration`` series must agree wherever FastAPI's native telemetry defines them. Ours then
adds ``client.address``, ``user_agent.original`` and the exception event, which the tests check too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, BackgroundTasks, FastAPI, HTTPException, WebSocket
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route

import otel_dist
from otel_dist.bootstrap import Extras
from otel_dist.testing import reset_global_providers
from tests.conftest import FAST
from tests.support.otlp_receiver import OtlpReceiver, running_http_receiver

#: Attributes only ours sets (FastAPI's native telemetry leaves them out); request_id differs per request.
OURS_ONLY = {"client.address", "user_agent.original", "request_id"}
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("boom")

    @app.get("/http-500")
    async def http_500() -> None:
        raise HTTPException(status_code=500)

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418)

    router = APIRouter()

    @router.get("/users/{uid}")
    async def user(uid: int) -> dict[str, int]:
        return {"uid": uid}

    app.include_router(router, prefix="/api")
    sub = FastAPI()

    @sub.get("/things/{tid}")
    async def thing(tid: int) -> dict[str, int]:
        return {"tid": tid}

    app.mount("/sub", sub)
    app.mount("/plain", Starlette(routes=[Route("/p/{x}", lambda _request: PlainTextResponse("p"))]))
    return app


#: (method, path, headers): route templates, included routers, mounted FastAPI and Starlette apps, 404, 405, an
#: unknown method, a slash redirect, an unhandled exception, HTTPException 500 and 418, query strings, a W3C parent.
REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/items/1", {}),
    ("GET", "/api/users/7", {}),
    ("GET", "/sub/things/3", {}),
    ("GET", "/plain/p/1", {}),
    ("GET", "/no/such/path", {}),
    ("POST", "/items/1", {}),
    ("BREW", "/items/1", {}),
    ("GET", "/items/1/", {}),
    ("GET", "/fail", {}),
    ("GET", "/http-500", {}),
    ("GET", "/teapot", {}),
    ("GET", "/items/2?q=1&page=2", {"traceparent": PARENT}),
]


@contextlib.contextmanager
def _configured(mode: str, **options: Any) -> Iterator[tuple[OtlpReceiver, otel_dist.Telemetry]]:
    reset_global_providers()
    with running_http_receiver() as receiver:
        telemetry = otel_dist.configure(
            endpoint=receiver.endpoint, server_spans=mode, _extras=Extras(cache_loggers=False), **FAST, **options
        )
        try:
            yield receiver, telemetry
        finally:
            telemetry.shutdown(timeout=3)
            reset_global_providers()


def _drive(app: Any, requests: list[tuple[str, str, dict[str, str]]], root_path: str = "") -> None:
    async def go() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for method, path, headers in requests:
                await client.request(method, root_path + path, headers=headers)

    asyncio.run(go())


def _observe(
    mode: str, make: Callable[[], Any], run: Callable[[Any], None], **options: Any
) -> tuple[list[Any], list[Any]]:
    """(server spans, duration points) of ``run(app)`` under mechanism ``mode``."""
    with _configured(mode, **options) as (receiver, telemetry):
        app = make()
        otel_dist.instrument_app(app)
        run(app)
        telemetry.force_flush(5)
        spans = [s for s in receiver.spans() if s.item.kind == 2]  # SPAN_KIND_SERVER
        points = sorted(
            (tuple(sorted(a.items())), p.count) for a, p in receiver.latest_points("http.server.request.duration")
        )
        return spans, points


def _span_view(span: Any, drop: set[str]) -> tuple[Any, ...]:
    attributes = {k: v for k, v in span.attributes.items() if k not in drop}
    return span.item.name, span.item.status.code, span.item.parent_span_id.hex(), attributes


@pytest.mark.parametrize("root_path", ["", "/proxy"])
def test_spans_and_durations_are_fastapi_natives(root_path: str) -> None:
    native, native_points = _observe("native", _app, lambda app: _drive(app, REQUESTS, root_path))
    ours, our_points = _observe("otel_dist", _app, lambda app: _drive(app, REQUESTS, root_path))
    assert len(ours) == len(native) == len(REQUESTS)
    assert {s.scope for s in native} == {"fastapi"}
    assert {s.scope for s in ours} == {"otel_dist.asgi"}
    # url.query: FastAPI re-encodes it; ours is the raw query (both redact secret parameters on the way out)
    for theirs, mine in zip(native, ours, strict=True):
        assert _span_view(mine, OURS_ONLY | {"url.query"}) == _span_view(theirs, OURS_ONLY | {"url.query"})
        assert set(mine.attributes) >= OURS_ONLY
    assert our_points == native_points
    names = [s.item.name for s in ours]
    assert names[:8] == [
        f"GET {root_path}/items/{{item_id}}",
        f"GET {root_path}/api/users/{{uid}}",
        f"GET {root_path}/sub/things/{{tid}}",
        f"GET {root_path}/plain/{{path}}",
        "GET",
        f"POST {root_path}/items/{{item_id}}",
        f"HTTP {root_path}/items/{{item_id}}",
        f"GET {root_path}/items/{{item_id}}",
    ]
    brew = ours[6].attributes
    assert (brew["http.request.method"], brew["http.request.method_original"]) == ("_OTHER", "BREW")
    assert ours[-1].item.trace_id.hex() == PARENT.split("-")[1]
    assert ours[-1].attributes["url.query"] == "q=1&page=2"


def test_fast_recording_exports_what_the_sdks_own_paths_export() -> None:
    slow, slow_points = _observe("otel_dist", _app, lambda app: _drive(app, REQUESTS), fast_recording=False)
    fast, fast_points = _observe("otel_dist", _app, lambda app: _drive(app, REQUESTS), fast_recording=True)
    assert [_span_view(s, {"request_id"}) for s in fast] == [_span_view(s, {"request_id"}) for s in slow]
    assert fast_points == slow_points
    assert sum(count for _, count in fast_points) == len(REQUESTS)


def test_exceptions_are_recorded_on_the_span_with_their_type() -> None:
    ours, _ = _observe("otel_dist", _app, lambda app: _drive(app, [("GET", "/fail", {}), ("GET", "/http-500", {})]))
    failed, http_500 = ours
    assert failed.item.status.code == 2  # ERROR
    assert failed.attributes["error.type"] == "RuntimeError"
    [event] = failed.item.events
    assert event.name == "exception"
    event_attributes = {kv.key: kv.value.string_value for kv in event.attributes}
    assert event_attributes["exception.type"] == "RuntimeError"
    assert event_attributes["exception.message"] == "boom"
    assert http_500.attributes["error.type"] == "500"  # handled: no exception reached the server
    assert list(http_500.item.events) == []


def test_secret_query_parameters_are_blanked_as_fastapi_blanks_them() -> None:
    request = [("GET", "/items/1?sig=s3cret&X-Amz-Signature=abc&page=2", {})]
    ours, _ = _observe("otel_dist", _app, lambda app: _drive(app, request))
    assert ours[0].attributes["url.query"] == "sig=[REDACTED]&X-Amz-Signature=[REDACTED]&page=2"


def _slow_background_app() -> FastAPI:
    app = FastAPI()

    @app.get("/queued")
    async def queued(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(time.sleep, 0.5)
        return {"queued": True}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> Any:
            for chunk in (b"a", b"b", b"c"):
                yield chunk

        return StreamingResponse(chunks())

    return app


@pytest.mark.parametrize("mode", ["native", "otel_dist"])
def test_the_span_and_duration_end_with_the_response_not_the_background_task(mode: str) -> None:
    requests = [("GET", "/queued", {}), ("GET", "/stream", {})]
    spans, _ = _observe(mode, _slow_background_app, lambda app: _drive(app, requests))
    queued, stream = spans
    assert (queued.item.end_time_unix_nano - queued.item.start_time_unix_nano) / 1e9 < 0.4
    assert stream.attributes["http.response.status_code"] == 200


async def _raw_request(app: Any, path: str, *, disconnect: bool) -> None:
    """One request through the ASGI interface, the client going away after the request body if ``disconnect``."""
    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    if disconnect:
        messages.append({"type": "http.disconnect"})

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(_message: dict[str, Any]) -> None:
        return None

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)


def _unfinished_app() -> FastAPI:
    app = FastAPI()

    @app.get("/gone")
    async def gone() -> None:
        return None

    async def drained(scope: Any, receive: Any, send: Any) -> None:  # reads until the client leaves, answers nothing
        while (await receive())["type"] != "http.disconnect":
            pass

    async def silent(scope: Any, receive: Any, send: Any) -> None:  # returns without a response
        return None

    app.mount("/drained", drained)
    app.mount("/silent", silent)
    return app


def test_disconnects_and_incomplete_responses_are_errors_as_in_fastapi() -> None:
    def run(app: Any) -> None:
        asyncio.run(_raw_request(app, "/drained/x", disconnect=True))
        asyncio.run(_raw_request(app, "/silent/x", disconnect=False))

    native, native_points = _observe("native", _unfinished_app, run)
    ours, our_points = _observe("otel_dist", _unfinished_app, run)
    assert [_span_view(s, OURS_ONLY) for s in ours] == [_span_view(s, OURS_ONLY) for s in native]
    assert [s.attributes["error.type"] for s in ours] == ["ConnectionError", "RuntimeError"]
    assert all("http.response.status_code" not in s.attributes for s in ours)
    assert our_points == native_points


def _websocket_app() -> FastAPI:
    app = FastAPI()

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        await websocket.send_text(room)
        await websocket.close()

    @app.websocket("/ws-fail")
    async def broken(websocket: WebSocket) -> None:
        await websocket.accept()
        raise RuntimeError("socket boom")

    return app


def _connect(app: Any) -> None:
    from starlette.testclient import TestClient

    client = TestClient(app, raise_server_exceptions=False)
    with client.websocket_connect("/ws/blue") as socket:
        assert socket.receive_text() == "blue"
    with pytest.raises(RuntimeError), client.websocket_connect("/ws-fail") as socket:
        socket.receive_text()


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_websocket_connections_get_one_span_each_as_in_fastapi() -> None:
    native, native_points = _observe("native", _websocket_app, _connect)
    ours, our_points = _observe("otel_dist", _websocket_app, _connect)
    assert [_span_view(s, set()) for s in ours] == [_span_view(s, set()) for s in native]
    assert [s.item.name for s in ours] == ["WS /ws/{room}", "WS /ws-fail"]
    assert ours[1].attributes["error.type"] == "RuntimeError"
    assert [e.name for e in ours[1].item.events] == ["exception"]
    assert our_points == native_points == []  # no HTTP metrics for websockets


def test_fastapi_metrics_false_is_honoured(receiver, configure) -> None:
    from tests.support.apps import Client

    telemetry = configure(endpoint=receiver.endpoint, server_spans="otel_dist")
    app = FastAPI(telemetry={"metrics": False})

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    otel_dist.instrument_app(app)
    Client(app).get("/ping")
    app.middleware_stack = app.build_middleware_stack()  # built again: the app's choice, not ours, still counts
    Client(app).get("/ping")
    telemetry.force_flush(5)
    assert len([s for s in receiver.spans() if s.item.kind == 2]) == 2
    for name in ("http.server.request.duration", "http.server.response.body.size", "http.server.active_requests"):
        assert receiver.latest_points(name) == []


def test_the_contrib_middleware_in_the_stack_keeps_our_span_off(receiver, configure) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    from tests.support.apps import Client

    telemetry = configure(endpoint=receiver.endpoint)
    app = FastAPI()
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=telemetry.tracer_provider)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    otel_dist.instrument_app(app)
    Client(app).get("/ping")
    telemetry.force_flush(5)
    assert [s.scope for s in receiver.spans() if s.item.kind == 2] == ["opentelemetry.instrumentation.asgi"]


def test_operation_spans_and_telemetry_data_hang_off_our_span(receiver, configure) -> None:
    from fastapi.telemetry import get_telemetry_data

    from tests.support.apps import Client

    telemetry = configure(endpoint=receiver.endpoint, operation_spans=True)
    app = FastAPI()
    seen: list[object] = []

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        data = get_telemetry_data()
        seen.append(data.request.url.path if data is not None and data.request is not None else None)
        return {"item_id": item_id}

    otel_dist.instrument_app(app)
    Client(app).get("/items/5")
    telemetry.force_flush(5)
    [server] = [s for s in receiver.spans() if s.item.kind == 2]
    operations = [s for s in receiver.spans() if s.item.name.startswith("fastapi.")]
    assert operations
    assert all(s.item.trace_id == server.item.trace_id for s in operations)
    assert server.item.span_id in {s.item.parent_span_id for s in operations}
    assert seen == ["/items/5"]


def test_a_mounted_app_instrumented_by_the_wrapper_gives_one_span_and_one_access_line(
    receiver, configure, capsys
) -> None:
    import json

    from otel_dist.asgi import instrument_starlette_class
    from tests.support.apps import Client

    telemetry = configure(endpoint=receiver.endpoint)
    instrument_starlette_class(telemetry)  # what the opentelemetry-instrument path does: every app's stack
    app = FastAPI()
    sub = FastAPI()

    @sub.get("/things/{tid}")
    async def thing(tid: int) -> dict[str, int]:
        return {"tid": tid}

    app.mount("/sub", sub)
    Client(app).get("/sub/things/1")
    telemetry.force_flush(5)
    assert [s.item.name for s in receiver.spans() if s.item.kind == 2] == ["GET /sub/things/{tid}"]
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["http.route"] for line in out if line.get("event") == "http.request"] == ["/sub/things/{tid}"]


def test_starlette_apps_name_spans_through_mounts(receiver, configure) -> None:
    from tests.support.apps import Client

    telemetry = configure(endpoint=receiver.endpoint, server_spans="otel_dist")

    async def endpoint(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/deep/{d}", endpoint)])
    app = Starlette(
        routes=[
            Route("/items/{item_id}", endpoint),
            Mount("/tenants/{tenant}", routes=[Route("/users/{uid}", endpoint)]),
            Mount("/app", inner),
        ]
    )
    otel_dist.instrument_app(app)
    client = Client(app)
    for path in ("/items/1", "/tenants/acme/users/2", "/app/deep/3", "/nothing"):
        client.get(path)
    telemetry.force_flush(5)
    assert [s.item.name for s in receiver.spans() if s.item.kind == 2] == [
        "GET /items/{item_id}",
        "GET /tenants/{tenant}/users/{uid}",
        "GET /app/deep/{d}",
        "GET",
    ]
    routes = {a.get("http.route") for a, _ in receiver.latest_points("http.server.request.duration")}
    assert routes == {"/items/{item_id}", "/tenants/{tenant}/users/{uid}", "/app/deep/{d}", None}


def _headers_app() -> Starlette:
    async def endpoint(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"x-served-by": "node-1", "set-cookie": "session=s3cret"})

    return Starlette(routes=[Route("/items/{item_id}", endpoint)])


def test_captured_headers_are_the_contrib_middlewares(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-tenant,X-Trace-.*")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "x-served-by,set-cookie")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "x-trace-hint")
    headers = {"x-tenant": "acme", "x-trace-hint": "a", "x-trace-secret": "b", "x-other": "c"}
    request = [("GET", "/items/1", headers)]
    native, _ = _observe("native", _headers_app, lambda app: _drive(app, request))  # the contrib ASGI middleware
    ours, _ = _observe("otel_dist", _headers_app, lambda app: _drive(app, request))

    def captured(span: Any) -> dict[str, Any]:
        return {k: v if isinstance(v, str) else list(v) for k, v in span.attributes.items() if ".header." in k}

    expected = {
        "http.request.header.x_tenant": ["acme"],
        "http.request.header.x_trace_hint": ["[REDACTED]"],  # sanitized
        "http.request.header.x_trace_secret": "[REDACTED]",  # a secret name: blanked on the way out
        "http.response.header.x_served_by": ["node-1"],
        "http.response.header.set_cookie": "[REDACTED]",
    }
    assert captured(native[0]) == expected
    assert captured(ours[0]) == expected
