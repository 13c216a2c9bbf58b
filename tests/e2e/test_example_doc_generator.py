"""End to end, seed 002: the documentation generator (examples/doc_generator) with a real Redis cache.

Real generation requests (three sources, each twice: AST cache misses, then hits), an invalid source (a failed
operation), and rejected requests (a wrong API key, a missing one, a path traversal: security events). Then: the
operation, memory, cache and security metrics in Prometheus, a generation's trace with its attributes in Jaeger,
its log lines with the seed's extra fields found by request_id, no secret in any log line, every named health
check. Last, Redis is stopped while an orchestrator probes readiness: generation goes on without the cache, and
ComponentUnhealthy pages through the real Alertmanager with the example's remediation link.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from otel_dist.stack import http
from otel_dist.stack.example import ExampleApp, start_example_app
from otel_dist.stack.supervisor import REPO_ROOT
from tests.e2e.alerting_stack import assert_panel_returns_series, dashboard_panels, run_runbook_step, runbook_steps
from tests.e2e.conftest import ExampleStack, eventually
from tests.e2e.example_stack import (
    DELIVERY_WAIT,
    EXAMPLE_ENV,
    assert_emits,
    fast_rendering,
    load_rules,
    pages,
    probing,
    request_lines,
    trace_spans,
)
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

SPEC = REPO_ROOT / "examples/doc_generator/monitoring/objectives.yaml"
#: The service name the spec's per-environment entries select.
SERVICE = "doc-generator"
API_KEY = "docs-" + uuid.uuid4().hex
WRONG_KEY = "sk-live-" + uuid.uuid4().hex  # looks like a secret: must never appear in a log line
SOURCES = [
    '@app.get("/items/{item_id}")\nasync def read_item(item_id: int):\n    """Read one item."""\n',
    (
        '@app.post("/orders")\ndef create_order():\n    """Create an order."""\n\n'
        '@app.delete("/orders/{id}")\ndef drop(): ...\n'
    ),
    '@bp.route("/legacy")\ndef legacy():\n    """A Flask view."""\n',
]


@dataclass
class Running:
    app: ExampleApp
    redis: RedisServer
    output_dir: Path

    @property
    def url(self) -> str:
        return self.app.base_url


@pytest.fixture(scope="module")
def generator(examples_stack: ExampleStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    stack = examples_stack.stack
    load_rules(stack, examples_stack.repo, fast_rendering(SPEC))
    output_dir = tmp_path_factory.mktemp("docs")
    with RedisServer() as redis_server:
        app = start_example_app(
            SERVICE,
            otlp_endpoint=stack.otlp_http_endpoint,
            log_path=tmp_path_factory.mktemp("doc-generator") / "app.log",
            app="examples.doc_generator.app:app",
            env={
                **EXAMPLE_ENV,
                "REDIS_URL": redis_server.url,
                "DOCGEN_API_KEYS": API_KEY,
                "DOCGEN_OUTPUT_DIR": str(output_dir),
            },
        )
        with app:
            yield Running(app, redis_server, output_dir)


@pytest.fixture(scope="module")
def answers(generator: Running) -> dict[str, httpx.Response]:
    sent: dict[str, httpx.Response] = {}
    with httpx.Client(base_url=generator.url, timeout=30) as client:

        def call(name: str, expected: int, body: dict[str, str], key: str | None = API_KEY) -> None:
            headers = {"X-Request-ID": f"docgen-{name}"}
            if key is not None:
                headers["X-API-Key"] = key
            response = client.post("/generate", json=body, headers=headers)
            assert response.status_code == expected, (name, response.text)
            sent[name] = response

        for round_ in range(2):
            for number, source in enumerate(SOURCES):
                fmt = "html" if number == 2 else "markdown"
                call(f"gen-{round_}-{number}", 200, {"source": source, "format": fmt, "output_name": f"api{number}.md"})
        call("invalid", 422, {"source": "def broken(:\n"})
        call("wrong-key", 401, {"source": SOURCES[0]}, key=WRONG_KEY)
        call("no-key", 401, {"source": SOURCES[0]}, key=None)
        call("traversal", 400, {"source": SOURCES[0], "output_name": "../../etc/passwd"})
    return sent


def test_the_documents_are_generated(generator: Running, answers: dict[str, httpx.Response]) -> None:
    assert answers["gen-0-0"].json() == {"output": "api0.md", "routes": 1, "framework": "fastapi"}
    assert answers["gen-1-2"].json()["framework"] == "flask"
    assert "`DELETE /orders/{id}`" in (generator.output_dir / "api1.md").read_text()


def test_generation_cache_and_security_metrics_are_in_prometheus(
    examples_stack: ExampleStack, answers: dict[str, httpx.Response]
) -> None:
    stack, job = examples_stack.stack, f'job="{SERVICE}"'
    assert_emits(
        stack,
        SERVICE,
        {
            "operation_duration_seconds_bucket",
            "operation_outcomes_total",
            "operation_active",
            "operation_input_size_bytes_bucket",
            "operation_memory_peak_bytes_bucket",
            "cache_lookups_total",
            "security_events_total",
        },
    )

    def counted() -> None:
        outcomes = http.promql(
            stack.prometheus_url, f"sum by (operation_outcome, error_type) (operation_outcomes_total{{{job}}})"
        )
        assert {(s["metric"]["operation_outcome"], s["metric"].get("error_type"), s["value"][1]) for s in outcomes} == {
            ("success", None, "6"),
            ("error", "SyntaxError", "1"),
        }
        lookups = http.promql(
            stack.prometheus_url, f"sum by (cache_name, cache_outcome) (cache_lookups_total{{{job}}})"
        )
        values = {(s["metric"]["cache_name"], s["metric"]["cache_outcome"]): s["value"][1] for s in lookups}
        assert values[("ast", "miss")] == "4"  # three sources, and the invalid one
        assert values[("ast", "hit")] == "3"
        events = http.promql(
            stack.prometheus_url,
            f"sum by (security_event_kind, security_event_reason) (security_events_total{{{job}}})",
        )
        assert {(s["metric"]["security_event_kind"], s["metric"]["security_event_reason"]) for s in events} == {
            ("auth_failure", "bad_api_key"),
            ("auth_failure", "missing_api_key"),
            ("rejected_input", "path_traversal"),
        }

    eventually(counted)
    peak = http.promql_scalar(stack.prometheus_url, f"max(operation_memory_peak_bytes_sum{{{job}}})")
    assert (peak or 0) > 0


def test_a_generation_trace_carries_its_attributes(
    examples_stack: ExampleStack, answers: dict[str, httpx.Response]
) -> None:
    trace_id = answers["gen-0-1"].headers["traceresponse"].split("-")[1]
    spans = trace_spans(examples_stack.stack, trace_id)
    operation = next(s for s in spans if s["name"] == "docs.generate")
    attributes = http.attributes(operation["attributes"])
    assert attributes["app.framework"] == "fastapi"
    assert attributes["doc.routes_count"] in (2, "2")
    assert attributes["output.format"] == "markdown"
    assert {"POST /generate", "GET", "SET"} <= {s["name"] for s in spans}  # the server span, the Redis commands


def test_log_lines_carry_the_extra_fields_and_never_a_secret(
    examples_stack: ExampleStack, generator: Running, answers: dict[str, httpx.Response]
) -> None:
    lines = request_lines(examples_stack.stack, SERVICE, "docgen-gen-0-0", at_least=3)
    generated = next(line for line in lines if line["_msg"] == "docs.generated")
    assert generated["framework"] == "fastapi"
    assert generated["routes_discovered"] == "1"
    assert generated["output_format"] == "markdown"
    assert float(generated["generation_time_ms"]) > 0
    assert {"docs.generated", "operation.completed", "http.request"} <= {line["_msg"] for line in lines}
    (rejected,) = [
        line
        for line in request_lines(examples_stack.stack, SERVICE, "docgen-wrong-key")
        if line["_msg"] == "security.event"
    ]
    assert rejected["security.event.reason"] == "bad_api_key"
    assert rejected["offending_length"] == str(len(WRONG_KEY))
    everything = http.logsql(examples_stack.stack.victorialogs_url, f'"service.name":="{SERVICE}"')
    assert everything
    assert not [line for line in everything if WRONG_KEY in str(line)]
    assert WRONG_KEY not in generator.app.output()


PANELS = dashboard_panels(SPEC.parent / "dashboards")
STEPS = runbook_steps(REPO_ROOT / "examples/doc_generator/runbooks")


def test_the_dashboards_of_the_seed() -> None:
    assert sorted({d for d, _, _ in PANELS}) == [
        "cache.json",
        "operations.json",
        "runtime.json",
        "security.json",
        "service-overview.json",
    ]


@pytest.mark.parametrize(("dashboard", "title", "expr"), PANELS, ids=[f"{d}:{t}" for d, t, _ in PANELS])
def test_every_dashboard_query_returns_the_service_series(
    examples_stack: ExampleStack,
    generator: Running,
    answers: dict[str, httpx.Response],
    dashboard: str,
    title: str,
    expr: str,
) -> None:
    assert httpx.get(f"{generator.url}/health/ready").status_code == 200  # a probe: the health gauges
    url = examples_stack.stack.prometheus_url
    eventually(lambda: assert_panel_returns_series(url, SERVICE, dashboard, title, expr), timeout=90, interval=2.0)


@pytest.mark.parametrize(("alert", "index", "block"), STEPS, ids=[f"{a}:{b.lang}:{i}" for a, i, b in STEPS])
def test_every_step_of_the_examples_runbooks_runs(
    examples_stack: ExampleStack, answers: dict[str, httpx.Response], alert: str, index: int, block: Any
) -> None:
    answer = answers["wrong-key"]
    values = {
        "service": SERVICE,
        "request_id": answer.headers["x-request-id"],
        "trace_id": answer.headers["traceresponse"].split("-")[1],
        "env": "e2e",
    }
    eventually(lambda: run_runbook_step(examples_stack.stack, block, values))


def test_every_named_health_check_answers(generator: Running) -> None:
    live = httpx.get(f"{generator.url}/health").json()
    assert (live["status"], live["version"], live["service"]) == ("ok", "1.0.0", SERVICE)
    assert live["timestamp"].endswith("Z")
    for name in ("ast_parsing", "template_engine", "filesystem", "cache"):
        check = httpx.get(f"{generator.url}/health/{name}").json()["checks"][name]
        assert check["status"] == "ok", (name, check)
        assert check["latency_ms"] >= 0
    ready = httpx.get(f"{generator.url}/health/ready").json()
    assert set(ready["checks"]) == {"ast_parsing", "template_engine", "filesystem", "cache"}


def test_a_cache_outage_degrades_generation_and_pages(
    examples_stack: ExampleStack, generator: Running, answers: dict[str, httpx.Response]
) -> None:
    receiver = examples_stack.receiver
    with probing(generator.url) as statuses:
        eventually(lambda: _probed(statuses), timeout=30)
        generator.redis.stop()
        try:
            # Without the cache, generation still answers (slower: every source is analysed again).
            response = httpx.post(
                f"{generator.url}/generate",
                json={"source": SOURCES[0], "output_name": "during-outage.md"},
                headers={"X-API-Key": API_KEY},
                timeout=30,
            )
            assert response.status_code == 200
            receiver.wait_for(
                lambda: bool(pages(receiver, "ComponentUnhealthy", SERVICE)), timeout=DELIVERY_WAIT, what="the page"
            )
        finally:
            generator.redis.start()
    (page,) = pages(receiver, "ComponentUnhealthy", SERVICE)
    assert page["payload"]["severity"] == "critical"
    details = page["payload"]["custom_details"]
    assert "cache" in details["description"]
    assert details["runbook_url"].endswith("/ComponentUnhealthy.md")
    assert set(statuses) == {200}  # the cache is not required: readiness stays up
    # The example's remediation link reaches Alertmanager with the alert (for chat-ops and automation).
    alerts = http.get_json(
        f"{examples_stack.stack.alertmanager_url}/api/v2/alerts", {"filter": 'alertname="ComponentUnhealthy"'}
    )
    mine = [a for a in alerts if a["labels"].get("service") == SERVICE]
    assert mine
    assert {a["annotations"]["remediation"] for a in mine} == {
        "https://github.com/otel-dist/otel-dist/blob/main/examples/doc_generator/RUNBOOK.md"
    }


def _probed(statuses: list[int]) -> None:
    assert len(statuses) >= 2
