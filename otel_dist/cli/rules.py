"""``otel-dist rules render``: the objectives spec -> Prometheus rule files and Grafana dashboards."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_SPEC = Path("prometheus/objectives.yaml")
DEFAULT_RULES_DIR = Path("prometheus/rules")
DEFAULT_DASHBOARDS_DIR = Path("grafana/dashboards")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``rules`` command and its subcommands."""
    rules = commands.add_parser(
        "rules",
        help="render Prometheus alert/recording rules and Grafana dashboards from an objectives spec",
        description="Render Prometheus recording and alerting rules (and the Grafana dashboards) from a YAML spec.",
    )
    actions = rules.add_subparsers(dest="action", required=True)
    render = actions.add_parser(
        "render",
        help="write the rule files and dashboards (or, with --check, compare them with what is there)",
        description="Render the spec deterministically: the same spec always gives the same bytes.",
    )
    render.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help=f"the spec (default {DEFAULT_SPEC})")
    render.add_argument(
        "--rules-dir",
        type=Path,
        default=DEFAULT_RULES_DIR,
        help=f"where the rule files go (default {DEFAULT_RULES_DIR})",
    )
    render.add_argument(
        "--dashboards-dir",
        type=Path,
        default=DEFAULT_DASHBOARDS_DIR,
        help=f"where the dashboards go (default {DEFAULT_DASHBOARDS_DIR}); '-' skips them",
    )
    render.add_argument(
        "--out",
        type=Path,
        default=None,
        help="an application's own folder: rules go to OUT/rules, dashboards to OUT/dashboards",
    )
    render.add_argument(
        "--check", action="store_true", help="write nothing; exit status 1 when a file is missing or differs"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``rules <action>``; return the exit status (2: the spec is invalid)."""
    from otel_dist.rules.dashboards import render_dashboards
    from otel_dist.rules.render import render
    from otel_dist.rules.spec import SpecError, load_spec

    rules_dir, dashboards_dir = args.rules_dir, args.dashboards_dir
    if args.out is not None:
        rules_dir = args.out / "rules" if rules_dir == DEFAULT_RULES_DIR else rules_dir
        dashboards_dir = args.out / "dashboards" if dashboards_dir == DEFAULT_DASHBOARDS_DIR else dashboards_dir
    try:
        spec = load_spec(args.spec)
        outputs: list[tuple[Path, dict[str, str]]] = [(rules_dir, render(spec))]
        if str(dashboards_dir) != "-":
            outputs.append((dashboards_dir, render_dashboards(spec)))
    except SpecError as error:
        print(f"otel-dist rules: {args.spec}: {error}", file=sys.stderr)
        return 2

    stale = []
    for directory, files in outputs:
        for name, text in files.items():
            path = directory / name
            current = path.read_text() if path.is_file() else None
            if current == text:
                continue
            stale.append(path)
            if not args.check:
                directory.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    total = sum(len(files) for _, files in outputs)
    if args.check:
        for path in stale:
            print(f"differs from a fresh rendering: {path}", file=sys.stderr)
        if stale:
            where = f" --out {args.out}" if args.out is not None else ""
            print(f"run: otel-dist rules render --spec {args.spec}{where}", file=sys.stderr)
            return 1
        print(f"{total} files match {args.spec}")
        return 0
    for path in stale:
        print(f"wrote {path}")
    print(f"{len(stale)} of {total} files changed")
    return 0
