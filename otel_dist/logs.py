"""Settings -> LoggerProvider: the OTel side of logging (records, limits, batch processors)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from otel_dist.exporters import log_exporters
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

    def _clean(self, record: ReadableLogRecord) -> ReadableLogRecord:
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
            provider.add_log_record_processor(
                BatchLogRecordProcessor(
                    RedactingLogExporter(exporter, redactor),
                    schedule_delay_millis=settings.log_schedule_delay * 1000,
                    max_export_batch_size=settings.log_batch_size,
                    export_timeout_millis=settings.log_export_timeout * 1000,
                    max_queue_size=settings.log_queue_size,
                    meter_provider=meter_provider,
                )
            )
    return provider
