"""Settings -> MeterProvider: readers (OTLP push, Prometheus pull), views, exemplars, cardinality limits,
and the process/runtime metrics every service gets."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    Counter,
    ExemplarFilter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    TraceBasedExemplarFilter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics import _Gauge as Gauge
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource

from otel_dist.exporters import metric_exporter
from otel_dist.self_metrics import sdk_self_metrics
from otel_dist.settings import ConfigurationError, Settings

#: Bucket boundaries, in seconds, of every duration histogram (unit "s"). The semantic-convention boundaries
#: for HTTP durations plus 2, 4 and 30 s, so the latency thresholds the shipped rules use (1 s, 4 s) are exact
#: bucket edges. The rules and dashboards import nothing else for this.
DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 2.5, 4.0, 5.0, 7.5, 10.0, 30.0,
)  # fmt: skip

#: Bucket boundaries, in bytes, of every size histogram (unit "By": body sizes, operation input sizes, peak
#: memory). The SDK's default boundaries end at 10,000, which would put every document above 10 kB and every
#: peak above 10 kB in one bucket. Decades from 100 B, with 2.5 and 5 steps from 100 kB to 1 GB where the
#: shipped thresholds sit (100 MiB and 500 MiB fall between 100 MB / 250 MB and 500 MB / 1 GB edges).
SIZE_BUCKETS: Final[tuple[float, ...]] = (
    100, 1_000, 10_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000,
    50_000_000, 100_000_000, 250_000_000, 500_000_000, 1_000_000_000,
)  # fmt: skip

#: Process and runtime metrics taken from opentelemetry-instrumentation-system-metrics. Host-wide system.*
#: metrics are left to the collector's hostmetrics receiver or node exporter: every service reporting them
#: would multiply the same series.
PROCESS_METRICS: Final[dict[str, list[str] | None]] = {
    "process.cpu.time": ["user", "system"],
    "process.cpu.utilization": None,
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.open_file_descriptor.count": None,
    "process.thread.count": None,
    "process.context_switches": ["involuntary", "voluntary"],
    "cpython.gc.collections": None,
    "cpython.gc.collected_objects": None,
    "cpython.gc.uncollectable_objects": None,
}

#: The memory the process may use: the cgroup limit, the setting, or the machine's memory. Alerts compare
#: process.memory.usage against it.
MEMORY_LIMIT_METRIC: Final = "process.memory.limit"

_INSTRUMENT_CLASSES: Final = (
    Counter,
    UpDownCounter,
    Histogram,
    Gauge,
    ObservableCounter,
    ObservableUpDownCounter,
    ObservableGauge,
)
_CGROUP_FILES: Final = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


@dataclass
class MetricsPipeline:
    """The MeterProvider and what bootstrap must stop with it (the /metrics server or snapshot writer)."""

    provider: MeterProvider
    readers: list[MetricReader]
    closers: list[Callable[[], None]] = field(default_factory=list)


def cardinality_limits(settings: Settings) -> dict[Any, int]:
    """The same limit for every instrument kind: the limit+1-th attribute set goes to otel.metric.overflow."""
    return dict.fromkeys(_INSTRUMENT_CLASSES, settings.cardinality_limit)


def build_views(settings: Settings) -> list[View]:
    """Histogram aggregation: seconds buckets for durations, bytes buckets for sizes, or base-2 exponential."""
    if settings.histogram_aggregation == "base2_exponential_bucket_histogram":
        return [View(instrument_type=Histogram, aggregation=ExponentialBucketHistogramAggregation())]
    return [
        View(
            instrument_type=Histogram,
            instrument_unit="s",
            aggregation=ExplicitBucketHistogramAggregation(boundaries=DURATION_BUCKETS),
        ),
        View(
            instrument_type=Histogram,
            instrument_unit="By",
            aggregation=ExplicitBucketHistogramAggregation(boundaries=SIZE_BUCKETS),
        ),
    ]


def _exemplar_filter(settings: Settings) -> ExemplarFilter:
    if settings.exemplar_filter == "always_on":
        return AlwaysOnExemplarFilter()
    if settings.exemplar_filter == "always_off":
        return AlwaysOffExemplarFilter()
    return TraceBasedExemplarFilter()


def _prometheus_reader(
    settings: Settings, closers: list[Callable[[], None]], instance_id: Callable[[], str]
) -> MetricReader:
    """Pull mode: serve /metrics on a port of its own, or (prefork) write snapshots every worker can merge."""
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise ConfigurationError(
            "OTEL_METRICS_EXPORTER", "'prometheus' needs the pull-mode reader: pip install 'otel-dist[prometheus]'"
        ) from None
    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry, cardinality_limits=cardinality_limits(settings))
    if settings.prometheus_multiprocess_dir is not None:
        from otel_dist.metrics_multiprocess import SnapshotWriter

        writer = SnapshotWriter(registry, Path(settings.prometheus_multiprocess_dir), instance_id)
        writer.start()
        closers.append(writer.stop)
        return reader
    try:
        server, _thread = start_http_server(settings.prometheus_port, addr=settings.prometheus_host, registry=registry)
    except OSError as error:
        raise ConfigurationError(
            "OTEL_EXPORTER_PROMETHEUS_PORT",
            f"cannot serve /metrics on {settings.prometheus_host}:{settings.prometheus_port}: {error.strerror}",
        ) from None

    def close() -> None:
        server.shutdown()
        server.server_close()

    closers.append(close)
    return reader


def build_metrics(
    settings: Settings, resource: Resource, extra_readers: Iterable[MetricReader] = ()
) -> MetricsPipeline:
    """A MeterProvider with one reader per configured metrics exporter (plus ``extra_readers``)."""
    readers: list[MetricReader] = list(extra_readers)
    closers: list[Callable[[], None]] = []
    provider_holder: list[MeterProvider] = []

    def instance_id() -> str:
        # The SDK renews service.instance.id in a forked child: read it from the provider each time.
        sdk_config = getattr(provider_holder[0], "_sdk_config", None) if provider_holder else None
        current = sdk_config.resource if sdk_config is not None else resource
        return str(current.attributes.get("service.instance.id", os.getpid()))

    # The push exporters count their own failures into the MeterProvider that does not exist yet: give them
    # the API's deferred provider and bind it once the real one is built.
    deferred = _ProxyMeterProvider()
    for kind in settings.metrics_exporter:
        if kind == "prometheus":
            readers.append(_prometheus_reader(settings, closers, instance_id))
        elif kind != "none":
            with sdk_self_metrics():
                exporter = metric_exporter(settings, kind, deferred)
            readers.append(
                PeriodicExportingMetricReader(
                    exporter,
                    export_interval_millis=settings.metric_export_interval * 1000,
                    export_timeout_millis=settings.metric_export_timeout * 1000,
                    cardinality_limits=cardinality_limits(settings),
                )
            )
    provider = MeterProvider(
        metric_readers=readers,
        resource=resource,
        exemplar_filter=_exemplar_filter(settings),
        shutdown_on_exit=False,
        views=build_views(settings),
    )
    deferred.on_set_meter_provider(provider)
    provider_holder.append(provider)
    return MetricsPipeline(provider=provider, readers=readers, closers=closers)


def detect_memory_limit(cgroup_files: Iterable[Path] = _CGROUP_FILES) -> int | None:
    """The cgroup memory limit in bytes, or None when unlimited or not in a cgroup."""
    for path in cgroup_files:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # cgroup v1 writes a huge number for "no limit"
            return int(text)
        return None
    return None


def memory_limit(settings: Settings) -> int:
    """The setting, else the cgroup limit, else the machine's physical memory."""
    if settings.memory_limit is not None:
        return settings.memory_limit
    detected = detect_memory_limit()
    if detected is not None:
        return detected
    import psutil

    return int(psutil.virtual_memory().total)


def instrument_process_metrics(settings: Settings, provider: MeterProvider) -> Any:
    """Start the process/runtime metrics, the memory-limit gauge and the filesystem usage of the service's paths.

    Returns the instrumentor to undo it.
    """
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

    from otel_dist.filesystem_metrics import instrument_filesystems

    limit = memory_limit(settings)

    def observe_limit(_options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(limit)

    provider.get_meter("otel_dist").create_observable_gauge(
        MEMORY_LIMIT_METRIC,
        callbacks=[observe_limit],
        unit="By",
        description="Memory the process may use: its cgroup limit, OTEL_DIST_MEMORY_LIMIT, or physical memory.",
    )
    instrument_filesystems(settings.filesystem_paths, provider)
    instrumentor = SystemMetricsInstrumentor(config=dict(PROCESS_METRICS))
    instrumentor.instrument(meter_provider=provider)
    return instrumentor
