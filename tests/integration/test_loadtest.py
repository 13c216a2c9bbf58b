"""The load test: bounded, loopback only, and a real smoke run of the capacity report (no timing assertions)."""

from __future__ import annotations

import pytest

from otel_dist.stack.loadtest import (
    MAX_USERS,
    LoadTestError,
    Stats,
    capacity,
    check_bounds,
    is_loopback,
    main,
    report,
)


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://127.0.0.9:1", True),
        ("http://localhost:8000", True),
        ("http://[::1]:8000", True),
        ("http://10.0.0.1:8000", False),
        ("https://example.org", False),
        ("not a url", False),
    ],
)
def test_only_loopback_hosts(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


def test_runs_beyond_the_bounds_are_refused() -> None:
    with pytest.raises(LoadTestError, match="loopback addresses only"):
        check_bounds("http://example.org", 1, 10, 10)
    with pytest.raises(LoadTestError, match="users must be"):
        check_bounds("http://127.0.0.1:1", MAX_USERS + 1, 10, 10)
    with pytest.raises(LoadTestError, match="requests must be"):
        check_bounds("http://127.0.0.1:1", 1, 0, 10)
    with pytest.raises(LoadTestError, match="seconds must be"):
        check_bounds("http://127.0.0.1:1", 1, 10, 3600)
    assert main(["run", "--host", "http://192.0.2.1:80", "--requests", "10"]) == 2


def test_percentiles_follow_locusts_rounded_histogram() -> None:
    stats = Stats("x", 100, 0, 10.0, {5.0: 90, 50.0: 8, 400.0: 2})
    assert (stats.percentile(0.5), stats.percentile(0.95), stats.percentile(0.99)) == (5.0, 50.0, 400.0)
    assert stats.rate == 10.0
    assert Stats("none", 0, 0, 0.0, {}).percentile(0.95) is None


def test_a_capacity_smoke_run_against_the_real_parser_service(capsys: pytest.CaptureFixture[str]) -> None:
    results, exporter = capacity("parser", [1, 2], seconds=5, requests=40)
    assert [r.users for r in results] == [1, 2]
    for result in results:
        assert 0 < result.total.requests <= 40 + result.users  # the bound stops the run (in-flight ones finish)
        assert result.total.failures == 0, result.output[-2000:]
        names = {s.name for s in result.by_name}
        assert "POST /parse small moderate" in names
    text = report("parser", results, seconds=5, exporter=exporter, command="test")
    assert "| users | requests | failures | requests/s | p50 | p95 | p99 |" in text
    assert text.count("\n| 1 | ") == 1
    assert text.count("\n| 2 | ") == 1
    assert "in-process OTLP receiver" in text
