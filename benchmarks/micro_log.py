"""Micro-benchmark: the CPU cost of one log line, one case per process (stdout goes to /dev/null).

Cases (``python benchmarks/micro_log.py CASE --lines N --result FILE``):

``stdlib``            ``logging`` with one StreamHandler and a plain format (what the bare app does)
``structlog``         structlog alone, a typical fast production set-up: level, ISO timestamp, orjson
                      JSON, BytesLogger, cached loggers
``ours_stdout``       otel-dist's chain with no OTel export (logs exporter ``none``): identity, trace
                      context, request ID, redaction, orjson rendering
``ours_otlp``         otel-dist full: the same line also emitted as an OTel log record and exported over
                      OTLP/HTTP to the sink (export is in the batch processor's thread; counted in ``process``)
``ours_stdlib_otlp``  otel-dist full, the line written through a stdlib ``logging`` logger (ProcessorFormatter)

The otel-dist cases log inside a recording span with a request ID bound, as inside a request. ``main`` is the
calling thread's CPU (the request path); ``process`` adds the export thread (flushed inside the window). Each
case runs with ``OTEL_DIST_FAST_EXPORT`` as the harness sets it (``*_stock`` cases: off).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _stdlib() -> Callable[[], None]:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    logger = logging.getLogger("app")
    return lambda: logger.info("item.fetched item_id=%s", 42)


def _structlog() -> Callable[[], None]:
    import orjson
    import structlog

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.BytesLoggerFactory(sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )
    logger = structlog.get_logger("app")
    return lambda: logger.info("item.fetched", item_id=42)


def _ours(export: bool, via_stdlib: bool) -> Callable[[], None]:
    from opentelemetry import trace

    import otel_dist
    from otel_dist.context import set_request_id

    otel_dist.configure(
        service_name="bench",
        traces_exporter="otlp",
        metrics_exporter="none",
        logs_exporter="otlp" if export else "none",
        system_metrics=False,
        # A loop that never blocks starves the export thread of the GIL (a server waits on sockets between
        # requests): with the default queue of 2,048 records, records would be dropped, and each drop costs a
        # warning record on the calling thread. The big queue keeps every record; the flush inside the window
        # exports them, so their whole cost is counted.
        log_queue_size=1_000_000,
    )
    span = trace.get_tracer("bench").start_span("GET /items/{item_id}")
    trace.use_span(span, end_on_exit=False).__enter__()  # current for the rest of the process
    set_request_id("0af7651916cd43dd8448eb211c80319c")
    if via_stdlib:
        std = logging.getLogger("app")
        return lambda: std.info("item.fetched item_id=%s", 42)
    logger = otel_dist.get_logger("app")
    return lambda: logger.info("item.fetched", item_id=42)


CASES: dict[str, Callable[[], Callable[[], None]]] = {
    "stdlib": _stdlib,
    "structlog": _structlog,
    "ours_stdout": lambda: _ours(export=False, via_stdlib=False),
    "ours_otlp": lambda: _ours(export=True, via_stdlib=False),
    "ours_stdlib_otlp": lambda: _ours(export=True, via_stdlib=True),
}


def _flush() -> None:
    try:
        import otel_dist
    except ImportError:
        return
    telemetry = otel_dist.current()
    if telemetry is not None and telemetry.logger_provider is not None:
        telemetry.logger_provider.force_flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    log_line = CASES[args.case]()
    for _ in range(min(2000, args.lines)):
        log_line()
    _flush()
    cpu0, main0 = time.process_time(), time.thread_time()
    for _ in range(args.lines):
        log_line()
    main1 = time.thread_time()
    _flush()
    cpu1 = time.process_time()
    result: dict[str, Any] = {
        "case": args.case,
        "lines": args.lines,
        "main_us": (main1 - main0) * 1e6 / args.lines,
        "process_us": (cpu1 - cpu0) * 1e6 / args.lines,
    }
    Path(args.result).write_text(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)  # skip the exit hooks' final flush: nothing is left to export


if __name__ == "__main__":
    main()
