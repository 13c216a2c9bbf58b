"""End to end: the collector's tail-sampling overlay keeps every error and every slow trace, and a share of the rest.

A stack of its own with ``collector/tail-sampling.yaml`` merged in (``start_stack(collector_overlays=...)``, what
``otel-dist stack up --tail-sampling`` does), a short decision wait and 25 % for the rest. An SDK sends N traces
straight to the collector, each a SERVER span with a child: ERROR children, slow ones (their timestamps span
1.5 s, above the 1 s threshold), and plain fast ones. Jaeger must then hold every error and slow trace and about
25 % of the rest (binomial: 4 standard deviations either side), each trace whole.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from otel_dist.stack import http
from otel_dist.stack.supervisor import TAIL_SAMPLING_OVERLAY, Ports, Stack, start_stack
from tests.e2e.conftest import eventually
from tests.stack.binaries import stack_binaries

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

PERCENT = 25
FAST, ERRORS, SLOW = 240, 12, 12
SLOW_SECONDS = 1.5


@pytest.fixture(scope="module")
def sampling_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as env:  # the collector reads its overlay's settings from the environment
        env.setenv("OTELCOL_TAIL_SAMPLING_PERCENT", str(PERCENT))
        env.setenv("OTELCOL_TAIL_SAMPLING_DECISION_WAIT", "2s")
        env.setenv("OTELCOL_TAIL_SAMPLING_SLOW_MS", "1000")
        stack = start_stack(
            ports=Ports.free(),
            data_dir=tmp_path_factory.mktemp("sampling-stack"),
            binaries=stack_binaries(),
            collector_overlays=(TAIL_SAMPLING_OVERLAY,),
        )
    try:
        yield stack
    finally:
        stack.stop()


def send_traces(stack: Stack, service: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{stack.otlp_http_endpoint}/v1/traces"), max_queue_size=4096)
    )
    tracer = provider.get_tracer("tail-sampling-test")
    plan = ["fast"] * FAST + ["error"] * ERRORS + ["slow"] * SLOW
    for number, kind in enumerate(plan):
        now = time.time_ns()
        start = now - int(SLOW_SECONDS * 1e9) if kind == "slow" else now
        root = tracer.start_span(
            f"GET /{kind}", kind=SpanKind.SERVER, start_time=start, attributes={"case": kind, "number": number}
        )
        child = tracer.start_span("work", context=set_span_in_context(root), start_time=start)
        if kind == "error":
            child.set_status(Status(StatusCode.ERROR, "failed on purpose"))
        child.end(end_time=now)
        root.end(end_time=now)
    provider.force_flush(30_000)
    provider.shutdown()


def test_errors_and_slow_traces_are_kept_and_a_share_of_the_rest(sampling_stack: Stack) -> None:
    service = f"e2e-sampling-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC) - timedelta(seconds=SLOW_SECONDS + 5)
    send_traces(sampling_stack, service)

    def kept() -> dict[str, list[dict[str, object]]]:
        return http.jaeger_traces(sampling_stack.jaeger_url, service, start, datetime.now(UTC) + timedelta(seconds=5))

    def cases() -> Counter[str]:
        traces = kept()
        counted: Counter[str] = Counter()
        for spans in traces.values():
            assert len(spans) == 2, spans  # whole traces: the root and its child
            root = next(s for s in spans if not s.get("parentSpanId"))
            counted[str(http.attributes(root["attributes"])["case"])] += 1
        assert (counted["error"], counted["slow"]) == (ERRORS, SLOW), counted
        return counted

    eventually(cases, timeout=60, interval=1.0)
    time.sleep(3)  # every decision was made together (one decision wait); let the last exports land
    counted = cases()
    expected = FAST * PERCENT / 100
    spread = 4 * math.sqrt(FAST * PERCENT / 100 * (1 - PERCENT / 100))
    print(f"kept {counted['fast']} of {FAST} fast traces (expected {expected:.0f} +- {spread:.0f})")
    assert expected - spread <= counted["fast"] <= expected + spread, counted
