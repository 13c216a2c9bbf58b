"""The regression check's logic and its bad-input handling (the real-Prometheus run is in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_dist.cli.main import main
from otel_dist.rules.regression import Figures, compare, measure, queries, table
from otel_dist.rules.spec import BaselineEntry
from otel_dist.stack.example import free_port

ROUTE = BaselineEntry("http_server_request_duration_seconds", (("job", "api"), ("http_route", "/x")), 0.2, 5.0)
PARSE = BaselineEntry(
    "operation_duration_seconds", (("job", "parser"), ("operation_name", "document.parse")), 0.8, None, 0.01
)


def test_queries_read_the_raw_histograms_of_the_series() -> None:
    q = queries(ROUTE, 0.99, "5m")
    bucket = 'http_server_request_duration_seconds_bucket{job="api", http_route="/x"}'
    assert q["latency"] == f"histogram_quantile(0.99, sum by (le) (rate({bucket}[5m])))"
    assert 'http_response_status_code=~"5.."' in q["errors"]
    assert (
        'operation_outcomes_total{job="parser", operation_name="document.parse", operation_outcome!="success"}'
        in (queries(PARSE, 0.99, "5m")["errors"])
    )
    other = BaselineEntry("render_duration_seconds", (("job", "docs"),), 1.0, None)
    assert "errors" not in queries(other, 0.95, "1m")


def test_compare_flags_latency_over_the_factor_and_errors_over_the_tolerance() -> None:
    assert compare(ROUTE, Figures(0.39, 5.0, 0.0), latency_factor=2, error_tolerance=0.01).status == "ok"
    slow = compare(ROUTE, Figures(0.41, 5.0, 0.0), latency_factor=2, error_tolerance=0.01)
    assert slow.status == "REGRESSION"
    assert slow.problems == ("latency 0.41s > 2 x 0.2s",)
    failing = compare(PARSE, Figures(0.5, 1.0, 0.03), latency_factor=2, error_tolerance=0.01)
    assert failing.problems == ("errors 3.00% > 2.00%",)
    assert compare(ROUTE, Figures(None, None, None), latency_factor=2, error_tolerance=0.01).status == "no data"
    text = table([slow, failing], percentile=0.99)
    assert text.splitlines()[0].split() == [
        "series",
        "p99",
        "now",
        "baseline",
        "ratio",
        "errors",
        "now",
        "baseline",
        "rate",
        "now",
        "status",
    ]
    assert "/x on api" in text
    assert "2.05x" in text
    assert "operation{job=parser, operation_name=document.parse}" in text


def test_nan_reads_as_no_data() -> None:
    figures = measure(ROUTE, lambda expr: float("nan"), percentile=0.99, window="5m")
    assert figures == Figures(None, None, None)


def test_an_unreachable_prometheus_or_a_bad_baseline_is_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nentries:\n  - labels: {job: a, http_route: /x}\n    latency_seconds: 1\n")
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["regression", "check", "--prometheus", url, "--baseline", str(baseline), "--timeout", "1"]) == 2
    assert f"Prometheus at {url}" in capsys.readouterr().err
    baseline.write_text("version: 1\nentries:\n  - labels: {job: a}\n    latency_seconds: 1\n")
    assert main(["regression", "check", "--prometheus", url, "--baseline", str(baseline)]) == 2
    assert "entries[0].labels: must name the route" in capsys.readouterr().err
    assert main(["regression", "check", "--prometheus", url, "--baseline", str(baseline), "--window", "5 min"]) == 2
    assert "--window: must be a duration" in capsys.readouterr().err
