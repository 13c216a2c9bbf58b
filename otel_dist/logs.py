"""Settings -> LoggerProvider: the OTel side of logging (records, limits, batch processors).

With ``fast_export`` the batch processors are :class:`LeanBatchLogRecordProcessor`: the SDK's batch processor
(bounded queue, timer thread, flush and shutdown, ``otel.sdk.processor.log.*`` self-metrics) that also takes
:class:`~otel_dist.otlp_encoding.LeanLogRecord` straight into its queue. :class:`LeanLogPath` tells the logging
pipeline when it may use that path: only while every processor of the provider takes lean records (a processor
added later, such as the test fixture's in-memory one, switches it back to the SDK's ``Logger.emit``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from otel_dist.exporters import log_exporters
from otel_dist.otlp_encoding import LeanLogRecord
from otel_dist.scrubbing import TEXT_ATTRIBUTES, Redactor
from otel_dist.self_metrics import sdk_self_metrics
from otel_dist.settings import Settings


class RedactingLogExporter(LogRecordExporter):
    """Blanks secrets the SDK adds to records after our processors ran: the ``exception.message`` and
    ``exception.stacktrace`` it derives from the exception object (fields and messages are redacted earlier, in
    the logging chain). Runs in the batch thread and copies only the records it changes."""

    def __init__(self, inner: LogRecordExporter, redactor: Redactor) -> None:
        self._inner = inner
        self._redactor = redactor

    @property
    def takes_lean_records(self) -> bool:
        """Lean records pass through unchanged: they never carry exception attributes (events with an exception
        take the SDK's path), and their fields were redacted in the logging chain."""
        return bool(getattr(self._inner, "takes_lean_records", False))

    def _clean(self, record: ReadableLogRecord) -> ReadableLogRecord:
        if isinstance(record, LeanLogRecord):
            return record
        attributes = record.log_record.attributes
        if not attributes or not any(key in attributes for key in TEXT_ATTRIBUTES):
            return record
        changed = {
            key: self._redactor.redact_text(value) if key in TEXT_ATTRIBUTES and isinstance(value, str) else value
            for key, value in attributes.items()
        }
        if changed == dict(attributes):
            return record
        log_record = copy.copy(record.log_record)
        log_record.attributes = changed
        return dataclasses.replace(record, log_record=log_record)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return self._inner.export([self._clean(record) for record in batch])

    def shutdown(self) -> None:
        self._inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class LeanBatchLogRecordProcessor(BatchLogRecordProcessor):
    """The SDK's BatchLogRecordProcessor, also fed LeanLogRecords by :meth:`emit_lean`.

    Lean records skip what ``Logger.emit`` and ``on_emit`` do per record on the request path (a LogRecord, a
    ReadWriteLogRecord with attribute validation, a copy into a ReadableLogRecord): the logging pipeline has
    made the values final already. They share the queue, its bound and its drop counting
    (``otel.sdk.processor.log.processed{error.type="queue_full"}``) with the SDK's records.
    """

    def emit_lean(self, record: LeanLogRecord) -> None:
        self._batch_processor.emit(record)  # type: ignore[arg-type]  # the exporter encodes both kinds


def _takes_lean_records(exporter: LogRecordExporter) -> bool:
    return bool(getattr(exporter, "takes_lean_records", False))


def build_logger_provider(settings: Settings, resource: Resource, meter_provider: MeterProvider) -> LoggerProvider:
    """A LoggerProvider with one batch processor per configured exporter (none: records are dropped early)."""
    provider = LoggerProvider(
        resource=resource,
        shutdown_on_exit=False,
        meter_provider=meter_provider,
        log_record_limits=LogRecordLimits(
            max_attributes=settings.attribute_count_limit,
            max_attribute_length=settings.attribute_value_length_limit,
            max_log_record_attributes=settings.attribute_count_limit,
            max_log_record_attribute_length=settings.attribute_value_length_limit,
        ),
    )
    redactor = Redactor(settings.redact_keys, settings.redact_allow)
    with sdk_self_metrics():
        for exporter in log_exporters(settings, meter_provider):
            redacting = RedactingLogExporter(exporter, redactor)
            processor_class = LeanBatchLogRecordProcessor if _takes_lean_records(redacting) else BatchLogRecordProcessor
            provider.add_log_record_processor(
                processor_class(
                    redacting,
                    schedule_delay_millis=settings.log_schedule_delay * 1000,
                    max_export_batch_size=settings.log_batch_size,
                    export_timeout_millis=settings.log_export_timeout * 1000,
                    max_queue_size=settings.log_queue_size,
                    meter_provider=meter_provider,
                )
            )
    return provider


Emit = Callable[[LeanLogRecord], None]


class LeanLogPath:
    """The lean emitters of ``provider`` while all of its processors take lean records, else None.

    Checked on every record, cheaply: the SDK replaces its tuple of processors when one is added, so an identity
    comparison notices. A provider that is not the SDK's (or an SDK that keeps its processors elsewhere) never
    gets the lean path.
    """

    def __init__(self, provider: Any) -> None:
        self._multi = getattr(provider, "_multi_log_record_processor", None)
        # (the processors tuple it was computed for, the emitters): replaced as one, so threads agree
        self._state: tuple[object, tuple[Emit, ...] | None] = (object(), None)

    def emitters(self) -> tuple[Emit, ...] | None:
        processors = getattr(self._multi, "_log_record_processors", None)
        seen, emitters = self._state
        if processors is not seen:
            lean = isinstance(processors, tuple) and all(isinstance(p, LeanBatchLogRecordProcessor) for p in processors)
            emitters = tuple(p.emit_lean for p in processors) if lean and processors is not None else None
            self._state = (processors, emitters)
        return emitters
