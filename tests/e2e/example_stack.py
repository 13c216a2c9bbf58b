"""What the examples' end-to-end tests share: one stack with test timings, each example's rules loaded in turn.

The stack runs from a copy of the repository's configs: Prometheus evaluates rules every second and Alertmanager
runs the local variant of alertmanager.yml (every receiver on a webhook server of the test session, short group
timings). Its rules folder starts empty; each example module renders its own spec (``examples/<x>/objectives.yaml``)
with every ``for`` shortened to a few seconds, writes the files there and reloads Prometheus (SIGHUP), so the
examples take turns on one stack instead of starting one each.

Also here: a prober that calls an app's readiness endpoint every second (as an orchestrator would, so the health
gauges move), and the checks every example makes against Prometheus, Jaeger and VictoriaLogs.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from otel_dist.rules import catalog
from otel_dist.stack import http
from otel_dist.stack.supervisor import Stack
from tests.e2e.alerting_stack import rendered_with, write_alerting_config
from tests.e2e.conftest import eventually
from tests.rules.webhook import WebhookReceiver

#: Every run's settings: 100 % sampling unless the example says otherwise, fast exports.
EXAMPLE_ENV = {
    "OTEL_DIST_ENVIRONMENT": "e2e",
    "OTEL_TRACES_SAMPLER": "always_on",
    "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "OTEL_BLRP_SCHEDULE_DELAY": "100",
}
#: ``for`` of every alert in the test rendering of an example's spec.
TEST_FOR = "3s"
#: Seconds for an alert to reach the webhook (export 1 s, evaluation 1 s, for 3 s, group_wait 3 s, retries).
DELIVERY_WAIT = 120.0


def write_stack_config(repo: Path, receiver_url: str) -> None:
    """The repository's stack configs with test timings and no rules yet (tests/e2e/alerting_stack.py)."""
    write_alerting_config(repo, receiver_url, rules={})


def _shorten(node: Any) -> Any:
    """Every ``for`` / ``*_for`` duration of a spec set to TEST_FOR."""
    if isinstance(node, dict):
        return {
            key: TEST_FOR if (key == "for" or str(key).endswith("_for")) and isinstance(value, str) else _shorten(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_shorten(item) for item in node]
    return node


def fast_rendering(spec_path: Path) -> dict[str, str]:
    """The example's spec rendered with every ``for`` shortened to TEST_FOR."""
    return rendered_with(spec_path, lambda data: data.update(_shorten(data)))


def load_rules(stack: Stack, repo: Path, files: Mapping[str, str]) -> None:
    """Replace the stack's rules with ``files`` and reload Prometheus; wait until every group is loaded."""
    rules_dir = repo / "prometheus/rules"
    for old in rules_dir.glob("*.yml"):
        old.unlink()
    groups: set[str] = set()
    for name, text in files.items():
        (rules_dir / name).write_text(text)
        groups.update(group["name"] for group in yaml.safe_load(text)["groups"])
    os.kill(stack.records["prometheus"].pid, signal.SIGHUP)

    def loaded() -> None:
        answer = http.get_json(f"{stack.prometheus_url}/api/v1/rules")
        assert {g["name"] for g in answer["data"]["groups"]} == groups

    eventually(loaded, timeout=30)


@contextmanager
def probing(base_url: str, path: str = "/health/ready", interval: float = 1.0) -> Iterator[list[int]]:
    """Call ``path`` every ``interval`` seconds in a thread while the block runs; yields the statuses seen."""
    statuses: list[int] = []
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(timeout=10.0) as client:
            while not stop.is_set():
                try:
                    statuses.append(client.get(f"{base_url}{path}").status_code)
                except httpx.HTTPError:
                    statuses.append(0)
                stop.wait(interval)

    thread = threading.Thread(target=run, name="prober", daemon=True)
    thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        thread.join(15)


# --- checks against the backends ------------------------------------------------------------------------------


def metric_names(stack: Stack, service: str) -> set[str]:
    return http.metric_names(stack.prometheus_url, f'{{job="{service}"}}')


def assert_emits(stack: Stack, service: str, names: set[str] | frozenset[str]) -> None:
    """Prometheus has every metric of ``names`` for the service (waits for them)."""

    def emitted() -> None:
        assert sorted(set(names) - metric_names(stack, service)) == []

    eventually(emitted)


def trace_spans(stack: Stack, trace_id: str) -> list[dict[str, Any]]:
    """The spans of one trace once Jaeger holds it."""

    def spans() -> list[dict[str, Any]]:
        found = http.jaeger_trace(stack.jaeger_url, trace_id)
        assert found, f"no trace {trace_id} in Jaeger yet"
        return found

    return eventually(spans)


def request_lines(stack: Stack, service: str, request_id: str, *, at_least: int = 1) -> list[dict[str, str]]:
    """Every log line of one request, by request_id (the query the README shows)."""
    query = f'"service.name":={http.logsql_quote(service)} request_id:={http.logsql_quote(request_id)}'

    def lines() -> list[dict[str, str]]:
        found = http.logsql(stack.victorialogs_url, query)
        assert len(found) >= at_least, (query, found)
        return found

    return eventually(lines)


def pages(receiver: WebhookReceiver, alert: str, service: str, action: str = "trigger") -> list[dict[str, Any]]:
    """PagerDuty events (critical alerts) about the alert of the service."""
    return [
        m
        for m in receiver.at("/pager")
        if m["event_action"] == action and f"{alert} on {service}:" in m["payload"]["summary"]
    ]


def chats(receiver: WebhookReceiver, alert: str, service: str, severity: str) -> list[dict[str, Any]]:
    """Slack messages about the alert of the service carrying a firing alert of ``severity``."""
    return [
        m
        for m in receiver.at("/chat")
        if alert in m["attachments"][0]["title"]
        and service in m["attachments"][0]["title"]
        and f"[{severity}] *{service}:" in m["attachments"][0]["text"]
    ]


CLIENT_METRICS = catalog.CLIENT_METRICS
