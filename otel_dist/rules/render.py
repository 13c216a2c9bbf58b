"""Spec -> Prometheus recording and alerting rules, rendered deterministically (same spec, same bytes).

Five files, so that promtool unit tests can load only what they exercise:

* ``otel-dist-recording.yml``: request rate, error ratio and latency quantiles per service and per route, the SLIs
  over every burn-rate window, the error budget left, the free share of every filesystem;
* ``otel-dist-slo-alerts.yml``: multi-window multi-burn-rate alerts (availability and latency) and ErrorBudgetLow;
* ``otel-dist-service-alerts.yml``: per-service thresholds, baseline-relative alerts, saturation (disks too),
  component health and the service's own telemetry;
* ``otel-dist-platform-alerts.yml``: the collector, scrape targets and the Watchdog.
* ``otel-dist-domain-alerts.yml``: tracked operations, batch jobs, and the spec's free-form alerts.

Metric names follow the naming contract in collector/README.md; ``catalog`` lists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from otel_dist.rules import catalog as m
from otel_dist.rules.spec import (
    HTTP_DURATION,
    BaselineEntry,
    Disk,
    Duration,
    JobObjectives,
    OperationObjectives,
    Scope,
    Spec,
    SpecError,
    Threshold,
)

RECORDING_FILE: Final = "otel-dist-recording.yml"
SLO_ALERTS_FILE: Final = "otel-dist-slo-alerts.yml"
SERVICE_ALERTS_FILE: Final = "otel-dist-service-alerts.yml"
PLATFORM_ALERTS_FILE: Final = "otel-dist-platform-alerts.yml"
DOMAIN_ALERTS_FILE: Final = "otel-dist-domain-alerts.yml"
RULE_FILES: Final = (RECORDING_FILE, SLO_ALERTS_FILE, SERVICE_ALERTS_FILE, PLATFORM_ALERTS_FILE, DOMAIN_ALERTS_FILE)

#: Aggregation levels of the recording rules: per service (job and environment) and per route.
BY_JOB: Final = "job, deployment_environment_name"
BY_ROUTE: Final = "job, deployment_environment_name, http_route"
ERRORS: Final = 'http_response_status_code=~"5.."'
#: The budget and burn-rate recordings of long windows need not run every 15 s.
BUDGET_INTERVAL: Final = "1m"
#: Labels that tell apart rules of one alert and severity (coverage checks need a test of each).
STATIC_LABELS: Final = ("long_window", "short_window", "disk_threshold")
#: How values read in descriptions: rates as plain numbers (humanize would print 0.2 as "200m").
PER_SECOND: Final = "{{ $value | printf `%.4g` }}"
#: Labels of the operation alerts (plus an entry's ``by``) and of the batch-job alerts.
BY_OPERATION: Final = "job, deployment_environment_name, operation_name"
BY_JOB_NAME: Final = "job, deployment_environment_name, job_name"
CORES: Final = "{{ $value | printf `%.2f` }}"


# --- number and text formatting ---------------------------------------------------------------------------


def num(value: float) -> str:
    """A number as PromQL/YAML text without float noise: 0.995, 14.4, 1."""
    return f"{value:.12g}"


def pct(value: float) -> str:
    """0.995 -> 99.5%."""
    return f"{value * 100:.12g}%"


def _bytes(value: float) -> str:
    """Bytes for humans, in powers of 1024: 1073741824 -> 1GiB."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.4g}{unit}"
    return f"{value:.4g}B"


def secs(value: float) -> str:
    """Seconds for humans: 0.05 -> 50ms, 1 -> 1s."""
    return f"{value * 1000:.12g}ms" if value < 1 else f"{value:.12g}s"


def quantile_name(q: float) -> str:
    """0.95 -> p95, 0.999 -> p999."""
    return "p" + f"{q * 100:.12g}".replace(".", "")


def le_matcher(seconds: float) -> str:
    """The bucket at ``seconds``: the OTLP path spells 1 s ``le="1"``, scrapes normalise it to ``le="1.0"``."""
    if float(seconds).is_integer():
        whole = int(seconds)
        return f'le=~"{whole}|{whole}\\\\.0"'
    return f'le="{num(seconds)}"'


def lines(*parts: str) -> str:
    """A multi-line PromQL expression (rendered as a YAML block)."""
    return "\n".join(parts)


def _with(selector: str, *extra: str) -> str:
    """Merge extra matchers into a scope selector ("" or "{...}")."""
    inner = selector[1:-1] if selector else ""
    joined = ", ".join([*extra, *([inner] if inner else [])])
    return "{" + joined + "}" if joined else ""


# --- rule builders -----------------------------------------------------------------------------------------


class _Rules:
    """Collects alert rules with the spec's labels, annotations and runbook URLs."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    def alert(
        self,
        name: str,
        expr: str,
        *,
        severity: str,
        for_: Duration,
        summary: str,
        description: str,
        labels: Mapping[str, str] | None = None,
        service: bool = True,
    ) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": name, "expr": expr}
        if for_.seconds:
            rule["for"] = str(for_)
        rule_labels = {"severity": severity}
        if service:
            rule_labels["service"] = "{{ $labels.job }}"
        rule_labels.update(labels or {})
        rule_labels.update(dict(self.spec.labels))
        rule["labels"] = rule_labels
        annotations = {"summary": summary, "description": description, "runbook_url": self.spec.runbook_url(name)}
        annotations.update(dict(self.spec.annotations))
        rule["annotations"] = annotations
        return rule


def _record(name: str, expr: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = dict(labels)
    return rule


def _group(name: str, rules: list[dict[str, Any]], interval: str | None = None) -> dict[str, Any]:
    group: dict[str, Any] = {"name": name}
    if interval:
        group["interval"] = interval
    group["rules"] = rules
    return group


# --- recording rules ---------------------------------------------------------------------------------------


def http_recording_rules(spec: Spec) -> list[dict[str, Any]]:
    """Request rate, error ratio and latency quantiles per service/route and per service (all services)."""
    count, bucket = m.HTTP_DURATION_COUNT, m.HTTP_DURATION_BUCKET
    rules = [
        _record(m.ROUTE_REQUESTS_RATE, f"sum by ({BY_ROUTE}) (rate({count}[5m]))"),
        _record(
            m.ROUTE_ERRORS_RATE,
            # A route without a 5xx yet has no such series: 0, not nothing, so its ratio is 0.
            lines(f"sum by ({BY_ROUTE}) (rate({count}{{{ERRORS}}}[5m]))", "or", f"0 * {m.ROUTE_REQUESTS_RATE}"),
        ),
        _record(m.ROUTE_ERROR_RATIO, f"{m.ROUTE_ERRORS_RATE} / {m.ROUTE_REQUESTS_RATE}"),
    ]
    for q in spec.quantiles:
        rules.append(
            _record(
                m.route_quantile(quantile_name(q)),
                f"histogram_quantile({num(q)}, sum by ({BY_ROUTE}, le) (rate({bucket}[5m])))",
            )
        )
    rules += [
        _record(m.JOB_REQUESTS_RATE, f"sum by ({BY_JOB}) ({m.ROUTE_REQUESTS_RATE})"),
        _record(m.JOB_ERRORS_RATE, f"sum by ({BY_JOB}) ({m.ROUTE_ERRORS_RATE})"),
        _record(m.JOB_ERROR_RATIO, f"{m.JOB_ERRORS_RATE} / {m.JOB_REQUESTS_RATE}"),
    ]
    for q in spec.quantiles:
        rules.append(
            _record(
                m.job_quantile(quantile_name(q)),
                f"histogram_quantile({num(q)}, sum by ({BY_JOB}, le) (rate({bucket}[5m])))",
            )
        )
    return rules


def _availability_sli(scope: Scope, window: Duration) -> str:
    sel = scope.selector()
    count = m.HTTP_DURATION_COUNT
    return lines(
        "(",
        f"  sum by ({BY_JOB}) (rate({count}{_with(sel, ERRORS)}[{window}]))",
        "  or",
        f"  0 * sum by ({BY_JOB}) (rate({count}{sel}[{window}]))",
        ")",
        "/",
        f"sum by ({BY_JOB}) (rate({count}{sel}[{window}]))",
    )


def _latency_sli(scope: Scope, window: Duration, threshold: float) -> str:
    sel = scope.selector()
    return lines(
        "1 - (",
        f"  sum by ({BY_JOB}) (rate({m.HTTP_DURATION_BUCKET}{_with(sel, le_matcher(threshold))}[{window}]))",
        "  /",
        f"  sum by ({BY_JOB}) (rate({m.HTTP_DURATION_COUNT}{sel}[{window}]))",
        ")",
    )


def slo_windows(spec: Spec) -> list[Duration]:
    """Every window a burn-rate alert reads, shortest first."""
    return sorted({w for b in spec.burn_rates for w in (b.long, b.short)})


def slo_recording_groups(spec: Spec, scope: Scope) -> list[dict[str, Any]]:
    """The SLIs of one scope over each burn-rate window, then (every minute) over the SLO window."""
    o = scope.objectives
    sel = scope.selector()
    if o.availability is None and o.latency_slo is None:
        return []
    windows: list[dict[str, Any]] = []
    presence = f"group by ({BY_JOB}) ({m.HTTP_DURATION_COUNT}{sel})"
    if o.availability is not None:
        windows += [_record(m.slo_errors(w), _availability_sli(scope, w)) for w in slo_windows(spec)]
        windows.append(_record(m.SLO_OBJECTIVE, f"{num(o.availability)} + 0 * {presence}", {"slo": "availability"}))
    if o.latency_slo is not None:
        slo = o.latency_slo
        windows += [_record(m.slo_slow(w), _latency_sli(scope, w, slo.threshold_seconds)) for w in slo_windows(spec)]
        windows.append(_record(m.SLO_OBJECTIVE, f"{num(slo.target)} + 0 * {presence}", {"slo": "latency"}))
        windows.append(_record(m.SLO_LATENCY_THRESHOLD, f"{num(slo.threshold_seconds)} + 0 * {presence}"))
    budget: list[dict[str, Any]] = []
    period = spec.slo_window
    if o.availability is not None:
        errors = m.slo_errors(period)
        budget.append(_record(errors, _availability_sli(scope, period)))
        budget.append(
            _record(
                m.SLO_BUDGET_REMAINING,
                f"1 - {errors}{sel} / {num(round(1 - o.availability, 12))}",
                {"slo": "availability"},
            )
        )
    if o.latency_slo is not None:
        slow = m.slo_slow(period)
        budget.append(_record(slow, _latency_sli(scope, period, o.latency_slo.threshold_seconds)))
        budget.append(
            _record(
                m.SLO_BUDGET_REMAINING,
                f"1 - {slow}{sel} / {num(round(1 - o.latency_slo.target, 12))}",
                {"slo": "latency"},
            )
        )
    return [
        _group(f"otel-dist-slo-{scope.name}", windows),
        _group(f"otel-dist-slo-budget-{scope.name}", budget, interval=BUDGET_INTERVAL),
    ]


def filesystem_recording_rules() -> list[dict[str, Any]]:
    """The free share of each filesystem the services report (otel_dist.filesystem_metrics)."""
    usage, state = m.FILESYSTEM_USAGE, m.FS_STATE
    return [
        _record(
            m.FILESYSTEM_FREE_RATIO,
            lines(f'sum without ({state}) ({usage}{{{state}="free"}})', "/", f"sum without ({state}) ({usage})"),
        )
    ]


# --- SLO alerts ---------------------------------------------------------------------------------------------


def slo_alert_rules(spec: Spec, scope: Scope) -> list[dict[str, Any]]:
    """Multi-window multi-burn-rate alerts for availability and latency, and ErrorBudgetLow."""
    b = _Rules(spec)
    o = scope.objectives
    sel = scope.selector()
    rules: list[dict[str, Any]] = []
    period = spec.slo_window
    sources = []
    if o.availability is not None:
        budget = round(1 - o.availability, 12)
        sources.append(
            ("AvailabilityBudgetBurn", m.slo_errors, budget, "failed (5xx)", f"{pct(o.availability)} availability SLO")
        )
    if o.latency_slo is not None:
        budget = round(1 - o.latency_slo.target, 12)
        slo_text = f"latency SLO ({pct(o.latency_slo.target)} within {secs(o.latency_slo.threshold_seconds)})"
        what = f"took longer than {secs(o.latency_slo.threshold_seconds)}"
        sources.append(("LatencyBudgetBurn", m.slo_slow, budget, what, slo_text))
    for alert, series, budget, what, slo_text in sources:
        for burn in spec.burn_rates:
            limit = f"({num(burn.factor)} * {num(budget)})"
            lasts = Duration(period.seconds / burn.factor).humanize()
            rules.append(
                b.alert(
                    alert,
                    lines(f"{series(burn.long)}{sel} > {limit}", "and", f"{series(burn.short)}{sel} > {limit}"),
                    severity=burn.severity,
                    for_=burn.for_,
                    labels={"long_window": str(burn.long), "short_window": str(burn.short)},
                    summary=f"{{{{ $labels.job }}}} is burning its error budget {num(burn.factor)}x too fast",
                    description=(
                        f"{{{{ $value | humanizePercentage }}}} of the requests of {{{{ $labels.job }}}} {what} over "
                        f"the last {burn.long}, and more than {pct(burn.factor * budget)} over the last {burn.short}: "
                        f"{num(burn.factor)}x the error budget of the {slo_text}. At this rate the {period} budget "
                        f"lasts {lasts}."
                    ),
                )
            )
    if o.error_budget_low is not None:
        low = o.error_budget_low
        for slo, text in (("availability", o.availability), ("latency", o.latency_slo)):
            if text is None:
                continue
            slo_sel = _with(sel, f'slo="{slo}"')
            rules.append(
                b.alert(
                    "ErrorBudgetLow",
                    f"{m.SLO_BUDGET_REMAINING}{slo_sel} < {num(low)}",
                    severity="info",
                    for_=Duration(900),
                    labels={"slo": slo},
                    summary=f"{{{{ $labels.job }}}} has {{{{ $value | humanizePercentage }}}} of its {slo} error "
                    "budget left",
                    description=(
                        f"Over the last {period}, {{{{ $labels.job }}}} used more than {pct(1 - low)} of the error "
                        f"budget of its {slo} SLO; {{{{ $value | humanizePercentage }}}} is left (a negative value: "
                        "the SLO is missed). Prefer reliability work to risky changes until it recovers."
                    ),
                )
            )
    return rules


# --- service alerts -----------------------------------------------------------------------------------------


def _traffic_guard(scope: Scope) -> list[str]:
    rate = scope.objectives.min_request_rate
    if rate <= 0:
        return []
    return ["and", f"{m.JOB_REQUESTS_RATE}{scope.selector()} >= {num(rate)}"]


def service_alert_rules(spec: Spec, scope: Scope) -> list[dict[str, Any]]:
    """Thresholds, saturation, component health and telemetry of the services in one scope."""
    b = _Rules(spec)
    o = scope.objectives
    sel = scope.selector()
    rules: list[dict[str, Any]] = []
    if o.error_ratio is not None:
        for severity, value, for_ in o.error_ratio.tiers():
            rules.append(
                b.alert(
                    "HTTPErrorRateHigh",
                    lines(f"{m.JOB_ERROR_RATIO}{sel} > {num(value)}", *_traffic_guard(scope)),
                    severity=severity,
                    for_=for_,
                    summary="{{ $labels.job }}: {{ $value | humanizePercentage }} of the requests fail",
                    description=(
                        "{{ $value | humanizePercentage }} of the requests of {{ $labels.job }} answered 5xx over "
                        f"the last 5m ({severity} above {pct(value)})."
                    ),
                )
            )
    if o.latency is not None:
        q = quantile_name(o.latency.percentile)
        for severity, value, for_ in o.latency.threshold.tiers():
            rules.append(
                b.alert(
                    "HTTPLatencyHigh",
                    lines(f"{m.job_quantile(q)}{sel} > {num(value)}", *_traffic_guard(scope)),
                    severity=severity,
                    for_=for_,
                    summary=f"{{{{ $labels.job }}}}: {q} latency {{{{ $value | humanizeDuration }}}}",
                    description=(
                        f"The {q} latency of {{{{ $labels.job }}}} is {{{{ $value | humanizeDuration }}}} over the "
                        f"last 5m ({severity} above {secs(value)})."
                    ),
                )
            )
    per_instance = f"{BY_JOB}, instance"
    if o.memory is not None:
        for severity, value, for_ in o.memory.tiers():
            rules.append(
                b.alert(
                    "ProcessMemoryNearLimit",
                    lines(
                        f"max by ({per_instance}) (",
                        f"  {m.PROCESS_MEMORY_USAGE}{sel} / {m.PROCESS_MEMORY_LIMIT}{sel}",
                        f") > {num(value)}",
                    ),
                    severity=severity,
                    for_=for_,
                    summary="{{ $labels.job }}: a process uses {{ $value | humanizePercentage }} of its memory limit",
                    description=(
                        "Process {{ $labels.instance }} of {{ $labels.job }} uses {{ $value | humanizePercentage }} "
                        f"of its memory limit ({severity} above {pct(value)})."
                    ),
                )
            )
    if o.cpu is not None:
        for severity, value, for_ in o.cpu.tiers():
            rules.append(
                b.alert(
                    "ProcessCPUHigh",
                    f"sum by ({per_instance}) (rate({m.PROCESS_CPU_TIME}{sel}[5m])) > {num(value)}",
                    severity=severity,
                    for_=for_,
                    summary="{{ $labels.job }}: a process uses " + CORES + " CPU cores",
                    description=(
                        "Process {{ $labels.instance }} of {{ $labels.job }} used " + CORES + " CPU cores "
                        f"on average over the last 5m ({severity} above {num(value)}; one Python process runs "
                        "its bytecode on one core at a time)."
                    ),
                )
            )
    if o.db_pool is not None:
        by_pool = f"{per_instance}, {m.DB_POOL_NAME}"
        used = _with(sel, f'{m.DB_CONNECTION_STATE}="used"')
        for severity, value, for_ in o.db_pool.tiers():
            rules.append(
                b.alert(
                    "DBConnectionPoolSaturated",
                    lines(
                        f"sum by ({by_pool}) ({m.DB_CONNECTION_COUNT}{used})",
                        "/",
                        f"sum by ({by_pool}) ({m.DB_CONNECTION_MAX}{sel})",
                        f"> {num(value)}",
                    ),
                    severity=severity,
                    for_=for_,
                    summary=(
                        "{{ $labels.job }}: pool {{ $labels.db_client_connection_pool_name }} is "
                        "{{ $value | humanizePercentage }} in use"
                    ),
                    description=(
                        "Connection pool {{ $labels.db_client_connection_pool_name }} of {{ $labels.job }} "
                        "({{ $labels.instance }}) has {{ $value | humanizePercentage }} of its connections in use "
                        f"({severity} above {pct(value)}); requests start waiting for a connection when it is full."
                    ),
                )
            )
    if o.disk is not None:
        rules += disk_alert_rules(b, scope, o.disk)
    if o.db_slow_queries is not None:
        slow = o.db_slow_queries
        total = f"sum by ({BY_JOB}) (rate({m.DB_OPERATION_DURATION_COUNT}{sel}[5m]))"
        guard = ["and", f"{total} >= {num(slow.min_rate)}"] if slow.min_rate > 0 else []
        for severity, value, for_ in slow.threshold.tiers():
            rules.append(
                b.alert(
                    "DBSlowQueries",
                    lines(
                        "1 - (",
                        f"  sum by ({BY_JOB}) (rate({m.DB_OPERATION_DURATION_BUCKET}"
                        f"{_with(sel, le_matcher(slow.threshold_seconds))}[5m]))",
                        "  /",
                        f"  {total}",
                        f") > {num(value)}",
                        *guard,
                    ),
                    severity=severity,
                    for_=for_,
                    summary=(
                        "{{ $labels.job }}: {{ $value | humanizePercentage }} of the database queries take longer "
                        f"than {secs(slow.threshold_seconds)}"
                    ),
                    description=(
                        "{{ $value | humanizePercentage }} of the database operations of {{ $labels.job }} took "
                        f"longer than {secs(slow.threshold_seconds)} over the last 5m ({severity} above "
                        f"{pct(value)}); each one is logged as a db.query.slow event."
                    ),
                )
            )
    if o.cache_hit_ratio is not None:
        cache = o.cache_hit_ratio
        by_cache = f"{BY_JOB}, cache_name"
        lookups = f"sum by ({by_cache}) (rate({m.CACHE_LOOKUPS}{sel}[5m]))"
        hit = 'cache_outcome="hit"'
        hits = f"sum by ({by_cache}) (rate({m.CACHE_LOOKUPS}{_with(sel, hit)}[5m]))"
        for severity, value, for_ in cache.threshold.tiers():
            rules.append(
                b.alert(
                    "CacheHitRatioLow",
                    lines(
                        "(",
                        f"  {hits}",
                        "  or",
                        f"  0 * {lookups}",
                        ")",
                        "/",
                        f"{lookups}",
                        f"< {num(value)}",
                        "and",
                        f"{lookups} >= {num(cache.min_lookup_rate)}",
                    ),
                    severity=severity,
                    for_=for_,
                    summary=(
                        "{{ $labels.job }}: cache {{ $labels.cache_name }} hits {{ $value | humanizePercentage }} "
                        "of its lookups"
                    ),
                    description=(
                        "Cache {{ $labels.cache_name }} of {{ $labels.job }} answered {{ $value | humanizePercentage }}"
                        f" of its lookups from the cache over the last 5m ({severity} below {pct(value)}): the work "
                        "it saves falls on the backend behind it."
                    ),
                )
            )
    if o.health is not None:
        by_check = f"{BY_JOB}, health_check_name"
        failing = f"count by ({by_check}) ({m.HEALTH_CHECK_STATUS}{sel} == 0)"
        paging = sel if o.health.critical_checks == "all" else _with(sel, f'{m.HEALTH_CHECK_REQUIRED}!="false"')
        which = "" if o.health.critical_checks == "all" else "required "
        rules.append(
            b.alert(
                "ComponentUnhealthy",
                lines(
                    f"count by ({by_check}) ({m.HEALTH_CHECK_STATUS}{paging} == 0)",
                    "==",
                    f"count by ({by_check}) ({m.HEALTH_CHECK_STATUS}{paging})",
                ),
                severity="critical",
                for_=o.health.critical_for,
                summary=(
                    f"{{{{ $labels.job }}}}: {which}health check {{{{ $labels.health_check_name }}}} fails everywhere"
                ),
                description=(
                    f"The {which}health check {{{{ $labels.health_check_name }}}} fails on all {{{{ $value }}}} "
                    "instance(s) of {{ $labels.job }} that report it."
                ),
            )
        )
        rules.append(
            b.alert(
                "ComponentUnhealthy",
                f"{failing} > 0",
                severity="warning",
                for_=o.health.warning_for,
                summary="{{ $labels.job }}: health check {{ $labels.health_check_name }} fails",
                description=(
                    "Health check {{ $labels.health_check_name }} fails on {{ $value }} instance(s) of "
                    "{{ $labels.job }}."
                ),
            )
        )
    if o.telemetry is not None:
        t = o.telemetry
        sdk = _with(sel, 'telemetry_sdk_name!=""')
        rules.append(
            b.alert(
                "TelemetryMissing",
                lines(
                    f"time() - max by ({BY_JOB}) (",
                    f"  max_over_time(timestamp({m.TARGET_INFO}{sdk})[{t.lookback}:1m])",
                    f") > {num(t.silent_after.seconds)}",
                ),
                severity="warning",
                for_=t.silent_for,
                summary="{{ $labels.job }} sends no telemetry",
                description=(
                    f"{{{{ $labels.job }}}} sent telemetry within the last {t.lookback} but nothing for "
                    "{{ $value | humanizeDuration }}: it stopped, cannot reach the collector, or was switched off."
                ),
            )
        )
        dropped = _with(sel, f'__name__=~"{m.SDK_LOSS_REGEX}"', 'error_type!=""')
        rules.append(
            b.alert(
                "OTelSDKDroppingTelemetry",
                f"sum by ({BY_JOB}) (rate({dropped}[5m])) > 0",
                severity="warning",
                for_=t.sdk_drops_for,
                summary="{{ $labels.job }} loses telemetry in its SDK",
                description=(
                    "{{ $labels.job }} lost " + PER_SECOND + " spans, log records or metric points per second "
                    "over the last 5m: dropped by full SDK queues or not accepted by the collector."
                ),
            )
        )
    return rules


def disk_alert_rules(b: _Rules, scope: Scope, disk: Disk) -> list[dict[str, Any]]:
    """DiskSpaceLow (a share of the size, or a number of bytes, free) and DiskWillFillSoon (predict_linear)."""
    rw = _with(scope.selector(), f'{m.FS_MODE}!="ro"')
    free = _with(rw, f'{m.FS_STATE}="free"')
    where = (
        f"{{{{ $labels.{m.FS_MOUNTPOINT} }}}} ({{{{ $labels.{m.FS_DEVICE} }}}}) of {{{{ $labels.job }}}} on "
        "{{ $labels.instance }}"
    )
    rules: list[dict[str, Any]] = []
    tiers: list[tuple[str, Threshold | None, str, str, Any]] = [
        ("ratio", disk.free_ratio, f"{m.FILESYSTEM_FREE_RATIO}{rw}", "{{ $value | humanizePercentage }}", pct),
        ("bytes", disk.free_bytes, f"{m.FILESYSTEM_USAGE}{free}", "{{ $value | humanize1024 }}B", _bytes),
    ]
    for kind, threshold, series, shown, unit in tiers:
        if threshold is None:
            continue
        for severity, value, for_ in threshold.tiers():
            rules.append(
                b.alert(
                    "DiskSpaceLow",
                    f"{series} < {num(value)}",
                    severity=severity,
                    for_=for_,
                    labels={"disk_threshold": kind},
                    summary=f"{{{{ $labels.{m.FS_MOUNTPOINT} }}}} of {{{{ $labels.job }}}} has {shown} free",
                    description=f"Filesystem {where} has {shown} free ({severity} below {unit(value)}).",
                )
            )
    on = f"on (job, deployment_environment_name, instance, {m.FS_DEVICE}, {m.FS_MOUNTPOINT})"
    for severity, hours in (("critical", disk.fill_critical_hours), ("warning", disk.fill_warning_hours)):
        if hours is None:
            continue
        rules.append(
            b.alert(
                "DiskWillFillSoon",
                lines(
                    f"{m.FILESYSTEM_FREE_RATIO}{rw} < 0.4",
                    f"and {on}",
                    f"predict_linear({m.FILESYSTEM_USAGE}{free}[{disk.fill_lookback}], {num(hours)} * 3600) < 0",
                ),
                severity=severity,
                for_=disk.fill_for,
                summary=f"{{{{ $labels.{m.FS_MOUNTPOINT} }}}} of {{{{ $labels.job }}}} fills up within {num(hours)}h",
                description=(
                    f"Filesystem {where} has {{{{ $value | humanizePercentage }}}} free and, at the rate of the last "
                    f"{disk.fill_lookback}, will be full within {num(hours)}h."
                ),
            )
        )
    return rules


def _baseline_series(entry: BaselineEntry, percentile: float) -> tuple[str, str, str]:
    """(latency expression, rate expression, readable name) of a baseline entry's series."""
    labels = dict(entry.labels)
    matchers = "{" + ", ".join(f'{k}="{v}"' for k, v in entry.labels) + "}"
    if entry.metric == HTTP_DURATION and set(labels) <= {"job", "deployment_environment_name", "http_route"}:
        latency = f"{m.route_quantile(quantile_name(percentile))}{matchers}"
        return latency, f"{m.ROUTE_REQUESTS_RATE}{matchers}", f"{labels['http_route']} on {labels['job']}"
    keys = ", ".join(labels)
    latency = f"histogram_quantile({num(percentile)}, sum by (le, {keys}) (rate({entry.metric}_bucket{matchers}[5m])))"
    rate = f"sum by ({keys}) (rate({entry.metric}_count{matchers}[5m]))"
    return latency, rate, f"{entry.metric}{matchers}"


def baseline_alert_rules(spec: Spec) -> list[dict[str, Any]]:
    """p<percentile> above N x its baseline, and request rate above N x its baseline, per baseline entry."""
    baseline = spec.baseline
    if baseline is None:
        return []
    b = _Rules(spec)
    q = quantile_name(baseline.percentile)
    source = baseline.file.name
    rules = []
    for entry in baseline.entries:
        latency_expr, rate_expr, name = _baseline_series(entry, baseline.percentile)
        if entry.latency_seconds is not None:
            for severity, factor, for_ in (
                ("critical", baseline.latency_critical_factor, baseline.critical_for),
                ("warning", baseline.latency_warning_factor, baseline.warning_for),
            ):
                if factor is None:
                    continue
                rules.append(
                    b.alert(
                        "LatencyAboveBaseline",
                        f"{latency_expr} > ({num(factor)} * {num(entry.latency_seconds)})",
                        severity=severity,
                        for_=for_,
                        labels=dict(entry.labels),
                        summary=f"{q} latency of {name} is {num(factor)}x its baseline",
                        description=(
                            f"The {q} latency of {name} is {{{{ $value | humanizeDuration }}}} over the last 5m: "
                            f"more than {num(factor)}x its baseline of {secs(entry.latency_seconds)} ({source})."
                        ),
                    )
                )
        if entry.request_rate is not None and baseline.rate_warning_factor is not None:
            factor = baseline.rate_warning_factor
            rules.append(
                b.alert(
                    "TrafficAboveBaseline",
                    f"{rate_expr} > ({num(factor)} * {num(entry.request_rate)})",
                    severity="warning",
                    for_=baseline.warning_for,
                    labels=dict(entry.labels),
                    summary=f"traffic of {name} is {num(factor)}x its baseline",
                    description=(
                        f"{name} received {PER_SECOND} requests per second over the last 5m: more "
                        f"than {num(factor)}x its baseline of {num(entry.request_rate)}/s ({source})."
                    ),
                )
            )
    return rules


# --- domain alerts: operations, batch jobs, free-form -------------------------------------------------------


def _operation_by(op: OperationObjectives) -> str:
    return ", ".join([BY_OPERATION, *op.by])


def _outcome_ratio(op: OperationObjectives, outcome: str, value: float) -> str:
    by = _operation_by(op)
    total = f"sum by ({by}) (rate({m.OPERATION_OUTCOMES}{op.selector()}[5m]))"
    matcher = f'operation_outcome="{outcome}"'
    part = f"sum by ({by}) (rate({m.OPERATION_OUTCOMES}{op.selector(matcher)}[5m]))"
    return lines("(", f"  {part}", "  or", f"  0 * {total}", ")", "/", total, f"> {num(value)}")


def _operation_guard(op: OperationObjectives) -> list[str]:
    if op.min_rate <= 0:
        return []
    total = f"sum by ({_operation_by(op)}) (rate({m.OPERATION_OUTCOMES}{op.selector()}[5m]))"
    return ["and", f"{total} >= {num(op.min_rate)}"]


def _where(op: OperationObjectives) -> str:
    """How a description names the series: the operation and its ``by`` labels."""
    extra = "".join(f" {label}={{{{ $labels.{label} }}}}" for label in op.by)
    return f"{op.name}{extra} of {{{{ $labels.job }}}}"


def operation_alert_rules(spec: Spec, op: OperationObjectives) -> list[dict[str, Any]]:
    """Error ratio, timeout ratio, a latency percentile and a peak-memory percentile of one tracked operation."""
    b = _Rules(spec)
    rules: list[dict[str, Any]] = []
    by = _operation_by(op)
    for alert, outcome, threshold, what in (
        ("OperationErrorRateHigh", "error", op.error_ratio, "failed with an exception"),
        ("OperationTimeoutRateHigh", "timeout", op.timeout_ratio, "timed out"),
    ):
        if threshold is None:
            continue
        for severity, value, for_ in threshold.tiers():
            rules.append(
                b.alert(
                    alert,
                    lines(_outcome_ratio(op, outcome, value), *_operation_guard(op)),
                    severity=severity,
                    for_=for_,
                    summary=f"{_where(op)}: {{{{ $value | humanizePercentage }}}} {what}",
                    description=(
                        f"{{{{ $value | humanizePercentage }}}} of the runs of {_where(op)} {what} over the last "
                        f"5m ({severity} above {pct(value)})."
                    ),
                )
            )
    for alert, quantile, metric, unit, humanize in (
        ("OperationLatencyHigh", op.latency, m.OPERATION_DURATION_BUCKET, secs, "humanizeDuration"),
        ("OperationMemoryHigh", op.memory, m.OPERATION_MEMORY_PEAK_BUCKET, _bytes, "humanize1024"),
    ):
        if quantile is None:
            continue
        q = quantile_name(quantile.percentile)
        kind = "latency" if alert == "OperationLatencyHigh" else "peak memory"
        for severity, value, for_ in quantile.threshold.tiers():
            buckets = f"sum by ({by}, le) (rate({metric}{op.selector()}[5m]))"
            expr = f"histogram_quantile({num(quantile.percentile)}, {buckets})"
            suffix = "" if humanize == "humanizeDuration" else "B"
            rules.append(
                b.alert(
                    alert,
                    lines(f"{expr} > {num(value)}", *_operation_guard(op)),
                    severity=severity,
                    for_=for_,
                    summary=f"{_where(op)}: {q} {kind} {{{{ $value | {humanize} }}}}{suffix}",
                    description=(
                        f"The {q} {kind} of {_where(op)} is {{{{ $value | {humanize} }}}}{suffix} over the last 5m "
                        f"({severity} above {unit(value)})."
                    ),
                )
            )
    return rules


def job_alert_rules(spec: Spec, job: JobObjectives) -> list[dict[str, Any]]:
    """A batch job without a successful run for too long (JobStale), and its runs failing (JobFailureRateHigh)."""
    b = _Rules(spec)
    rules: list[dict[str, Any]] = []
    sel = job.selector()
    last = f"max by ({BY_JOB_NAME}) (max_over_time({m.JOB_LAST_SUCCESS}{sel}[{job.lookback}]))"
    runs = f"max by ({BY_JOB_NAME}) (count_over_time({m.JOB_RUNS}{sel}[{job.lookback}]))"
    for severity, age in (("critical", job.max_age_critical), ("warning", job.max_age)):
        if age is None:
            continue
        rules.append(
            b.alert(
                "JobStale",
                lines(
                    f"time() - {last} > {num(age.seconds)}",
                    "or",
                    # Runs within the lookback, none of them a success: at least the lookback since the last one.
                    f"0 * {runs} + {num(job.lookback.seconds)} unless on ({BY_JOB_NAME}) {last}",
                ),
                severity=severity,
                for_=Duration(0),
                summary=f"batch job {job.name} of {{{{ $labels.job }}}} has not succeeded for "
                "{{ $value | humanizeDuration }}",
                description=(
                    f"The last successful run of batch job {job.name} ({{{{ $labels.job }}}}) ended "
                    f"{{{{ $value | humanizeDuration }}}} ago ({severity} after {age.humanize()}; "
                    f"{job.lookback.humanize()} means no success within the last {job.lookback.humanize()})."
                ),
            )
        )
    if job.failure_ratio is not None:
        window = job.failure_window
        total = f"sum by ({BY_JOB_NAME}) (increase({m.JOB_RUNS}{sel}[{window}]))"
        error = 'job_outcome="error"'
        failed = f"sum by ({BY_JOB_NAME}) (increase({m.JOB_RUNS}{job.selector(error)}[{window}]))"
        for severity, value, for_ in job.failure_ratio.tiers():
            rules.append(
                b.alert(
                    "JobFailureRateHigh",
                    lines(failed, "/", total, f"> {num(value)}"),
                    severity=severity,
                    for_=for_,
                    summary=f"batch job {job.name} of {{{{ $labels.job }}}}: {{{{ $value | humanizePercentage }}}} "
                    "of its runs fail",
                    description=(
                        f"{{{{ $value | humanizePercentage }}}} of the runs of batch job {job.name} "
                        f"({{{{ $labels.job }}}}) failed over the last {window} ({severity} above {pct(value)})."
                    ),
                )
            )
    return rules


def custom_alert_rules(spec: Spec) -> list[dict[str, Any]]:
    """The spec's free-form alerts, with the same labels, annotations and runbook URLs as every other alert."""
    b = _Rules(spec)
    return [
        b.alert(
            alert.alert,
            alert.expr,
            severity=alert.severity,
            for_=alert.for_,
            summary=alert.summary,
            description=alert.description,
            labels=dict(alert.labels),
        )
        for alert in spec.alerts
    ]


def _group_name(value: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in value.lower()).strip("-")


def domain_alert_groups(spec: Spec) -> list[dict[str, Any]]:
    """One group per operation and per batch job, and one for the free-form alerts."""
    groups = []
    for op in spec.operations:
        groups.append(_group(f"otel-dist-operation-{_group_name(op.name)}", operation_alert_rules(spec, op)))
    for job in spec.jobs:
        groups.append(_group(f"otel-dist-job-{_group_name(job.name)}", job_alert_rules(spec, job)))
    if spec.alerts:
        groups.append(_group("otel-dist-custom", custom_alert_rules(spec)))
    names = [g["name"] for g in groups]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise SpecError("operations", f"two entries render the same rule group {duplicate}; give them distinct names")
    return groups


# --- platform alerts ----------------------------------------------------------------------------------------


def _per_signal(prefix: str, by: str) -> str:
    """Sum a collector counter kept per signal (``<prefix>_spans_total`` ...) by ``by`` and data_type.

    rate() drops the metric name, so the three counters would collide on the same labels; each gets the
    data_type label the collector's queue metrics use (traces, metrics, logs) first.
    """
    parts = [
        f'label_replace(rate({prefix}_{item}_total[5m]), "data_type", "{data_type}", "", "")'
        for item, data_type in (("spans", "traces"), ("metric_points", "metrics"), ("log_records", "logs"))
    ]
    return lines(f"sum by ({by}, data_type) (", "  " + "\n  or\n  ".join(parts), ") > 0")


def platform_alert_rules(spec: Spec) -> list[dict[str, Any]]:
    """The collector, scrape targets, and the Watchdog."""
    b = _Rules(spec)
    p = spec.platform
    # Did each exporter's sent counter move over the last backlog_for: |now - then|. Unlike rate(), it needs one
    # sample at each end, so it holds for any scrape interval up to backlog_for; a reset (restart) counts as moved.
    backlog = str(p.collector_backlog_for)
    sent_lately = "\n  or\n  ".join(
        f'label_replace(abs({name} - {name} offset {backlog}), "data_type", "{data_type}", "", "")'
        for name, data_type in (
            ("otelcol_exporter_sent_spans_total", "traces"),
            ("otelcol_exporter_sent_metric_points_total", "metrics"),
            ("otelcol_exporter_sent_log_records_total", "logs"),
        )
    )
    rules: list[dict[str, Any]] = []
    rules += [
        b.alert(
            "OTelCollectorExportFailing",
            _per_signal("otelcol_exporter_send_failed", "job, instance, exporter"),
            severity="warning",
            for_=p.collector_for,
            summary="collector exporter {{ $labels.exporter }} fails to send",
            description=(
                "Exporter {{ $labels.exporter }} of collector {{ $labels.instance }} failed to send "
                + PER_SECOND
                + " items per second ({{ $labels.data_type }}) over the last 5m. They wait in its sending queue "
                "and are retried; they are dropped when the retries run out."
            ),
        ),
        b.alert(
            "OTelCollectorQueueNearCapacity",
            lines(
                "max by (job, instance, exporter, data_type) (",
                f"  {m.COLLECTOR_QUEUE_SIZE} / {m.COLLECTOR_QUEUE_CAPACITY}",
                f") > {num(p.collector_queue_warning)}",
            ),
            severity="warning",
            for_=p.collector_for,
            summary="collector queue of {{ $labels.exporter }} is {{ $value | humanizePercentage }} full",
            description=(
                "The sending queue of exporter {{ $labels.exporter }} ({{ $labels.data_type }}) on collector "
                "{{ $labels.instance }} is {{ $value | humanizePercentage }} full (warning above "
                f"{pct(p.collector_queue_warning)}). Once full, new data is dropped."
            ),
        ),
        b.alert(
            # Before retries run out (OTelCollectorExportFailing, 5m per batch) or the queue fills: items wait and
            # nothing goes out. An absent sent counter (nothing sent since the collector started) counts as none.
            "OTelCollectorBackendUnreachable",
            lines(
                f"max by (job, instance, exporter, data_type) ({m.COLLECTOR_QUEUE_SIZE}) > 0",
                "unless on (job, instance, exporter, data_type)",
                f"sum by (job, instance, exporter, data_type) (\n  {sent_lately}\n) > 0",
            ),
            severity="warning",
            for_=p.collector_backlog_for,
            summary="collector exporter {{ $labels.exporter }} sends nothing while data waits",
            description=(
                "Exporter {{ $labels.exporter }} ({{ $labels.data_type }}) of collector {{ $labels.instance }} has "
                "{{ $value }} batches waiting in its sending queue and has sent nothing for "
                f"{p.collector_backlog_for.humanize()}: its backend is down, unreachable or refuses everything. The "
                "queue keeps what waits (on disk) and sends it once the backend is back, until the queue is full."
            ),
        ),
        b.alert(
            "OTelCollectorDroppingData",
            _per_signal("otelcol_exporter_enqueue_failed", "job, instance, exporter"),
            severity="critical",
            for_=p.collector_dropping_for,
            summary="collector drops data: the queue of {{ $labels.exporter }} is full",
            description=(
                "Collector {{ $labels.instance }} dropped "
                + PER_SECOND
                + " items per second ({{ $labels.data_type }}) over the last 5m "
                "because the sending queue of exporter {{ $labels.exporter }} was full. This telemetry is lost."
            ),
        ),
        b.alert(
            "OTelCollectorRefusingData",
            _per_signal("otelcol_receiver_refused", "job, instance, receiver"),
            severity="warning",
            for_=p.collector_for,
            summary="collector receiver {{ $labels.receiver }} refuses data",
            description=(
                "Receiver {{ $labels.receiver }} of collector {{ $labels.instance }} refused " + PER_SECOND + " "
                "items per second ({{ $labels.data_type }}) over the last 5m (the memory limiter refuses data when the "
                "collector is near its memory limit). Senders retry, then drop."
            ),
        ),
        b.alert(
            "ScrapeTargetDown",
            "up == 0",
            severity="warning",
            for_=p.scrape_down_for,
            summary="Prometheus cannot scrape {{ $labels.instance }} ({{ $labels.job }})",
            description=(
                "Scrapes of {{ $labels.instance }} (job {{ $labels.job }}) have failed for "
                f"{p.scrape_down_for} "
                "(up = {{ $value }}): its metrics, and the alerts that read them, are missing."
            ),
        ),
        b.alert(
            "Watchdog",
            "vector(1)",
            severity="info",
            for_=Duration(0),
            service=False,
            summary="the alerting pipeline works",
            description=(
                "Always firing (value {{ $value }}). The heartbeat receiver expects it continuously; when it stops "
                "arriving, Prometheus, Alertmanager or the notification path is broken."
            ),
        ),
    ]
    return rules


# --- files -------------------------------------------------------------------------------------------------


def rule_groups(spec: Spec) -> dict[str, list[dict[str, Any]]]:
    """File name -> its rule groups."""
    recording = [_group("otel-dist-http", http_recording_rules(spec))]
    slo_alerts = []
    service_alerts = []
    for scope in spec.scopes:
        recording += slo_recording_groups(spec, scope)
        if rules := slo_alert_rules(spec, scope):
            slo_alerts.append(_group(f"otel-dist-slo-alerts-{scope.name}", rules))
        if rules := service_alert_rules(spec, scope):
            service_alerts.append(_group(f"otel-dist-service-{scope.name}", rules))
    if rules := baseline_alert_rules(spec):
        service_alerts.append(_group("otel-dist-baseline", rules))
    if any(scope.objectives.disk is not None for scope in spec.scopes):
        recording.append(_group("otel-dist-filesystems", filesystem_recording_rules()))
    files = {
        RECORDING_FILE: recording,
        SLO_ALERTS_FILE: slo_alerts,
        SERVICE_ALERTS_FILE: service_alerts,
        PLATFORM_ALERTS_FILE: [_group("otel-dist-platform-alerts", platform_alert_rules(spec))],
        DOMAIN_ALERTS_FILE: domain_alert_groups(spec),
    }
    rendered = {rule["alert"] for groups in files.values() for g in groups for rule in g["rules"] if "alert" in rule}
    unknown = sorted(set(dict(spec.runbook_urls)) - rendered)
    if unknown:
        raise SpecError(f"runbook_urls.{unknown[0]}", "no alert of this name is rendered from the spec")
    return files


def render(spec: Spec, *, source_name: str | None = None) -> dict[str, str]:
    """File name -> YAML text. ``source_name`` is how the header names the spec (default: its file name)."""
    from otel_dist.rules.yamlout import dump

    names = [source_name or spec.source.name]
    if spec.baseline is not None:
        names.append(spec.baseline.file.name)
    header = (
        f"# Generated by `otel-dist rules render` from {' and '.join(names)}. Do not edit: change the spec, render\n"
        '# again, and update the promtool tests and runbooks (MONITORING.md, "Adding an alert").\n'
    )
    return {name: header + dump({"groups": groups}) for name, groups in rule_groups(spec).items()}


def alert_keys(groups: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(alertname, severity, other static labels) of each alert rule, for coverage checks."""
    keys = []
    for group in groups:
        for rule in group.get("rules", []):
            if "alert" in rule:
                labels = rule.get("labels", {})
                static = tuple(sorted((k, v) for k, v in labels.items() if k in STATIC_LABELS))
                keys.append((rule["alert"], labels.get("severity", ""), static))
    return keys


def write(files: Mapping[str, str], directory: Path) -> list[Path]:
    """Write rendered files; return the paths that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in files.items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed
