"""Turn the fault matrix's JSON report into the table of RELIABILITY.md.

    python -m tests.reliability.report                       # .reliability/report.json -> RELIABILITY.md
    python -m tests.reliability.report path/to/report.json --print

The table sits between the two marker lines in RELIABILITY.md; everything else in the file is left alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from otel_dist.stack.supervisor import REPO_ROOT

DEFAULT_REPORT = REPO_ROOT / ".reliability" / "report.json"
DOCUMENT = REPO_ROOT / "RELIABILITY.md"
BEGIN = "<!-- fault-matrix:begin (python -m tests.reliability.report rewrites this table) -->"
END = "<!-- fault-matrix:end -->"

#: Row order: the reference first, then the faults as the issue lists them.
ORDER = (
    "none",
    "collector absent at start-up",
    "collector killed (SIGTERM)",
    "collector killed (SIGKILL)",
    "collector blackholed",
    "collector SIGSTOPped",
    "collector answers 503",
    "collector answers 429",
    "collector answers RESOURCE_EXHAUSTED",
    "log store down",
    "SIGTERM under load (uvicorn)",
    "SIGTERM under load (gunicorn)",
    "prefork worker",
)


def _rank(name: str) -> int:
    return next((i for i, prefix in enumerate(ORDER) if name.startswith(prefix)), len(ORDER))


def _num(value: Any, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}{suffix}"
    return f"{value}{suffix}"


def _signal(signals: dict[str, Any], name: str) -> str:
    entry = signals.get(name)
    if not entry:
        return "–"
    return f"{entry['received']}/{entry['sent']}"


def _duplicates(signals: dict[str, Any]) -> str:
    """Spans beyond one per trace, access lines beyond one per request ID (older reports: derived)."""
    traces, logs = signals.get("traces", {}), signals.get("logs", {})
    spans = traces.get("duplicates", traces.get("spans", traces.get("received", 0)) - traces.get("received", 0))
    lines = logs.get("duplicates", logs.get("received", 0) - logs.get("distinct_request_ids", logs.get("received", 0)))
    return f"{spans}, {lines}" if traces or logs else "–"


def table(report: dict[str, Any]) -> str:
    """The Markdown table of every fault in ``report`` (the JSON the tests write)."""
    rows = [
        "| fault | served (failed) | p50 ms before → during (ratio) | p99 ms before → during (ratio) "
        "| peak RSS MiB | metrics | traces | logs | duplicates (spans, lines) | exit s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    faults = [f for f in report.get("faults", {}).values() if "latency" in f]
    for fault in sorted(faults, key=lambda f: _rank(f["fault"])):
        latency = fault["latency"]
        baseline = latency.get("before") or latency.get("after") or {}
        during = latency.get("fault") or {}
        signals = fault.get("signals", {})
        rss = max(fault.get("peak_rss_mib", {}).values(), default=None)
        rows.append(
            f"| {fault['fault']} | {fault['requests_served']} ({fault['requests_failed']}) "
            f"| {_num(baseline.get('p50_ms'))} → {_num(during.get('p50_ms'))} ({_num(fault.get('p50_ratio'))}) "
            f"| {_num(baseline.get('p99_ms'))} → {_num(during.get('p99_ms'))} ({_num(fault.get('p99_ratio'))}) "
            f"| {_num(rss)} | {_signal(signals, 'metrics')} | {_signal(signals, 'traces')} "
            f"| {_signal(signals, 'logs')} | {_duplicates(signals)} | {_num(fault.get('exit_seconds'))} |"
        )
    recorded = sorted(f.get("recorded_at", "") for f in faults)
    machine = report.get("machine", {})
    rows.append("")
    rows.append(
        f"Recorded {recorded[0] if recorded else '?'} … {recorded[-1] if recorded else '?'} on "
        f"{machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}. Signals: received/sent "
        "(metrics: the request count in Prometheus; traces: distinct traces in Jaeger; logs: distinct request IDs "
        "among the access lines in VictoriaLogs)."
    )
    return "\n".join(rows)


def rewrite(document: str, rendered: str) -> str:
    """``document`` with the text between the markers replaced by ``rendered``."""
    head, begin, rest = document.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the markers {BEGIN!r} and {END!r} are missing")
    return f"{head}{BEGIN}\n{rendered}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", nargs="?", type=Path, default=DEFAULT_REPORT)
    parser.add_argument("--print", action="store_true", help="print the table instead of rewriting RELIABILITY.md")
    args = parser.parse_args(argv)
    rendered = table(json.loads(args.report.read_text()))
    if args.print:
        print(rendered)
    else:
        DOCUMENT.write_text(rewrite(DOCUMENT.read_text(), rendered))
        print(f"{DOCUMENT} updated from {args.report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
