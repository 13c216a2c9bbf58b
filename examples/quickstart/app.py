"""Quickstart: a small document-processing job instrumented with one configure() call.

Run it with any OTLP endpoint (a collector on 127.0.0.1:4318 by default)::

    OTEL_SERVICE_NAME=quickstart python examples/quickstart/app.py
"""

from __future__ import annotations

import logging
import random
import time

from opentelemetry import metrics, trace

import otel_dist

telemetry = otel_dist.configure(service_name="quickstart", service_version="0.1.0")
log = otel_dist.get_logger("quickstart")
tracer = trace.get_tracer("quickstart")
meter = metrics.get_meter("quickstart")
parse_duration = meter.create_histogram("document.parse.duration", unit="s", description="Time to parse one document")
documents = meter.create_counter("document.parsed", unit="{document}", description="Documents parsed, by outcome")


def parse(name: str, size: int) -> None:
    with tracer.start_as_current_span("parse", attributes={"document.name": name, "document.size": size}) as span:
        started = time.perf_counter()
        time.sleep(size / 100_000)
        if name.endswith("7"):
            error = ValueError(f"unsupported syntax in {name}")
            span.record_exception(error)
            span.set_status(trace.StatusCode.ERROR, str(error))
            log.error("document.failed", document=name, reason=str(error))
            outcome = "error"
        else:
            log.info("document.parsed", document=name, size=size)
            outcome = "success"
        parse_duration.record(time.perf_counter() - started, {"outcome": outcome})
        documents.add(1, {"outcome": outcome})


for number in range(1, 11):
    parse(f"doc-{number}", random.randint(1_000, 20_000))
logging.getLogger("quickstart.stdlib").warning("stdlib logging goes through the same pipeline")
telemetry.shutdown()
