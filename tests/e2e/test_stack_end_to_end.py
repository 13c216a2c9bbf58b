"""End to end: the example workload -> the real collector -> Prometheus, Jaeger and VictoriaLogs.

Each run (direct configure(), and under opentelemetry-instrument) sends REQUESTS units of work at 100 %
sampling. Then, within a bounded wait, every backend must hold exactly what was sent, and the three signals
must join by trace_id and request_id.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from otel_dist.stack import http
from otel_dist.stack.supervisor import Ports, Stack, stack_status
from otel_dist.stack.workload import ROUTES
from tests.e2e.conftest import ERROR_EVERY, PROBES, REQUESTS, Run, eventually

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1200)]

DURATION = "http_server_request_duration_seconds"


def expected_routes(run: Run) -> Counter[tuple[str, str, str]]:
    """(route, method, status) -> count, as the workload produces them."""
    expected: Counter[tuple[str, str, str]] = Counter()
    for number in range(1, len(run.request_ids) + 1):
        method, route, _ = ROUTES[number % len(ROUTES)]
        status = "500" if number % ERROR_EVERY == 0 else "200"
        expected[route, method, status] += 1
    return expected


def traces_of(stack: Stack, run: Run) -> dict[str, list[dict[str, Any]]]:
    return http.jaeger_traces(stack.jaeger_url, run.service, run.start, run.end)


def log_lines_of(stack: Stack, run: Run) -> list[dict[str, str]]:
    return http.logsql(stack.victorialogs_url, f'"service.name":={http.logsql_quote(run.service)}')


def test_every_service_of_the_stack_is_ready(stack: Stack) -> None:
    statuses = stack_status(stack.data_dir)
    assert [s.name for s in statuses] == ["otelcol", "prometheus", "alertmanager", "jaeger", "victorialogs"]
    assert all(s.running and s.ready for s in statuses), statuses


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
        # The naming contract (collector/README.md): job/instance from the resource, two promoted attributes.
        assert set(labels) == {
            "__name__",
            "job",
            "instance",
            "http_route",
            "http_request_method",
            "http_response_status_code",
            "deployment_environment_name",
            "service_version",
        }
        assert (labels["deployment_environment_name"], labels["service_version"]) == ("e2e", "1.2.3")
    assert counts == expected_routes(run)
    assert len({item["metric"]["instance"] for item in series}) == 1  # one process, one service.instance.id


def test_prometheus_has_the_process_and_sdk_self_metrics(stack: Stack, run: Run) -> None:
    names = eventually(lambda: _names_with(stack, run, "otel_sdk_exporter_span_exported_total"))
    for name in (
        "process_cpu_time_seconds_total",
        "process_memory_usage_bytes",
        "process_memory_limit_bytes",
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


def _names_with(stack: Stack, run: Run, name: str) -> set[str]:
    names = http.metric_names(stack.prometheus_url, f'{{job="{run.service}"}}')
    assert name in names
    return names


def test_the_wrapper_and_configure_export_the_same_metric_names(stack: Stack, runs: dict[str, Run]) -> None:
    def names(run: Run) -> set[str]:
        return _names_with(stack, run, "otel_sdk_exporter_span_exported_total")

    configure, wrapper = (eventually(lambda run=run: names(run)) for run in runs.values())
    assert configure == wrapper


def test_exemplars_link_the_histogram_to_traces_jaeger_holds(stack: Stack, run: Run) -> None:
    def exemplar_trace_ids() -> set[str]:
        answer = http.get_json(
            f"{stack.prometheus_url}/api/v1/query_exemplars",
            {
                "query": f'{DURATION}_bucket{{job="{run.service}"}}',
                "start": str(run.start.timestamp()),
                "end": str(time.time() + 60),
            },
        )
        ids = {e["labels"]["trace_id"] for group in answer["data"] for e in group["exemplars"]}
        assert ids
        return ids

    ids = eventually(exemplar_trace_ids)
    traces = eventually(lambda: _all_traces(stack, run))
    assert ids <= set(traces)


# --- traces -----------------------------------------------------------------------------------------------


def _all_traces(stack: Stack, run: Run) -> dict[str, list[dict[str, Any]]]:
    traces = traces_of(stack, run)
    assert len(traces) >= REQUESTS
    return traces


def test_jaeger_holds_exactly_one_trace_per_request_with_route_and_request_id(stack: Stack, run: Run) -> None:
    eventually(lambda: _all_traces(stack, run))
    time.sleep(2)  # anything extra (a probe span the filter missed) would arrive in the same batch
    traces = traces_of(stack, run)
    assert len(traces) == REQUESTS
    request_ids = set()
    errors = 0
    for spans in traces.values():
        assert len(spans) == 1
        span = spans[0]
        attributes = http.attributes(span["attributes"])
        assert span["kind"] == 2  # SERVER
        assert attributes["http.route"] in {route for _, route, _ in ROUTES}
        assert span["name"] == f"{attributes['http.request.method']} {attributes['http.route']}"
        request_ids.add(attributes["request_id"])
        errors += span.get("status", {}).get("code") == 2  # ERROR
        assert span["resource"]["service.name"] == run.service
    assert request_ids == set(run.request_ids)
    assert errors == run.errors


def test_the_collector_dropped_the_probe_spans(stack: Stack, run: Run) -> None:
    assert run.probes == PROBES
    traces = eventually(lambda: _all_traces(stack, run))
    names = {span["name"] for spans in traces.values() for span in spans}
    assert "GET /health" not in names

    def filtered() -> None:
        value = http.promql_scalar(
            stack.prometheus_url, 'sum(otelcol_processor_filter_spans_filtered_total{job="otelcol"})'
        )
        assert value is not None
        assert value >= PROBES

    eventually(filtered)


# --- logs -------------------------------------------------------------------------------------------------


def test_the_log_store_holds_every_request_line_joined_to_its_trace(stack: Stack, run: Run) -> None:
    def lines() -> list[dict[str, str]]:
        found = [line for line in log_lines_of(stack, run) if line.get("request_id")]
        assert {line["request_id"] for line in found} == set(run.request_ids)
        return found

    found = eventually(lines)
    assert len(found) == REQUESTS  # exactly one line per request, exported once
    traces = eventually(lambda: _all_traces(stack, run))
    request_id_of_trace = {
        trace_id: http.attributes(spans[0]["attributes"])["request_id"] for trace_id, spans in traces.items()
    }
    for line in found:
        assert line["trace_id"] in request_id_of_trace, line
        assert request_id_of_trace[line["trace_id"]] == line["request_id"]
        assert line["service.name"] == run.service
        if line["_msg"] == "request.failed":
            assert line["severity_text"] == "ERROR"
            assert line["exception.type"].endswith("WorkFailedError")
            assert line["exception.stacktrace"]
        else:
            assert (line["_msg"], line["severity_text"]) == ("request.handled", "INFO")
    assert sum(line["_msg"] == "request.failed" for line in found) == run.errors


def test_log_streams_are_service_identity_only(stack: Stack, run: Run) -> None:
    eventually(lambda: log_lines_of(stack, run) or _fail("no lines yet"))
    streams = {line["_stream"] for line in log_lines_of(stack, run)}
    assert streams == {f'{{deployment.environment.name="e2e",service.name="{run.service}"}}'}


def test_a_request_id_finds_its_log_line_and_trace(stack: Stack, run: Run) -> None:
    """What a person does: take a request ID, find its log line, open its trace."""
    request_id = run.request_ids[ERROR_EVERY - 1]  # the first failing request
    query = f'"service.name":={http.logsql_quote(run.service)} request_id:={http.logsql_quote(request_id)}'
    lines = eventually(lambda: http.logsql(stack.victorialogs_url, query) or _fail("no line yet"))
    assert len(lines) == 1
    spans = eventually(lambda: http.jaeger_trace(stack.jaeger_url, lines[0]["trace_id"]) or _fail("no trace yet"))
    assert http.attributes(spans[0]["attributes"])["request_id"] == request_id
    assert spans[0]["status"]["code"] == 2


def _fail(message: str) -> Any:
    raise AssertionError(message)


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
    """An app serving /metrics, scraped by the "apps" job, ends up with the OTLP path's series."""
    port = Ports.free().victorialogs  # any free port
    service = f"e2e-pull-{uuid.uuid4().hex[:8]}"
    targets = stack.data_dir / "prometheus/etc/targets/apps-e2e.yml"
    targets.write_text(
        f"- targets: [127.0.0.1:{port}]\n"
        f"  labels: {{job: {service}, deployment_environment_name: e2e, service_version: 1.2.3}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_SERVICE_NAME=service,
        OTEL_DIST_SERVICE_VERSION="1.2.3",
        OTEL_DIST_ENVIRONMENT="e2e",
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
        OTEL_TRACES_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    command = [
        sys.executable,
        "-m",
        "otel_dist.stack.workload",
        f"--requests={REQUESTS}",
        f"--error-every={ERROR_EVERY}",
    ]
    app = subprocess.Popen([*command, "--linger=90"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:

        def scraped() -> None:
            assert app.poll() is None, app.stderr.read().decode() if app.stderr else ""
            total = http.promql_scalar(stack.prometheus_url, f'sum({DURATION}_count{{job="{service}"}})')
            assert total == REQUESTS

        eventually(scraped, timeout=75)
    finally:
        app.terminate()
        app.wait(timeout=15)
        targets.unlink()

    pushed = runs["configure"]
    push_names = _names_with(stack, pushed, "otel_sdk_exporter_span_exported_total")
    pull_names = http.metric_names(stack.prometheus_url, f'{{job="{service}"}}')
    scrape_only = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
    scrape_only |= {"scrape_samples_post_metric_relabeling"}
    app_metrics = {"http_server_request_duration_seconds_count", "http_server_active_requests", "target_info"}
    assert app_metrics <= pull_names - scrape_only
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
        "process_memory_usage_bytes",
    ):
        assert label_keys(service, name) == label_keys(pushed.service, name), name
