"""End to end: `otel-dist regression check|record` against the real Prometheus, with the example app's real data.

The session's example app run (tests/e2e/conftest.py) answered fast item reads, slow requests (1.2 s), 404s and
unhandled exceptions. A baseline that says /slow used to take 100 ms makes that route a regression; the others
stay within their baselines; a route that got no traffic has no data. Recording a new baseline from the same data
and checking against it passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_dist.cli.main import main
from otel_dist.rules.spec import load_baseline
from otel_dist.stack import http
from otel_dist.stack.supervisor import Stack
from tests.e2e.conftest import Run, eventually

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]
WINDOW = "30m"  # the run happened earlier in the session


def test_the_regression_check_compares_prometheus_with_the_baseline(
    stack: Stack, runs: dict[str, Run], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = runs["configure"]
    job = run.service
    eventually(
        lambda: (
            http.promql(
                stack.prometheus_url, f'http_server_request_duration_seconds_count{{job="{job}", http_route="/slow"}}'
            )
            or None
        )
    )
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(
        "version: 1\n"
        "entries:\n"
        f'  - labels: {{job: {job}, http_route: "/items/{{item_id}}"}}\n'
        "    latency_seconds: 0.5\n"
        f"  - labels: {{job: {job}, http_route: /slow}}\n"
        "    latency_seconds: 0.1\n"
        f"  - labels: {{job: {job}, http_route: /fail}}\n"
        "    error_ratio: 1\n"
        f"  - labels: {{job: {job}, http_route: /never}}\n"
        "    latency_seconds: 0.1\n"
    )
    args = ["--prometheus", stack.prometheus_url, "--baseline", str(baseline), "--window", WINDOW]
    capsys.readouterr()
    assert main(["regression", "check", *args]) == 1
    out = capsys.readouterr().out
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert rows[f"/slow on {job}"].endswith("REGRESSION"), out
    assert rows["/items/{item_id} on " + job].endswith("ok"), out
    assert rows[f"/fail on {job}"].endswith("ok"), out  # every request fails, as recorded
    assert rows[f"/never on {job}"].endswith("no data"), out
    assert f"  /slow on {job}: latency " in out
    assert "> 2 x 0.1s" in out
    assert "FAILED: 1 regression(s), 1 series without data, of 4" in out

    # The figures themselves: /slow sleeps 1.2 s, so its p99 is in the (1 s, 2 s] bucket.
    recorded = tmp_path / "recorded.yaml"
    assert main(["regression", "record", *args, "--output", str(recorded)]) == 0
    entries = {dict(e.labels)["http_route"]: e for e in load_baseline(recorded)}
    assert entries["/slow"].latency_seconds is not None
    assert 1.0 < entries["/slow"].latency_seconds <= 2.0
    assert entries["/fail"].error_ratio == 1
    assert entries["/items/{item_id}"].error_ratio == 0
    assert entries["/never"].latency_seconds == 0.1  # no data: the old figure is kept
    capsys.readouterr()
    check_recorded = ["regression", "check", "--prometheus", stack.prometheus_url, "--baseline", str(recorded)]
    assert main([*check_recorded, "--window", WINDOW, "--allow-missing"]) == 0
    assert "passed: 0 regression(s), 1 series without data, of 4" in capsys.readouterr().out
