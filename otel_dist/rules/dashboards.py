"""Grafana dashboards as code: five dashboards rendered from the spec (its thresholds and SLO windows) to JSON.

``otel-dist rules render`` writes them to grafana/dashboards/, which docker-compose mounts and
grafana/provisioning/dashboards/ loads. Prometheus panels read only names in ``catalog`` (tests/rules checks
it, tests/e2e runs every query against the real stack); Loki panels select streams only by the labels the Loki
config indexes (service_name, service_namespace, deployment_environment_name).

Variables: ``$service`` (the job, i.e. service.name), ``$env`` (deployment.environment.name, "All" matches any)
and, on the logs dashboard, ``$request_id`` and ``$trace_id``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from otel_dist.rules import catalog as m
from otel_dist.rules.render import le_matcher, num, quantile_name
from otel_dist.rules.spec import Scope, Spec, SpecError

PROMETHEUS: Final = {"type": "prometheus", "uid": "prometheus"}
LOKI: Final = {"type": "loki", "uid": "loki"}
SCHEMA_VERSION: Final = 39

#: The selector of the service's series, and of its log streams.
SERVICE: Final = 'job="$service", deployment_environment_name=~"$env"'
STREAM: Final = '{service_name="$service", deployment_environment_name=~"$env"}'
COLLECTOR: Final = 'job="$collector"'
RATE: Final = "$__rate_interval"


@dataclass
class Panel:
    """One panel: its title, kind, queries (expr, legend) and display options."""

    title: str
    targets: list[tuple[str, str]]
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    thresholds: list[float] = field(default_factory=list)
    description: str = ""
    datasource: dict[str, str] = field(default_factory=lambda: dict(PROMETHEUS))
    exemplars: bool = False
    stack: bool = False
    #: Thresholds of a value that is bad when low (free space): red below the first, orange below the second.
    low_is_bad: bool = False


@dataclass
class Row:
    """A collapsible-free row title followed by its panels."""

    title: str
    panels: list[Panel]


def _threshold_steps(values: list[float], *, low_is_bad: bool = False) -> list[dict[str, Any]]:
    colors = ["red", "orange", "green"] if low_is_bad else ["green", "orange", "red"]
    steps: list[dict[str, Any]] = [{"color": colors[0], "value": None}]
    for index, value in enumerate(values[:2], start=1):
        steps.append({"color": colors[index], "value": value})
    return steps


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = []
    for index, (expr, legend) in enumerate(panel.targets):
        target: dict[str, Any] = {"datasource": panel.datasource, "refId": chr(ord("A") + index), "expr": expr}
        if panel.datasource["type"] == "prometheus":
            target["legendFormat"] = legend or "__auto"
            target["range"] = True
            if panel.exemplars:
                target["exemplar"] = True
        else:
            target["queryType"] = "range"
            if legend:
                target["legendFormat"] = legend
        targets.append(target)
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": panel.datasource,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": targets,
    }
    if panel.kind == "logs":
        out["options"] = {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending", "enableLogDetails": True}
        return out
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": _threshold_steps(panel.thresholds, low_is_bad=panel.low_is_bad),
        }
    if panel.kind == "timeseries":
        custom: dict[str, Any] = {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
        if panel.stack:
            custom["stacking"] = {"mode": "normal", "group": "A"}
        if panel.thresholds:
            custom["thresholdsStyle"] = {"mode": "line+area" if len(panel.thresholds) > 1 else "line"}
        defaults["custom"] = custom
        out["options"] = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}}
    elif panel.kind == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "area"}
    out["fieldConfig"] = {"defaults": defaults, "overrides": []}
    return out


def _variables(*, logs: bool = False, collector: bool = False) -> list[dict[str, Any]]:
    def query(name: str, label: str, expr: str, *, include_all: bool = False) -> dict[str, Any]:
        variable: dict[str, Any] = {
            "type": "query",
            "name": name,
            "label": label,
            "datasource": PROMETHEUS,
            "definition": expr,
            "query": {"query": expr, "refId": f"{name}-variable"},
            "refresh": 2,
            "sort": 1,
            "includeAll": include_all,
            "multi": False,
        }
        if include_all:
            variable["allValue"] = ".*"
            variable["current"] = {"text": "All", "value": "$__all"}
        return variable

    variables = [
        query("service", "service", f'label_values({m.TARGET_INFO}{{telemetry_sdk_name!=""}}, job)'),
        query(
            "env",
            "environment",
            f'label_values({m.TARGET_INFO}{{job="$service"}}, deployment_environment_name)',
            include_all=True,
        ),
    ]
    if collector:
        variables.append(query("collector", "collector", "label_values(otelcol_receiver_accepted_spans_total, job)"))
    if logs:
        for name, label in (("request_id", "request_id"), ("trace_id", "trace_id")):
            variables.append({"type": "textbox", "name": name, "label": label, "query": "", "current": {"value": ""}})
    return variables


def dashboard(uid: str, title: str, rows: list[Row], *, description: str, logs: bool = False) -> dict[str, Any]:
    """A dashboard's JSON model, panels laid out left to right, row by row."""
    panels: list[dict[str, Any]] = []
    y = 0
    panel_id = 1
    collector = any("$collector" in expr for row in rows for p in row.panels for expr, _ in p.targets)
    for row in rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        x = 0
        height = 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y = 0, y + height
                height = 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
            height = max(height, panel.height)
        y += height
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["otel-dist"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": _variables(logs=logs, collector=collector)},
        "annotations": {"list": []},
        "links": [{"title": "otel-dist dashboards", "type": "dashboards", "tags": ["otel-dist"], "asDropdown": True}],
        "panels": panels,
    }


# --- the five dashboards -------------------------------------------------------------------------------------


def _default(spec: Spec) -> Scope:
    return spec.scopes[0]


def service_overview(spec: Spec) -> dict[str, Any]:
    """RED per route, status codes, request and response sizes."""
    o = _default(spec).objectives
    count, bucket = m.HTTP_DURATION_COUNT, m.HTTP_DURATION_BUCKET
    error_steps = [o.error_ratio.warning or 0, o.error_ratio.critical or 0] if o.error_ratio else []
    latency = o.latency
    latency_steps = [latency.threshold.warning or 0, latency.threshold.critical or 0] if latency else []
    q = quantile_name(latency.percentile) if latency else "p95"
    by_route = "job, http_route"

    def size(kind: str, stat: str) -> str:
        metric = f"http_server_{kind}_body_size_bytes"
        if stat == "avg":
            return (
                f"sum by ({by_route}) (rate({metric}_sum{{{SERVICE}}}[{RATE}]))\n/\n"
                f"sum by ({by_route}) (rate({metric}_count{{{SERVICE}}}[{RATE}]))"
            )
        return f"histogram_quantile(0.95, sum by ({by_route}, le) (rate({metric}_bucket{{{SERVICE}}}[{RATE}])))"

    rows = [
        Row(
            "Service",
            [
                Panel(
                    "Requests",
                    [(f"sum by (job) ({m.JOB_REQUESTS_RATE}{{{SERVICE}}})", "{{job}}")],
                    "stat",
                    "reqps",
                    6,
                    4,
                ),
                Panel(
                    "Errors (5xx, 5m)",
                    [(f"max by (job) ({m.JOB_ERROR_RATIO}{{{SERVICE}}})", "{{job}}")],
                    "stat",
                    "percentunit",
                    6,
                    4,
                    error_steps,
                ),
                Panel(
                    f"Latency {q} (5m)",
                    [(f"max by (job) ({m.job_quantile(q)}{{{SERVICE}}})", "{{job}}")],
                    "stat",
                    "s",
                    6,
                    4,
                    latency_steps,
                ),
                Panel(
                    "Requests in flight",
                    [(f"sum by (job) ({m.HTTP_ACTIVE_REQUESTS}{{{SERVICE}}})", "{{job}}")],
                    "stat",
                    "short",
                    6,
                    4,
                ),
            ],
        ),
        Row(
            "Rate, errors, duration per route",
            [
                Panel(
                    "Request rate by route",
                    [(f"sum by ({by_route}) (rate({count}{{{SERVICE}}}[{RATE}]))", "{{http_route}}")],
                    unit="reqps",
                ),
                Panel(
                    "Error ratio by route (5xx, 5m)",
                    [(f"max by ({by_route}) ({m.ROUTE_ERROR_RATIO}{{{SERVICE}}})", "{{http_route}}")],
                    unit="percentunit",
                    thresholds=error_steps,
                ),
                Panel(
                    "Latency by route (p50, p95, p99)",
                    quantiles(bucket, by_route),
                    unit="s",
                    thresholds=latency_steps,
                    exemplars=True,
                    description="Exemplars link each point to its trace in Jaeger.",
                ),
                Panel(
                    "Responses by status code",
                    [
                        (
                            f"sum by (job, http_response_status_code) (rate({count}{{{SERVICE}}}[{RATE}]))",
                            "{{http_response_status_code}}",
                        )
                    ],
                    unit="reqps",
                    stack=True,
                ),
            ],
        ),
        Row(
            "Request and response sizes",
            [
                Panel(
                    "Request body size by route",
                    [(size("request", "avg"), "avg {{http_route}}"), (size("request", "p95"), "p95 {{http_route}}")],
                    unit="bytes",
                ),
                Panel(
                    "Response body size by route",
                    [(size("response", "avg"), "avg {{http_route}}"), (size("response", "p95"), "p95 {{http_route}}")],
                    unit="bytes",
                ),
            ],
        ),
    ]
    return dashboard(
        "otel-dist-service",
        "otel-dist / Service overview",
        rows,
        description="RED per route of one service: rate, 5xx ratio, latency percentiles (with exemplars), sizes.",
    )


def slo(spec: Spec) -> dict[str, Any]:
    """SLIs over the SLO window, error budget left, burn rates over the alerting windows."""
    o = _default(spec).objectives
    period = spec.slo_window
    panels_top: list[Panel] = []
    burn_panels: list[Panel] = []
    factors = sorted({b.factor for b in spec.burn_rates})
    for slo_name, series, present in (
        ("availability", m.slo_errors, o.availability is not None),
        ("latency", m.slo_slow, o.latency_slo is not None),
    ):
        if not present:
            continue
        objective = f'{m.SLO_OBJECTIVE}{{{SERVICE}, slo="{slo_name}"}}'
        panels_top.append(
            Panel(
                f"{slo_name.capitalize()} SLI ({period})",
                [
                    (f"1 - max by (job) ({series(period)}{{{SERVICE}}})", "SLI {{job}}"),
                    (f"max by (job) ({objective})", "objective"),
                ],
                "stat",
                "percentunit",
                6,
                5,
            )
        )
        panels_top.append(
            Panel(
                f"{slo_name.capitalize()} error budget left ({period})",
                [(f'max by (job) ({m.SLO_BUDGET_REMAINING}{{{SERVICE}, slo="{slo_name}"}})', "{{job}}")],
                "stat",
                "percentunit",
                6,
                5,
                description="1 - (bad share over the SLO window) / (1 - objective). Below 0: the SLO is missed.",
            )
        )
        burn_panels.append(
            Panel(
                f"{slo_name.capitalize()} burn rate",
                [
                    (
                        f"max by (job) ({series(b.long)}{{{SERVICE}}})\n"
                        f"/ ignoring (slo)\n(1 - max by (job, slo) ({objective}))",
                        f"{b.long} ({b.severity} above {num(b.factor)}x)",
                    )
                    for b in spec.burn_rates
                ],
                unit="short",
                thresholds=[factors[0], factors[-1]] if len(factors) > 1 else factors,
                description=(
                    "Error ratio over each long alerting window divided by the error budget (1 - objective). 1 spends "
                    f"the budget in exactly {period}; the alerts fire at the factors in the legend (when the short "
                    "window agrees)."
                ),
            )
        )
        burn_panels.append(
            Panel(
                f"{slo_name.capitalize()}: bad share over the alerting windows",
                [
                    (f"max by (job) ({series(w)}{{{SERVICE}}})", str(w))
                    for w in sorted({b.short for b in spec.burn_rates})
                ],
                unit="percentunit",
            )
        )
    rows = [Row("Objectives", panels_top), Row("Burn rates", burn_panels)]
    return dashboard(
        "otel-dist-slo",
        "otel-dist / SLOs and error budget",
        rows,
        description=(
            f"Availability and latency SLOs from prometheus/objectives.yaml: SLIs and budget over {period}, burn rates."
        ),
    )


def runtime(spec: Spec) -> dict[str, Any]:
    """Memory vs limit, CPU, disks, threads, file descriptors, GC, health checks, versions."""
    o = _default(spec).objectives
    memory_steps = [o.memory.warning or 0, o.memory.critical or 0] if o.memory else []
    cpu_steps = [o.cpu.warning] if o.cpu and o.cpu.warning else []
    free = o.disk.free_ratio if o.disk else None
    disk_steps = [t for t in (free.critical, free.warning) if t is not None] if free else []
    fill_lookback = o.disk.fill_lookback if o.disk else "6h"
    per_instance = "job, instance"
    rows = [
        Row(
            "Memory and CPU",
            [
                Panel(
                    "Memory used / limit per process",
                    [
                        (
                            f"max by ({per_instance}) (\n  {m.PROCESS_MEMORY_USAGE}{{{SERVICE}}}\n"
                            f"  / {m.PROCESS_MEMORY_LIMIT}{{{SERVICE}}}\n)",
                            "{{instance}}",
                        )
                    ],
                    unit="percentunit",
                    thresholds=memory_steps,
                ),
                Panel(
                    "Memory per process",
                    [
                        (f"max by ({per_instance}) ({m.PROCESS_MEMORY_USAGE}{{{SERVICE}}})", "used {{instance}}"),
                        (f"max by ({per_instance}) ({m.PROCESS_MEMORY_LIMIT}{{{SERVICE}}})", "limit {{instance}}"),
                    ],
                    unit="bytes",
                ),
                Panel(
                    "CPU cores used per process",
                    [(f"sum by ({per_instance}) (rate({m.PROCESS_CPU_TIME}{{{SERVICE}}}[{RATE}]))", "{{instance}}")],
                    unit="short",
                    thresholds=cpu_steps,
                ),
                Panel(
                    "Threads and open file descriptors",
                    [
                        (f"max by ({per_instance}) (process_thread_count{{{SERVICE}}})", "threads {{instance}}"),
                        (
                            f"max by ({per_instance}) (process_open_file_descriptor_count{{{SERVICE}}})",
                            "fds {{instance}}",
                        ),
                    ],
                ),
            ],
        ),
        Row(
            "Disks (the filesystems the service writes to)",
            [
                Panel(
                    "Free share per filesystem",
                    [
                        (
                            f"min by (job, instance, {m.FS_MOUNTPOINT}) ({m.FILESYSTEM_FREE_RATIO}{{{SERVICE}}})",
                            f"{{{{{m.FS_MOUNTPOINT}}}}} {{{{instance}}}}",
                        )
                    ],
                    unit="percentunit",
                    thresholds=disk_steps,
                    low_is_bad=True,
                    description="Free space over size. The lines mark DiskSpaceLow's tiers (critical, warning).",
                ),
                Panel(
                    "Free bytes per filesystem, and the 24h forecast",
                    [
                        (
                            f"min by (job, instance, {m.FS_MOUNTPOINT}) "
                            f'({m.FILESYSTEM_USAGE}{{{SERVICE}, {m.FS_STATE}="free"}})',
                            f"free {{{{{m.FS_MOUNTPOINT}}}}} {{{{instance}}}}",
                        ),
                        (
                            f"min by (job, instance, {m.FS_MOUNTPOINT}) (predict_linear("
                            f'{m.FILESYSTEM_USAGE}{{{SERVICE}, {m.FS_STATE}="free"}}[{fill_lookback}], 24 * 3600))',
                            f"in 24h {{{{{m.FS_MOUNTPOINT}}}}} {{{{instance}}}}",
                        ),
                    ],
                    unit="bytes",
                    description="What the service can still write, and where the trend of the last "
                    f"{fill_lookback} takes it in 24 hours (DiskWillFillSoon).",
                ),
            ],
        ),
        Row(
            "Python runtime",
            [
                Panel(
                    "GC collections per generation",
                    [
                        (
                            f"sum by (job, generation) (rate(cpython_gc_collections_total{{{SERVICE}}}[{RATE}]))",
                            "gen {{generation}}",
                        )
                    ],
                    unit="ops",
                ),
                Panel(
                    "Context switches",
                    [(f"sum by (job, type) (rate(process_context_switches_total{{{SERVICE}}}[{RATE}]))", "{{type}}")],
                    unit="ops",
                ),
            ],
        ),
        Row(
            "Health and versions",
            [
                Panel(
                    "Health checks (1 = passing)",
                    [
                        (
                            f"min by (job, health_check_name) ({m.HEALTH_CHECK_STATUS}{{{SERVICE}}})",
                            "{{health_check_name}}",
                        )
                    ],
                    unit="short",
                ),
                Panel(
                    "Health check duration p95",
                    [
                        (
                            "histogram_quantile(0.95, sum by (job, health_check_name, le) "
                            f"(rate(health_check_duration_seconds_bucket{{{SERVICE}}}[{RATE}])))",
                            "{{health_check_name}}",
                        )
                    ],
                    unit="s",
                ),
                Panel(
                    "Processes per version",
                    [(f"count by (job, service_version) ({m.TARGET_INFO}{{{SERVICE}}})", "{{service_version}}")],
                    unit="short",
                    width=24,
                    stack=True,
                ),
            ],
        ),
    ]
    return dashboard(
        "otel-dist-runtime",
        "otel-dist / Runtime and resources",
        rows,
        description=(
            "Process memory against its limit, CPU, disks, threads, file descriptors, GC, health checks, versions."
        ),
    )


def logs(spec: Spec) -> dict[str, Any]:
    """Log volume by level, errors and exceptions, and every line of one request or trace (Loki)."""
    del spec
    rows = [
        Row(
            "Volume",
            [
                Panel(
                    "Log lines by level",
                    [(f"sum by (severity_text) (count_over_time({STREAM} [$__auto]))", "{{severity_text}}")],
                    unit="short",
                    datasource=dict(LOKI),
                    stack=True,
                ),
                Panel(
                    "Exceptions by type",
                    [
                        (
                            f'sum by (exception_type) (count_over_time({STREAM} | exception_type!="" [$__auto]))',
                            "{{exception_type}}",
                        )
                    ],
                    unit="short",
                    datasource=dict(LOKI),
                ),
            ],
        ),
        Row(
            "Lines",
            [
                Panel(
                    "Errors",
                    [(f'{STREAM} | severity_text=~"ERROR|FATAL"', "")],
                    "logs",
                    width=24,
                    height=10,
                    datasource=dict(LOKI),
                ),
                Panel(
                    "One request ($request_id)",
                    [(f'{STREAM} | request_id="$request_id"', "")],
                    "logs",
                    width=12,
                    height=10,
                    datasource=dict(LOKI),
                    description="Every line of one request: paste the X-Request-ID a client got into request_id.",
                ),
                Panel(
                    "One trace ($trace_id)",
                    [(f'{STREAM} | trace_id="$trace_id"', "")],
                    "logs",
                    width=12,
                    height=10,
                    datasource=dict(LOKI),
                    description="Every line of one trace (across services if you clear the service filter in Explore).",
                ),
            ],
        ),
    ]
    return dashboard(
        "otel-dist-logs",
        "otel-dist / Logs",
        rows,
        description="Log volume by level, exceptions, and the lines of one request_id or trace_id (Loki).",
        logs=True,
    )


def pipeline(spec: Spec) -> dict[str, Any]:
    """SDK-side processed/exported by outcome and queues; collector accepted, sent, failed, queued, refused."""
    p = spec.platform
    items = ("spans", "metric_points", "log_records")

    def collector_sum(what: str) -> list[tuple[str, str]]:
        return [
            (f"sum by (job) (rate(otelcol_receiver_{what}_{item}_total{{{COLLECTOR}}}[{RATE}]))", item)
            for item in items
        ]

    failed_ratio = [
        (
            f"(\n  sum by (job, exporter) (rate(otelcol_exporter_send_failed_{item}_total{{{COLLECTOR}}}[{RATE}]))\n"
            f"  or\n  0 * sum by (job, exporter) (rate(otelcol_exporter_sent_{item}_total{{{COLLECTOR}}}[{RATE}]))\n"
            ")\n/\n"
            f"sum by (job, exporter) (rate(otelcol_exporter_sent_{item}_total{{{COLLECTOR}}}[{RATE}]))",
            "{{exporter}}",
        )
        for item in items
    ]
    rows = [
        Row(
            "SDK (in the service)",
            [
                Panel(
                    "Spans through the batch processor, by outcome",
                    [
                        (
                            f"sum by (job, error_type) "
                            f"(rate(otel_sdk_processor_span_processed_total{{{SERVICE}}}[{RATE}]))",
                            "{{error_type}}",
                        )
                    ],
                    unit="ops",
                    description="error_type empty: handed to the exporter; queue_full: dropped.",
                ),
                Panel(
                    "Log records through the batch processor, by outcome",
                    [
                        (
                            f"sum by (job, error_type) "
                            f"(rate(otel_sdk_processor_log_processed_total{{{SERVICE}}}[{RATE}]))",
                            "{{error_type}}",
                        )
                    ],
                    unit="ops",
                ),
                Panel(
                    "Exported by signal and outcome",
                    [
                        (
                            f"sum by (job, error_type) "
                            f"(rate(otel_sdk_exporter_{signal}_exported_total{{{SERVICE}}}[{RATE}]))",
                            f"{signal} {{{{error_type}}}}",
                        )
                        for signal in ("span", "log", "metric_data_point")
                    ],
                    unit="ops",
                    description="error_type set: items the exporter failed to deliver (lost).",
                ),
                Panel(
                    "SDK queue fill",
                    [
                        (
                            f"max by (job, instance) (otel_sdk_processor_{signal}_queue_size{{{SERVICE}}}\n/\n"
                            f"otel_sdk_processor_{signal}_queue_capacity{{{SERVICE}}})",
                            f"{signal} {{{{instance}}}}",
                        )
                        for signal in ("span", "log")
                    ],
                    unit="percentunit",
                ),
            ],
        ),
        Row(
            "Collector",
            [
                Panel("Accepted by the receivers", collector_sum("accepted"), unit="ops"),
                Panel(
                    "Sent by the exporters",
                    [
                        (
                            f"sum by (job, exporter) (rate(otelcol_exporter_sent_{item}_total{{{COLLECTOR}}}[{RATE}]))",
                            "{{exporter}}",
                        )
                        for item in items
                    ],
                    unit="ops",
                ),
                Panel(
                    "Failed sends / sent",
                    failed_ratio,
                    unit="percentunit",
                    description="Absent failure counters mean no failure yet (they appear with the first one).",
                ),
                Panel(
                    "Sending queue fill",
                    [
                        (
                            f"max by (job, exporter) (\n  {m.COLLECTOR_QUEUE_SIZE}{{{COLLECTOR}}}\n"
                            f"  / {m.COLLECTOR_QUEUE_CAPACITY}{{{COLLECTOR}}}\n)",
                            "{{exporter}}",
                        )
                    ],
                    unit="percentunit",
                    thresholds=[p.collector_queue_warning],
                ),
                Panel("Refused by the receivers (memory limiter)", collector_sum("refused"), unit="ops"),
                Panel(
                    "Probe spans dropped by filter/probes",
                    [
                        (
                            "sum by (job) "
                            f"(rate(otelcol_processor_filter_spans_filtered_total{{{COLLECTOR}}}[{RATE}]))",
                            "{{job}}",
                        )
                    ],
                    unit="ops",
                ),
            ],
        ),
    ]
    return dashboard(
        "otel-dist-pipeline",
        "otel-dist / Telemetry pipeline",
        rows,
        description=(
            "The SDK in the service (processed, exported, queued); the collector (accepted, sent, failed, refused)"
        ),
    )


# --- domain dashboards: rendered when a spec lists them (``dashboards:``) ---------------------------------------


def quantiles(metric: str, by: str, selector: str = SERVICE) -> list[tuple[str, str]]:
    """p50, p95 and p99 of the histogram ``metric`` (its ``_bucket`` series) per ``by`` (``job`` first), each
    legend the quantile and the other ``by`` labels."""
    legend = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(",")[1:])
    return [
        (
            f"histogram_quantile({num(q)}, sum by ({by}, le) (rate({metric}{{{selector}}}[{RATE}])))",
            f"{quantile_name(q)} {legend}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def _prefix(spec: Spec) -> str:
    return spec.name or "otel-dist"


def operations(spec: Spec) -> dict[str, Any]:
    """Tracked operations (otel_dist.track_operation): runs by outcome, failure shares, latency, sizes, memory."""
    outcomes, by_op = m.OPERATION_OUTCOMES, "job, operation_name"
    failing = f'{outcomes}{{{SERVICE}, operation_outcome!="success"}}'

    rows = [
        Row(
            "Runs",
            [
                Panel(
                    "Runs by operation and outcome",
                    [
                        (
                            f"sum by ({by_op}, operation_outcome) (rate({outcomes}{{{SERVICE}}}[{RATE}]))",
                            "{{operation_name}} {{operation_outcome}}",
                        )
                    ],
                    unit="ops",
                    stack=True,
                ),
                Panel(
                    "Errors and timeouts / runs",
                    [
                        (
                            f"sum by ({by_op}, operation_outcome) (rate({failing}[{RATE}]))\n"
                            f"/ ignoring (operation_outcome) group_left\n"
                            f"sum by ({by_op}) (rate({outcomes}{{{SERVICE}}}[{RATE}]))",
                            "{{operation_name}} {{operation_outcome}}",
                        )
                    ],
                    unit="percentunit",
                    description="outcome error: an exception (error_type); timeout: TimeoutError.",
                ),
                Panel(
                    "Failures by exception type",
                    [
                        (
                            f"sum by ({by_op}, error_type) (rate({failing}[{RATE}]))",
                            "{{operation_name}} {{error_type}}",
                        )
                    ],
                    unit="ops",
                ),
                Panel(
                    "In progress",
                    [(f"sum by ({by_op}) ({m.OPERATION_ACTIVE}{{{SERVICE}}})", "{{operation_name}}")],
                ),
            ],
        ),
        Row(
            "Duration, input size, peak memory",
            [
                Panel("Duration", quantiles(m.OPERATION_DURATION_BUCKET, by_op), unit="s"),
                Panel("Input size", quantiles(m.OPERATION_INPUT_SIZE_BUCKET, by_op), unit="bytes"),
                Panel(
                    "Peak memory (track_memory=True)",
                    quantiles(m.OPERATION_MEMORY_PEAK_BUCKET, by_op),
                    unit="bytes",
                    description="Peak of Python allocations during a run (tracemalloc).",
                ),
            ],
        ),
    ]
    for op in spec.operations:
        if not op.by:
            continue
        by = ", ".join(["job", *op.by])
        selector = f'{SERVICE}, operation_name="{op.name}"'
        panels = [
            Panel(
                f"{op.name}: duration by {', '.join(op.by)}",
                quantiles(m.OPERATION_DURATION_BUCKET, by, selector),
                unit="s",
            ),
            Panel(
                f"{op.name}: errors and timeouts by {', '.join(op.by)}",
                [
                    (
                        f'sum by ({by}, operation_outcome) (rate({outcomes}{{{selector}, operation_outcome!="success"}}'
                        f"[{RATE}]))",
                        " ".join(f"{{{{{label}}}}}" for label in op.by) + " {{operation_outcome}}",
                    )
                ],
                unit="ops",
            ),
        ]
        if op.memory is not None:
            panels.append(
                Panel(
                    f"{op.name}: peak memory by {', '.join(op.by)}",
                    quantiles(m.OPERATION_MEMORY_PEAK_BUCKET, by, selector),
                    unit="bytes",
                    thresholds=[v for v in (op.memory.threshold.warning, op.memory.threshold.critical) if v],
                )
            )
        rows.append(Row(op.name, panels))
    prefix = _prefix(spec)
    return dashboard(
        f"{prefix}-operations",
        f"{prefix} / Operations",
        rows,
        description="Domain operations tracked by otel_dist.track_operation: outcomes, duration, input size, memory.",
    )


def security(spec: Spec) -> dict[str, Any]:
    """Security events (otel_dist.security_event) by kind and reason, against the request rate."""
    events = m.SECURITY_EVENTS
    rows = [
        Row(
            "Security events",
            [
                Panel(
                    "Events by kind and reason",
                    [
                        (
                            f"sum by (job, security_event_kind, security_event_reason) "
                            f"(rate({events}{{{SERVICE}}}[{RATE}]))",
                            "{{security_event_kind}} {{security_event_reason}}",
                        )
                    ],
                    unit="ops",
                    stack=True,
                ),
                Panel(
                    "Events / requests",
                    [
                        (
                            f"sum by (job) (rate({events}{{{SERVICE}}}[{RATE}]))\n/\n"
                            f"sum by (job) (rate({m.HTTP_DURATION_COUNT}{{{SERVICE}}}[{RATE}]))",
                            "{{job}}",
                        )
                    ],
                    unit="percentunit",
                ),
            ],
        )
    ]
    prefix = _prefix(spec)
    return dashboard(
        f"{prefix}-security",
        f"{prefix} / Security events",
        rows,
        description="Validation failures, rejected input and failed authentication (otel_dist.security_event).",
    )


# --- dependencies: rendered for the services that use a database or a cache ------------------------------------


def _pool_use(title: str, spec: Spec, *, width: int) -> Panel:
    """Connections in use over the pool's size, per pool, with the spec's db_pool tiers as thresholds."""
    o = _default(spec).objectives
    by_pool = f"job, {m.DB_POOL_NAME}"
    used = f'{m.DB_CONNECTION_COUNT}{{{SERVICE}, {m.DB_CONNECTION_STATE}="used"}}'
    return Panel(
        title,
        [
            (
                f"max by ({by_pool}) ({used})\n/\nmax by ({by_pool}) ({m.DB_CONNECTION_MAX}{{{SERVICE}}})",
                "{{db_client_connection_pool_name}}",
            )
        ],
        "stat",
        "percentunit",
        width,
        thresholds=[o.db_pool.warning or 0, o.db_pool.critical or 0] if o.db_pool else [],
    )


def overview(spec: Spec) -> dict[str, Any]:
    """At a glance, for a service with a database: health, p95, 5xx ratio, in flight, pool use, memory."""
    o = _default(spec).objectives
    error_steps = [o.error_ratio.warning or 0, o.error_ratio.critical or 0] if o.error_ratio else []
    latency = o.latency
    latency_steps = [latency.threshold.warning or 0, latency.threshold.critical or 0] if latency else []
    q = quantile_name(latency.percentile) if latency else "p95"
    memory_steps = [o.memory.warning or 0, o.memory.critical or 0] if o.memory else []
    rows = [
        Row(
            "At a glance",
            [
                Panel(
                    "Health checks passing",
                    [(f"min by (job) ({m.HEALTH_CHECK_STATUS}{{{SERVICE}}})", "{{job}}")],
                    "stat",
                    "short",
                    4,
                    description="1: every health check of every instance passes (the last probe); 0: one fails.",
                ),
                Panel(
                    f"Response time {q} (5m)",
                    [(f"max by (job) ({m.job_quantile(q)}{{{SERVICE}}})", "{{job}}")],
                    "stat",
                    "s",
                    4,
                    thresholds=latency_steps,
                ),
                Panel(
                    "Error ratio (5xx, 5m)",
                    [(f"max by (job) ({m.JOB_ERROR_RATIO}{{{SERVICE}}})", "{{job}}")],
                    "stat",
                    "percentunit",
                    4,
                    thresholds=error_steps,
                ),
                Panel(
                    "Requests in flight",
                    [(f"sum by (job) ({m.HTTP_ACTIVE_REQUESTS}{{{SERVICE}}})", "{{job}}")],
                    "stat",
                    "short",
                    4,
                ),
                _pool_use("Database connections in use / pool", spec, width=4),
                Panel(
                    "Memory used / limit",
                    [
                        (
                            f"max by (job) (\n  {m.PROCESS_MEMORY_USAGE}{{{SERVICE}}}\n"
                            f"  / {m.PROCESS_MEMORY_LIMIT}{{{SERVICE}}}\n)",
                            "{{job}}",
                        )
                    ],
                    "stat",
                    "percentunit",
                    4,
                    thresholds=memory_steps,
                ),
            ],
        ),
        Row(
            "Over time",
            [
                Panel(
                    "Error ratio (5xx, 5m)",
                    [(f"max by (job) ({m.JOB_ERROR_RATIO}{{{SERVICE}}})", "{{job}}")],
                    unit="percentunit",
                    thresholds=error_steps,
                ),
                Panel(
                    "Requests per second",
                    [(f"sum by (job) ({m.JOB_REQUESTS_RATE}{{{SERVICE}}})", "{{job}}")],
                    unit="reqps",
                ),
            ],
        ),
    ]
    return dashboard(
        "otel-dist-overview",
        "otel-dist / System overview",
        rows,
        description="At a glance: health checks, latency, errors, requests in flight, connection pool and memory.",
    )


#: Queries at or above this many seconds count as slow on the database dashboard (a bucket edge of
#: otel_dist.metrics.DURATION_BUCKETS, the default of OTEL_DIST_DB_SLOW_QUERY_THRESHOLD).
SLOW_QUERY_SECONDS: Final = 1.0


def _cache_row() -> Row:
    """Hit ratio and lookups per cache (otel_dist.cache_lookup)."""
    lookups = m.CACHE_LOOKUPS
    return Row(
        "Cache",
        [
            Panel(
                "Cache hit ratio",
                [
                    (
                        f'sum by (job, cache_name) (rate({lookups}{{{SERVICE}, cache_outcome="hit"}}[{RATE}]))\n/\n'
                        f"sum by (job, cache_name) (rate({lookups}{{{SERVICE}}}[{RATE}]))",
                        "{{cache_name}}",
                    )
                ],
                "stat",
                "percentunit",
                8,
                description="Lookups counted by otel_dist.cache_lookup; higher is better (CacheHitRatioLow).",
            ),
            Panel(
                "Cache lookups per second",
                [
                    (
                        f"sum by (job, cache_name, cache_outcome) (rate({lookups}{{{SERVICE}}}[{RATE}]))",
                        "{{cache_name}} {{cache_outcome}}",
                    )
                ],
                unit="ops",
                width=16,
                stack=True,
            ),
        ],
    )


def database(spec: Spec) -> dict[str, Any]:
    """Query time percentiles, pool status and waits, slow queries, query errors, cache hit ratio."""
    o = _default(spec).objectives
    slow = getattr(getattr(o, "db_slow_queries", None), "threshold_seconds", SLOW_QUERY_SECONDS)
    bucket, count = m.DB_OPERATION_DURATION_BUCKET, m.DB_OPERATION_DURATION_COUNT
    by_query = "job, db_operation_name, db_collection_name"
    by_op = "job, db_operation_name"
    by_pool = f"job, {m.DB_POOL_NAME}"
    rows = [
        Row(
            "Queries",
            [
                Panel(
                    "Query time (p50, p95, p99)",
                    quantiles(bucket, by_query),
                    unit="s",
                    thresholds=[slow],
                    exemplars=True,
                ),
                Panel(
                    "Queries per second by operation",
                    [
                        (
                            f"sum by (job, db_operation_name) (rate({count}{{{SERVICE}}}[{RATE}]))",
                            "{{db_operation_name}}",
                        )
                    ],
                    unit="ops",
                    stack=True,
                ),
                Panel(
                    f"Slow queries (>= {num(slow)} s) per second",
                    [
                        (
                            f"sum by ({by_query}) (rate({count}{{{SERVICE}}}[{RATE}]))\n-\n"
                            f"sum by ({by_query}) (rate({bucket}{{{SERVICE}, {le_matcher(slow)}}}[{RATE}]))",
                            "{{db_operation_name}} {{db_collection_name}}",
                        )
                    ],
                    unit="ops",
                    description=(
                        "From the duration buckets. The statements are in the db.query.slow log lines: "
                        '"service.name":="$service" _msg:="db.query.slow" (LogsQL), {service_name="$service"} '
                        '|= "db.query.slow" (LogQL).'
                    ),
                ),
                Panel(
                    "Failed queries / queries",
                    [
                        (
                            f'(\n  sum by ({by_op}) (rate({count}{{{SERVICE}, error_type!=""}}[{RATE}]))\n  or\n'
                            f"  0 * sum by ({by_op}) (rate({count}{{{SERVICE}}}[{RATE}]))\n)\n/\n"
                            f"sum by ({by_op}) (rate({count}{{{SERVICE}}}[{RATE}]))",
                            "{{db_operation_name}}",
                        )
                    ],
                    unit="percentunit",
                    description="Queries that raised, by operation; their error.type is on the query spans and logs.",
                ),
            ],
        ),
        Row(
            "Connection pool",
            [
                _pool_use("Connections in use / pool size", spec, width=6),
                Panel(
                    "Connections by state",
                    [
                        (
                            f"sum by ({by_pool}, {m.DB_CONNECTION_STATE}) ({m.DB_CONNECTION_COUNT}{{{SERVICE}}})",
                            "{{db_client_connection_pool_name}} {{db_client_connection_state}}",
                        ),
                        (
                            f"max by ({by_pool}) ({m.DB_CONNECTION_MAX}{{{SERVICE}}})",
                            "max {{db_client_connection_pool_name}}",
                        ),
                    ],
                    width=6,
                    stack=False,
                ),
                Panel(
                    "Waiting for a connection",
                    [
                        (
                            f"sum by ({by_pool}) ({m.DB_CONNECTION_PENDING}{{{SERVICE}}})",
                            "waiting {{db_client_connection_pool_name}}",
                        ),
                        (
                            f"histogram_quantile(0.95, sum by ({by_pool}, le) "
                            f"(rate({m.DB_CONNECTION_WAIT_BUCKET}{{{SERVICE}}}[{RATE}])))",
                            "p95 wait (s) {{db_client_connection_pool_name}}",
                        ),
                    ],
                    width=6,
                ),
                Panel(
                    "Checkout timeouts per second",
                    [
                        (
                            f"sum by ({by_pool}) (rate({m.DB_CONNECTION_TIMEOUTS}{{{SERVICE}}}[{RATE}]))\nor\n"
                            f"0 * sum by ({by_pool}) (rate({m.DB_CONNECTION_WAIT_COUNT}{{{SERVICE}}}[{RATE}]))",
                            "{{db_client_connection_pool_name}}",
                        )
                    ],
                    unit="ops",
                    width=6,
                    description=(
                        "The pool gave up waiting (pool_timeout): the callers got an error. The counter appears with "
                        "the first timeout; 0 before."
                    ),
                ),
            ],
        ),
        _cache_row(),
    ]
    return dashboard(
        "otel-dist-database",
        "otel-dist / Database and cache",
        rows,
        description=(
            "Query time, throughput, slow and failed queries, connection pool use and waits (otel_dist.db), cache "
            "hit ratio (otel_dist.cache_lookup). Database size needs a database-side exporter (postgres_exporter)."
        ),
    )


def cache(spec: Spec) -> dict[str, Any]:
    """Hit ratio and lookups of every cache of the service, for services with a cache and no database."""
    del spec
    return dashboard(
        "otel-dist-cache",
        "otel-dist / Cache",
        [_cache_row()],
        description="Cache hit ratio and lookups per cache.name (otel_dist.cache_lookup).",
    )


#: Dashboards for services with a database or a cache: rendered when a spec asks for them (``dashboards:`` of the
#: objectives spec), never for the shipped spec (its service has neither).
DEPENDENCY_DASHBOARDS: Final = {"overview.json": overview, "database.json": database, "cache.json": cache}


#: The dashboards a spec renders unless it lists others (``dashboards:``).
GENERIC_DASHBOARDS: Final = {
    "service-overview.json": service_overview,
    "slo.json": slo,
    "runtime.json": runtime,
    "logs.json": logs,
    "telemetry-pipeline.json": pipeline,
}
DASHBOARDS: Final = {
    **GENERIC_DASHBOARDS,
    "operations.json": operations,
    "security.json": security,
    **DEPENDENCY_DASHBOARDS,
}


Builder = Callable[[Spec], dict[str, Any]]


def selected(spec: Spec) -> dict[str, Builder]:
    """File name -> builder of the dashboards the spec renders; an unknown name is a SpecError."""
    if spec.dashboards is None:
        return dict(GENERIC_DASHBOARDS)
    chosen: dict[str, Builder] = {}
    for index, stem in enumerate(spec.dashboards):
        name = f"{stem}.json"
        if name not in DASHBOARDS:
            known = ", ".join(sorted(n.removesuffix(".json") for n in DASHBOARDS))
            raise SpecError(f"dashboards[{index}]", f"must be one of {known}, got {stem!r}")
        chosen[name] = DASHBOARDS[name]
    return chosen


def _named(spec: Spec, model: dict[str, Any]) -> dict[str, Any]:
    """An application's spec (``name:``) prefixes every uid and title, so its dashboards sit next to the shipped
    ones in one Grafana without clashing."""
    if spec.name:
        model["uid"] = f"{spec.name}-{model['uid'].removeprefix('otel-dist-').removeprefix(spec.name + '-')}"
        model["title"] = f"{spec.name} / {model['title'].split(' / ', 1)[-1]}"
    return model


def render_dashboards(spec: Spec) -> dict[str, str]:
    """File name -> dashboard JSON text (sorted keys, two-space indent, trailing newline)."""
    return {
        name: json.dumps(_named(spec, build(spec)), indent=2, sort_keys=True) + "\n"
        for name, build in selected(spec).items()
    }


def queries(model: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, datasource type, expr) of every query of a dashboard."""
    found = []
    for panel in model.get("panels", []):
        for target in panel.get("targets", []):
            found.append((panel["title"], target["datasource"]["type"], target["expr"]))
    return found
