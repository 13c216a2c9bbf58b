"""The metric names rules, dashboards and runbooks use: the one list, checked against the real stack.

Names follow the naming contract of collector/README.md (OTLP -> Prometheus with
``UnderscoreEscapingWithSuffixes``). ``SERVICE_METRICS`` is what an otel-dist service emits (tests/e2e checks
that the example app produces each of them), ``COLLECTOR_METRICS`` what the collector serves, and
``RECORDED`` what the rendered recording rules produce, ``DOMAIN_METRICS`` what the domain helpers emit in the
services that use them, ``CLIENT_METRICS`` what the database, cache and HTTP client telemetry emits in a service
that uses those clients (both checked end to end with the examples under examples/). Dashboards may query only
these (tests/rules checks it). ``ASSUMED_METRICS`` are not emitted yet: alerts on them are promtool-tested with
synthetic series, and dashboards must not use them until something emits them.
"""

from __future__ import annotations

from typing import Final

# --- what an otel-dist service emits (OTLP -> Prometheus) --------------------------------------------------

HTTP_DURATION_BUCKET: Final = "http_server_request_duration_seconds_bucket"
HTTP_DURATION_COUNT: Final = "http_server_request_duration_seconds_count"
HTTP_DURATION_SUM: Final = "http_server_request_duration_seconds_sum"
HTTP_ACTIVE_REQUESTS: Final = "http_server_active_requests"
PROCESS_CPU_TIME: Final = "process_cpu_time_seconds_total"
PROCESS_CPU_UTILIZATION: Final = "process_cpu_utilization_ratio"
PROCESS_MEMORY_USAGE: Final = "process_memory_usage_bytes"
PROCESS_MEMORY_LIMIT: Final = "process_memory_limit_bytes"
HEALTH_CHECK_STATUS: Final = "health_check_status_ratio"
#: Whether a health check gates readiness ("true"/"false"; series older than the label count as required).
HEALTH_CHECK_REQUIRED: Final = "health_check_required"
#: system.filesystem.usage of the filesystems under the service's paths (otel_dist.filesystem_metrics), unit By,
#: labels FS_MOUNTPOINT, FS_DEVICE, FS_TYPE, FS_MODE (rw/ro) and FS_STATE (used/free/reserved).
FILESYSTEM_USAGE: Final = "system_filesystem_usage_bytes"
FS_MOUNTPOINT: Final = "system_filesystem_mountpoint"
FS_DEVICE: Final = "system_device"
FS_TYPE: Final = "system_filesystem_type"
FS_MODE: Final = "system_filesystem_mode"
FS_STATE: Final = "system_filesystem_state"
TARGET_INFO: Final = "target_info"

#: Labels every application series carries (collector/README.md), besides its own attributes.
SERVICE_LABELS: Final = ("job", "instance", "deployment_environment_name", "service_version")

SERVICE_METRICS: Final = frozenset(
    {
        HTTP_DURATION_BUCKET,
        HTTP_DURATION_COUNT,
        HTTP_DURATION_SUM,
        HTTP_ACTIVE_REQUESTS,
        *(
            f"http_server_{kind}_body_size_bytes_{s}"
            for kind in ("request", "response")
            for s in ("bucket", "count", "sum")
        ),
        PROCESS_CPU_TIME,
        PROCESS_CPU_UTILIZATION,
        PROCESS_MEMORY_USAGE,
        PROCESS_MEMORY_LIMIT,
        "process_memory_virtual_bytes",
        "process_open_file_descriptor_count",
        "process_thread_count",
        "process_context_switches_total",
        "cpython_gc_collections_total",
        "cpython_gc_collected_objects_total",
        "cpython_gc_uncollectable_objects_total",
        HEALTH_CHECK_STATUS,
        FILESYSTEM_USAGE,
        "health_check_duration_seconds_bucket",
        "health_check_duration_seconds_count",
        "health_check_duration_seconds_sum",
        "otel_sdk_processor_span_processed_total",
        "otel_sdk_processor_log_processed_total",
        "otel_sdk_processor_span_queue_size",
        "otel_sdk_processor_span_queue_capacity",
        "otel_sdk_processor_log_queue_size",
        "otel_sdk_processor_log_queue_capacity",
        "otel_sdk_exporter_span_exported_total",
        "otel_sdk_exporter_log_exported_total",
        "otel_sdk_exporter_metric_data_point_exported_total",
        "otel_sdk_exporter_span_inflight",
        "otel_sdk_exporter_log_inflight",
        "otel_sdk_exporter_metric_data_point_inflight",
        "otel_sdk_exporter_operation_duration_seconds_bucket",
        "otel_sdk_exporter_operation_duration_seconds_count",
        "otel_sdk_exporter_operation_duration_seconds_sum",
        TARGET_INFO,
    }
)

#: The SDK's counters of lost telemetry (``error_type`` set): processor drops and failed exports.
SDK_LOSS_REGEX: Final = (
    "otel_sdk_processor_(span|log)_processed_total|otel_sdk_exporter_(span|log|metric_data_point)_exported_total"
)

# --- the domain helpers: emitted by a service that uses them (track_operation, batch_job, security_event) ----

OPERATION_DURATION_BUCKET: Final = "operation_duration_seconds_bucket"
OPERATION_DURATION_COUNT: Final = "operation_duration_seconds_count"
OPERATION_OUTCOMES: Final = "operation_outcomes_total"
OPERATION_ACTIVE: Final = "operation_active"
OPERATION_INPUT_SIZE_BUCKET: Final = "operation_input_size_bytes_bucket"
OPERATION_MEMORY_PEAK_BUCKET: Final = "operation_memory_peak_bytes_bucket"
JOB_RUNS: Final = "job_runs_total"
JOB_LAST_SUCCESS: Final = "job_last_success_timestamp_seconds"
SECURITY_EVENTS: Final = "security_events_total"
#: What the helpers emit when a service uses them (tests/e2e checks each against the example that does).
DOMAIN_METRICS: Final = frozenset(
    {
        *(f"operation_duration_seconds_{s}" for s in ("bucket", "count", "sum")),
        OPERATION_OUTCOMES,
        OPERATION_ACTIVE,
        *(f"operation_input_size_bytes_{s}" for s in ("bucket", "count", "sum")),
        *(f"operation_memory_peak_bytes_{s}" for s in ("bucket", "count", "sum")),
        JOB_RUNS,
        *(f"job_run_duration_seconds_{s}" for s in ("bucket", "count", "sum")),
        "job_items_processed_total",
        "job_items_failed_total",
        JOB_LAST_SUCCESS,
        SECURITY_EVENTS,
    }
)

# --- the collector's own metrics (scraped, job="otelcol") --------------------------------------------------

COLLECTOR_QUEUE_SIZE: Final = "otelcol_exporter_queue_size"
COLLECTOR_QUEUE_CAPACITY: Final = "otelcol_exporter_queue_capacity"
_ITEMS: Final = ("spans", "metric_points", "log_records")
COLLECTOR_METRICS: Final = frozenset(
    {
        COLLECTOR_QUEUE_SIZE,
        COLLECTOR_QUEUE_CAPACITY,
        *(f"otelcol_receiver_{what}_{item}_total" for what in ("accepted", "refused") for item in _ITEMS),
        *(f"otelcol_exporter_sent_{item}_total" for item in _ITEMS),
        "otelcol_processor_filter_spans_filtered_total",
        "otelcol_process_memory_rss_bytes",
        "otelcol_process_cpu_seconds_total",
    }
)
#: Counters the collector creates with the first failure: absent means zero (collector/README.md).
COLLECTOR_FAILURE_METRICS: Final = frozenset(
    {
        *(f"otelcol_exporter_{what}_{item}_total" for what in ("send_failed", "enqueue_failed") for item in _ITEMS),
        *(f"otelcol_receiver_failed_{item}_total" for item in _ITEMS),
    }
)

#: Prometheus's own series about its targets.
PROMETHEUS_METRICS: Final = frozenset({"up"})

# --- client libraries: emitted by a service that uses them (otel_dist.db, otel_dist.cache, httpx) -------------

#: OTel DB client semantic conventions (db.client.connection.count {state=used|idle}, db.client.connection.max,
#: attribute db.client.connection.pool.name): UpDownCounters, so no _total, and "{connection}" adds no suffix.
DB_CONNECTION_COUNT: Final = "db_client_connection_count"
DB_CONNECTION_MAX: Final = "db_client_connection_max"
DB_CONNECTION_STATE: Final = "db_client_connection_state"
DB_POOL_NAME: Final = "db_client_connection_pool_name"
DB_CONNECTION_PENDING: Final = "db_client_connection_pending_requests"
DB_CONNECTION_TIMEOUTS: Final = "db_client_connection_timeouts_total"
DB_CONNECTION_WAIT_BUCKET: Final = "db_client_connection_wait_time_seconds_bucket"
DB_CONNECTION_WAIT_COUNT: Final = "db_client_connection_wait_time_seconds_count"
#: db.client.operation.duration (s), labels db_system_name, db_namespace, db_operation_name, db_collection_name,
#: error_type: one series per statement kind and table.
DB_OPERATION_DURATION_BUCKET: Final = "db_client_operation_duration_seconds_bucket"
DB_OPERATION_DURATION_COUNT: Final = "db_client_operation_duration_seconds_count"
#: cache.lookups (otel_dist.cache_lookup), labels cache_name, cache_outcome=hit|miss.
CACHE_LOOKUPS: Final = "cache_lookups_total"
#: http.client.request.duration (httpx), labels http_request_method, http_response_status_code, server_address.
HTTP_CLIENT_DURATION_BUCKET: Final = "http_client_request_duration_seconds_bucket"
_HISTOGRAM: Final = ("bucket", "count", "sum")
CLIENT_METRICS: Final = frozenset(
    {
        DB_CONNECTION_COUNT,
        DB_CONNECTION_MAX,
        DB_CONNECTION_PENDING,
        DB_CONNECTION_TIMEOUTS,
        *(f"db_client_connection_wait_time_seconds_{s}" for s in _HISTOGRAM),
        *(f"db_client_operation_duration_seconds_{s}" for s in _HISTOGRAM),
        CACHE_LOOKUPS,
        *(f"http_client_request_duration_seconds_{s}" for s in _HISTOGRAM),
    }
)

# --- not emitted yet ------------------------------------------------------------------------------------------

ASSUMED_METRICS: Final = frozenset[str]()

# --- recording rules (render.py) ---------------------------------------------------------------------------

ROUTE_REQUESTS_RATE: Final = "job_http_route:http_server_requests:rate5m"
ROUTE_ERRORS_RATE: Final = "job_http_route:http_server_request_errors:rate5m"
ROUTE_ERROR_RATIO: Final = "job_http_route:http_server_request_errors:ratio_rate5m"
JOB_REQUESTS_RATE: Final = "job:http_server_requests:rate5m"
JOB_ERRORS_RATE: Final = "job:http_server_request_errors:rate5m"
JOB_ERROR_RATIO: Final = "job:http_server_request_errors:ratio_rate5m"
SLO_OBJECTIVE: Final = "job:slo_objective:ratio"
SLO_LATENCY_THRESHOLD: Final = "job:slo_latency_threshold:seconds"
SLO_BUDGET_REMAINING: Final = "job:slo_error_budget_remaining:ratio"
FILESYSTEM_FREE_RATIO: Final = "mountpoint:system_filesystem_free:ratio"


def route_quantile(name: str) -> str:
    """``p95`` -> the per-route latency quantile recording."""
    return f"job_http_route:http_server_request_duration_seconds:{name}_rate5m"


def job_quantile(name: str) -> str:
    """``p95`` -> the per-service latency quantile recording."""
    return f"job:http_server_request_duration_seconds:{name}_rate5m"


def slo_errors(window: object) -> str:
    """The availability SLI (share of 5xx) over ``window``."""
    return f"job:slo_availability_errors:ratio_rate{window}"


def slo_slow(window: object) -> str:
    """The latency SLI (share slower than the threshold) over ``window``."""
    return f"job:slo_latency_slow:ratio_rate{window}"


def queryable(recorded: frozenset[str] | set[str]) -> frozenset[str]:
    """Every name a dashboard may query: emitted by services, the collector, Prometheus, or recorded."""
    return (
        SERVICE_METRICS
        | DOMAIN_METRICS
        | CLIENT_METRICS
        | COLLECTOR_METRICS
        | COLLECTOR_FAILURE_METRICS
        | PROMETHEUS_METRICS
        | frozenset(recorded)
    )
