"""End to end, seed 003: the civic platform (examples/civic_platform): API at 10 % head sampling, scrapers as
separate short-lived processes, real PostgreSQL and Redis.

The API runs as the production profile would sample it (``parentbased_traceidratio`` at 0.1); a few requests carry
a sampled ``traceparent``, as from an upstream that decided to trace, and are traced whatever the ratio. Then:
Prometheus counts every request and the business metrics (sampling never touches metrics); Jaeger holds the
forced traces, about 10 % of the others, and finds the slow one by minimum duration; every request's log lines are
found by request_id, sampled or not, each with its trace_id. Two scraper runs fetch bills over HTTP from a source
server and report as batch jobs (one success, one failure against a stopped database). Last, PostgreSQL is
stopped under traffic: the API answers 500 and HTTPErrorRateHigh pages through the real Alertmanager.
"""

from __future__ import annotations

import json
import math
import secrets
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from otel_dist.stack import http
from otel_dist.stack.example import ExampleApp, app_environment, start_example_app
from otel_dist.stack.supervisor import REPO_ROOT
from tests.e2e.alerting_stack import assert_panel_returns_series, dashboard_panels
from tests.e2e.conftest import ExampleStack, eventually
from tests.e2e.example_stack import (
    DELIVERY_WAIT,
    EXAMPLE_ENV,
    assert_emits,
    chats,
    fast_rendering,
    load_rules,
    pages,
    request_lines,
    trace_spans,
)
from tests.support.servers import PostgresServer, RedisServer

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

SPEC = REPO_ROOT / "examples/civic_platform/monitoring/objectives.yaml"
SAMPLE_RATIO = 0.1
UNPARENTED = 120  # requests without a traceparent: about 10 % of them are traced
FORCED = 4  # requests with a sampled traceparent: always traced
#: The scrapers' service name: the one the spec's jobs entry selects (JobStale, JobFailureRateHigh).
SCRAPERS = "civic-scrapers"
SOURCE_BILLS = [
    {"id": f"C-{n}", "title": f"An Act respecting item {n}", "jurisdiction": "federal", "type": "government"}
    for n in range(1, 9)
] + [{"id": "X-1", "title": "", "jurisdiction": "nowhere", "type": "private"}]  # invalid: counted as failed


@dataclass
class Running:
    app: ExampleApp
    service: str
    postgres: PostgresServer
    source_url: str
    started: datetime

    @property
    def url(self) -> str:
        return self.app.base_url


class _Source(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"bills": SOURCE_BILLS}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def civic(examples_stack: ExampleStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    stack = examples_stack.stack
    load_rules(stack, examples_stack.repo, fast_rendering(SPEC))
    service = f"civic-api-{uuid.uuid4().hex[:6]}"
    source = ThreadingHTTPServer(("127.0.0.1", 0), _Source)
    threading.Thread(target=source.serve_forever, daemon=True).start()
    try:
        with PostgresServer(database="civic") as postgres, RedisServer() as redis_server:
            app = start_example_app(
                service,
                otlp_endpoint=stack.otlp_http_endpoint,
                log_path=tmp_path_factory.mktemp("civic") / "api.log",
                app="examples.civic_platform.app:app",
                env={
                    **EXAMPLE_ENV,
                    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                    "OTEL_TRACES_SAMPLER_ARG": str(SAMPLE_RATIO),
                    "DATABASE_URL": postgres.url(),
                    "REDIS_URL": redis_server.url,
                },
            )
            with app:
                eventually(lambda: _ready(app.base_url), timeout=30)
                yield Running(
                    app, service, postgres, f"http://127.0.0.1:{source.server_port}/bills.json", datetime.now(UTC)
                )
    finally:
        source.shutdown()
        source.server_close()


def _ready(base_url: str) -> None:
    assert httpx.get(f"{base_url}/health/ready", timeout=5).status_code == 200


@dataclass
class Sent:
    request_id: str
    trace_id: str
    forced: bool
    status: int


@pytest.fixture(scope="module")
def traffic(civic: Running) -> list[Sent]:
    sent: list[Sent] = []
    with httpx.Client(base_url=civic.url, timeout=30) as client:

        def call(method: str, path: str, expected: int, *, forced: bool = False, **kwargs: Any) -> None:
            request_id = f"civic-{len(sent):03d}"
            headers = {"X-Request-ID": request_id}
            if forced:  # an upstream that sampled this trace: parent-based sampling follows it
                headers["traceparent"] = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
            response = client.request(method, path, headers=headers, **kwargs)
            assert response.status_code == expected, (path, response.text)
            trace_id = response.headers["traceresponse"].split("-")[1]
            sent.append(Sent(request_id, trace_id, forced, response.status_code))

        jurisdictions = ["federal", "on", "qc"]
        for number in range(30):
            bill = {"id": f"B-{number}", "title": f"Bill {number}", "jurisdiction": jurisdictions[number % 3]}
            call("POST", "/api/v1/bills", 201, json={**bill, "type": "government"})
        for number in range(UNPARENTED - 30 - 10):
            call("GET", f"/api/v1/bills/B-{number % 30}", 200)
        for number in range(10):
            call("GET", "/api/v1/bills", 200, params={"jurisdiction": jurisdictions[number % 3], "q": "Bill"})
        call("GET", "/api/v1/bills/B-1", 200, forced=True)
        call("GET", "/api/v1/bills/nope", 404, forced=True)
        call("GET", "/api/v1/bills", 200, forced=True, params={"jurisdiction": "on"})
        call("GET", "/api/v1/reports/activity", 200, forced=True, params={"seconds": 1.2})  # a slow trace
    assert len(sent) == UNPARENTED + FORCED
    return sent


def test_every_request_and_business_event_is_counted_whatever_the_sampling(
    examples_stack: ExampleStack, civic: Running, traffic: list[Sent]
) -> None:
    stack, job = examples_stack.stack, f'job="{civic.service}"'

    def counted() -> None:
        total = http.promql_scalar(stack.prometheus_url, f"sum(http_server_request_duration_seconds_count{{{job}}})")
        assert total == len(traffic)

    eventually(counted)
    created = http.promql(stack.prometheus_url, f"sum by (jurisdiction, type) (bills_created_total{{{job}}})")
    assert {(s["metric"]["jurisdiction"], s["metric"]["type"], s["value"][1]) for s in created} == {
        ("federal", "government", "10"),
        ("on", "government", "10"),
        ("qc", "government", "10"),
    }
    assert http.promql_scalar(stack.prometheus_url, f"sum(search_queries_total{{{job}}})") == 11
    assert http.promql_scalar(stack.prometheus_url, f"sum(bill_views_total{{{job}}})") == 81
    assert_emits(
        stack,
        civic.service,
        {"db_client_connection_count", "db_client_operation_duration_seconds_bucket", "cache_lookups_total"},
    )


def test_jaeger_holds_the_forced_traces_and_about_a_tenth_of_the_others(
    examples_stack: ExampleStack, civic: Running, traffic: list[Sent]
) -> None:
    stack = examples_stack.stack
    for sent in traffic:
        if sent.forced:
            spans = trace_spans(stack, sent.trace_id)
            assert any(s["kind"] in (2, "SPAN_KIND_SERVER") for s in spans)
    window = (civic.started - timedelta(seconds=5), datetime.now(UTC) + timedelta(seconds=5))
    traces = {  # the request traces (the start-up's CREATE TABLE is a trace of its own)
        trace_id: spans
        for trace_id, spans in http.jaeger_traces(stack.jaeger_url, civic.service, *window).items()
        if any(s["kind"] in (2, "SPAN_KIND_SERVER") for s in spans)
    }
    others = {s.trace_id for s in traffic if not s.forced} & set(traces)
    mean = UNPARENTED * SAMPLE_RATIO
    spread = 4 * math.sqrt(UNPARENTED * SAMPLE_RATIO * (1 - SAMPLE_RATIO))
    assert len(others) <= mean + spread, len(others)
    assert set(traces) <= {s.trace_id for s in traffic}


def test_the_slow_trace_is_found_by_minimum_duration(
    examples_stack: ExampleStack, civic: Running, traffic: list[Sent]
) -> None:
    stack, slow = examples_stack.stack, traffic[-1]
    trace_spans(stack, slow.trace_id)
    # The seed's query (and the runbooks'): Jaeger's HTTP API with minDuration.
    params = {"service": civic.service, "minDuration": "1s", "lookback": "1h", "limit": "20"}
    answer = http.get_json(f"{stack.jaeger_url}/api/traces", params)
    found = {trace["traceID"].lower() for trace in answer["data"]}
    assert found == {slow.trace_id}


PANELS = dashboard_panels(SPEC.parent / "dashboards")


def test_the_dashboards_of_the_seed() -> None:
    assert sorted({d for d, _, _ in PANELS}) == ["database.json", "runtime.json", "service-overview.json", "slo.json"]


@pytest.mark.parametrize(("dashboard", "title", "expr"), PANELS, ids=[f"{d}:{t}" for d, t, _ in PANELS])
def test_every_dashboard_query_returns_the_service_series(
    examples_stack: ExampleStack, civic: Running, traffic: list[Sent], dashboard: str, title: str, expr: str
) -> None:
    assert httpx.get(f"{civic.url}/health/ready").status_code == 200  # a probe: the health gauges
    url, service = examples_stack.stack.prometheus_url, civic.service
    # The error-budget recordings run every minute: allow two.
    eventually(lambda: assert_panel_returns_series(url, service, dashboard, title, expr), timeout=150, interval=2.0)


def test_every_request_has_its_logs_by_request_id_sampled_or_not(
    examples_stack: ExampleStack, civic: Running, traffic: list[Sent]
) -> None:
    for sent in (traffic[0], traffic[40], traffic[-1]):
        lines = request_lines(examples_stack.stack, civic.service, sent.request_id)
        assert {line["trace_id"] for line in lines} == {sent.trace_id}
        assert any(line["_msg"] == "http.request" for line in lines)


def run_scraper(stack: ExampleStack, civic: Running, service: str) -> subprocess.CompletedProcess[str]:
    env = app_environment(service, otlp_endpoint=stack.stack.otlp_http_endpoint, env=EXAMPLE_ENV)
    env["DATABASE_URL"] = civic.postgres.url()
    return subprocess.run(
        [sys.executable, "-m", "examples.civic_platform.scraper", "bills", civic.source_url],
        cwd=REPO_ROOT,
        env={**env, "OTEL_METRIC_EXPORT_INTERVAL": "600000"},  # only the job's own flush can deliver them
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_scraper_runs_report_as_batch_jobs_with_their_http_calls(
    examples_stack: ExampleStack, civic: Running, traffic: list[Sent]
) -> None:
    stack, scrapers = examples_stack.stack, SCRAPERS
    result = run_scraper(examples_stack, civic, scrapers)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    job = f'job="{scrapers}"'

    def reported() -> None:
        runs = http.promql(stack.prometheus_url, f"job_runs_total{{{job}}}")
        assert [(s["metric"]["job_name"], s["metric"]["job_outcome"], s["value"][1]) for s in runs] == [
            ("scrape.bills", "success", "1")
        ]
        assert http.promql_scalar(stack.prometheus_url, f"sum(job_items_processed_total{{{job}}})") == 8
        assert http.promql_scalar(stack.prometheus_url, f"sum(job_items_failed_total{{{job}}})") == 1
        assert http.promql(stack.prometheus_url, f"job_last_success_timestamp_seconds{{{job}}}")
        calls = http.promql(stack.prometheus_url, f"http_client_request_duration_seconds_count{{{job}}}")
        assert [(s["metric"]["http_response_status_code"], s["value"][1]) for s in calls] == [("200", "1")]

    eventually(reported)

    def logged() -> None:
        lines = http.logsql(stack.victorialogs_url, f'"service.name":="{scrapers}" _msg:="job.completed"')
        assert [line["items_processed"] for line in lines] == ["8"]

    eventually(logged)


@pytest.fixture(scope="module")
def outage(examples_stack: ExampleStack, civic: Running, traffic: list[Sent]) -> Iterator[list[int]]:
    """PostgreSQL stopped under traffic; restarted afterwards."""
    statuses: list[int] = []
    civic.postgres.stop()
    try:
        with httpx.Client(base_url=civic.url, timeout=30) as client:
            for number in range(40):  # searches: every one needs the database
                response = client.get(
                    "/api/v1/bills", params={"jurisdiction": "on"}, headers={"X-Request-ID": f"outage-{number:03d}"}
                )
                statuses.append(response.status_code)
        yield statuses
    finally:
        civic.postgres.start()


def test_a_stopped_database_pages_through_alertmanager(
    examples_stack: ExampleStack, civic: Running, outage: list[int]
) -> None:
    receiver, service = examples_stack.receiver, civic.service
    assert outage == [500] * 40
    receiver.wait_for(
        lambda: bool(pages(receiver, "HTTPErrorRateHigh", service)), timeout=DELIVERY_WAIT, what="the page"
    )
    (page,) = pages(receiver, "HTTPErrorRateHigh", service)
    assert page["payload"]["severity"] == "critical"
    assert page["links"][0]["href"].endswith("/HTTPErrorRateHigh.md")
    receiver.wait_for(
        lambda: bool(chats(receiver, "HTTPErrorRateHigh", service, "critical")), timeout=DELIVERY_WAIT, what="chat"
    )
    # The README's "errors by type" query finds the outage's cause.
    query = (
        f'_time:1h "service.name":="{service}" severity_text:=ERROR | stats by ("exception.type") count() errors '
        "| sort by (errors desc)"
    )

    def by_type() -> None:
        rows = http.logsql(examples_stack.stack.victorialogs_url, query)
        typed = {row["exception.type"]: row["errors"] for row in rows if "exception.type" in row}
        assert typed == {"sqlalchemy.exc.OperationalError": "40"}, rows

    eventually(by_type)


def test_a_scraper_run_against_a_stopped_database_fails_and_says_so(
    examples_stack: ExampleStack, civic: Running, traffic: list[Sent]
) -> None:
    scrapers = SCRAPERS
    civic.postgres.stop()
    try:
        result = run_scraper(examples_stack, civic, scrapers)
    finally:
        civic.postgres.start()
    assert result.returncode == 1
    job = f'job="{scrapers}"'

    def failed() -> None:
        runs = http.promql(examples_stack.stack.prometheus_url, f'job_runs_total{{{job}, job_outcome="error"}}')
        assert [s["metric"]["error_type"] for s in runs] == ["OperationalError"]

    eventually(failed)
    # One run of two failed within the failure window (above 10 %): the seed's ScraperFailures warns in the chat.
    receiver = examples_stack.receiver

    def warned() -> list[dict[str, Any]]:
        return [
            m
            for m in receiver.at("/chat")
            if m["attachments"][0]["title"] == f"[FIRING:1] JobFailureRateHigh (warning) {scrapers}"
        ]

    receiver.wait_for(lambda: bool(warned()), timeout=DELIVERY_WAIT, what="the JobFailureRateHigh chat message")
    attachment = warned()[0]["attachments"][0]
    assert attachment["title_link"].endswith("/JobFailureRateHigh.md")
    assert "50% of its runs fail" in attachment["text"]
