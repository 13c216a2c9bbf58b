"""``otel-dist regression check|record``: current latency and error figures from Prometheus against a baseline file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_BASELINE = Path("prometheus/baseline.yaml")
DEFAULT_PROMETHEUS = "http://127.0.0.1:9090"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``regression`` command and its subcommands."""
    regression = commands.add_parser(
        "regression",
        help="compare current latency/error figures in Prometheus with a baseline file, or record a new baseline",
        description="Performance regression check against the baseline file the baseline-relative alerts use.",
    )
    actions = regression.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check", help="print a table; exit status 1 on a regression (or a series without data), 2 on bad input"
    )
    record = actions.add_parser("record", help="write the baseline file with the current figures of its entries")
    for parser in (check, record):
        parser.add_argument("--prometheus", default=DEFAULT_PROMETHEUS, help=f"Prometheus URL ({DEFAULT_PROMETHEUS})")
        parser.add_argument(
            "--baseline",
            type=Path,
            default=None,
            help=f"the baseline file (default: the spec's, or {DEFAULT_BASELINE})",
        )
        parser.add_argument(
            "--spec",
            type=Path,
            default=None,
            help="an objectives spec: its baseline file and its percentile and factors are the defaults",
        )
        parser.add_argument("--window", default="5m", help="the range the figures are computed over (default 5m)")
        parser.add_argument("--percentile", type=float, default=None, help="latency percentile (spec's, or 0.99)")
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds per Prometheus query (default 10)")
    check.add_argument(
        "--latency-factor",
        type=float,
        default=None,
        help="a regression when latency exceeds this many times the baseline (spec's warning factor, or 2)",
    )
    check.add_argument(
        "--error-tolerance",
        type=float,
        default=0.01,
        help="a regression when the error ratio exceeds the baseline's by more than this (default 0.01)",
    )
    check.add_argument("--allow-missing", action="store_true", help="a series without data is not a failure")
    record.add_argument("--output", type=Path, default=None, help="where to write (default: the baseline file)")


def run(args: argparse.Namespace) -> int:
    """Run ``regression <action>``; return the exit status."""
    from otel_dist.rules import regression
    from otel_dist.rules.spec import SpecError, load_baseline, load_spec, parse_duration
    from otel_dist.stack import http

    try:
        parse_duration(args.window, "--window")
        baseline_path, percentile, factor = args.baseline, args.percentile, getattr(args, "latency_factor", None)
        if args.spec is not None:
            spec = load_spec(args.spec)
            if spec.baseline is not None:
                baseline_path = baseline_path or spec.baseline.file
                percentile = percentile if percentile is not None else spec.baseline.percentile
                factor = factor if factor is not None else spec.baseline.latency_warning_factor
        baseline_path = baseline_path or DEFAULT_BASELINE
        percentile = 0.99 if percentile is None else percentile
        factor = 2.0 if factor is None else factor
        if not 0 < percentile < 1:
            raise SpecError("--percentile", f"must be between 0 and 1 (exclusive), got {percentile:g}")
        if factor <= 0:
            raise SpecError("--latency-factor", f"must be positive, got {factor:g}")
        entries = load_baseline(baseline_path)
    except SpecError as error:
        print(f"otel-dist regression: {error}", file=sys.stderr)
        return 2
    if not entries:
        print(f"otel-dist regression: {baseline_path}: no entries", file=sys.stderr)
        return 2

    def query(expr: str) -> float | None:
        result = http.promql(args.prometheus, expr, timeout=args.timeout)
        return float(result[0]["value"][1]) if result else None

    try:
        measured = [
            (entry, regression.measure(entry, query, percentile=percentile, window=args.window)) for entry in entries
        ]
    except http.QueryError as error:
        print(f"otel-dist regression: Prometheus at {args.prometheus}: {error}", file=sys.stderr)
        return 2

    if args.action == "record":
        output = args.output or baseline_path
        text = regression.baseline_text(measured, source=args.prometheus, percentile=percentile, window=args.window)
        output.write_text(text)
        without = [
            regression.series_name(e) for e, f in measured if f.latency_seconds is None and f.request_rate is None
        ]
        print(f"wrote {output}: {len(measured)} entries over the last {args.window}")
        for name in without:
            print(f"  no data for {name}: its old figures are kept", file=sys.stderr)
        return 0

    comparisons = [
        regression.compare(entry, figures, latency_factor=factor, error_tolerance=args.error_tolerance)
        for entry, figures in measured
    ]
    print(f"baseline {baseline_path}, Prometheus {args.prometheus}, window {args.window}")
    print(regression.table(comparisons, percentile=percentile))
    regressed = [c for c in comparisons if c.status == "REGRESSION"]
    missing = [c for c in comparisons if c.status == "no data"]
    failed = bool(regressed) or (bool(missing) and not args.allow_missing)
    summary = f"{len(regressed)} regression(s), {len(missing)} series without data, of {len(comparisons)}"
    print(("FAILED: " if failed else "passed: ") + summary)
    return 1 if failed else 0
