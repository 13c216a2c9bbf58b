"""Shared fixtures: a real OTLP receiver, and configure() with guaranteed teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import otel_dist
from otel_dist.bootstrap import Extras
from otel_dist.testing import reset_global_providers
from tests.support.otlp_receiver import OtlpReceiver, running_http_receiver

#: Fast export for tests: small delays so a flush is rarely needed, no process metrics noise.
FAST: dict[str, Any] = {
    "metric_export_interval": 0.2,
    "span_schedule_delay": 0.05,
    "log_schedule_delay": 0.05,
    "system_metrics": False,
    "handle_sigterm": False,
    "export_timeout": 2.0,
}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with running_http_receiver() as receiver:
        yield receiver


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., otel_dist.Telemetry]]:
    """configure() with test-friendly defaults; shut down and forgotten after the test."""
    for variable in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_DIST_ENVIRONMENT"):
        monkeypatch.delenv(variable, raising=False)
    handles: list[otel_dist.Telemetry] = []

    def run(**options: Any) -> otel_dist.Telemetry:
        options.setdefault("_extras", Extras(cache_loggers=False))
        telemetry = otel_dist.configure(**{**FAST, **options})
        handles.append(telemetry)
        return telemetry

    yield run
    for telemetry in handles:
        telemetry.shutdown(timeout=3)
    reset_global_providers()
