"""Performance regression check: the current figures of each baselined series, from Prometheus, against the baseline.

    otel-dist regression check  --prometheus http://127.0.0.1:9090 --baseline prometheus/baseline.yaml
    otel-dist regression record --prometheus http://127.0.0.1:9090 --baseline prometheus/baseline.yaml

The baseline file is the one the baseline-relative alerts are rendered from (``prometheus/baseline.yaml``): each
entry names a histogram (the HTTP server duration by default, or e.g. ``operation_duration_seconds``) and the
labels of its series. For each entry the check reads, over a window, the latency at the percentile, the rate and
the error ratio (5xx for HTTP; outcomes other than ``success`` for a tracked operation), and compares them with the
recorded figures: latency above ``latency_factor`` x the baseline, or an error ratio more than ``error_tolerance``
above the baseline's, is a regression. ``record`` writes the same entries with the current figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from otel_dist.rules import catalog as m
from otel_dist.rules.spec import HTTP_DURATION, BaselineEntry

#: Histogram metric -> (counter of outcomes, matcher of the failed ones) giving its error ratio.
_ERRORS: Final = {
    HTTP_DURATION: (m.HTTP_DURATION_COUNT, 'http_response_status_code=~"5.."'),
    "operation_duration_seconds": (m.OPERATION_OUTCOMES, 'operation_outcome!="success"'),
}

Query = Callable[[str], float | None]


@dataclass(frozen=True)
class Figures:
    """What Prometheus says about one series now (None: no data in the window)."""

    latency_seconds: float | None
    request_rate: float | None
    error_ratio: float | None


@dataclass(frozen=True)
class Comparison:
    """One baseline entry against its current figures."""

    entry: BaselineEntry
    current: Figures
    problems: tuple[str, ...]

    @property
    def status(self) -> str:
        if self.current.latency_seconds is None and self.current.request_rate is None:
            return "no data"
        return "REGRESSION" if self.problems else "ok"

    @property
    def latency_ratio(self) -> float | None:
        if self.entry.latency_seconds is None or self.current.latency_seconds is None:
            return None
        return self.current.latency_seconds / self.entry.latency_seconds


def _matchers(entry: BaselineEntry, *extra: str) -> str:
    parts = [f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in entry.labels]
    return "{" + ", ".join([*parts, *extra]) + "}"


def queries(entry: BaselineEntry, percentile: float, window: str) -> dict[str, str]:
    """The PromQL of each figure of an entry: ``latency``, ``rate`` and (when the metric has one) ``errors``."""
    sel = _matchers(entry)
    found = {
        "latency": f"histogram_quantile({percentile:g}, sum by (le) (rate({entry.metric}_bucket{sel}[{window}])))",
        "rate": f"sum(rate({entry.metric}_count{sel}[{window}]))",
    }
    if entry.metric in _ERRORS:
        counter, failed = _ERRORS[entry.metric]
        total = f"sum(rate({counter}{sel}[{window}]))"
        found["errors"] = f"(sum(rate({counter}{_matchers(entry, failed)}[{window}])) or 0 * {total}) / {total}"
    return found


def measure(entry: BaselineEntry, query: Query, *, percentile: float, window: str) -> Figures:
    """The current figures of one entry; NaN (no request in the window) reads as no data."""
    values = {name: query(expr) for name, expr in queries(entry, percentile, window).items()}
    clean = {k: (None if v is None or math.isnan(v) else v) for k, v in values.items()}
    return Figures(clean["latency"], clean["rate"], clean.get("errors"))


def compare(entry: BaselineEntry, current: Figures, *, latency_factor: float, error_tolerance: float) -> Comparison:
    """Latency above ``latency_factor`` x baseline, or errors above baseline + tolerance: a regression."""
    problems = []
    if entry.latency_seconds is not None and current.latency_seconds is not None:
        limit = latency_factor * entry.latency_seconds
        if current.latency_seconds > limit:
            problems.append(f"latency {current.latency_seconds:.4g}s > {latency_factor:g} x {entry.latency_seconds:g}s")
    if current.error_ratio is not None:
        allowed = (entry.error_ratio or 0.0) + error_tolerance
        if current.error_ratio > allowed:
            problems.append(f"errors {current.error_ratio:.2%} > {allowed:.2%}")
    return Comparison(entry, current, tuple(problems))


def series_name(entry: BaselineEntry) -> str:
    """A readable name: ``/items/{item_id} on example-api`` or ``operation_duration_seconds{...}``."""
    labels = dict(entry.labels)
    if entry.metric == HTTP_DURATION and "http_route" in labels:
        rest = "".join(f" {k}={v}" for k, v in entry.labels if k not in ("job", "http_route"))
        return f"{labels['http_route']} on {labels['job']}{rest}"
    inner = ", ".join(f"{k}={v}" for k, v in entry.labels)
    return f"{entry.metric.removesuffix('_seconds').removesuffix('_duration')}{{{inner}}}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.3g}ms" if value < 1 else f"{value:.3g}s"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}/s"


def table(comparisons: Sequence[Comparison], *, percentile: float) -> str:
    """A fixed-width table: one line per series, then one line per problem."""
    q = f"p{percentile * 100:g}"
    header = ("series", f"{q} now", "baseline", "ratio", "errors now", "baseline", "rate now", "status")
    rows = [header]
    for c in comparisons:
        ratio = c.latency_ratio
        rows.append(
            (
                series_name(c.entry),
                _seconds(c.current.latency_seconds),
                _seconds(c.entry.latency_seconds),
                "-" if ratio is None else f"{ratio:.2f}x",
                _share(c.current.error_ratio),
                _share(c.entry.error_ratio),
                _rate(c.current.request_rate),
                c.status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    for c in comparisons:
        out.extend(f"  {series_name(c.entry)}: {problem}" for problem in c.problems)
    return "\n".join(out)


def _yaml_value(value: str) -> str:
    """A YAML flow scalar: quoted when plain YAML would misread it."""
    import json

    plain = value and value[0].isalnum() and all(ch.isalnum() or ch in "._-/" for ch in value)
    return value if plain else json.dumps(value)


def baseline_text(
    measured: Sequence[tuple[BaselineEntry, Figures]], *, source: str, percentile: float, window: str
) -> str:
    """A baseline file with the current figures of each entry (entries without data keep their old figures)."""
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f"# Recorded by `otel-dist regression record` from {source} at {when}: p{percentile * 100:g} latency,",
        f'# request rate and error ratio over the last {window} (MONITORING.md, "Baselines"). After a deliberate',
        "# performance change, record again on a known-good release under its usual load, then render the rules.",
        "version: 1",
        "entries:",
    ]
    for entry, figures in measured:
        labels = ", ".join(f"{k}: {_yaml_value(v)}" for k, v in entry.labels)
        lines.append(f"  - metric: {entry.metric}" if entry.metric != HTTP_DURATION else f"  - labels: {{{labels}}}")
        if entry.metric != HTTP_DURATION:
            lines.append(f"    labels: {{{labels}}}")
        latency = figures.latency_seconds if figures.latency_seconds is not None else entry.latency_seconds
        rate = figures.request_rate if figures.request_rate is not None else entry.request_rate
        errors = figures.error_ratio if figures.error_ratio is not None else entry.error_ratio
        if latency is not None and latency > 0:
            lines.append(f"    latency_seconds: {latency:.4g}")
        if rate is not None and rate > 0:
            lines.append(f"    request_rate: {rate:.4g}")
        if errors is not None:
            lines.append(f"    error_ratio: {errors:.4g}")
    return "\n".join(lines) + "\n"
