"""End to end: the example FastAPI app under uvicorn -> the real collector -> Prometheus, Jaeger and VictoriaLogs.

Each run (the app's own configure(), and the opentelemetry-instrument wrapper alone) sends REQUESTS real HTTP
requests at 100 % sampling, each with its own X-Request-ID: 200s, 404s, real unhandled exceptions (500) and slow
requests, with health probes in between. Then, within a bounded wait, every backend must hold exactly what was
sent and nothing of the probes, and the three signals must join by trace_id and request_id.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_dist.stack import demo, http
from otel_dist.stack.example import SLOW_SECONDS, expected_counts, start_example_app
from otel_dist.stack.example import send as send_requests
from otel_dist.stack.supervisor import Ports, Stack, stack_status
from tests.e2e.conftest import (
    ERROR_EVERY,
    PROBES,
    REQUESTS,
    Run,
    eventually,
    planned_traffic,
)

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1200)]

DURATION = "http_server_request_duration_seconds"
#: Labels of every duration series (the naming contract, collector/README.md): job/instance from the resource,
#: two promoted resource attributes, and the stable HTTP attributes; error_type only on the 500s.
DURATION_LABELS = {
    "__name__",
    "job",
    "instance",
    "deployment_environment_name",
    "service_version",
    "http_route",
    "http_request_method",
    "http_response_status_code",
    "url_scheme",
    "network_protocol_version",
}
#: The unhandled exception of GET /fail.
FAILURE_TYPE = "RuntimeError"
FAILURE_MESSAGE = "the example failed on purpose"
#: Metrics of the app's health checks: only an app that passes health= to configure() has them.
HEALTH_METRICS = {
    "health_check_status_ratio",
    "health_check_duration_seconds_bucket",
    "health_check_duration_seconds_count",
    "health_check_duration_seconds_sum",
}


def traces_of(stack: Stack, run: Run) -> dict[str, list[dict[str, Any]]]:
    return http.jaeger_traces(stack.jaeger_url, run.service, run.start, run.end)


def log_lines_of(stack: Stack, run: Run) -> list[dict[str, str]]:
    return http.logsql(stack.victorialogs_url, f'"service.name":={http.logsql_quote(run.service)}')


def _fail(message: str) -> Any:
    raise AssertionError(message)


def test_every_service_of_the_stack_is_ready(stack: Stack) -> None:
    statuses = stack_status(stack.data_dir)
    assert [s.name for s in statuses] == ["otelcol", "prometheus", "alertmanager", "jaeger", "victorialogs"]
    assert all(s.running and s.ready for s in statuses), statuses


def test_the_app_answered_as_planned(run: Run) -> None:
    """The traffic itself: statuses, echoed request IDs, one trace per request, a JSON 500 for the failures."""
    assert len(run.request_ids) == REQUESTS
    assert len(run.probe_ids) == PROBES
    assert Counter(a.request.kind for a in run.user) == Counter({"ok": 4, "not_found": 3, "error": 3, "slow": 2}), (
        "the plan of REQUESTS changed: adapt the expectations"
    )
    for answer in run.answers:  # send() checked the statuses and the echoed X-Request-ID
        assert answer.request_id == answer.request.request_id
    trace_ids = [a.trace_id for a in run.user]
    assert all(trace_ids)
    assert len(set(trace_ids)) == REQUESTS  # traceresponse: one new trace per request
    for answer in run.of_kind("error"):
        assert answer.body == f'{{"error":"internal_server_error","request_id":"{answer.request_id}"}}'.encode()
    assert all(a.seconds >= SLOW_SECONDS for a in run.of_kind("slow"))
    probe_status = 200 if run.mode == "configure" else 404  # health checks exist only through configure(health=)
    assert {a.status for a in run.answers if a.request.probe} == {probe_status}


# --- metrics ----------------------------------------------------------------------------------------------


def test_prometheus_has_the_request_duration_histogram_with_exact_counts(stack: Stack, run: Run) -> None:
    job = f'job="{run.service}"'

    def total() -> None:
        assert http.promql_scalar(stack.prometheus_url, f"sum({DURATION}_count{{{job}}})") == REQUESTS

    eventually(total)
    assert http.promql_scalar(stack.prometheus_url, f'sum({DURATION}_bucket{{{job}, le="+Inf"}})') == REQUESTS
    assert http.promql_scalar(
        stack.prometheus_url, f'sum({DURATION}_count{{{job}, http_response_status_code="500"}})'
    ) == (run.errors)
    series = http.promql(stack.prometheus_url, f"{DURATION}_count{{{job}}}")
    counts = Counter[tuple[str, str, str]]()
    for item in series:
        labels = item["metric"]
        counts[labels["http_route"], labels["http_request_method"], labels["http_response_status_code"]] += int(
            item["value"][1]
        )
        failed = labels["http_response_status_code"] == "500"
        assert set(labels) == DURATION_LABELS | ({"error_type"} if failed else set()), labels
        if failed:
            assert labels["error_type"] == FAILURE_TYPE
        assert (labels["deployment_environment_name"], labels["service_version"]) == ("e2e", "1.2.3")
        assert (labels["url_scheme"], labels["network_protocol_version"]) == ("http", "1.1")
    # Exactly the user requests, by route template and status: no probe, no raw path.
    assert counts == expected_counts(run.answers)
    assert len({item["metric"]["instance"] for item in series}) == 1  # one process, one service.instance.id


def test_the_slow_requests_land_above_the_latency_threshold(stack: Stack, run: Run) -> None:
    """The histogram holds the real durations: the slow requests sit above the 1 s bucket edge."""
    job = f'job="{run.service}", http_route="/slow"'
    slow = len(run.of_kind("slow"))
    eventually(lambda: _equal(http.promql_scalar(stack.prometheus_url, f"sum({DURATION}_count{{{job}}})"), slow))
    buckets = http.promql(stack.prometheus_url, f"{DURATION}_bucket{{{job}}}")
    by_edge = {float(item["metric"]["le"]): float(item["value"][1]) for item in buckets}
    assert 1.0 in by_edge  # the alert threshold is a bucket edge
    assert by_edge[1.0] == 0
    assert by_edge[float("inf")] == slow
    seconds = http.promql_scalar(stack.prometheus_url, f"sum({DURATION}_sum{{{job}}})")
    assert seconds is not None
    assert seconds >= slow * SLOW_SECONDS


def _equal(value: float | None, expected: float) -> None:
    assert value == expected


def test_no_probe_reaches_the_http_metrics(stack: Stack, run: Run) -> None:
    job = f'job="{run.service}"'
    eventually(lambda: _equal(http.promql_scalar(stack.prometheus_url, f"sum({DURATION}_count{{{job}}})"), REQUESTS))
    for name in ("http_server_request_duration_seconds_count", "http_server_response_body_size_bytes_count"):
        routes = {item["metric"].get("http_route") for item in http.promql(stack.prometheus_url, f"{name}{{{job}}}")}
        assert routes == {a.request.route for a in run.user}, name  # no /health..., no series without a route


def test_prometheus_has_the_process_and_sdk_self_metrics(stack: Stack, run: Run) -> None:
    names = eventually(lambda: _names_with(stack, run, "otel_sdk_exporter_span_exported_total"))
    for name in (
        "process_cpu_time_seconds_total",
        "process_memory_usage_bytes",
        "process_memory_limit_bytes",
        "http_server_active_requests",
        "http_server_request_body_size_bytes_count",
        "http_server_response_body_size_bytes_count",
        "otel_sdk_processor_span_processed_total",
        "otel_sdk_processor_log_processed_total",
        "otel_sdk_exporter_log_exported_total",
        "otel_sdk_exporter_metric_data_point_exported_total",
        "target_info",
    ):
        assert name in names
    # Nothing was dropped or failed inside the SDK.
    dropped = http.promql(
        stack.prometheus_url, f'{{__name__=~"otel_sdk_.*_total", job="{run.service}", error_type!=""}}'
    )
    assert [item for item in dropped if float(item["value"][1]) > 0] == []


def _app_metric_names(stack: Stack, job: str) -> set[str]:
    """The names of the metrics the app exported (or was scraped for) under ``job``.

    Prometheus's own series that carry the job label are left out: recording rules (``job:...:...``, names with
    a colon) and ``ALERTS``/``ALERTS_FOR_STATE``. They depend on rule evaluation timing, not on the app.
    """
    names = http.metric_names(stack.prometheus_url, f'{{job="{job}"}}')
    return {n for n in names if ":" not in n and not n.startswith("ALERTS")}


def _names_with(stack: Stack, run: Run, name: str) -> set[str]:
    names = _app_metric_names(stack, run.service)
    assert name in names
    return names


def _names_of_both(stack: Stack, runs: dict[str, Run]) -> tuple[set[str], set[str]]:
    configure = _names_with(stack, runs["configure"], "otel_sdk_exporter_span_exported_total")
    wrapper = _names_with(stack, runs["wrapper"], "otel_sdk_exporter_span_exported_total")
    assert configure >= HEALTH_METRICS  # the health probes were answered, and the checks measured
    return configure, wrapper


def test_the_wrapper_and_configure_export_the_same_metric_names(stack: Stack, runs: dict[str, Run]) -> None:
    configure, wrapper = eventually(lambda: _names_of_both(stack, runs))
    # The wrapper-only app registers no health checks (they are passed to configure()); everything else matches.
    assert configure - wrapper == HEALTH_METRICS
    assert wrapper <= configure


def test_exemplars_link_the_histogram_to_traces_jaeger_holds(stack: Stack, run: Run) -> None:
    def exemplars() -> list[tuple[dict[str, str], str]]:
        answer = http.get_json(
            f"{stack.prometheus_url}/api/v1/query_exemplars",
            {
                "query": f'{DURATION}_bucket{{job="{run.service}"}}',
                "start": str(run.start.timestamp()),
                "end": str(time.time() + 60),
            },
        )
        found = [
            (group["seriesLabels"], e["labels"]["trace_id"]) for group in answer["data"] for e in group["exemplars"]
        ]
        assert found
        return found

    found = eventually(exemplars)
    traces = eventually(lambda: _all_traces(stack, run))
    for series, trace_id in found:
        assert trace_id in traces
        # the exemplar's trace is a request of that very series
        span = traces[trace_id][0]
        attributes = http.attributes(span["attributes"])
        assert attributes["http.route"] == series["http_route"]
        assert str(attributes["http.response.status_code"]) == series["http_response_status_code"]


# --- traces -----------------------------------------------------------------------------------------------


def _all_traces(stack: Stack, run: Run) -> dict[str, list[dict[str, Any]]]:
    traces = traces_of(stack, run)
    assert len(traces) >= REQUESTS
    return traces


def test_jaeger_holds_exactly_one_trace_per_request_with_route_and_request_id(stack: Stack, run: Run) -> None:
    eventually(lambda: _all_traces(stack, run))
    time.sleep(2)  # anything extra (a probe span) would arrive in the same batch
    traces = traces_of(stack, run)
    assert len(traces) == REQUESTS
    request_ids = set()
    errors = 0
    for trace_id, spans in traces.items():
        assert len(spans) == 1  # one server span per request: no per-message or per-operation spans
        span = spans[0]
        attributes = http.attributes(span["attributes"])
        answer = run.answer(attributes["request_id"])
        assert trace_id == answer.trace_id  # the trace the client was told (traceresponse)
        assert span["kind"] == 2  # SERVER
        assert attributes["http.route"] == answer.request.route  # the template, never the raw path
        assert span["name"] == f"{answer.request.method} {answer.request.route}"
        assert str(attributes["http.response.status_code"]) == str(answer.status)
        assert attributes["url.path"] == answer.request.path.split("?")[0]
        failed = span.get("status", {}).get("code") == 2  # ERROR
        assert failed == (answer.status == 500)  # a 404 is not a server error
        if failed:
            assert attributes["error.type"] == FAILURE_TYPE
        errors += failed
        request_ids.add(attributes["request_id"])
        assert span["resource"]["service.name"] == run.service
    assert request_ids == set(run.request_ids)
    assert errors == run.errors


def test_no_probe_span_reaches_jaeger(stack: Stack, run: Run) -> None:
    traces = eventually(lambda: _all_traces(stack, run))
    spans = [span for spans in traces.values() for span in spans]
    assert not [s for s in spans if "/health" in s["name"]]
    assert not [s for s in spans if str(http.attributes(s["attributes"]).get("url.path", "")).startswith("/health")]
    assert not {http.attributes(s["attributes"]).get("request_id") for s in spans} & set(run.probe_ids)


def test_the_collector_drops_probe_spans_of_services_that_send_them(stack: Stack) -> None:
    """otel-dist never exports probe spans; the collector's filter catches the services that do."""

    def filtered() -> float:
        value = http.promql_scalar(
            stack.prometheus_url, 'sum(otelcol_processor_filter_spans_filtered_total{job="otelcol"})'
        )
        return value or 0.0

    before = filtered()
    service = f"e2e-probes-{uuid.uuid4().hex[:8]}"
    provider = TracerProvider(resource=Resource({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{stack.otlp_http_endpoint}/v1/traces")))
    tracer = provider.get_tracer("e2e.probes")
    server = trace.SpanKind.SERVER
    probes = [  # by url.path, by http.route, by the old http.target
        ("GET /health", {"url.path": "/health"}),
        ("GET /health/ready", {"http.route": "/health/ready"}),
        ("GET /metrics", {"http.target": "/metrics?format=text"}),
    ]
    start = datetime.now(UTC) - timedelta(seconds=1)
    try:
        for name, attributes in probes:
            tracer.start_span(name, kind=server, attributes={"http.request.method": "GET", **attributes}).end()
        user = tracer.start_span("GET /items/{item_id}", kind=server, attributes={"url.path": "/items/1"})
        user.end()
    finally:
        provider.shutdown()
    user_trace_id = f"{user.get_span_context().trace_id:032x}"

    def arrived() -> dict[str, list[dict[str, Any]]]:
        traces = http.jaeger_traces(stack.jaeger_url, service, start, datetime.now(UTC) + timedelta(seconds=1))
        assert user_trace_id in traces
        return traces

    eventually(arrived)
    time.sleep(2)  # the probes were sent first: by now they would be there
    traces = arrived()
    assert [span["name"] for spans in traces.values() for span in spans] == ["GET /items/{item_id}"]
    eventually(lambda: _fail("not counted yet") if filtered() < before + len(probes) else None)


# --- logs -------------------------------------------------------------------------------------------------

#: Log lines per request of each kind, by event (besides the one access line, "http.request").
APP_LINES = {
    "ok": ["item.read"],
    "not_found": ["item.read"],
    "error": ["http.request.unhandled_exception"],
    "slow": [],
}
SEVERITY = {200: "INFO", 404: "WARN", 500: "ERROR"}


def test_the_log_store_holds_every_access_line_joined_to_its_trace(stack: Stack, run: Run) -> None:
    def access_lines() -> list[dict[str, str]]:
        found = [line for line in log_lines_of(stack, run) if line["_msg"] == "http.request"]
        assert {line.get("request_id") for line in found} == set(run.request_ids)
        return found

    found = eventually(access_lines)
    assert len(found) == REQUESTS  # exactly one access line per request, exported once, none for the probes
    traces = eventually(lambda: _all_traces(stack, run))
    request_id_of_trace = {
        trace_id: http.attributes(spans[0]["attributes"])["request_id"] for trace_id, spans in traces.items()
    }
    for line in found:
        answer = run.answer(line["request_id"])
        assert line["trace_id"] in request_id_of_trace, line
        assert request_id_of_trace[line["trace_id"]] == line["request_id"]
        assert line["trace_id"] == answer.trace_id
        assert line["service.name"] == run.service
        assert line["logger.name"] == "otel_dist.access"
        assert (line["http.request.method"], line["http.route"]) == (answer.request.method, answer.request.route)
        assert (line["http.response.status_code"], line["url.path"]) == (
            str(answer.status),
            answer.request.path.split("?")[0],
        )
        assert line["severity_text"] == SEVERITY[answer.status]
        assert float(line["duration_s"]) >= (SLOW_SECONDS if answer.request.kind == "slow" else 0)


def test_every_line_of_a_request_carries_its_request_id_and_trace_id(stack: Stack, run: Run) -> None:
    """Beyond the access line: the app's own lines and one error line per unhandled exception, nothing twice."""
    expected = Counter[tuple[str, str]]()
    for answer in run.user:
        for event in ["http.request", *APP_LINES[answer.request.kind]]:
            expected[answer.request_id, event] += 1

    def request_lines() -> list[dict[str, str]]:
        found = [line for line in log_lines_of(stack, run) if line.get("request_id")]
        assert Counter((line["request_id"], line["_msg"]) for line in found) == expected
        return found

    found = eventually(request_lines)
    for line in found:
        assert line["trace_id"] == run.answer(line["request_id"]).trace_id, line
        if line["_msg"] == "http.request.unhandled_exception":
            assert line["severity_text"] == "ERROR"
            assert line["exception.type"].endswith(FAILURE_TYPE)
            assert line["exception.message"] == FAILURE_MESSAGE
            assert 'in fail\n    raise RuntimeError("the example failed on purpose")' in line["exception.stacktrace"]
            assert line["http.route"] == "/fail"
    # No probe left a line: neither its request ID nor its path appears anywhere.
    everything = log_lines_of(stack, run)
    assert not {line.get("request_id") for line in everything} & set(run.probe_ids)
    assert not [line for line in everything if line.get("url.path", "").startswith("/health")]


def test_log_streams_are_service_identity_only(stack: Stack, run: Run) -> None:
    eventually(lambda: log_lines_of(stack, run) or _fail("no lines yet"))
    streams = {line["_stream"] for line in log_lines_of(stack, run)}
    assert streams == {f'{{deployment.environment.name="e2e",service.name="{run.service}"}}'}


def test_a_request_id_finds_its_log_lines_and_trace(stack: Stack, run: Run) -> None:
    """What a person does: take the request ID a failed client got, find its log lines, open its trace."""
    failed = run.of_kind("error")[0]
    assert failed.request_id == run.request_ids[ERROR_EVERY - 1]
    query = f'"service.name":={http.logsql_quote(run.service)} request_id:={http.logsql_quote(failed.request_id)}'
    lines = eventually(lambda: _at_least(http.logsql(stack.victorialogs_url, query), 2))
    assert sorted(line["_msg"] for line in lines) == ["http.request", "http.request.unhandled_exception"]
    assert {line["trace_id"] for line in lines} == {failed.trace_id}
    spans = eventually(lambda: http.jaeger_trace(stack.jaeger_url, lines[0]["trace_id"]) or _fail("no trace yet"))
    assert http.attributes(spans[0]["attributes"])["request_id"] == failed.request_id
    assert spans[0]["name"] == "GET /fail"
    assert spans[0]["status"]["code"] == 2


def _at_least(items: list[dict[str, str]], count: int) -> list[dict[str, str]]:
    assert len(items) >= count
    return items


# --- the collector's own metrics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "exporter"),
    [
        ("spans", "otlp_grpc/jaeger"),
        ("log_records", "otlp_http/victorialogs"),
        ("metric_points", "otlp_http/prometheus"),
    ],
)
def test_the_collector_reports_what_it_sent_and_no_failure(
    stack: Stack, runs: dict[str, Run], signal: str, exporter: str
) -> None:
    sent_by_runs = REQUESTS * len(runs)

    def sent() -> None:
        value = http.promql_scalar(
            stack.prometheus_url, f'sum(otelcol_exporter_sent_{signal}_total{{job="otelcol", exporter="{exporter}"}})'
        )
        assert value is not None
        assert value >= sent_by_runs
        accepted = http.promql_scalar(
            stack.prometheus_url, f'sum(otelcol_receiver_accepted_{signal}_total{{job="otelcol"}})'
        )
        assert accepted is not None
        assert accepted >= sent_by_runs

    eventually(sent)
    failures = http.promql(
        stack.prometheus_url,
        '{__name__=~"otelcol_(exporter_send_failed|exporter_enqueue_failed|receiver_refused|receiver_failed)_.+",'
        ' job="otelcol"}',
    )
    assert [(f["metric"], f["value"][1]) for f in failures if float(f["value"][1]) != 0] == []
    assert http.promql_scalar(stack.prometheus_url, 'up{job="otelcol"}') == 1


# --- pull mode: the same names and labels as the OTLP path ------------------------------------------------


def test_pull_mode_yields_the_otlp_paths_names_and_labels(stack: Stack, runs: dict[str, Run]) -> None:
    """The example app serving /metrics, scraped by the "apps" job, ends up with the OTLP path's series."""
    port = Ports.free().victorialogs  # any free port
    service = f"e2e-pull-{uuid.uuid4().hex[:8]}"
    targets = stack.data_dir / "prometheus/etc/targets/apps-e2e.yml"
    targets.write_text(
        f"- targets: [127.0.0.1:{port}]\n"
        f"  labels: {{job: {service}, deployment_environment_name: e2e, service_version: 1.2.3}}\n"
    )
    env = {
        "OTEL_DIST_SERVICE_VERSION": "1.2.3",
        "OTEL_DIST_ENVIRONMENT": "e2e",
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    planned = planned_traffic(service)
    log_path = stack.data_dir / "logs" / f"{service}.log"
    try:
        with start_example_app(service, otlp_endpoint=None, log_path=log_path, env=env) as app:
            answers = send_requests(app.base_url, planned)

            def scraped() -> None:
                assert app.process.poll() is None, app.output()[-3000:]
                total = http.promql_scalar(stack.prometheus_url, f'sum({DURATION}_count{{job="{service}"}})')
                assert total == REQUESTS

            eventually(scraped, timeout=75)
            counts = Counter[tuple[str, str, str]]()
            for item in http.promql(stack.prometheus_url, f'{DURATION}_count{{job="{service}"}}'):
                labels = item["metric"]
                key = (labels["http_route"], labels["http_request_method"], labels["http_response_status_code"])
                counts[key] += int(float(item["value"][1]))
            assert counts == expected_counts(answers)
    finally:
        targets.unlink()

    pushed = runs["configure"]
    push_names = _names_with(stack, pushed, "otel_sdk_exporter_span_exported_total")
    pull_names = _app_metric_names(stack, service)
    scrape_only = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
    scrape_only |= {"scrape_samples_post_metric_relabeling"}
    app_metrics = {"http_server_request_duration_seconds_count", "http_server_active_requests", "target_info"}
    assert app_metrics | HEALTH_METRICS <= pull_names - scrape_only
    # The SDK's own metrics depend on which exporters run (here: none but the pull reader); the rest matches.
    assert {n for n in pull_names - scrape_only if not n.startswith("otel_sdk_")} == {
        n for n in push_names if not n.startswith("otel_sdk_")
    }

    def label_keys(job: str, name: str) -> set[str]:
        return {key for item in http.promql(stack.prometheus_url, f'{name}{{job="{job}"}}') for key in item["metric"]}

    for name in (
        f"{DURATION}_bucket",
        f"{DURATION}_count",
        "http_server_active_requests",
        "http_server_response_body_size_bytes_count",
        "health_check_status_ratio",
        "process_memory_usage_bytes",
    ):
        assert label_keys(service, name) == label_keys(pushed.service, name), name


# --- README command 1 ---------------------------------------------------------------------------------------


def test_the_demo_follows_a_failed_request_through_every_backend(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """`./dev demo` against this stack: it reuses it, and one failed request joins across the three backends."""
    assert demo.main(["--requests=10", "--load-requests=40", f"--data-dir={stack.data_dir}"]) == 0
    out = capsys.readouterr().out
    assert f"already running from {stack.data_dir}" in out
    assert "load: 40 requests from 4 locust users" in out  # README command 1's traffic comes from the load test
    assert ", 0 failed)" in out
    # every load request and every followed one is a trace of one server span; the probes are none
    traces = re.search(r"(\d+) traces of (\d+) server spans \((\d+) with status ERROR, 0 of a probe\)", out)
    assert traces is not None, out
    assert traces.group(1) == traces.group(2) == "50"
    assert int(traces.group(3)) >= 1
    assert re.search(r"/fail +500 +\d+", out)
    assert "one request as metric, trace and log, joined by trace_id and request_id" in out
    assert "exemplar: " in out  # followed from the metric, not only from the log line
