"""Bounded load tests of the example services with locust, and a capacity report (requests/s and p95 per users).

    python -m otel_dist.stack.loadtest run --host http://127.0.0.1:8000 --user ParserUser --users 4 --requests 500
    python -m otel_dist.stack.loadtest capacity --app parser --users 1,2,4,8 --seconds 20 --out benchmarks/CAPACITY.md

``run`` drives a running service; ``capacity`` serves an example app itself (under uvicorn, configured by
otel-dist and exporting to an in-process OTLP receiver, or to ``--otlp-endpoint``), loads it at each number of
users in turn and writes a Markdown table. Every run is bounded: at most :data:`MAX_USERS` users, :data:`MAX_REQUESTS`
requests and :data:`MAX_SECONDS` seconds, and only against loopback addresses. locust runs as a subprocess (it
monkey-patches the standard library with gevent; this process stays untouched); it comes with the ``loadtest``
extra. The locustfile is ``examples/loadtest/locustfile.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import platform
import subprocess
import sys
import tempfile
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from otel_dist.stack.supervisor import REPO_ROOT

LOCUSTFILE: Final = REPO_ROOT / "examples/loadtest/locustfile.py"
MAX_USERS: Final = 64
MAX_REQUESTS: Final = 100_000
MAX_SECONDS: Final = 600
#: Example apps the capacity report can serve: name -> (ASGI app, locust user class, settings; {dir} is the
#: run's own folder).
APPS: Final = {
    "parser": ("examples.parser_service.app:app", "ParserUser", {}),
    "example-api": ("examples.fastapi_app.app:app", "ExampleApiUser", {}),
    "zip-service": ("examples.zip_service.app:app", "ZipUser", {"ZIP_WORK_DIR": "{dir}/zip-work"}),
}


class LoadTestError(RuntimeError):
    """A run was refused (bounds, host) or locust failed."""


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (127.0.0.0/8, ::1 or localhost)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Stats:
    """Results of one request name (or of all, ``name="Aggregated"``)."""

    name: str
    requests: int
    failures: int
    seconds: float
    response_times: Mapping[float, int]  # rounded milliseconds -> count, as locust keeps them

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile of the response times in milliseconds (locust's rounding, nearest-rank)."""
        total = sum(self.response_times.values())
        if not total:
            return None
        rank = max(1, int(q * total + 0.999999))
        seen = 0
        for value in sorted(self.response_times):
            seen += self.response_times[value]
            if seen >= rank:
                return value
        return max(self.response_times)  # pragma: no cover - the loop always returns


@dataclass(frozen=True)
class LoadResult:
    """One bounded run: its settings, the aggregate and the per-name stats."""

    user: str
    users: int
    total: Stats
    by_name: tuple[Stats, ...]
    output: str


def _stats(entries: Iterable[Mapping[str, Any]], name: str) -> Stats:
    times: Counter[float] = Counter()
    requests = failures = 0
    start, end = float("inf"), 0.0
    for entry in entries:
        requests += int(entry["num_requests"])
        failures += int(entry["num_failures"])
        times.update({float(k): int(v) for k, v in entry["response_times"].items()})
        if entry["num_requests"]:
            start = min(start, float(entry["start_time"]))
            end = max(end, float(entry["last_request_timestamp"]))
    return Stats(name, requests, failures, max(end - start, 0.0) if requests else 0.0, dict(times))


def parse_locust_json(text: str, *, user: str, users: int, output: str = "") -> LoadResult:
    """locust's ``--json`` output (a list of per-name stats) -> a :class:`LoadResult`."""
    start = text.find("[")
    if start < 0:
        raise LoadTestError(f"locust printed no JSON stats:\n{output[-3000:]}")
    entries = json.loads(text[start:])
    by_name = tuple(
        _stats([e], f"{e['method']} {e['name']}") for e in sorted(entries, key=lambda e: (e["name"], e["method"]))
    )
    return LoadResult(user, users, _stats(entries, "Aggregated"), by_name, output)


def check_bounds(host: str, users: int, requests: int, seconds: float) -> None:
    """Refuse what the load test must not do: a remote host, or a run beyond the bounds."""
    if not is_loopback(host):
        raise LoadTestError(f"refusing {host!r}: the load test runs against loopback addresses only")
    if not 1 <= users <= MAX_USERS:
        raise LoadTestError(f"users must be 1..{MAX_USERS}, got {users}")
    if not 1 <= requests <= MAX_REQUESTS:
        raise LoadTestError(f"requests must be 1..{MAX_REQUESTS}, got {requests}")
    if not 1 <= seconds <= MAX_SECONDS:
        raise LoadTestError(f"seconds must be 1..{MAX_SECONDS}, got {seconds:g}")


def run_load(
    host: str, user: str, *, users: int, requests: int, seconds: float, locustfile: Path = LOCUSTFILE
) -> LoadResult:
    """Run locust headless against ``host`` until ``requests`` requests or ``seconds`` seconds, whichever first."""
    check_bounds(host, users, requests, seconds)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["LOADTEST_MAX_REQUESTS"] = str(requests)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{int(seconds)}s",
        "--stop-timeout",
        "5",
        "--host",
        host,
        "--json",
        "--only-summary",
        "--loglevel",
        "WARNING",
        user,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=False, env=env, cwd=REPO_ROOT
        )
    except FileNotFoundError as error:  # pragma: no cover - sys.executable exists
        raise LoadTestError(str(error)) from error
    except subprocess.TimeoutExpired as error:
        raise LoadTestError(f"locust did not finish within {seconds + 60:.0f}s") from error
    if "No module named locust" in done.stderr:
        raise LoadTestError("locust is not installed: pip install 'otel-dist[loadtest]'")
    if done.returncode not in (0, 1):  # 1: some requests failed, which the stats show
        raise LoadTestError(f"locust exited with status {done.returncode}:\n{done.stderr[-3000:]}")
    return parse_locust_json(done.stdout, user=user, users=users, output=done.stderr)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def report(app: str, results: Sequence[LoadResult], *, seconds: float, exporter: str, command: str) -> str:
    """The capacity report in Markdown: one row per number of users, then the per-request table of the last."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or platform.machine()
    lines = [
        f"# Capacity of the {app} example on this machine",
        "",
        f"Measured {when} with `{command}`: {os.cpu_count()} CPU cores ({cpu}), Python "
        f"{platform.python_version()}; the app under uvicorn (one worker process), configured by otel-dist at 100 %"
        f" trace sampling and exporting to {exporter}; locust on the same machine, each run at most {seconds:g} s."
        " Figures of one run on a shared machine: compare them with each other (ratios), not with another machine.",
        "",
        "| users | requests | failures | requests/s | p50 | p95 | p99 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        t = result.total
        lines.append(
            f"| {result.users} | {t.requests} | {t.failures} | {t.rate:.1f} | {_ms(t.percentile(0.5))} |"
            f" {_ms(t.percentile(0.95))} | {_ms(t.percentile(0.99))} |"
        )
    if results:
        last = results[-1]
        lines += [
            "",
            f"Per request at {last.users} users:",
            "",
            "| request | requests | failures | requests/s | p50 | p95 |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for s in last.by_name:
            lines.append(
                f"| {s.name} | {s.requests} | {s.failures} | {s.rate:.1f} | {_ms(s.percentile(0.5))} |"
                f" {_ms(s.percentile(0.95))} |"
            )
    return "\n".join(lines) + "\n"


def capacity(
    app: str,
    levels: Sequence[int],
    *,
    seconds: float,
    requests: int,
    otlp_endpoint: str | None = None,
    log_dir: Path | None = None,
) -> tuple[list[LoadResult], str]:
    """Serve example ``app`` and load it at each number of users; return the results and the exporter used.

    The app's output and work files go to ``log_dir``, or to a temporary folder removed afterwards.
    """
    from otel_dist.otlp_sink import running_http_receiver
    from otel_dist.stack.example import start_example_app

    asgi, user, settings = APPS[app]
    with contextlib.ExitStack() as cleanup:
        folder = log_dir or Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="otel-dist-capacity-")))
        env = {"OTEL_DIST_SERVICE_VERSION": "capacity", "OTEL_TRACES_SAMPLER": "always_on"}
        env.update({name: value.format(dir=folder) for name, value in settings.items()})
        sink = cleanup.enter_context(running_http_receiver())
        endpoint = otlp_endpoint or sink.endpoint
        exporter = "the collector at " + endpoint if otlp_endpoint else "an in-process OTLP receiver (no collector)"
        served = cleanup.enter_context(
            start_example_app(f"{app}-capacity", otlp_endpoint=endpoint, log_path=folder / "app.log", env=env, app=asgi)
        )
        results = []
        for users in levels:
            print(f"loadtest: {users} user(s), up to {seconds:g}s or {requests} requests ...", flush=True)
            results.append(run_load(served.base_url, user, users=users, requests=requests, seconds=seconds))
            sink.clear()
    return results, exporter


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"a comma-separated list of user counts, got {text!r}") from error
    if not levels or any(not 1 <= n <= MAX_USERS for n in levels):
        raise argparse.ArgumentTypeError(f"each user count must be 1..{MAX_USERS}")
    return levels


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m otel_dist.stack.loadtest", description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", required=True)
    one = actions.add_parser("run", help="load a running service once and print the stats")
    one.add_argument("--host", required=True, help="the service's base URL (loopback only)")
    one.add_argument("--user", default="ParserUser", help="the locust user class (ParserUser, ExampleApiUser)")
    one.add_argument("--users", type=int, default=2)
    cap = actions.add_parser("capacity", help="serve an example app, load it at 1..N users, write a Markdown report")
    cap.add_argument("--app", choices=sorted(APPS), default="parser")
    cap.add_argument("--users", type=_levels, default=[1, 2, 4, 8], help="user counts, e.g. 1,2,4,8")
    cap.add_argument("--out", type=Path, default=None, help="write the report here (default: print it)")
    cap.add_argument("--otlp-endpoint", default=None, help="export to this collector instead of an in-process one")
    for sub in (one, cap):
        sub.add_argument(
            "--requests", type=int, default=2000, help=f"at most this many requests per run (<= {MAX_REQUESTS})"
        )
        sub.add_argument("--seconds", type=float, default=20.0, help=f"at most this long per run (<= {MAX_SECONDS})")
    args = parser.parse_args(argv)
    try:
        if args.action == "run":
            result = run_load(args.host, args.user, users=args.users, requests=args.requests, seconds=args.seconds)
            print(report(args.host, [result], seconds=args.seconds, exporter="its own exporter", command="run"))
            return 0
        results, exporter = capacity(
            args.app, args.users, seconds=args.seconds, requests=args.requests, otlp_endpoint=args.otlp_endpoint
        )
    except LoadTestError as error:
        print(f"loadtest: {error}", file=sys.stderr)
        return 2
    users = ",".join(str(n) for n in args.users)
    command = (
        f"python -m otel_dist.stack.loadtest capacity --app {args.app} --users {users} --seconds {args.seconds:g}"
        f" --requests {args.requests}"
    )
    text = report(args.app, results, seconds=args.seconds, exporter=exporter, command=command)
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
