"""End to end: a real alert travels example app -> collector -> Prometheus -> Alertmanager -> a webhook on 127.0.0.1.

A stack of its own, from a copy of the repository's configs with test timings: rules rendered by the product's
renderer from the shipped spec with short ``for`` durations, Prometheus evaluating every second, and the local
variant of alertmanager.yml (otel_dist.rules.alertmanager) whose receivers all point at a webhook server this test
runs. The example app is broken on purpose with real unhandled exceptions (GET /fail); the page must reach the
PagerDuty-style receiver with severity critical and the runbook URL, and resolve once healthy traffic dilutes the
errors below the threshold.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_dist.rules.spec import load_spec
from otel_dist.stack import http
from otel_dist.stack.example import Request, start_example_app
from otel_dist.stack.example import send as send_requests
from otel_dist.stack.supervisor import REPO_ROOT, Stack
from tests.e2e.alerting_stack import rendered_with, start_alerting_stack
from tests.e2e.conftest import APP_ENV, eventually
from tests.rules.webhook import WebhookReceiver

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

ALERT = "HTTPErrorRateHigh"
#: Seconds for a notification to arrive (export 1 s, evaluation 1 s, for 5 s, Alertmanager's group_wait 3 s).
DELIVERY_WAIT = 90.0


def shorten(spec: dict[str, Any]) -> None:
    """The shipped spec with the error-ratio alerts' `for` shortened."""
    spec["defaults"]["error_ratio"].update(warning_for="5s", critical_for="5s")


@pytest.fixture(scope="module")
def alerting_stack(tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver) -> Iterator[Stack]:
    rules = rendered_with(REPO_ROOT / "prometheus/objectives.yaml", shorten)
    stack = start_alerting_stack(tmp_path_factory, receiver.url, rules)
    try:
        yield stack
    finally:
        stack.stop()


def exported(stack: Stack, service: str, status: str) -> None:
    """The app's duration histogram has a series for ``status`` in Prometheus."""
    query = f'http_server_request_duration_seconds_count{{job="{service}", http_response_status_code="{status}"}}'
    assert http.promql(stack.prometheus_url, query), query


def requests(kind: str, service: str, count: int) -> list[Request]:
    if kind == "error":
        return [Request("GET", "/fail", "/fail", 500, f"{service}-fail-{n:04d}", "error") for n in range(count)]
    return [
        Request("GET", f"/items/{n % 50 + 1}", "/items/{item_id}", 200, f"{service}-ok-{n:04d}", "ok")
        for n in range(count)
    ]


def pages(receiver: WebhookReceiver, service: str, action: str) -> list[dict[str, Any]]:
    """PagerDuty events about this alert of this service."""
    return [
        m
        for m in receiver.at("/pager")
        if m["event_action"] == action and f"{ALERT} on {service}:" in m["payload"]["summary"]
    ]


def chats(receiver: WebhookReceiver, service: str, severity: str) -> list[dict[str, Any]]:
    """Chat messages about this alert of this service that carry a firing alert of ``severity``."""
    return [
        m
        for m in receiver.at("/chat")
        if f"{ALERT}" in m["attachments"][0]["title"]
        and service in m["attachments"][0]["title"]
        and f"[{severity}] *{service}:" in m["attachments"][0]["text"]
    ]


def test_the_watchdog_reaches_the_heartbeat_receiver(alerting_stack: Stack, receiver: WebhookReceiver) -> None:
    receiver.wait_for(lambda: bool(receiver.at("/heartbeat")), timeout=DELIVERY_WAIT, what="the Watchdog")
    beat = receiver.at("/heartbeat")[0]
    assert beat["commonLabels"] == {"alertname": "Watchdog", "severity": "info"}
    assert beat["alerts"][0]["annotations"]["runbook_url"].endswith("/runbooks/Watchdog.md")


def test_a_broken_app_pages_and_the_page_resolves_when_it_recovers(
    alerting_stack: Stack, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    stack = alerting_stack
    service = f"e2e-alert-{uuid.uuid4().hex[:8]}"
    runbook = f"{load_spec(REPO_ROOT / 'prometheus/objectives.yaml').runbook_base_url}/{ALERT}.md"
    app = start_example_app(service, otlp_endpoint=stack.otlp_http_endpoint, log_path=tmp_path / "app.log", env=APP_ENV)
    with app:
        # Healthy traffic with one failure first: a counter series starts with the value of its first export,
        # and rate() cannot see the increments before it, so the /fail series must exist before the burst (as
        # it does in a service that has run for a while).
        send_requests(app.base_url, requests("ok", service, 20) + requests("error", service, 1))
        eventually(lambda: exported(stack, service, "500"), timeout=DELIVERY_WAIT)
        # Break it on purpose: a burst of real unhandled exceptions, nearly all of the requests from now on.
        send_requests(app.base_url, requests("error", service, 30)[1:])

        def firing() -> None:
            alerts = http.get_json(f"{stack.prometheus_url}/api/v1/alerts")["data"]["alerts"]
            states = {
                a["labels"]["severity"]: a["state"]
                for a in alerts
                if a["labels"]["alertname"] == ALERT and a["labels"].get("job") == service
            }
            assert states.get("critical") == "firing", states

        eventually(firing, timeout=DELIVERY_WAIT)
        receiver.wait_for(lambda: bool(pages(receiver, service, "trigger")), timeout=DELIVERY_WAIT, what="the page")

        # The pager got it with the severity of its route and the runbook; the chat got the critical one too.
        (page,) = pages(receiver, service, "trigger")
        assert page["payload"]["severity"] == "critical"
        assert page["payload"]["summary"].startswith(f"[FIRING] {ALERT} on {service}: {service}: ")
        assert "of the requests fail" in page["payload"]["summary"]
        assert page["links"] == [{"href": runbook, "text": "Runbook"}]
        details = page["payload"]["custom_details"]
        assert details["runbook_url"] == runbook
        assert details["service"] == service
        assert "answered 5xx over the last 5m (critical above 5%)" in details["description"]
        receiver.wait_for(lambda: bool(chats(receiver, service, "critical")), what="the critical chat message")
        assert chats(receiver, service, "critical")[0]["attachments"][0]["title_link"] == runbook
        # Nothing of it went to the low-priority chat; the warning tier was inhibited while the page fired.
        assert not [m for m in receiver.at("/chat-low-priority") if service in json_text(m)]
        assert not chats(receiver, service, "warning")

        # Recover: healthy traffic brings the 5m error ratio to 29 / 1029 = 2.8 % (below 5 %).
        send_requests(app.base_url, requests("ok", service, 1000))
        receiver.wait_for(
            lambda: bool(pages(receiver, service, "resolve")), timeout=DELIVERY_WAIT, what="the resolved page"
        )
    (resolved,) = pages(receiver, service, "resolve")
    assert resolved["dedup_key"] == page["dedup_key"]
    assert resolved["payload"]["summary"].startswith(f"[RESOLVED] {ALERT} on {service}:")
    assert resolved["links"] == [{"href": runbook, "text": "Runbook"}]
    # 2.8 % is still above the 1 % warning: no longer inhibited, it reaches the chat, and only the chat.
    receiver.wait_for(lambda: bool(chats(receiver, service, "warning")), timeout=DELIVERY_WAIT, what="the warning")
    assert len(pages(receiver, service, "trigger")) == 1


def json_text(message: dict[str, Any]) -> str:
    import json

    return json.dumps(message)
