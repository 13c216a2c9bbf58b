"""End to end: every Prometheus query of every dashboard, and every step of every runbook, against the real stack.

The session's stack loads the committed rules (prometheus/rules/, so the recording rules the dashboards read are
evaluated) and the example app has run through it (tests/e2e/conftest.py). Each dashboard query, with Grafana's
variables filled in, must return series of the example service (the collector's panels: of the collector), with
no padding. Each runbook's PromQL, LogsQL and Jaeger step must run; the ones about one request or trace must find it.
LogQL (Loki) is checked statically in tests/rules: Loki is not run here.
"""

from __future__ import annotations

import json
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from otel_dist.rules import catalog
from otel_dist.rules.dashboards import queries
from otel_dist.rules.runbooks import blocks, runbook_paths, substitute
from otel_dist.stack import http
from otel_dist.stack.supervisor import REPO_ROOT, Stack
from tests.e2e.conftest import Run, eventually

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1200)]

DASHBOARDS = sorted((REPO_ROOT / "grafana/dashboards").glob("*.json"))
RUNBOOKS = runbook_paths(REPO_ROOT / "runbooks")
#: The budget recordings run every minute (interval of their group), with a random offset: allow two.
RECORDING_WAIT = 150.0
COLLECTOR_JOB = "otelcol"


def grafana_variables(run: Run) -> dict[str, str]:
    """What Grafana would substitute: the service, "All" environments, the collector, a rate window."""
    return {"service": run.service, "env": ".*", "collector": COLLECTOR_JOB, "__rate_interval": "5m", "__auto": "1m"}


def prometheus_queries() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        for title, kind, expr in queries(json.loads(path.read_text())):
            if kind == "prometheus":
                found.append((path.name, title, expr))
    return found


PANEL_QUERIES = prometheus_queries()


@pytest.fixture(scope="module")
def configured(runs: dict[str, Run]) -> Run:
    """The run of the app with its own configure() (health checks included): the service the dashboards show."""
    return runs["configure"]


def test_every_metric_of_the_catalog_is_emitted_by_the_example_service(stack: Stack, configured: Run) -> None:
    def emitted() -> None:
        names = http.metric_names(stack.prometheus_url, f'{{job="{configured.service}"}}')
        assert sorted(catalog.SERVICE_METRICS - names) == []

    eventually(emitted)


@pytest.mark.parametrize(
    ("dashboard", "title", "expr"), PANEL_QUERIES, ids=[f"{d}:{t}:{i}" for i, (d, t, _) in enumerate(PANEL_QUERIES)]
)
def test_every_dashboard_query_returns_the_service_series(
    stack: Stack, configured: Run, dashboard: str, title: str, expr: str
) -> None:
    query = substitute(expr, grafana_variables(configured))
    assert "$" not in query, query
    job = COLLECTOR_JOB if "$collector" in expr else configured.service

    def returns_series() -> list[dict[str, Any]]:
        result = http.promql(stack.prometheus_url, query)
        assert result, f"{dashboard} / {title}: no series for\n{query}"
        assert {series["metric"].get("job") for series in result} == {job}, result
        return result

    # NaN values are allowed: a ratio of counters that did not move in the window (0/0) is NaN, legitimately.
    eventually(returns_series, timeout=RECORDING_WAIT, interval=2.0)


def test_the_slo_panels_show_the_objectives(stack: Stack, configured: Run) -> None:
    objectives = http.promql(stack.prometheus_url, f'job:slo_objective:ratio{{job="{configured.service}"}}')
    assert {(s["metric"]["slo"], float(s["value"][1])) for s in objectives} == {
        ("availability", 0.995),
        ("latency", 0.95),
    }


# --- runbooks -------------------------------------------------------------------------------------------------


def found_lines(stack: Stack, query: str) -> list[dict[str, str]]:
    """The lines a LogsQL query finds, waiting until there are some."""

    def lines() -> list[dict[str, str]]:
        result = http.logsql(stack.victorialogs_url, query)
        assert result, query
        return result

    return eventually(lines)


def runbook_values(stack: Stack, run: Run) -> dict[str, str]:
    failed = run.of_kind("error")[0]
    assert failed.trace_id
    (target,) = http.promql(stack.prometheus_url, f'target_info{{job="{run.service}"}}')
    now = datetime.now(UTC)
    return {
        "service": run.service,
        "env": "e2e",
        "instance": target["metric"]["instance"],
        "route": "/fail",
        "request_id": failed.request.request_id,
        "trace_id": failed.trace_id,
        "start": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


RUNBOOK_STEPS = [
    (name, index, block)
    for name, path in RUNBOOKS.items()
    for index, block in enumerate(blocks(path.read_text()))
    if block.lang in ("promql", "logsql", "jaeger")
]


@pytest.mark.parametrize(
    ("name", "index", "block"), RUNBOOK_STEPS, ids=[f"{n}:{b.lang}:{i}" for n, i, b in RUNBOOK_STEPS]
)
def test_every_runbook_step_runs_against_the_stack(
    stack: Stack, configured: Run, name: str, index: int, block: Any
) -> None:
    # The app's logs must be in before a query about one of its requests can find it.
    found_lines(stack, f'"service.name":="{configured.service}" | limit 1')
    code = substitute(block.code, runbook_values(stack, configured))
    assert "$" not in code.replace("$__", ""), code
    if block.lang == "promql":
        http.promql(stack.prometheus_url, code)  # raises QueryError on a bad query
    elif block.lang == "logsql":
        lines = http.logsql(stack.victorialogs_url, code)
        if "request_id:=" in code or "trace_id:=" in code:
            assert lines, f"{name}: no line of the failed request for {code}"
            assert all(line.get("trace_id") for line in lines)
    else:
        path, _, query = code.partition("?")
        answer = http.get_json(f"{stack.jaeger_url}{path}", dict(urllib.parse.parse_qsl(query)))
        assert answer.get("errors") is None, answer
        if "status_code" in query or "minDuration=1s" in query:
            # The app's 500s and its slow requests (1.2 s) are there to be found.
            assert answer["data"], f"{name}: no trace for {code}"


def test_the_runbook_steps_about_the_failed_request_find_it(stack: Stack, configured: Run) -> None:
    values = runbook_values(stack, configured)
    step = next(b for b in blocks(RUNBOOKS["HTTPErrorRateHigh"].read_text()) if "request_id:=" in b.code)
    code = substitute(step.code, values)
    assert code == f'"service.name":="{configured.service}" request_id:="{values["request_id"]}"'
    lines = found_lines(stack, code)
    assert {line["trace_id"] for line in lines} == {values["trace_id"]}
    assert any(line.get("exception.type") == "RuntimeError" for line in lines)
