"""Alertmanager routing: amtool checks the config and every route, and a real Alertmanager delivers to loopback.

The real one runs the local variant of alertmanager/alertmanager.yml (otel_dist.rules.alertmanager): the same
routes and inhibition, receivers pointed at a webhook server this test runs on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from otel_dist.rules.alertmanager import SECRET_PATHS, SECRETS_DIR, TIMING_KEYS, local_variant
from otel_dist.stack import http
from otel_dist.stack.supervisor import REPO_ROOT
from tests.rules.conftest import ALERTMANAGER_CONFIG, load_yaml, run
from tests.rules.webhook import WebhookReceiver

CONFIG = load_yaml(ALERTMANAGER_CONFIG)
RUNBOOKS = "https://github.com/otel-dist/otel-dist/blob/main/runbooks"

#: (labels, receivers amtool must route them to). Together they reach every route of the tree.
ROUTE_CASES: list[tuple[dict[str, str], str]] = [
    ({"alertname": "Watchdog", "severity": "info"}, "heartbeat"),
    ({"alertname": "Watchdog", "severity": "critical"}, "heartbeat"),  # first match wins, no continue
    ({"alertname": "HTTPErrorRateHigh", "severity": "critical", "service": "checkout"}, "pager,chat"),
    ({"alertname": "OTelCollectorDroppingData", "severity": "critical", "service": "otelcol"}, "pager,chat"),
    ({"alertname": "HTTPErrorRateHigh", "severity": "warning", "service": "checkout"}, "chat"),
    ({"alertname": "ErrorBudgetLow", "severity": "info", "service": "checkout"}, "chat-low-priority"),
    ({"alertname": "SomethingWithoutSeverity", "service": "checkout"}, "chat"),
    ({"alertname": "Custom", "severity": "page"}, "chat"),
]
BY_SEVERITY = {"critical": "pager,chat", "warning": "chat", "info": "chat-low-priority"}


def amtool(binaries: dict[str, Path], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return run([binaries["amtool"], *args])


def test_amtool_check_config(binaries: dict[str, Path]) -> None:
    result = amtool(binaries, "check-config", ALERTMANAGER_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "4 receivers" in result.stdout
    assert "1 inhibit rules" in result.stdout


@pytest.mark.parametrize(("labels", "receivers"), ROUTE_CASES, ids=lambda v: ",".join(v) if isinstance(v, dict) else v)
def test_amtool_routes(binaries: dict[str, Path], labels: dict[str, str], receivers: str) -> None:
    pairs = [f"{k}={v}" for k, v in labels.items()]
    result = amtool(
        binaries,
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receivers}",
        *pairs,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_the_route_cases_reach_every_route_and_receiver() -> None:
    routes = CONFIG["route"]["routes"]
    receivers = {r["name"] for r in CONFIG["receivers"]}
    assert {rs for _, r in ROUTE_CASES for rs in r.split(",")} == receivers
    # Each child route's matchers are matched by at least one case that reaches it.
    for route in routes:
        assert any(route["receiver"] in expected.split(",") for _, expected in ROUTE_CASES), route
    assert CONFIG["route"]["group_by"] == ["alertname", "service", "deployment_environment_name"]


def test_every_alert_of_the_rules_routes_by_its_severity(
    binaries: dict[str, Path], alert_rules: list[dict[str, Any]]
) -> None:
    seen = set()
    for rule in alert_rules:
        key = (rule["alert"], rule["labels"]["severity"])
        if key in seen:
            continue
        seen.add(key)
        expected = "heartbeat" if rule["alert"] == "Watchdog" else BY_SEVERITY[rule["labels"]["severity"]]
        result = amtool(
            binaries,
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--verify.receivers={expected}",
            f"alertname={key[0]}",
            f"severity={key[1]}",
            "service=checkout",
        )
        assert result.returncode == 0, f"{key}: {result.stdout}{result.stderr}"


def test_critical_inhibits_warning_of_the_same_alert_and_service() -> None:
    (rule,) = CONFIG["inhibit_rules"]
    assert rule["source_matchers"] == ['severity="critical"']
    assert rule["target_matchers"] == ['severity="warning"']
    assert {"alertname", "service"} <= set(rule["equal"])


def test_no_secret_is_in_the_config_or_the_repository() -> None:
    for receiver in CONFIG["receivers"]:
        for kind, configs in receiver.items():
            if kind == "name":
                continue
            for config in configs:
                inline = {"routing_key", "service_key", "api_url", "url", "webhook_url", "app_token"} & set(config)
                assert not inline, f"{receiver['name']}: {inline} inline; use the *_file variant"
                files = [v for k, v in config.items() if k.endswith("_file")]
                assert files, receiver["name"]
                assert all(f.startswith(SECRETS_DIR + "/") for f in files), receiver["name"]
                assert {Path(f).name for f in files} <= set(SECRET_PATHS)
    tracked = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "alertmanager/secrets"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(tracked) in ([], ["alertmanager/secrets/.gitignore", "alertmanager/secrets/README.md"])
    ignore = (REPO_ROOT / "alertmanager/secrets/.gitignore").read_text().split()
    assert ignore[-3:] == ["*", "!.gitignore", "!README.md"]


# --- the local variant --------------------------------------------------------------------------------------


def strip_timings(route: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in route.items() if k not in TIMING_KEYS and k != "routes"}
    if "routes" in route:
        out["routes"] = [strip_timings(r) for r in route["routes"]]
    return out


def test_the_local_variant_keeps_the_routes_and_points_receivers_at_loopback(
    binaries: dict[str, Path], tmp_path: Path
) -> None:
    text = local_variant(
        ALERTMANAGER_CONFIG, base_url="http://127.0.0.1:9999/", secrets_dir=tmp_path / "s", timings={"group_wait": "1s"}
    )
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    result = amtool(binaries, "check-config", path)
    assert result.returncode == 0, result.stdout + result.stderr
    variant = load_yaml(path)
    assert strip_timings(variant["route"]) == strip_timings(CONFIG["route"])
    assert variant["inhibit_rules"] == CONFIG["inhibit_rules"]
    assert variant["route"]["group_wait"] == "1s"
    assert variant["global"]["pagerduty_url"] == "http://127.0.0.1:9999/pager"
    assert (tmp_path / "s/slack_webhook_url").read_text() == "http://127.0.0.1:9999/chat\n"
    assert SECRETS_DIR not in text
    with pytest.raises(ValueError, match="unknown timing"):
        local_variant(ALERTMANAGER_CONFIG, base_url="http://x", secrets_dir=tmp_path / "s", timings={"group_by": "x"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture
def alertmanager(binaries: dict[str, Path], tmp_path: Path, receiver: WebhookReceiver) -> Iterator[str]:
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        local_variant(
            ALERTMANAGER_CONFIG,
            base_url=receiver.url,
            secrets_dir=tmp_path / "secrets",
            timings={"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            str(binaries["alertmanager"]),
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while not http.is_ready(f"{url}/-/ready"):
            assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "alertmanager.log").read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{url}/api/v2/alerts", data=json.dumps(alerts).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def alert(name: str, severity: str, service: str | None, *, resolved: bool = False) -> dict[str, Any]:
    now = datetime.now(UTC)
    labels = {"alertname": name, "severity": severity, "deployment_environment_name": "prod"}
    if service:
        labels.update(service=service, job=service)
    body: dict[str, Any] = {
        "labels": labels,
        "annotations": {
            "summary": f"{service}: {name}",
            "description": f"{name} on {service} (value 0.0625).",
            "runbook_url": f"{RUNBOOKS}/{name}.md",
        },
        # Started now, as Prometheus sends an alert the moment it fires. (Alertmanager flushes a new group at once
        # when its first alert started more than group_wait ago, which can beat the inhibitor to the critical one.)
        "startsAt": (now - timedelta(seconds=2 if resolved else 0)).isoformat(),
        "generatorURL": "http://127.0.0.1:9090/graph",
    }
    if resolved:
        body["endsAt"] = (now - timedelta(seconds=1)).isoformat()
    return body


def test_a_real_alertmanager_routes_inhibits_and_resolves(alertmanager: str, receiver: WebhookReceiver) -> None:
    post_alerts(
        alertmanager,
        [
            alert("HTTPErrorRateHigh", "critical", "checkout"),
            alert("HTTPErrorRateHigh", "warning", "checkout"),  # inhibited by the critical one
            alert("HTTPErrorRateHigh", "warning", "search"),  # another service: not inhibited
            alert("ErrorBudgetLow", "info", "checkout"),
            alert("Watchdog", "info", None),
        ],
    )
    receiver.wait_for(
        lambda: (
            bool(receiver.at("/pager") and receiver.at("/heartbeat") and receiver.at("/chat-low-priority"))
            and len(receiver.at("/chat")) >= 2
        )
    )
    # Pager: PagerDuty events v2, critical only, the runbook as a link and in the details.
    (page,) = receiver.at("/pager")
    assert page["event_action"] == "trigger"
    assert page["routing_key"] == "local-routing-key"
    assert page["payload"]["severity"] == "critical"
    assert page["links"] == [{"href": f"{RUNBOOKS}/HTTPErrorRateHigh.md", "text": "Runbook"}]
    assert page["payload"]["custom_details"]["runbook_url"] == f"{RUNBOOKS}/HTTPErrorRateHigh.md"
    assert "HTTPErrorRateHigh on checkout" in page["payload"]["summary"]
    # Chat: Slack webhook JSON; the critical one and the other service's warning, never the inhibited warning.
    titles = sorted(m["attachments"][0]["title"] for m in receiver.at("/chat"))
    assert titles == [  # the warning of checkout is inhibited
        "[FIRING:1] HTTPErrorRateHigh (critical) checkout",
        "[FIRING:1] HTTPErrorRateHigh (warning) search",
    ], [m["attachments"][0]["text"] for m in receiver.at("/chat")]
    for message in receiver.at("/chat"):
        attachment = message["attachments"][0]
        assert attachment["title_link"] == f"{RUNBOOKS}/HTTPErrorRateHigh.md"
        assert f"Runbook: {RUNBOOKS}/HTTPErrorRateHigh.md" in attachment["text"]
        assert attachment["actions"][0]["url"] == f"{RUNBOOKS}/HTTPErrorRateHigh.md"
        assert message["channel"] == "#alerts"
    (low,) = receiver.at("/chat-low-priority")
    assert low["channel"] == "#alerts-info"
    assert "ErrorBudgetLow" in low["attachments"][0]["title"]
    beat = receiver.at("/heartbeat")[0]
    assert beat["commonLabels"]["alertname"] == "Watchdog"
    assert beat["alerts"][0]["annotations"]["runbook_url"] == f"{RUNBOOKS}/Watchdog.md"
    # Alertmanager's own view: the checkout warning is suppressed by the critical one.
    alerts = http.get_json(f"{alertmanager}/api/v2/alerts", {"filter": 'alertname="HTTPErrorRateHigh"'})
    states = {(a["labels"]["service"], a["labels"]["severity"]): a["status"] for a in alerts}
    assert states["checkout", "warning"]["state"] == "suppressed"
    assert states["checkout", "warning"]["inhibitedBy"]
    assert states["search", "warning"]["state"] == "active"
    # Delivered once: no retries (each receiver answered like the real service) and no repeats within the hour.
    time.sleep(3)
    assert len(receiver.at("/pager")) == 1
    assert len(receiver.at("/chat")) == 2

    # The critical one resolves: the pager gets a resolve event for the same incident, and the warning it
    # inhibited reaches the chat.
    post_alerts(alertmanager, [alert("HTTPErrorRateHigh", "critical", "checkout", resolved=True)])
    receiver.wait_for(lambda: any(m["event_action"] == "resolve" for m in receiver.at("/pager")), what="resolve")
    resolve = next(m for m in receiver.at("/pager") if m["event_action"] == "resolve")
    assert resolve["dedup_key"] == page["dedup_key"]
    assert resolve["payload"]["summary"].startswith("[RESOLVED] HTTPErrorRateHigh on checkout")
    receiver.wait_for(lambda: len(receiver.at("/chat")) == 3, what="the uninhibited warning")
    text = receiver.at("/chat")[-1]["attachments"][0]["text"]
    assert "[critical, resolved]" in text
    assert "[warning]" in text
