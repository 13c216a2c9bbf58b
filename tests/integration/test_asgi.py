"""The ASGI layer in-process: request IDs, one server span per request, HTTP metrics, access log, health."""

from __future__ import annotations

import json
import random
import time

import pytest

import otel_dist
from otel_dist.asgi.request_id import MAX_LENGTH
from tests.support.apps import Client, make_fastapi_app, make_starlette_app
from tests.support.otlp_receiver import OtlpReceiver, wait_for


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    """The server's log lines (the test client's own httpx lines left out)."""
    parsed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in parsed if line.get("logger") != "httpx"]


@pytest.fixture
def app_client(receiver, configure: OtlpReceiver):
    def make(kind: str = "fastapi", **options: object) -> tuple[Client, otel_dist.Telemetry]:
        telemetry = configure(endpoint=receiver.endpoint, **options)
        app = make_fastapi_app() if kind == "fastapi" else make_starlette_app()
        otel_dist.instrument_app(app)
        return Client(app), telemetry

    return make


def server_spans(receiver: OtlpReceiver) -> list:
    return [s for s in receiver.spans() if s.item.kind == 2]  # SPAN_KIND_SERVER


@pytest.mark.parametrize("kind", ["fastapi", "starlette"])
def test_one_server_span_per_request_named_by_route_template(app_client, receiver, kind) -> None:
    client, telemetry = app_client(kind)
    for item in (1, 2, 3):
        assert client.get(f"/items/{item}").status_code == 200
    telemetry.force_flush(5)
    spans = server_spans(receiver)
    assert [s.item.name for s in spans] == ["GET /items/{item_id}"] * 3
    assert all(s.attributes["http.route"] == "/items/{item_id}" for s in spans)
    assert not [s for s in receiver.spans() if "http send" in s.item.name or "http receive" in s.item.name]
    assert len({s.attributes["request_id"] for s in spans}) == 3


@pytest.mark.parametrize("kind", ["fastapi", "starlette"])
def test_unhandled_exception_is_a_json_500_an_error_span_and_one_error_line(app_client, receiver, capsys, kind) -> None:
    client, telemetry = app_client(kind)
    response = client.get("/fail", headers={"x-request-id": "req-500"})
    telemetry.force_flush(5)
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"
    assert response.json() == {"error": "internal_server_error", "request_id": "req-500"}
    assert "boom" not in response.text
    [span] = server_spans(receiver)
    assert span.item.status.code == 2  # ERROR
    errors = [line for line in lines(capsys) if line["level"] == "error" and line["event"] != "http.request"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "req-500"
    assert errors[0]["trace_id"] == span.item.trace_id.hex()
    assert errors[0]["exception"][0]["exc_type"] == "RuntimeError"


def test_request_id_is_accepted_echoed_and_on_every_line_of_the_request(app_client, receiver, capsys) -> None:
    client, telemetry = app_client()
    response = client.get("/items/7", headers={"X-Request-ID": "0f8fad5b-d9cb-469f-a165-70867728950e"})
    telemetry.force_flush(5)
    assert response.headers["x-request-id"] == "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert response.json()["request_id"] == "0f8fad5b-d9cb-469f-a165-70867728950e"
    [span] = server_spans(receiver)
    trace_id = span.item.trace_id.hex()
    assert response.headers["traceresponse"].split("-")[1] == trace_id
    request_lines = lines(capsys)
    assert {line["event"] for line in request_lines} == {"item.read", "http.request"}
    assert all(line["request_id"] == "0f8fad5b-d9cb-469f-a165-70867728950e" for line in request_lines)
    assert all(line["trace_id"] == trace_id for line in request_lines)
    records = [r for r in receiver.logs() if r.scope != "httpx"]  # the test client's own lines left out
    assert len(records) == 2
    assert all(r.attributes["request_id"] == "0f8fad5b-d9cb-469f-a165-70867728950e" for r in records)


@pytest.mark.parametrize(
    "hostile",
    [b"abc\r\nSet-Cookie: x=1", b"x" * 10_000, "caf\u00e9".encode("latin-1"), b"%s%s%n", b"../../etc", b""],
    ids=["crlf", "10kb", "latin1", "format", "path", "empty"],
)
def test_hostile_request_ids_are_replaced_and_never_echoed(app_client, capsys, hostile: bytes) -> None:
    client, _ = app_client()
    scope_headers = [(b"x-request-id", hostile)]
    response = client.get("/items/1", headers=scope_headers)
    echoed = response.headers["x-request-id"]
    assert echoed.encode() != hostile
    assert len(echoed) == 32
    assert all(c in "0123456789abcdef" for c in echoed)
    output = capsys.readouterr().out
    if hostile:
        replaced = [json.loads(line) for line in output.splitlines() if "request_id.replaced" in line]
        assert len(replaced) == 1
        assert replaced[0]["rejected_length"] == len(hostile)
        assert len(replaced[0]["rejected_preview"]) < 200
    assert "\r" not in output  # control characters only ever appear escaped
    assert all(json.loads(line) for line in output.splitlines())  # nothing forged a line of its own


def test_request_id_length_limit(app_client) -> None:
    client, _ = app_client()
    longest = "a" * MAX_LENGTH
    assert client.get("/items/1", headers={"x-request-id": longest}).headers["x-request-id"] == longest
    assert client.get("/items/1", headers={"x-request-id": longest + "a"}).headers["x-request-id"] != longest + "a"


def test_responses_short_circuited_by_other_middleware_are_stamped(receiver, configure) -> None:
    configure(endpoint=receiver.endpoint)
    app = make_fastapi_app()

    @app.middleware("http")
    async def deny(request, call_next):  # an auth middleware answering before any route runs
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("no", status_code=401)

    otel_dist.instrument_app(app)
    response = Client(app).get("/items/1")
    assert response.status_code == 401
    assert len(response.headers["x-request-id"]) == 32


def test_request_id_follows_the_thread_pool_and_background_tasks(app_client, capsys) -> None:
    client, _ = app_client()
    response = client.get("/sync", headers={"x-request-id": "req-sync"})
    assert response.json() == {"request_id": "req-sync"}
    client.request("POST", "/jobs", headers={"x-request-id": "req-job"})
    by_event = {line["event"]: line for line in lines(capsys)}
    assert by_event["in the thread pool"]["request_id"] == "req-sync"
    assert by_event["job.ran"]["request_id"] == "req-job"


def test_http_metrics_use_the_stable_names_and_units(app_client, receiver) -> None:
    client, telemetry = app_client()
    client.get("/items/1")
    client.request("POST", "/jobs", content=b"x" * 100)
    telemetry.force_flush(5)
    units = {m.item.name: m.item.unit for m in receiver.metrics()}
    assert units["http.server.request.duration"] == "s"
    assert units["http.server.active_requests"] == "{request}"
    assert units["http.server.request.body.size"] == "By"
    assert units["http.server.response.body.size"] == "By"
    durations = receiver.latest_points("http.server.request.duration")
    routes = {attrs["http.route"]: point.count for attrs, point in durations}
    assert routes == {"/items/{item_id}": 1, "/jobs": 1}
    [(attrs, _)] = [(a, p) for a, p in durations if a["http.route"] == "/items/{item_id}"]
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.response.status_code"] == 200
    sizes = {a["http.route"]: p.sum for a, p in receiver.latest_points("http.server.request.body.size")}
    assert sizes["/jobs"] == 100


def test_exemplars_link_the_duration_histogram_to_the_request_span_and_only_it(app_client, receiver) -> None:
    client, telemetry = app_client()
    client.get("/items/1")
    telemetry.force_flush(5)
    [span] = server_spans(receiver)
    [(_, duration)] = receiver.latest_points("http.server.request.duration")
    assert [e.span_id for e in duration.exemplars] == [span.item.span_id]
    for name in ("http.server.request.body.size", "http.server.response.body.size"):
        [(_, size)] = receiver.latest_points(name)
        assert size.count == 1
        assert list(size.exemplars) == []


def test_active_requests_count_what_is_in_flight_once(receiver, configure) -> None:
    import threading

    from fastapi import FastAPI
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_dist.bootstrap import Extras

    reader = InMemoryMetricReader()
    configure(endpoint=receiver.endpoint, _extras=Extras(metric_readers=(reader,), cache_loggers=False))
    entered, release = threading.Event(), threading.Event()
    app = FastAPI()

    @app.get("/slow")
    def slow() -> dict[str, bool]:
        entered.set()
        release.wait(10)
        return {"ok": True}

    def active_points() -> list[tuple[dict[str, object], int]]:
        data = reader.get_metrics_data()
        return [
            (dict(point.attributes), point.value)
            for resource_metrics in (data.resource_metrics if data else ())
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            if metric.name == "http.server.active_requests"
            for point in metric.data.data_points
        ]

    otel_dist.instrument_app(app)
    client = Client(app)
    in_flight = threading.Thread(target=client.get, args=("/slow",))
    in_flight.start()
    assert entered.wait(10)
    assert active_points() == [({"http.request.method": "GET", "url.scheme": "http"}, 1)]  # one series, not two
    release.set()
    in_flight.join(10)
    client.request("BREW", "/slow")
    assert sorted(active_points(), key=str) == [
        ({"http.request.method": "GET", "url.scheme": "http"}, 0),
        ({"http.request.method": "_OTHER", "url.scheme": "http"}, 0),
    ]


def test_random_urls_do_not_create_series(app_client, receiver) -> None:
    client, telemetry = app_client()
    rng = random.Random(7)
    for _ in range(1000):
        client.get(f"/{rng.getrandbits(64):x}/{rng.getrandbits(32):x}")
    telemetry.force_flush(5)
    durations = receiver.latest_points("http.server.request.duration")
    assert sum(p.count for _, p in durations) == 1000
    assert len(durations) == 1  # one series: no route, method GET, status 404


def test_probe_paths_stay_out_of_traces_logs_and_metrics(app_client, receiver, capsys) -> None:
    client, telemetry = app_client()
    for path in ("/health", "/health/ready", "/metrics"):
        client.get(path)
    client.get("/items/1")
    telemetry.force_flush(5)
    assert [s.item.name for s in server_spans(receiver)] == ["GET /items/{item_id}"]
    assert [line["url.path"] for line in lines(capsys) if line["event"] == "http.request"] == ["/items/1"]
    paths = {a.get("http.route") for a, _ in receiver.latest_points("http.server.request.duration")}
    assert paths == {"/items/{item_id}"}


def test_fastapi_auto_configure_does_not_duplicate_exports(receiver, configure, monkeypatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    telemetry = configure(endpoint=receiver.endpoint)
    app = make_fastapi_app()  # created after configure(): reads FASTAPI_OTEL_AUTO_CONFIGURE now
    otel_dist.instrument_app(app)
    Client(app).get("/items/1")
    telemetry.force_flush(5)
    assert len(server_spans(receiver)) == 1


def test_operation_spans_are_off_by_default_and_can_be_enabled(app_client, receiver) -> None:
    client, telemetry = app_client(operation_spans=True)
    client.get("/items/1")
    telemetry.force_flush(5)
    names = [s.item.name for s in receiver.spans()]
    assert "GET /items/{item_id}" in names
    assert any(name.startswith("fastapi.") for name in names)


def test_instrumenting_twice_changes_nothing(app_client, receiver) -> None:
    client, telemetry = app_client()
    otel_dist.instrument_app(client.app)
    client.get("/items/1")
    telemetry.force_flush(5)
    assert len(server_spans(receiver)) == 1


class TestHealth:
    def make(self, receiver, configure, **checks):
        telemetry = configure(endpoint=receiver.endpoint, service_version="2.0.0")
        health = otel_dist.HealthChecks()
        for name, (check, options) in checks.items():
            health.add(name, check, **options)
        app = make_fastapi_app()
        otel_dist.instrument_app(app, health=health)
        return Client(app), health, telemetry

    def test_liveness_calls_no_dependency(self, receiver, configure) -> None:
        calls: list[str] = []
        client, _, _ = self.make(receiver, configure, db=(lambda: calls.append("db"), {}))
        response = client.get("/health")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert body["version"] == "2.0.0"
        assert body["service"]
        assert "timestamp" in body
        assert body["uptime_seconds"] >= 0
        assert calls == []

    def test_readiness_runs_every_check_and_fails_on_a_required_one(self, receiver, configure) -> None:
        async def cache() -> bool:
            return True

        def db() -> None:
            raise ConnectionError("connection refused")

        client, _, _ = self.make(
            receiver, configure, db=(db, {}), cache=(cache, {}), search=(lambda: False, {"required": False})
        )
        response = client.get("/health/ready")
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert checks["db"]["status"] == "fail"
        assert "connection refused" in checks["db"]["error"]
        assert checks["cache"]["status"] == "ok"
        assert checks["cache"]["latency_ms"] >= 0
        assert checks["search"] == checks["search"] | {"status": "fail", "required": False}
        assert client.get("/health/cache").status_code == 200
        assert client.get("/health/db").status_code == 503
        assert client.get("/health/nope").status_code == 404

    def test_a_hanging_check_times_out_without_blocking(self, receiver, configure) -> None:
        def hangs() -> None:
            time.sleep(30)

        client, _, _ = self.make(receiver, configure, stuck=(hangs, {"timeout": 0.2}), ok=(lambda: True, {}))
        started = time.monotonic()
        response = client.get("/health/ready")
        assert time.monotonic() - started < 5
        assert response.json()["checks"]["stuck"]["error"] == "timed out after 0.2s"
        assert response.json()["checks"]["ok"]["status"] == "ok"
        # the next probe does not start a second copy of the hanging check
        assert client.get("/health/ready").json()["checks"]["stuck"]["status"] == "fail"

    def test_draining_makes_readiness_fail(self, receiver, configure) -> None:
        client, health, _ = self.make(receiver, configure, ok=(lambda: True, {}))
        assert client.get("/health/ready").status_code == 200
        health.start_draining()
        response = client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["status"] == "draining"
        assert client.get("/health").status_code == 200  # still alive

    def test_results_are_exported_as_a_metric(self, receiver, configure) -> None:
        client, _, telemetry = self.make(receiver, configure, db=(lambda: False, {}), cache=(lambda: True, {}))
        client.get("/health/ready")
        telemetry.force_flush(5)
        points = wait_for(lambda: receiver.latest_points("health.check.status"))
        status = {a["health.check.name"]: p.as_int for a, p in points}
        assert status == {"db": 0, "cache": 1}
        # whether each gates readiness: the shipped alert pages only for required checks
        assert {a["health.check.name"]: a["health.check.required"] for a, _ in points} == {"db": True, "cache": True}


@pytest.mark.parametrize("kind", ["fastapi", "starlette"])
def test_secret_query_parameters_and_auth_headers_never_reach_spans_or_logs(app_client, receiver, capsys, kind) -> None:
    client, telemetry = app_client(kind)
    client.get(
        "/items/1?token=tok-s3cret&page=2",
        headers={"authorization": "Bearer auth-s3cret", "cookie": "session=cookie-s3cret"},
    )
    telemetry.force_flush(5)
    exported = repr([s.attributes for s in receiver.spans()]) + repr([r.attributes for r in receiver.logs()])
    output = capsys.readouterr().out
    for secret in ("tok-s3cret", "auth-s3cret", "cookie-s3cret"):
        assert secret not in exported
        assert secret not in output
    [span] = server_spans(receiver)
    assert "page=2" in span.attributes.get("url.query", "page=2")


@pytest.mark.parametrize("kind", ["fastapi", "starlette"])
def test_secret_path_parameters_never_reach_spans_or_logs(app_client, receiver, capsys, kind) -> None:
    """A path parameter listed in redact_path_params (or with a secret name) is blanked in url.path everywhere:
    spans, the access line on stdout and its OTel record. (The test app also logs item_id as a field of its own:
    the setting is about the path, log fields go by their names.)"""
    client, telemetry = app_client(kind, redact_path_params="item_id")
    assert client.get("/items/987654321?page=2").status_code == 200
    telemetry.force_flush(5)
    access_lines = [line for line in capsys.readouterr().out.splitlines() if '"http.request"' in line]
    assert len(access_lines) == 1
    assert "987654321" not in access_lines[0]
    assert "987654321" not in repr([s.attributes for s in receiver.spans()])
    [span] = server_spans(receiver)
    assert span.attributes["http.route"] == "/items/{item_id}"
    assert span.attributes.get("url.path", span.attributes.get("http.target")).startswith("/items/[REDACTED]")
    [access] = [r for r in receiver.logs() if r.item.body.string_value == "http.request"]
    assert access.attributes["url.path"] == "/items/[REDACTED]"


def test_an_app_that_switched_fastapi_tracing_off_keeps_it_off(receiver, configure) -> None:
    from fastapi import FastAPI

    telemetry = configure(endpoint=receiver.endpoint)
    app = FastAPI(telemetry={"tracing": False})

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    otel_dist.instrument_app(app)
    response = Client(app).get("/ping", headers={"x-request-id": "req-quiet"})
    telemetry.force_flush(5)
    assert response.headers["x-request-id"] == "req-quiet"  # our middleware still runs
    assert server_spans(receiver) == []
    assert sum(p.count for _, p in receiver.latest_points("http.server.request.duration")) == 1
