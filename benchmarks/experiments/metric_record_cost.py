"""Experiment: the CPU cost of one HTTP-metric measurement in the OTel SDK, the way a request records it.

Per request, full mode records five measurements (FastAPI's duration histogram and two active-requests
up/down-counter adds; our request and response body-size histograms). This times one measurement of each kind
with the HTTP attribute set, inside a sampled span (so the trace-based exemplar filter offers an exemplar), with
exemplars on and off, and with the attribute dict built per call or reused. Run with the ``ours`` environment::

    benchmarks/.venvs/ours/bin/python benchmarks/experiments/metric_record_cost.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider, TraceBasedExemplarFilter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

N = 50000


def _attributes() -> dict[str, Any]:
    return {
        "http.request.method": "GET",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
    }


def _per_call(action: Callable[[], None]) -> float:
    for _ in range(2000):
        action()
    started = time.thread_time()
    for _ in range(N):
        action()
    return (time.thread_time() - started) / N * 1e6


def _measure(label: str, exemplar_filter: Any) -> None:
    provider = MeterProvider(
        metric_readers=[InMemoryMetricReader()], exemplar_filter=exemplar_filter, shutdown_on_exit=False
    )
    meter = provider.get_meter("bench")
    histogram = meter.create_histogram("http.server.request.duration", unit="s")
    counter = meter.create_up_down_counter("http.server.active_requests")
    shared = _attributes()
    results = {
        "histogram.record, new attribute dict": _per_call(lambda: histogram.record(0.001, _attributes())),
        "histogram.record, reused dict": _per_call(lambda: histogram.record(0.001, shared)),
        "up_down_counter.add, new attribute dict": _per_call(lambda: counter.add(1, _attributes())),
        "building the attribute dict alone": _per_call(lambda: _attributes().clear()),
    }
    for name, value in results.items():
        print(f"{label:12s} {name:42s} {value:6.2f} us")
    provider.shutdown()


def main() -> None:
    span = TracerProvider(shutdown_on_exit=False).get_tracer("bench").start_span("request")
    with trace.use_span(span, end_on_exit=True):
        _measure("exemplars on", TraceBasedExemplarFilter())
        _measure("off", AlwaysOffExemplarFilter())


if __name__ == "__main__":
    main()
