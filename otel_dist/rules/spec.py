"""The objectives spec: one YAML file describing what to alert on, validated into frozen dataclasses.

Every error names the field it is about (``defaults.error_ratio.warning: must be a number between 0 and 1
(exclusive), got 5``), so a bad spec never renders half a rule file. The layout, with the shipped defaults, is
in ``prometheus/objectives.yaml``; MONITORING.md explains each field.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from otel_dist.metrics import DURATION_BUCKETS

SEVERITIES: Final = ("critical", "warning", "info")
#: Labels a per-service selector may match: the recording rules keep exactly these (and http_route).
SELECTOR_LABELS: Final = ("job", "deployment_environment_name")
#: The metric a baseline entry refers to unless it names another histogram (in seconds).
HTTP_DURATION: Final = "http_server_request_duration_seconds"

_DURATION = re.compile(r"^([0-9]+)(ms|s|m|h|d|w)$")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_SCOPE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')

T = TypeVar("T")


class SpecError(ValueError):
    """The spec (or its baseline file) is invalid; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- value types -----------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Duration:
    """A Prometheus duration with one unit (``5m``, ``1h``, ``30d``)."""

    seconds: float

    def __str__(self) -> str:
        for unit in ("w", "d", "h", "m", "s"):
            size = _UNIT_SECONDS[unit]
            if self.seconds >= size and self.seconds % size == 0:
                return f"{int(self.seconds // size)}{unit}"
        if self.seconds == 0:
            return "0s"
        return f"{round(self.seconds * 1000)}ms"

    def humanize(self) -> str:
        """``2d 2h``-style text for descriptions."""
        seconds = int(self.seconds)
        if seconds < 60:
            return f"{seconds}s"
        parts = []
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size:
                parts.append(f"{seconds // size}{unit}")
                seconds %= size
        return " ".join(parts[:2])


def _escape(value: str) -> str:
    """A label value inside PromQL double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True)
class Matcher:
    """One PromQL label matcher: ``job="checkout"``."""

    label: str
    op: str
    value: str

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{_escape(self.value)}"'

    def negated(self) -> Matcher:
        """The matcher selecting everything this one does not (for the defaults' scope)."""
        return Matcher(self.label, {"=": "!=", "=~": "!~", "!=": "=", "!~": "=~"}[self.op], self.value)


@dataclass(frozen=True)
class Threshold:
    """A two-tier threshold: either tier may be absent (null in the spec)."""

    warning: float | None
    critical: float | None
    warning_for: Duration
    critical_for: Duration

    def tiers(self) -> list[tuple[str, float, Duration]]:
        """(severity, value, for) of each tier that is set, critical first."""
        out: list[tuple[str, float, Duration]] = []
        if self.critical is not None:
            out.append(("critical", self.critical, self.critical_for))
        if self.warning is not None:
            out.append(("warning", self.warning, self.warning_for))
        return out


@dataclass(frozen=True)
class LatencyThreshold:
    """The ``latency`` objective: a percentile and a threshold on it in seconds."""

    percentile: float
    threshold: Threshold


@dataclass(frozen=True)
class LatencySLO:
    """``target`` of the requests finish within ``threshold_seconds`` (a bucket edge)."""

    threshold_seconds: float
    target: float


@dataclass(frozen=True)
class Health:
    """The component-unhealthy alert: one instance failing (warning), every instance (critical).

    ``critical_checks``: ``required`` pages only for the checks that gate readiness (``HealthChecks.add(...,
    required=True)``, the default); an optional one (a cache) failing everywhere stays a warning. ``all`` pages for
    every check.
    """

    warning_for: Duration
    critical_for: Duration
    critical_checks: str = "required"


@dataclass(frozen=True)
class Telemetry:
    """Telemetry health of a service: silence and SDK-side losses."""

    silent_after: Duration
    lookback: Duration
    silent_for: Duration
    sdk_drops_for: Duration


@dataclass(frozen=True)
class Disk:
    """Filesystem alerts on the service's filesystems: free space below a share of the size or below a number
    of bytes, and a forecast to zero with predict_linear."""

    free_ratio: Threshold | None
    free_bytes: Threshold | None
    fill_lookback: Duration
    fill_warning_hours: float | None
    fill_critical_hours: float | None
    fill_for: Duration


@dataclass(frozen=True)
class SlowQueries:
    """``db_slow_queries``: the share of database operations slower than ``threshold_seconds`` (a bucket edge)."""

    threshold_seconds: float
    threshold: Threshold
    min_rate: float


@dataclass(frozen=True)
class CacheHitRatio:
    """``cache_hit_ratio``: hits / lookups per cache, alerting below the tiers (while lookups >= min rate)."""

    threshold: Threshold
    min_lookup_rate: float


@dataclass(frozen=True)
class Objectives:
    """What one scope (the defaults, or one service) alerts on; None means not rendered."""

    min_request_rate: float
    availability: float | None
    latency_slo: LatencySLO | None
    error_budget_low: float | None
    error_ratio: Threshold | None
    latency: LatencyThreshold | None
    memory: Threshold | None
    cpu: Threshold | None
    db_pool: Threshold | None
    disk: Disk | None
    health: Health | None
    telemetry: Telemetry | None
    db_slow_queries: SlowQueries | None = None
    cache_hit_ratio: CacheHitRatio | None = None


@dataclass(frozen=True)
class Scope:
    """A set of services (by selector) sharing objectives. The first scope is the defaults."""

    name: str
    matchers: tuple[Matcher, ...]
    objectives: Objectives

    def selector(self) -> str:
        """The matchers as a PromQL selector (``{job!="checkout"}``), or "" when the scope matches everything."""
        return "{" + ", ".join(str(m) for m in self.matchers) + "}" if self.matchers else ""


@dataclass(frozen=True)
class BurnRate:
    """One window pair of the multi-window, multi-burn-rate alerts (Google SRE workbook, chapter 5)."""

    severity: str
    long: Duration
    short: Duration
    factor: float
    for_: Duration


@dataclass(frozen=True)
class BaselineEntry:
    """One measured baseline: a histogram's series (by labels), its latency at the percentile and its rate."""

    metric: str
    labels: tuple[tuple[str, str], ...]
    latency_seconds: float | None
    request_rate: float | None
    #: Share of failed requests or runs (5xx, or operation outcomes other than success): the regression check's.
    error_ratio: float | None = None


@dataclass(frozen=True)
class Baseline:
    """The baseline-relative alerts and the file they are rendered from."""

    file: Path
    percentile: float
    latency_warning_factor: float | None
    latency_critical_factor: float | None
    rate_warning_factor: float | None
    warning_for: Duration
    critical_for: Duration
    entries: tuple[BaselineEntry, ...]


@dataclass(frozen=True)
class Platform:
    """Alerts about the telemetry pipeline, not about one service."""

    collector_queue_warning: float
    collector_for: Duration
    collector_dropping_for: Duration
    scrape_down_for: Duration
    #: An exporter sent nothing for this long while items wait in its queue, and that lasted this long again.
    collector_backlog_for: Duration = Duration(60)


@dataclass(frozen=True)
class Quantile:
    """A percentile of a histogram and a two-tier threshold on it (seconds, or bytes)."""

    percentile: float
    threshold: Threshold


def _named_selector(label: str, name: str, matchers: Sequence[Matcher], extra: Sequence[str]) -> str:
    """``{<label>="<name>", <matchers>, <extra>}``: the series of one operation or one batch job."""
    parts = [f'{label}="{_escape(name)}"', *(str(m) for m in matchers), *extra]
    return "{" + ", ".join(parts) + "}"


@dataclass(frozen=True)
class OperationObjectives:
    """Alerts on one operation tracked by ``otel_dist.track_operation`` (``operations[]`` in the spec)."""

    name: str
    matchers: tuple[Matcher, ...]
    by: tuple[str, ...]
    min_rate: float
    error_ratio: Threshold | None
    timeout_ratio: Threshold | None
    latency: Quantile | None
    memory: Quantile | None

    def selector(self, *extra: str) -> str:
        """``{operation_name="...", <matchers>, <extra>}``."""
        return _named_selector("operation_name", self.name, self.matchers, extra)


@dataclass(frozen=True)
class JobObjectives:
    """Alerts on one batch job run by ``otel_dist.batch_job`` (``jobs[]`` in the spec)."""

    name: str
    matchers: tuple[Matcher, ...]
    max_age: Duration | None
    max_age_critical: Duration | None
    lookback: Duration
    failure_ratio: Threshold | None
    failure_window: Duration

    def selector(self, *extra: str) -> str:
        """``{job_name="...", <matchers>, <extra>}``."""
        return _named_selector("job_name", self.name, self.matchers, extra)


@dataclass(frozen=True)
class CustomAlert:
    """A free-form alert (``alerts[]``): a PromQL expression the typed sections cannot express."""

    alert: str
    expr: str
    severity: str
    for_: Duration
    summary: str
    description: str
    labels: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Spec:
    """The validated spec."""

    source: Path
    runbook_base_url: str
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    slo_window: Duration
    burn_rates: tuple[BurnRate, ...]
    scopes: tuple[Scope, ...]
    baseline: Baseline | None
    platform: Platform
    quantiles: tuple[float, ...] = field(default=(0.5, 0.95, 0.99))
    operations: tuple[OperationObjectives, ...] = ()
    jobs: tuple[JobObjectives, ...] = ()
    alerts: tuple[CustomAlert, ...] = ()
    #: Alert name -> its runbook, where it is not ``<runbook_base_url>/<AlertName>.md``.
    runbook_urls: tuple[tuple[str, str], ...] = ()
    #: Prefix of the rendered domain dashboards' uid and title (``name`` in the spec); "" for the shipped spec.
    name: str = ""
    #: The dashboards to render (file stems, ``dashboards`` in the spec); None: every one that applies.
    dashboards: tuple[str, ...] | None = None

    def runbook_url(self, alert: str) -> str:
        """Where an alert's runbook lives."""
        override = dict(self.runbook_urls).get(alert)
        if override is not None:
            return override
        return f"{self.runbook_base_url.rstrip('/')}/{alert}.md"


# --- reading ---------------------------------------------------------------------------------------------


class _Reader:
    """A mapping read field by field, each error naming ``path.field``."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise SpecError(path or "(top level)", f"must be a mapping, got {_show(data)}")
        self.data: Mapping[str, Any] = data
        self.path = path
        self.seen: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: object = None) -> object:
        self.seen.add(key)
        return self.data.get(key, default)

    def required(self, key: str) -> object:
        self.seen.add(key)
        if key not in self.data:
            raise SpecError(self.at(key), "is required")
        return self.data[key]

    def finish(self) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self.seen)
        if unknown:
            raise SpecError(self.at(unknown[0]), f"unknown field; expected one of: {', '.join(sorted(self.seen))}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(path, f"must be a number, got {_show(value)}")
    return float(value)


def _ratio(value: object, path: str) -> float:
    number = _number(value, path)
    if not 0 < number < 1:
        raise SpecError(path, f"must be a number between 0 and 1 (exclusive), got {_show(value)}")
    return number


def _share(value: object, path: str) -> float:
    number = _number(value, path)
    if not 0 <= number <= 1:
        raise SpecError(path, f"must be a number from 0 to 1, got {_show(value)}")
    return number


def _positive(value: object, path: str) -> float:
    number = _number(value, path)
    if number <= 0:
        raise SpecError(path, f"must be a positive number, got {_show(value)}")
    return number


def _non_negative(value: object, path: str) -> float:
    number = _number(value, path)
    if number < 0:
        raise SpecError(path, f"must be zero or a positive number, got {_show(value)}")
    return number


def parse_duration(value: object, path: str) -> Duration:
    """A Prometheus duration with one unit: ``30s``, ``5m``, ``1h``, ``30d``."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise SpecError(path, f"must be a duration such as 30s, 5m, 1h or 30d, got {_show(value)}")
    return Duration(int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _string(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(path, f"must be a non-empty string, got {_show(value)}")
    if "{{" in value:
        raise SpecError(path, "must not contain '{{' (alert templates would expand it)")
    return value


def _string_map(value: object, path: str, *, labels: bool) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise SpecError(path, f"must be a mapping of names to strings, got {_show(value)}")
    out = []
    for key, item in value.items():
        if not isinstance(key, str) or not _LABEL_NAME.match(key):
            raise SpecError(f"{path}.{key}", "is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise SpecError(f"{path}.{key}", f"must be a string, got {_show(item)}")
        out.append((key, _string(str(item), f"{path}.{key}")))
    reserved = {"severity", "service", "alertname"} & {k for k, _ in out} if labels else set()
    if reserved:
        raise SpecError(f"{path}.{sorted(reserved)[0]}", "is set by the rules themselves and cannot be overridden")
    if not labels:
        clash = {"summary", "description", "runbook_url"} & {k for k, _ in out}
        if clash:
            raise SpecError(f"{path}.{sorted(clash)[0]}", "is set by the rules themselves and cannot be overridden")
    return tuple(out)


def parse_selector(value: object, path: str) -> tuple[Matcher, ...]:
    """``job="checkout", deployment_environment_name=~"prod|stage"`` -> matchers; job must be matched positively."""
    if not isinstance(value, str) or not value.strip():
        raise SpecError(path, f'must be PromQL label matchers such as job="checkout", got {_show(value)}')
    text = value.strip().removeprefix("{").removesuffix("}")
    matchers: list[Matcher] = []
    position = 0
    while position < len(text):
        match = _MATCHER.match(text, position)
        if match is None:
            raise SpecError(path, f"cannot parse the label matchers at {text[position:][:30]!r}")
        label, op, raw = match.groups()
        if label not in SELECTOR_LABELS:
            raise SpecError(
                path, f"may match only {' and '.join(SELECTOR_LABELS)} (the labels the rules keep), not {label}"
            )
        matchers.append(Matcher(label, op, raw.replace('\\"', '"').replace("\\\\", "\\")))
        if op in ("=~", "!~"):
            try:
                re.compile(matchers[-1].value)
            except re.error as error:
                raise SpecError(path, f"invalid regular expression for {label}: {error}") from error
        position = match.end()
    if not any(m.label == "job" and m.op in ("=", "=~") for m in matchers):
        raise SpecError(path, 'must select the service by job with = or =~ (job="checkout")')
    return tuple(matchers)


def _optional(reader: _Reader, key: str, parse: Callable[[object, str], T], default: T | None = None) -> T | None:
    value = reader.raw(key, default)
    return None if value is None else parse(value, reader.at(key))


def _threshold(value: object, path: str, check: Callable[[object, str], float], *, below: bool = False) -> Threshold:
    reader = _Reader(value, path)
    warning = _optional(reader, "warning", check)
    critical = _optional(reader, "critical", check)
    warning_for = parse_duration(reader.raw("warning_for", "5m"), reader.at("warning_for"))
    critical_for = parse_duration(reader.raw("critical_for", "2m"), reader.at("critical_for"))
    reader.finish()
    if warning is None and critical is None:
        raise SpecError(path, "needs warning, critical or both (or null to switch the alert off)")
    if warning is not None and critical is not None:
        if below and critical >= warning:
            raise SpecError(reader.at("critical"), f"must be below warning ({warning:g}), got {critical:g}")
        if not below and critical <= warning:
            raise SpecError(reader.at("critical"), f"must be above warning ({warning:g}), got {critical:g}")
    return Threshold(warning, critical, warning_for, critical_for)


def _latency_threshold(value: object, path: str) -> LatencyThreshold:
    reader = _Reader(value, path)
    percentile = _ratio(reader.required("percentile"), reader.at("percentile"))
    rest = {k: v for k, v in reader.data.items() if k != "percentile"}
    reader.seen.update(rest)
    return LatencyThreshold(percentile, _threshold(rest, path, _positive))


def _latency_slo(value: object, path: str) -> LatencySLO:
    reader = _Reader(value, path)
    threshold = _bucket_edge(reader.required("threshold_seconds"), reader.at("threshold_seconds"))
    target = _ratio(reader.required("target"), reader.at("target"))
    reader.finish()
    return LatencySLO(threshold, target)


def _availability(value: object, path: str) -> float:
    reader = _Reader(value, path)
    target = _ratio(reader.required("target"), reader.at("target"))
    reader.finish()
    return target


def _error_budget(value: object, path: str) -> float:
    reader = _Reader(value, path)
    low = _ratio(reader.required("info_below"), reader.at("info_below"))
    reader.finish()
    return low


def _health(value: object, path: str) -> Health:
    reader = _Reader(value, path)
    critical_checks = reader.raw("critical_checks", "required")
    if critical_checks not in ("required", "all"):
        raise SpecError(reader.at("critical_checks"), f"must be required or all, got {_show(critical_checks)}")
    health = Health(
        parse_duration(reader.raw("warning_for", "2m"), reader.at("warning_for")),
        parse_duration(reader.raw("critical_for", "2m"), reader.at("critical_for")),
        str(critical_checks),
    )
    reader.finish()
    return health


def _telemetry(value: object, path: str) -> Telemetry:
    reader = _Reader(value, path)
    telemetry = Telemetry(
        silent_after=parse_duration(reader.raw("silent_after", "5m"), reader.at("silent_after")),
        lookback=parse_duration(reader.raw("lookback", "1h"), reader.at("lookback")),
        silent_for=parse_duration(reader.raw("silent_for", "1m"), reader.at("silent_for")),
        sdk_drops_for=parse_duration(reader.raw("sdk_drops_for", "5m"), reader.at("sdk_drops_for")),
    )
    reader.finish()
    if telemetry.lookback <= telemetry.silent_after:
        raise SpecError(reader.at("lookback"), f"must be longer than silent_after ({telemetry.silent_after})")
    return telemetry


def _disk(value: object, path: str) -> Disk:
    reader = _Reader(value, path)
    disk = Disk(
        free_ratio=_optional(reader, "free_ratio", lambda v, p: _threshold(v, p, _ratio, below=True)),
        free_bytes=_optional(reader, "free_bytes", lambda v, p: _threshold(v, p, _positive, below=True)),
        fill_lookback=parse_duration(reader.raw("fill_lookback", "6h"), reader.at("fill_lookback")),
        fill_warning_hours=_optional(reader, "fill_warning_hours", _positive, 24.0),
        fill_critical_hours=_optional(reader, "fill_critical_hours", _positive, 4.0),
        fill_for=parse_duration(reader.raw("fill_for", "30m"), reader.at("fill_for")),
    )
    reader.finish()
    if (
        disk.fill_warning_hours is not None
        and disk.fill_critical_hours is not None
        and disk.fill_critical_hours >= disk.fill_warning_hours
    ):
        raise SpecError(reader.at("fill_critical_hours"), "must be fewer hours than fill_warning_hours")
    return disk


def _bucket_edge(value: object, path: str) -> float:
    threshold = _positive(value, path)
    if threshold not in DURATION_BUCKETS:
        edges = ", ".join(f"{b:g}" for b in DURATION_BUCKETS)
        raise SpecError(
            path,
            f"must be a bucket edge of the duration histograms ({edges}), got {threshold:g}: the SLI counts the "
            "requests in the bucket at the threshold",
        )
    return threshold


def _split(reader: _Reader, keys: Sequence[str]) -> dict[str, Any]:
    """The reader's fields except ``keys``, marked as read (they go to a nested parser)."""
    rest = {k: v for k, v in reader.data.items() if k not in keys}
    reader.seen.update(rest)
    return rest


def _slow_queries(value: object, path: str) -> SlowQueries:
    reader = _Reader(value, path)
    threshold = _bucket_edge(reader.raw("threshold_seconds", 1.0), reader.at("threshold_seconds"))
    min_rate = _non_negative(reader.raw("min_rate", 0.0), reader.at("min_rate"))
    rest = _split(reader, ("threshold_seconds", "min_rate"))
    return SlowQueries(threshold, _threshold(rest, path, _ratio), min_rate)


def _cache_hit_ratio(value: object, path: str) -> CacheHitRatio:
    reader = _Reader(value, path)
    warning = _optional(reader, "warning_below", _ratio)
    critical = _optional(reader, "critical_below", _ratio)
    warning_for = parse_duration(reader.raw("warning_for", "30m"), reader.at("warning_for"))
    critical_for = parse_duration(reader.raw("critical_for", "10m"), reader.at("critical_for"))
    min_rate = _non_negative(reader.raw("min_lookup_rate", 0.1), reader.at("min_lookup_rate"))
    reader.finish()
    if warning is None and critical is None:
        raise SpecError(path, "needs warning_below, critical_below or both (or null to switch the alert off)")
    if warning is not None and critical is not None and critical >= warning:
        raise SpecError(reader.at("critical_below"), f"must be below warning_below ({warning:g}), got {critical:g}")
    return CacheHitRatio(Threshold(warning, critical, warning_for, critical_for), min_rate)


#: Objective keys -> parser. Order is the order of the rendered rules.
_OBJECTIVES: Final[dict[str, Callable[[object, str], Any]]] = {
    "availability": _availability,
    "latency_slo": _latency_slo,
    "error_budget": _error_budget,
    "error_ratio": lambda v, p: _threshold(v, p, _ratio),
    "latency": _latency_threshold,
    "memory": lambda v, p: _threshold(v, p, _ratio),
    "cpu": lambda v, p: _threshold(v, p, _positive),
    "db_pool": lambda v, p: _threshold(v, p, _ratio),
    "disk": _disk,
    "health": _health,
    "telemetry": _telemetry,
    "db_slow_queries": _slow_queries,
    "cache_hit_ratio": _cache_hit_ratio,
}


def _objectives(data: Mapping[str, Any], path: str) -> Objectives:
    reader = _Reader(data, path)
    parsed = {key: _optional(reader, key, parse) for key, parse in _OBJECTIVES.items()}
    min_rate = _non_negative(reader.raw("min_request_rate", 0.0), reader.at("min_request_rate"))
    reader.finish()
    return Objectives(
        min_request_rate=min_rate,
        availability=parsed["availability"],
        latency_slo=parsed["latency_slo"],
        error_budget_low=parsed["error_budget"],
        error_ratio=parsed["error_ratio"],
        latency=parsed["latency"],
        memory=parsed["memory"],
        cpu=parsed["cpu"],
        db_pool=parsed["db_pool"],
        disk=parsed["disk"],
        health=parsed["health"],
        telemetry=parsed["telemetry"],
        db_slow_queries=parsed["db_slow_queries"],
        cache_hit_ratio=parsed["cache_hit_ratio"],
    )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Override's keys replace base's; nested mappings merge; an explicit null switches an objective off."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _burn_rates(value: object, path: str) -> tuple[BurnRate, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise SpecError(path, f"must be a non-empty list of window pairs, got {_show(value)}")
    out = []
    for index, item in enumerate(value):
        at = f"{path}[{index}]"
        reader = _Reader(item, at)
        severity = reader.required("severity")
        if severity not in SEVERITIES:
            raise SpecError(reader.at("severity"), f"must be one of {', '.join(SEVERITIES)}, got {_show(severity)}")
        long = parse_duration(reader.required("long"), reader.at("long"))
        short = parse_duration(reader.required("short"), reader.at("short"))
        factor = _positive(reader.required("factor"), reader.at("factor"))
        for_ = parse_duration(reader.raw("for", "0s"), reader.at("for"))
        reader.finish()
        if short >= long:
            raise SpecError(reader.at("short"), f"must be shorter than long ({long}), got {short}")
        out.append(BurnRate(str(severity), long, short, factor, for_))
    longs = [b.long for b in out]
    duplicate = next((b for b in longs if longs.count(b) > 1), None)
    if duplicate is not None:
        raise SpecError(path, f"two window pairs share the long window {duplicate}; each pair needs its own")
    return tuple(out)


def _baseline(value: object, path: str, base_dir: Path) -> Baseline:
    reader = _Reader(value, path)
    file_value = _string(reader.required("file"), reader.at("file"))
    file = (base_dir / file_value).resolve()
    percentile = _ratio(reader.raw("percentile", 0.99), reader.at("percentile"))
    latency_warning = _optional(reader, "latency_warning_factor", _positive, 2.0)
    latency_critical = _optional(reader, "latency_critical_factor", _positive, 4.0)
    rate_warning = _optional(reader, "rate_warning_factor", _positive, 3.0)
    warning_for = parse_duration(reader.raw("warning_for", "5m"), reader.at("warning_for"))
    critical_for = parse_duration(reader.raw("critical_for", "2m"), reader.at("critical_for"))
    reader.finish()
    if latency_warning is not None and latency_critical is not None and latency_critical <= latency_warning:
        raise SpecError(
            reader.at("latency_critical_factor"), f"must be above latency_warning_factor ({latency_warning:g})"
        )
    if not file.is_file():
        raise SpecError(reader.at("file"), f"no such file: {file}")
    entries = load_baseline(file)
    return Baseline(
        file, percentile, latency_warning, latency_critical, rate_warning, warning_for, critical_for, entries
    )


def load_baseline(path: Path) -> tuple[BaselineEntry, ...]:
    """Read a baseline file; errors name ``<file>: entries[i].field``."""
    data = _load_yaml(path, path.name)
    reader = _Reader(data, "")
    version = reader.raw("version", 1)
    if version != 1:
        raise SpecError(f"{path.name}: version", f"must be 1, got {_show(version)}")
    raw_entries = reader.raw("entries", [])
    reader.finish()
    if not isinstance(raw_entries, list):
        raise SpecError(f"{path.name}: entries", f"must be a list, got {_show(raw_entries)}")
    entries = []
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for index, item in enumerate(raw_entries):
        at = f"{path.name}: entries[{index}]"
        entry_reader = _Reader(item, at)
        metric = entry_reader.raw("metric", HTTP_DURATION)
        if not isinstance(metric, str) or not _METRIC_NAME.match(metric):
            raise SpecError(entry_reader.at("metric"), f"must be a metric name, got {_show(metric)}")
        labels = _string_map(entry_reader.required("labels"), entry_reader.at("labels"), labels=False)
        if "job" not in dict(labels):
            raise SpecError(entry_reader.at("labels"), "must name the service: job")
        if metric == HTTP_DURATION and "http_route" not in dict(labels):
            raise SpecError(entry_reader.at("labels"), "must name the route (http_route) for the HTTP duration")
        latency = _optional(entry_reader, "latency_seconds", _positive)
        rate = _optional(entry_reader, "request_rate", _positive)
        errors = _optional(entry_reader, "error_ratio", _share)
        entry_reader.finish()
        if latency is None and rate is None and errors is None:
            raise SpecError(at, "needs latency_seconds, request_rate, error_ratio or several")
        key = (metric, labels)
        if key in seen:
            raise SpecError(at, "duplicates an earlier entry (same metric and labels)")
        seen.add(key)
        entries.append(BaselineEntry(metric, labels, latency, rate, errors))
    return tuple(entries)


def _platform(value: object, path: str) -> Platform:
    reader = _Reader(value or {}, path)
    if reader.has("disk"):
        raise SpecError(reader.at("disk"), "moved: disk alerts are per service now (defaults.disk, services[i].disk)")
    collector = _Reader(reader.raw("collector", {}) or {}, reader.at("collector"))
    queue = _ratio(collector.raw("queue_warning", 0.8), collector.at("queue_warning"))
    collector_for = parse_duration(collector.raw("for", "5m"), collector.at("for"))
    dropping_for = parse_duration(collector.raw("dropping_for", "1m"), collector.at("dropping_for"))
    backlog_for = parse_duration(collector.raw("backlog_for", "1m"), collector.at("backlog_for"))
    if backlog_for.seconds <= 0:  # it is also a rate() window
        raise SpecError(collector.at("backlog_for"), "must be positive")
    collector.finish()
    scrape = _Reader(reader.raw("scrape", {}) or {}, reader.at("scrape"))
    scrape_for = parse_duration(scrape.raw("down_for", "2m"), scrape.at("down_for"))
    scrape.finish()
    reader.finish()
    return Platform(queue, collector_for, dropping_for, scrape_for, collector_backlog_for=backlog_for)


#: Labels an operation's ``by`` may not name: the ones every operation alert already keeps or sums away.
_OPERATION_RESERVED: Final = frozenset(
    {"job", "instance", "deployment_environment_name", "operation_name", "operation_outcome", "error_type", "le"}
)
_ALERT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]+$")


def _list(value: object, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(path, f"must be a list, got {_show(value)}")
    return value


def _optional_selector(reader: _Reader) -> tuple[Matcher, ...]:
    value = reader.raw("selector")
    return () if value is None else parse_selector(value, reader.at("selector"))


def _quantile(value: object, path: str) -> Quantile:
    reader = _Reader(value, path)
    percentile = _ratio(reader.raw("percentile", 0.99), reader.at("percentile"))
    return Quantile(percentile, _threshold(_split(reader, ("percentile",)), path, _positive))


def _operation(value: object, path: str) -> OperationObjectives:
    reader = _Reader(value, path)
    name = _string(reader.required("name"), reader.at("name"))
    matchers = _optional_selector(reader)
    by = []
    for index, label in enumerate(_list(reader.raw("by"), reader.at("by"))):
        at = f"{reader.at('by')}[{index}]"
        if not isinstance(label, str) or not _LABEL_NAME.match(label):
            raise SpecError(at, f"must be a label name ([a-zA-Z_][a-zA-Z0-9_]*), got {_show(label)}")
        if label in _OPERATION_RESERVED:
            raise SpecError(at, f"{label} is kept or summed by the operation alerts themselves")
        by.append(label)
    operation = OperationObjectives(
        name=name,
        matchers=matchers,
        by=tuple(by),
        min_rate=_non_negative(reader.raw("min_rate", 0.0), reader.at("min_rate")),
        error_ratio=_optional(reader, "error_ratio", lambda v, p: _threshold(v, p, _ratio)),
        timeout_ratio=_optional(reader, "timeout_ratio", lambda v, p: _threshold(v, p, _ratio)),
        latency=_optional(reader, "latency", _quantile),
        memory=_optional(reader, "memory", _quantile),
    )
    reader.finish()
    if not (operation.error_ratio or operation.timeout_ratio or operation.latency or operation.memory):
        raise SpecError(path, "needs at least one of error_ratio, timeout_ratio, latency, memory")
    return operation


def _job(value: object, path: str) -> JobObjectives:
    reader = _Reader(value, path)
    name = _string(reader.required("name"), reader.at("name"))
    matchers = _optional_selector(reader)
    max_age = _optional(reader, "max_age", parse_duration)
    max_age_critical = _optional(reader, "max_age_critical", parse_duration)
    failure_ratio = _optional(reader, "failure_ratio", lambda v, p: _threshold(v, p, _ratio))
    failure_window = parse_duration(reader.raw("failure_window", "1d"), reader.at("failure_window"))
    lookback = parse_duration(reader.raw("lookback", "7d"), reader.at("lookback"))
    reader.finish()
    if max_age is None and max_age_critical is None and failure_ratio is None:
        raise SpecError(path, "needs max_age, max_age_critical or failure_ratio")
    if max_age is not None and max_age_critical is not None and max_age_critical <= max_age:
        raise SpecError(reader.at("max_age_critical"), f"must be longer than max_age ({max_age})")
    longest = max((d for d in (max_age, max_age_critical) if d is not None), default=None)
    if longest is not None and lookback <= longest:
        raise SpecError(
            reader.at("lookback"),
            f"must be longer than the maximum age ({longest}): the last success is looked for within it",
        )
    return JobObjectives(name, matchers, max_age, max_age_critical, lookback, failure_ratio, failure_window)


def _balanced(text: str, path: str) -> None:
    depth: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`', '""', text):
        if char in "([{":
            depth.append(char)
        elif char in pairs and (not depth or depth.pop() != pairs[char]):
            raise SpecError(path, f"unbalanced {char!r} in {_show(text)}")
    if depth:
        raise SpecError(path, f"unclosed {depth[-1]!r} in {_show(text)}")


def _template(value: object, path: str) -> str:
    """An alert summary or description: Prometheus templates allowed."""
    if not isinstance(value, str) or not value.strip():
        raise SpecError(path, f"must be a non-empty string, got {_show(value)}")
    return value.strip()


def _custom_alert(value: object, path: str) -> CustomAlert:
    reader = _Reader(value, path)
    name = reader.required("alert")
    if not isinstance(name, str) or not _ALERT_NAME.match(name):
        raise SpecError(reader.at("alert"), f"must be an alert name in CamelCase (HighQueueDepth), got {_show(name)}")
    expr = reader.required("expr")
    if not isinstance(expr, str) or not expr.strip():
        raise SpecError(reader.at("expr"), f"must be a PromQL expression, got {_show(expr)}")
    _balanced(expr, reader.at("expr"))
    severity = reader.required("severity")
    if severity not in SEVERITIES:
        raise SpecError(reader.at("severity"), f"must be one of {', '.join(SEVERITIES)}, got {_show(severity)}")
    description = _template(reader.required("description"), reader.at("description"))
    if "$value" not in description:
        raise SpecError(reader.at("description"), "must show the current value ({{ $value }})")
    alert = CustomAlert(
        alert=name,
        expr=expr.strip(),
        severity=str(severity),
        for_=parse_duration(reader.raw("for", "0s"), reader.at("for")),
        summary=_template(reader.required("summary"), reader.at("summary")),
        description=description,
        labels=_string_map(reader.raw("labels"), reader.at("labels"), labels=True),
    )
    reader.finish()
    return alert


def _unique(items: Sequence[T], key: Callable[[T], object], path: str, what: str) -> None:
    seen: set[object] = set()
    for index, item in enumerate(items):
        if key(item) in seen:
            raise SpecError(f"{path}[{index}]", f"{what} is used twice")
        seen.add(key(item))


def _runbook_urls(value: object, path: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise SpecError(path, f"must be a mapping of alert names to URLs, got {_show(value)}")
    out = []
    for alert, url in value.items():
        at = f"{path}.{alert}"
        if not isinstance(alert, str) or not _ALERT_NAME.match(alert):
            raise SpecError(at, "is not an alert name")
        if not isinstance(url, str) or not re.match(r"^(https?|file)://\S+$", url):
            raise SpecError(at, f"must be an http(s):// or file:// URL, got {_show(url)}")
        out.append((alert, url))
    return tuple(out)


def _load_yaml(path: Path, name: str) -> object:
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError as error:  # pragma: no cover - the dev extra has it
        raise SpecError(name, "reading the spec needs PyYAML (pip install pyyaml)") from error
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError(name, f"cannot read {path}: {error.strerror}") from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(name, f"is not valid YAML: {error}") from error


def load_spec(path: Path) -> Spec:
    """Read and validate the spec at ``path`` (and the baseline file it names)."""
    return parse_spec(_load_yaml(path, path.name), source=path)


def parse_spec(data: object, *, source: Path) -> Spec:
    """Validate an already-parsed spec; relative paths are resolved against ``source``'s folder."""
    reader = _Reader(data, "")
    version = reader.required("version")
    if version != 1:
        raise SpecError("version", f"must be 1, got {_show(version)}")
    runbook_base_url = _string(reader.required("runbook_base_url"), "runbook_base_url")
    if not re.match(r"^(https?|file)://", runbook_base_url):
        raise SpecError("runbook_base_url", f"must be an http(s):// or file:// URL, got {_show(runbook_base_url)}")
    labels = _string_map(reader.raw("labels"), "labels", labels=True)
    annotations = _string_map(reader.raw("annotations"), "annotations", labels=False)

    slo = _Reader(reader.raw("slo", {}) or {}, "slo")
    slo_window = parse_duration(slo.raw("window", "30d"), "slo.window")
    burn_rates = _burn_rates(slo.required("burn_rates"), "slo.burn_rates")
    slo.finish()
    if any(b.long > slo_window for b in burn_rates):
        raise SpecError("slo.burn_rates", f"a long window exceeds the SLO window ({slo_window})")

    raw_defaults = reader.required("defaults")
    if not isinstance(raw_defaults, Mapping):
        raise SpecError("defaults", f"must be a mapping, got {_show(raw_defaults)}")
    default_objectives = _objectives(raw_defaults, "defaults")

    scopes: list[Scope] = []
    services = reader.raw("services", []) or []
    if not isinstance(services, list):
        raise SpecError("services", f"must be a list, got {_show(services)}")
    names = {"default"}
    for index, item in enumerate(services):
        at = f"services[{index}]"
        if not isinstance(item, Mapping):
            raise SpecError(at, f"must be a mapping, got {_show(item)}")
        name = item.get("name")
        if not isinstance(name, str) or not _SCOPE_NAME.match(name):
            raise SpecError(f"{at}.name", f"must be lowercase letters, digits, - and _, got {_show(name)}")
        if name in names:
            raise SpecError(f"{at}.name", f"{name!r} is used twice (or is the reserved 'default')")
        names.add(name)
        matchers = parse_selector(item.get("selector"), f"{at}.selector")
        overrides = {k: v for k, v in item.items() if k not in ("name", "selector")}
        objectives = _objectives(_merge(raw_defaults, overrides), at)
        scopes.append(Scope(name, matchers, objectives))
    # The defaults apply to every service not listed: each listed job selector, negated.
    excluded = tuple(m.negated() for scope in scopes for m in scope.matchers if m.label == "job")
    scopes.insert(0, Scope("default", excluded, default_objectives))

    baseline = _optional(reader, "baseline", lambda v, p: _baseline(v, p, source.parent))
    platform = _platform(reader.raw("platform"), "platform")
    raw_operations = _list(reader.raw("operations"), "operations")
    operations = [_operation(v, f"operations[{i}]") for i, v in enumerate(raw_operations)]
    _unique(operations, lambda o: (o.name, o.matchers), "operations", "this name and selector")
    jobs = [_job(v, f"jobs[{i}]") for i, v in enumerate(_list(reader.raw("jobs"), "jobs"))]
    _unique(jobs, lambda j: (j.name, j.matchers), "jobs", "this name and selector")
    alerts = [_custom_alert(v, f"alerts[{i}]") for i, v in enumerate(_list(reader.raw("alerts"), "alerts"))]
    _unique(alerts, lambda a: (a.alert, a.severity), "alerts", "this alert name with this severity")
    runbook_urls = _runbook_urls(reader.raw("runbook_urls"), "runbook_urls")
    name = reader.raw("name", "")
    if name != "" and (not isinstance(name, str) or not _SCOPE_NAME.match(name)):
        raise SpecError("name", f"must be lowercase letters, digits, - and _, got {_show(name)}")
    raw_dashboards = reader.raw("dashboards")
    dashboards = None
    if raw_dashboards is not None:
        dashboards = tuple(_string(v, f"dashboards[{i}]") for i, v in enumerate(_list(raw_dashboards, "dashboards")))
    reader.finish()

    quantiles = {0.5, 0.95, 0.99}
    quantiles.update(s.objectives.latency.percentile for s in scopes if s.objectives.latency)
    if baseline is not None:
        quantiles.add(baseline.percentile)
    return Spec(
        source=source,
        runbook_base_url=runbook_base_url,
        labels=labels,
        annotations=annotations,
        slo_window=slo_window,
        burn_rates=burn_rates,
        scopes=tuple(scopes),
        baseline=baseline,
        platform=platform,
        quantiles=tuple(sorted(quantiles)),
        operations=tuple(operations),
        jobs=tuple(jobs),
        alerts=tuple(alerts),
        runbook_urls=runbook_urls,
        name=str(name),
        dashboards=dashboards,
    )
