"""Entry point of the ``otel-dist`` command."""

from __future__ import annotations

import argparse
import sys

from otel_dist.cli import regression as regression_cli
from otel_dist.cli import rules as rules_cli
from otel_dist.cli import stack as stack_cli
from otel_dist.settings import ConfigurationError, resolve


def main(argv: list[str] | None = None) -> int:
    """Run the ``otel-dist`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="otel-dist", description="otel-dist: OpenTelemetry for Python services")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser("doctor", help="show every resolved setting and its source, and probe the collector")
    doctor.add_argument("--no-check", action="store_true", help="do not send the empty OTLP export requests")
    stack_cli.add_parser(commands)
    rules_cli.add_parser(commands)
    regression_cli.add_parser(commands)
    args = parser.parse_args(argv)

    if args.command == "stack":
        return stack_cli.run(args)
    if args.command == "rules":
        return rules_cli.run(args)
    if args.command == "regression":
        return regression_cli.run(args)

    if args.command == "doctor":
        from otel_dist.cli.doctor import report

        try:
            settings = resolve()
        except ConfigurationError as error:
            print(f"otel-dist doctor: configuration error: {error}", file=sys.stderr)
            return 2
        text = report(settings, check=not args.no_check)
        print(text)
        return 1 if "FAILED" in text else 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
