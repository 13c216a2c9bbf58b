"""A small instrumented program for the subprocess tests: run it directly or under opentelemetry-instrument.

python sample_app.py configure          # calls otel_dist.configure() itself
opentelemetry-instrument python sample_app.py wrapper
... --wait                              # then waits (for signal tests)
"""

from __future__ import annotations

import logging
import sys
import time

from opentelemetry import metrics, trace

import otel_dist

if "configure" in sys.argv:
    otel_dist.configure()

log = otel_dist.get_logger("sample")
with trace.get_tracer("sample").start_as_current_span("work"):
    log.info("work.done", items=3)
    logging.getLogger("lib").warning("stdlib.line")
metrics.get_meter("sample").create_counter("sample.items").add(3)

if "--wait" in sys.argv:
    print("ready", flush=True)
    time.sleep(60)
