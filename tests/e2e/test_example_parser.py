"""End to end: seed 000's parser service (examples/parser_service) on the real stack, with its own rules.

A stack of its own evaluates the example's rules (examples/parser_service/monitoring, rendered by the product with
the timeout alert's `for` shortened) and notifies a webhook on 127.0.0.1 through the real Alertmanager. The parser
runs under uvicorn as service ``parser`` (the job its baseline file names) and gets, in turn:

1. healthy traffic: small, medium and large documents, and one the strict profile rejects (a security event);
   the regression check against the committed baseline passes;
2. a malformed document (a parse error) and documents whose reference links make the links collector run past
   its timeout: a real induced failure. The collector times out on each, OperationTimeoutRateHigh pages, and the
   regression check now fails.

The tests then read what each backend holds: the domain metrics in Prometheus by their catalog names, the
traces in Jaeger, the log lines of one request in VictoriaLogs, the health endpoints, and every query of the
example's dashboards returning the service's series.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from otel_dist.cli.main import main
from otel_dist.rules import catalog
from otel_dist.stack import http
from otel_dist.stack.example import ExampleApp, start_example_app
from otel_dist.stack.supervisor import REPO_ROOT, Stack
from tests.e2e.alerting_stack import (
    assert_panel_returns_series,
    dashboard_panels,
    rendered_with,
    run_runbook_step,
    runbook_steps,
    start_alerting_stack,
)
from tests.e2e.conftest import APP_ENV, eventually
from tests.rules.webhook import WebhookReceiver

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

EXAMPLE = REPO_ROOT / "examples/parser_service"
SPEC = EXAMPLE / "monitoring/objectives.yaml"
SERVICE = "parser"  # the job the example's baseline file names
ALERT = "OperationTimeoutRateHigh"
DELIVERY_WAIT = 120.0
COLLECTOR_TIMEOUT = "0.2"
#: A phrase only the rejected document contains: it must appear in no log line.
MARKER = "never-log-this-document-7f3a"
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def document(size: int, seed: int) -> str:
    block = (
        f"# Section {seed}\n\nText with a [link](https://example.org/{seed}) and ![image](img/{seed}.png).\n\n"
        "| name | value |\n|------|-------|\n| a | 1 |\n\n```python\nprint('hello')\n```\n\n"
    )
    return block * (size // len(block) + 1)


def pathological(references: int = 3000) -> str:
    """Reference links resolved against their definitions: the links collector's work grows with their square."""
    uses = "\n".join(f"see [item {i}][ref{i}]" for i in range(references))
    definitions = "\n".join(f"[ref{i}]: https://example.org/{i}" for i in range(references))
    return f"# References\n\n{uses}\n\n{definitions}\n"


@dataclass
class Sent:
    request_id: str
    status: int
    trace_id: str | None
    body: dict[str, Any]


@dataclass
class ParserRun:
    app: ExampleApp
    start: datetime
    sent: list[Sent] = field(default_factory=list)
    first_check: tuple[int, str] = (0, "")

    def post(self, request_id: str, content: str, profile: str = "moderate", expected: int = 200) -> Sent:
        body = json.dumps({"content": content, "document_type": "markdown", "security_profile": profile}).encode()
        request = urllib.request.Request(
            f"{self.app.base_url}/parse",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "X-Request-ID": request_id},
        )
        try:
            with _opener.open(request, timeout=30) as response:
                status, headers, payload = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, payload = error.code, error.headers, error.read()
        assert status == expected, (request_id, status, payload[:300])
        traceresponse = headers.get("traceresponse") or ""
        sent = Sent(request_id, status, traceresponse.split("-")[1] if traceresponse.count("-") == 3 else None, {})
        sent.body = json.loads(payload)
        self.sent.append(sent)
        return sent

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        try:
            with _opener.open(f"{self.app.base_url}{path}", timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def shorten(spec: dict[str, Any]) -> None:
    """The timeout alert of the collectors within seconds instead of minutes."""
    collect = next(op for op in spec["operations"] if op["name"] == "document.collect")
    collect["timeout_ratio"].update(warning_for="5s", critical_for="5s")


@pytest.fixture(scope="module")
def parser_stack(tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver) -> Iterator[Stack]:
    stack = start_alerting_stack(tmp_path_factory, receiver.url, rendered_with(SPEC, shorten))
    try:
        yield stack
    finally:
        stack.stop()


def regression_check(stack: Stack, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["regression", "check", "--prometheus", stack.prometheus_url, "--spec", str(SPEC), "--window", "10m"])
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def run(parser_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParserRun]:
    log_path = tmp_path_factory.mktemp("parser") / "parser.log"
    env = {**APP_ENV, "PARSER_COLLECTOR_TIMEOUT": COLLECTOR_TIMEOUT}
    app = start_example_app(
        SERVICE, otlp_endpoint=parser_stack.otlp_http_endpoint, log_path=log_path, env=env, app=EXAMPLE_APP
    )
    with app:
        parsed = ParserRun(app, datetime.now(UTC) - timedelta(seconds=1))
        for n in range(6):
            parsed.post(f"parser-small-{n}", document(3_000, n))
        for n in range(3):
            parsed.post(f"parser-medium-{n}", document(40_000, n))
        for n in range(2):
            parsed.post(f"parser-large-{n}", document(200_000, n), profile="permissive")
        parsed.post("parser-rejected-0", MARKER + document(150_000, 9), profile="strict", expected=413)
        yield parsed
    assert app.process.returncode in (0, -15), app.output()[-3000:]


EXAMPLE_APP = "examples.parser_service.app:app"


def induce_failure(run: ParserRun) -> None:
    """A malformed document, then documents that make the links collector time out, each once."""
    if any(s.request_id.startswith("parser-timeout-") for s in run.sent):
        return
    run.post("parser-malformed-0", "# Broken\n\n```python\nprint('never closed')\n", expected=422)
    for n in range(6):
        sent = run.post(f"parser-timeout-{n}", pathological())
        assert sent.body["collector_errors"] == [{"collector": "links", "error": "TimeoutError"}]


def test_healthy_traffic_passes_the_regression_check_against_the_committed_baseline(
    parser_stack: Stack, run: ParserRun, capsys: pytest.CaptureFixture[str]
) -> None:
    def all_buckets() -> None:
        count = f'operation_duration_seconds_count{{job="{SERVICE}", operation_name="document.parse"}}'
        result = http.promql(parser_stack.prometheus_url, f"sum by (document_size_bucket) ({count})")
        assert {r["metric"]["document_size_bucket"] for r in result} == {"small", "medium", "large"}

    eventually(all_buckets)
    code, out = regression_check(parser_stack, capsys)
    assert code == 0, out
    assert "passed: 0 regression(s), 0 series without data, of 3" in out


def test_collector_timeouts_page_through_the_real_alertmanager(
    parser_stack: Stack, run: ParserRun, receiver: WebhookReceiver
) -> None:
    induce_failure(run)

    def firing() -> None:
        alerts = http.get_json(f"{parser_stack.prometheus_url}/api/v1/alerts")["data"]["alerts"]
        states = {
            a["labels"]["severity"]: a["state"]
            for a in alerts
            if a["labels"]["alertname"] == ALERT and a["labels"].get("collector_name") == "links"
        }
        assert states.get("critical") == "firing", states

    eventually(firing, timeout=DELIVERY_WAIT)

    def pages() -> list[dict[str, Any]]:
        return [
            m
            for m in receiver.at("/pager")
            if m["event_action"] == "trigger" and f"{ALERT} on {SERVICE}:" in m["payload"]["summary"]
        ]

    receiver.wait_for(lambda: bool(pages()), timeout=DELIVERY_WAIT, what="the page")
    page = pages()[0]
    assert page["payload"]["severity"] == "critical"
    runbook = "https://github.com/otel-dist/otel-dist/blob/main/runbooks/OperationTimeoutRateHigh.md"
    assert page["links"] == [{"href": runbook, "text": "Runbook"}]
    details = page["payload"]["custom_details"]
    assert "document.collect collector_name=links document_type=markdown of parser" in details["description"]
    assert "timed out over the last 5m (critical above 1%)" in details["description"]


def test_the_induced_failure_fails_the_regression_check(
    parser_stack: Stack, run: ParserRun, capsys: pytest.CaptureFixture[str]
) -> None:
    induce_failure(run)

    def fails() -> str:
        code, out = regression_check(parser_stack, capsys)
        assert code == 1, out
        return out

    out = eventually(fails)
    assert "REGRESSION" in out
    assert "errors" in out  # the malformed document failed its parse


def test_the_domain_metrics_are_in_prometheus_by_their_catalog_names(parser_stack: Stack, run: ParserRun) -> None:
    induce_failure(run)
    wanted = {
        catalog.OPERATION_DURATION_BUCKET,
        catalog.OPERATION_OUTCOMES,
        catalog.OPERATION_ACTIVE,
        catalog.OPERATION_INPUT_SIZE_BUCKET,
        catalog.OPERATION_MEMORY_PEAK_BUCKET,
        catalog.SECURITY_EVENTS,
    }
    assert wanted <= catalog.DOMAIN_METRICS

    def emitted() -> None:
        names = http.metric_names(parser_stack.prometheus_url, f'{{job="{SERVICE}"}}')
        assert sorted(wanted - names) == []

    eventually(emitted)
    prometheus = parser_stack.prometheus_url
    # Per collector: the links collector timed out on each pathological document.
    timeouts = http.promql(
        prometheus,
        f'operation_outcomes_total{{job="{SERVICE}", operation_name="document.collect", collector_name="links",'
        ' operation_outcome="timeout"}',
    )
    assert [float(t["value"][1]) for t in timeouts] == [6.0]
    assert timeouts[0]["metric"]["error_type"] == "TimeoutError"
    # The parse errors of the malformed document, by type.
    (errors,) = http.promql(prometheus, f'operation_outcomes_total{{job="{SERVICE}", operation_outcome="error"}}')
    assert errors["metric"]["error_type"] == "MalformedDocument"
    # Document sizes in byte buckets: the 3 kB documents below the 10 kB edge, the 200 kB ones above 100 kB.
    small = http.promql_scalar(
        prometheus,
        f'sum(operation_input_size_bytes_bucket{{job="{SERVICE}", operation_name="document.parse",'
        ' document_size_bucket="small", le="10000"})',
    )
    assert small == 7.0  # six small documents and the malformed one
    # Peak memory per size bucket, and the security event of the rejected document (by validation type).
    peaks = http.promql(
        prometheus, f'sum by (document_size_bucket) (operation_memory_peak_bytes_count{{job="{SERVICE}"}})'
    )
    assert {p["metric"]["document_size_bucket"] for p in peaks} == {"small", "medium", "large"}
    (rejected,) = http.promql(prometheus, f'security_events_total{{job="{SERVICE}"}}')
    assert (rejected["metric"]["security_event_kind"], rejected["metric"]["security_event_reason"]) == (
        "validation_failure",
        "size_limit",
    )


def test_a_parse_is_one_trace_with_the_parse_and_every_collector(parser_stack: Stack, run: ParserRun) -> None:
    sent = next(s for s in run.sent if s.request_id == "parser-medium-0")
    assert sent.trace_id

    def spans() -> list[dict[str, Any]]:
        found = http.jaeger_trace(parser_stack.jaeger_url, sent.trace_id or "")
        assert len(found) >= 7, [s["name"] for s in found]
        return found

    names = sorted(s["name"] for s in eventually(spans))
    assert names.count("document.collect") == 5
    assert "document.parse" in names
    assert "POST /parse" in names
    parse_span = next(s for s in eventually(spans) if s["name"] == "document.parse")
    attributes = http.attributes(parse_span["attributes"])
    assert attributes["document.size_bucket"] == "medium"
    assert int(attributes["operation.input.size"]) > 10_000


def test_the_logs_of_one_request_are_found_by_request_id(parser_stack: Stack, run: ParserRun) -> None:
    query = f'"service.name":="{SERVICE}" request_id:="parser-small-0"'

    def lines() -> list[dict[str, str]]:
        found = http.logsql(parser_stack.victorialogs_url, query)
        assert {"document.parsed", "operation.completed", "http.request"} <= {line["_msg"] for line in found}
        return found

    found = eventually(lines)
    parsed = next(line for line in found if line["_msg"] == "document.parsed")
    assert parsed["document_size_bucket"] == "small"
    assert parsed["event_type"] == "parse_complete"
    sent = next(s for s in run.sent if s.request_id == "parser-small-0")
    assert {line["trace_id"] for line in found} == {sent.trace_id}

    # The rejected document: one security event, with its fingerprint, and its content nowhere.
    rejected = eventually(
        lambda: (
            http.logsql(
                parser_stack.victorialogs_url,
                f'"service.name":="{SERVICE}" request_id:="parser-rejected-0" _msg:="security.event"',
            )
            or None
        )
    )
    assert rejected[0]["security.event.reason"] == "size_limit"
    assert rejected[0]["security_profile"] == "strict"
    assert int(rejected[0]["offending_length"]) > 150_000
    assert http.logsql(parser_stack.victorialogs_url, f'"service.name":="{SERVICE}" "{MARKER}"') == []


def test_the_health_endpoints(run: ParserRun) -> None:
    status, body = run.get("/health")
    assert (status, body["status"]) == (200, "ok")
    status, body = run.get("/health/ready")
    assert status == 200
    assert body["checks"]["parser"]["status"] == "ok"
    status, body = run.get("/health/parser")
    assert status == 200


PANELS = dashboard_panels(EXAMPLE / "monitoring/dashboards")


@pytest.mark.parametrize(("dashboard", "title", "expr"), PANELS, ids=[f"{d}:{t}" for d, t, _ in PANELS])
def test_every_dashboard_query_returns_the_parser_series(
    parser_stack: Stack, run: ParserRun, dashboard: str, title: str, expr: str
) -> None:
    induce_failure(run)
    eventually(lambda: assert_panel_returns_series(parser_stack.prometheus_url, SERVICE, dashboard, title, expr))


def test_the_capacity_report_is_committed() -> None:
    text = (EXAMPLE / "CAPACITY.md").read_text()
    assert "| users | requests | failures | requests/s | p50 | p95 | p99 |" in text
    assert Path(EXAMPLE / "README.md").is_file()


STEPS = runbook_steps(EXAMPLE / "runbooks")


@pytest.mark.parametrize(("alert", "index", "block"), STEPS, ids=[f"{a}:{b.lang}:{i}" for a, i, b in STEPS])
def test_every_step_of_the_examples_runbooks_runs(
    parser_stack: Stack, run: ParserRun, alert: str, index: int, block: Any
) -> None:
    induce_failure(run)
    answer = next(a for a in run.sent if a.request_id == "parser-small-0")
    values = {"service": SERVICE, "request_id": answer.request_id, "trace_id": answer.trace_id or "", "env": "e2e"}
    eventually(lambda: run_runbook_step(parser_stack, block, values))
