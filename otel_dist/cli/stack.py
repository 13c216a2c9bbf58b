"""``otel-dist stack up|down|status``: a thin wrapper over :mod:`otel_dist.stack.supervisor`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from otel_dist.stack.supervisor import Stack


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``stack`` command and its subcommands."""
    stack = commands.add_parser(
        "stack",
        help="run the local stack (collector, Prometheus, Jaeger, VictoriaLogs, Alertmanager) on 127.0.0.1",
        description="Run the local stack from the pinned, cached binaries (built on first use).",
    )
    actions = stack.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="build if needed, start, wait until ready, print the URLs")
    up.add_argument("--free-ports", action="store_true", help="use free ports instead of the standard ones")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness (default 60)")
    up.add_argument(
        "--tail-sampling",
        action="store_true",
        help="merge collector/tail-sampling.yaml: keep every error and slow trace, a share of the rest "
        "(OTELCOL_TAIL_SAMPLING_PERCENT, _SLOW_MS; collector/README.md)",
    )
    actions.add_parser("down", help="stop exactly the processes `stack up` started")
    actions.add_parser("status", help="show what runs; exit status 1 unless every service is ready")
    for parser in actions.choices.values():
        parser.add_argument(
            "--data-dir", type=Path, default=None, help="data, logs and pid files (default: .stack/ in the repository)"
        )


def run(args: argparse.Namespace) -> int:
    """Run ``stack <action>``; return the exit status."""
    from otel_dist.stack import supervisor
    from otel_dist.stack.build import BuildError

    data_dir = args.data_dir
    if args.action == "up":
        running = supervisor.load_stack(data_dir)
        if running is not None:
            print(f"the stack already runs from {running.data_dir}")
            _print_urls(running)
            return 0 if _print_status(running.data_dir) else 1
        try:
            stack = supervisor.start_stack(
                ports=supervisor.Ports.free() if args.free_ports else None,
                data_dir=data_dir,
                ready_timeout=args.timeout,
                collector_overlays=(supervisor.TAIL_SAMPLING_OVERLAY,) if args.tail_sampling else (),
                out=supervisor.print_line,
            )
        except (supervisor.StackError, BuildError) as error:
            print(f"otel-dist stack up: {error}", file=sys.stderr)
            return 1
        print(f"\nthe stack is ready ({stack.started_seconds:.1f}s); data and logs in {stack.data_dir}")
        _print_urls(stack)
        print(
            f"\nsend telemetry: OTEL_EXPORTER_OTLP_ENDPOINT={stack.otlp_http_endpoint}\nstop it: otel-dist stack down"
        )
        return 0
    if args.action == "down":
        stopped = supervisor.stop_stack(data_dir)
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        return 0
    return 0 if _print_status(data_dir) else 1


def _print_urls(stack: Stack) -> None:
    width = max(len(name) for name in stack.urls())
    for name, url in stack.urls().items():
        print(f"  {name:<{width}}  {url}")


def _print_status(data_dir: Path | None) -> bool:
    from otel_dist.stack.supervisor import stack_status

    statuses = stack_status(data_dir)
    if not statuses:
        print("the stack is not running (no pid files)")
        return False
    for status in statuses:
        state = "ready" if status.ready else ("running, not ready" if status.running else "not running")
        print(f"  {status.name:<13} pid {status.pid:<8} {state:<19} {status.url}")
    return all(status.ready for status in statuses)
