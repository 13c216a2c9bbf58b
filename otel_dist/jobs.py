"""Batch jobs: short-lived processes (scrapers, ETL runs, cron jobs) that report one run each.

    otel_dist.configure(service_name="scraper")
    with otel_dist.batch_job("scrape.bills") as job:
        for bill in fetch():
            store(bill)
            job.processed()

A run records ``job.run.duration`` (s) and ``job.runs`` labelled ``job.name`` and ``job.outcome``
(``success`` / ``error``, with ``error.type``), ``job.items.processed`` and ``job.items.failed``, and on success
the gauge ``job.last_success.timestamp`` (s since the epoch), which a staleness alert compares with ``time()``.
It opens a span for the run and logs ``job.completed`` / ``job.failed``. On the way out it flushes every signal
(within the shutdown deadline): a process that exits right after must not lose its last run.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Final

import structlog
from opentelemetry import metrics, trace
from opentelemetry.trace import Status, StatusCode

__all__ = ["BatchJob", "batch_job"]

_SCOPE: Final = "otel_dist.jobs"
_log = structlog.get_logger(_SCOPE)


class BatchJob:
    """One run of a batch job; use :func:`batch_job`."""

    def __init__(self, name: str, flush: bool) -> None:
        self.name = name
        self.flush = flush
        self.items_processed = 0
        self.items_failed = 0
        self._started = 0.0
        self._span_context: Any = None

    def processed(self, count: int = 1) -> None:
        """Count items this run handled."""
        self.items_processed += count

    def failed(self, count: int = 1) -> None:
        """Count items this run could not handle (the run itself may still succeed)."""
        self.items_failed += count

    def __enter__(self) -> BatchJob:
        tracer = trace.get_tracer(_SCOPE)
        self._span_context = tracer.start_as_current_span(f"job {self.name}", attributes={"job.name": self.name})
        self._span_context.__enter__()
        self._started = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        elapsed = time.perf_counter() - self._started
        meter = metrics.get_meter(_SCOPE)
        labels: dict[str, str] = {"job.name": self.name, "job.outcome": "success" if error is None else "error"}
        if error is not None:
            labels["error.type"] = type(error).__qualname__
        meter.create_histogram("job.run.duration", unit="s", description="Duration of batch job runs.").record(
            elapsed, labels
        )
        meter.create_counter("job.runs", unit="{run}", description="Batch job runs by outcome.").add(1, labels)
        names = {"job.name": self.name}
        meter.create_counter("job.items.processed", unit="{item}", description="Items handled by batch jobs.").add(
            self.items_processed, names
        )
        meter.create_counter("job.items.failed", unit="{item}", description="Items batch jobs could not handle.").add(
            self.items_failed, names
        )
        if error is None:
            meter.create_gauge(
                "job.last_success.timestamp", unit="s", description="When the batch job last succeeded (Unix time)."
            ).set(time.time(), names)
        span = trace.get_current_span()
        span.set_attributes({"job.items.processed": self.items_processed, "job.items.failed": self.items_failed})
        fields = {
            "job": self.name,
            "duration_s": round(elapsed, 3),
            "items_processed": self.items_processed,
            "items_failed": self.items_failed,
        }
        if error is None:
            _log.info("job.completed", **fields)
        else:
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__qualname__}: {error}"))
            _log.error("job.failed", **fields, exc_info=error)
        self._span_context.__exit__(kind, error, tb)
        if self.flush:
            from otel_dist import bootstrap

            telemetry = bootstrap.current()
            if telemetry is not None:
                telemetry.force_flush()


def batch_job(name: str, *, flush: bool = True) -> BatchJob:
    """Report one run of batch job ``name`` (a bounded name: one per job, not per run)."""
    return BatchJob(name, flush)
