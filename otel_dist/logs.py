"""Settings -> LoggerProvider: the OTel side of logging (records, limits, batch processors)."""

from __future__ import annotations

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otel_dist.exporters import log_exporters
from otel_dist.self_metrics import sdk_self_metrics
from otel_dist.settings import Settings


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
    with sdk_self_metrics():
        for exporter in log_exporters(settings, meter_provider):
            provider.add_log_record_processor(
                BatchLogRecordProcessor(
                    exporter,
                    schedule_delay_millis=settings.log_schedule_delay * 1000,
                    max_export_batch_size=settings.log_batch_size,
                    export_timeout_millis=settings.log_export_timeout * 1000,
                    max_queue_size=settings.log_queue_size,
                    meter_provider=meter_provider,
                )
            )
    return provider
