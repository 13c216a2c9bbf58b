"""The wrapper's distro: which instrumentations it loads and what it hands them."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from otel_dist.distro import SKIPPED_INSTRUMENTATIONS, OtelDistDistro


class FakeInstrumentor:
    calls: ClassVar[list[dict[str, Any]]] = []

    def instrument(self, **kwargs: Any) -> None:
        FakeInstrumentor.calls.append(kwargs)


class FakeEntryPoint:
    def __init__(self, name: str) -> None:
        self.name = name

    def load(self) -> type[FakeInstrumentor]:
        return FakeInstrumentor


@pytest.mark.parametrize("name", sorted(SKIPPED_INSTRUMENTATIONS))
def test_instrumentations_that_fight_our_pipeline_are_not_loaded(name: str) -> None:
    FakeInstrumentor.calls.clear()
    OtelDistDistro().load_instrumentor(FakeEntryPoint(name))
    assert FakeInstrumentor.calls == []


def test_other_instrumentations_get_our_providers(configure) -> None:
    telemetry = configure(traces_exporter="console", metrics_exporter="console", logs_exporter="none")
    FakeInstrumentor.calls.clear()
    OtelDistDistro().load_instrumentor(FakeEntryPoint("pymongo"), skip_dep_check=True)
    [kwargs] = FakeInstrumentor.calls
    assert kwargs["tracer_provider"] is telemetry.tracer_provider
    assert kwargs["meter_provider"] is telemetry.meter_provider
    assert kwargs["skip_dep_check"] is True
