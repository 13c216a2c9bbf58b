"""The overhead benchmark: ``python -m benchmarks.run`` (add ``--quick`` for the CI-sized run).

See benchmarks/README.md for what is measured and how. Results: ``<out>/results.json`` and
``<out>/results.md`` (``benchmarks/out/`` by default, git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from benchmarks import profile_report, report
from benchmarks.envs import BENCH_DIR, ROOT, Env, current_env, ensure_env, has_modules
from benchmarks.loadgen import LoadResult, ensure_wrk, run_python_client, run_wrk
from benchmarks.measure import CpuSample, sample
from benchmarks.relay import start_relay
from benchmarks.servers import Server, Sink, clean_environ, start_server, start_sink
from benchmarks.variants import BY_NAME, QUICK

DEFAULT_OUT = BENCH_DIR / "out"


# ----------------------------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description="CPU per request of FastAPI telemetry variants."
    )
    parser.add_argument("--quick", action="store_true", help="CI size: seconds, a few variants, tiny rounds")
    parser.add_argument("--variants", help=f"comma-separated subset of: {', '.join(BY_NAME)}")
    parser.add_argument("--envs", choices=["venvs", "current"], help="per-variant venvs (default) or this python")
    parser.add_argument("--rounds", type=int, help="interleaved measured rounds per variant (default 5)")
    parser.add_argument("--requests", type=int, help="requests per round (default 20000)")
    parser.add_argument("--warmup", type=int, help="warm-up requests per server (default 3000)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections of the load generator")
    parser.add_argument("--settle", type=float, help="seconds after each round before the CPU sample (default 5.5)")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    parser.add_argument("--server-cores", default="0", help="cores for the servers (default 0)")
    parser.add_argument("--load-cores", default="1", help="cores for wrk, the sink and the harness (default 1)")
    parser.add_argument("--no-rss", action="store_true", help="skip the long RSS run")
    parser.add_argument("--rss-variants", default="bare,ours_full", help="variants of the long RSS run")
    parser.add_argument("--rss-start", type=int, help="first RSS checkpoint, requests (default 10000)")
    parser.add_argument("--rss-total", type=int, help="last RSS checkpoint, requests (default 200000)")
    parser.add_argument("--rss-step", type=int, help="requests between RSS checkpoints (default 10000)")
    parser.add_argument("--no-micro", action="store_true", help="skip the log-line and export micro-benchmarks")
    parser.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile and the ablations of full mode")
    parser.add_argument(
        "--receiver",
        choices=["sink", "collector"],
        default="sink",
        help="what the servers export to: the counting sink (default), or the real collector relaying to it",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default benchmarks/out)")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults: dict[str, Any] = {
        "envs": "current" if quick else "venvs",
        "rounds": 2 if quick else 5,
        "requests": 300 if quick else 20000,
        "warmup": 200 if quick else 3000,
        "settle": 0.3 if quick else 5.5,
        "rss_start": 300 if quick else 10000,
        "rss_total": 1200 if quick else 200000,
        "rss_step": 300 if quick else 10000,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    # size of the in-process parts
    args.callgrind_requests, args.callgrind_warmup = (10, 30) if quick else (100, 300)
    args.inproc_requests, args.inproc_warmup, args.inproc_repeats = (200, 100, 1) if quick else (4000, 1000, 5)
    args.log_lines, args.log_repeats = (500, 1) if quick else (30000, 5)
    args.export_spans = 1024 if quick else 51200
    args.profile_requests = 200 if quick else 5000
    names = args.variants.split(",") if args.variants else list(QUICK if quick else BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)}")
    if "bare" not in names:
        names.insert(0, "bare")  # every ratio is to bare
    args.variant_names = names
    args.server_core_set = {int(c) for c in args.server_cores.split(",")}
    args.load_core_set = {int(c) for c in args.load_cores.split(",")}
    available = os.sched_getaffinity(0)
    if not (args.server_core_set | args.load_core_set) <= available:
        args.server_core_set = args.load_core_set = available
        print(f"[bench] WARNING: cores {args.server_cores}/{args.load_cores} not available; no pinning", flush=True)
    elif args.server_core_set & args.load_core_set:
        print("[bench] WARNING: server and load generator share a core", flush=True)
    return args


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------------------------------------------
# Environments and variants
# ----------------------------------------------------------------------------------------------------------------


def resolve_envs(args: argparse.Namespace) -> tuple[dict[str, Env], dict[str, str]]:
    """Env per runnable variant, and the reason per skipped one."""
    envs: dict[str, Env] = {}
    skipped: dict[str, str] = {}
    built: dict[str, Env] = {}
    for name in args.variant_names:
        variant = BY_NAME[name]
        if args.envs == "current":
            if variant.env == "before":
                skipped[name] = "--envs current runs this work tree's otel-dist, not the baseline's"
                log(f"skipping {name}: {skipped[name]}")
                continue
            env = current_env()
        else:
            if variant.env not in built:
                try:
                    built[variant.env] = ensure_env(variant.env, args.out / "logs" / "pip.log")
                except (subprocess.CalledProcessError, OSError) as error:
                    if variant.env != "before":
                        raise
                    skipped[name] = f"the baseline environment could not be built ({error})"
                    log(f"skipping {name}: {skipped[name]}")
                    continue
            env = built[variant.env]
        if has_modules(env, variant.modules):
            envs[name] = env
        else:
            skipped[name] = f"{env.python} lacks {', '.join(variant.modules)}"
            log(f"skipping {name}: {skipped[name]}")
    if "bare" not in envs:
        raise SystemExit("the bare variant cannot run: nothing to compare with")
    return envs, skipped


def load(args: argparse.Namespace, wrk: str | None, url: str, requests: int) -> LoadResult:
    if wrk is not None:
        return run_wrk(wrk, url, requests=requests, connections=args.connections, cores=args.load_core_set)
    return run_python_client(url, requests=requests, connections=args.connections, cores=args.load_core_set)


def sink_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        kind: {signal: after[kind][signal] - before[kind][signal] for signal in after[kind]}
        for kind in ("requests", "bytes", "items")
    }


# ----------------------------------------------------------------------------------------------------------------
# The interleaved rounds
# ----------------------------------------------------------------------------------------------------------------


def measure_round(args: argparse.Namespace, server: Server, sink: Sink, wrk: str | None) -> dict[str, Any]:
    stats_before = sink.stats(server.sink_index) if server.sink_index is not None else None
    before = sample(server.pid)
    result = load(args, wrk, server.url, args.requests)
    time.sleep(args.settle)  # the batch processors' timers export what is left (counted: it is this round's)
    after = sample(server.pid)
    delta: CpuSample = after - before
    n = result.requests
    row: dict[str, Any] = {
        "requests": n,
        "errors": result.errors,
        "load_seconds": round(result.seconds, 3),
        "throughput_rps": round(n / result.seconds, 1) if result.seconds else None,
        "cpu_s": round(delta.cpu, 4),
        "main_s": round(delta.main, 4),
        "background_s": round(delta.background, 4),
        "cpu_us_per_request": delta.cpu / n * 1e6,
        "main_us_per_request": delta.main / n * 1e6,
        "background_us_per_request": delta.background / n * 1e6,
        "rss_bytes": after.rss,
    }
    if stats_before is not None and server.sink_index is not None:
        exported = sink_delta(stats_before, sink.stats(server.sink_index))
        row["exported"] = exported
        items = exported["items"]
        row["spans_per_request"] = items["traces"] / n
        row["log_records_per_request"] = items["logs"] / n
        exported_items = items["traces"] + items["logs"]
        row["items_per_background_cpu_s"] = exported_items / delta.background if delta.background > 0 else None
    return row


def _freeze(server: Server, stopped: bool) -> None:
    """SIGSTOP/SIGCONT the server's process group (it was started in a session of its own)."""
    if server.process.poll() is None:
        os.killpg(server.pid, signal.SIGSTOP if stopped else signal.SIGCONT)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    values = [r["cpu_us_per_request"] for r in rows]
    median = statistics.median(values)
    summary: dict[str, Any] = {
        "cpu_us_per_request": {
            "median": median,
            "min": min(values),
            "max": max(values),
            "spread_pct": (max(values) - min(values)) / median * 100 if median else None,
            "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
        },
        "main_us_per_request": statistics.median(r["main_us_per_request"] for r in rows),
        "background_us_per_request": statistics.median(r["background_us_per_request"] for r in rows),
        "throughput_rps": statistics.median(r["throughput_rps"] or 0 for r in rows),
        "errors": sum(r["errors"] for r in rows),
    }
    for key in ("spans_per_request", "log_records_per_request", "items_per_background_cpu_s"):
        found = [r[key] for r in rows if r.get(key) is not None]
        if found:
            summary[key] = statistics.median(found)
    return summary


def run_rounds(
    args: argparse.Namespace, envs: dict[str, Env], sink: Sink, wrk: str | None
) -> dict[str, dict[str, Any]]:
    names = list(envs)
    servers: dict[str, Server] = {}
    results: dict[str, dict[str, Any]] = {}
    try:
        for index, name in enumerate(names):
            variant = BY_NAME[name]
            log(f"starting {name}")
            server = start_server(
                variant,
                envs[name],
                cores=args.server_core_set,
                sink=sink if variant.exports else None,
                sink_index=index if variant.exports else None,
                logs_dir=args.out / "logs",
                extra_environ=_quick_batch_timers() if args.quick else None,
            )
            servers[name] = server
            warm = load(args, wrk, server.url, args.warmup)
            if warm.errors:
                raise RuntimeError(f"{name}: {warm.errors} errors during warm-up; see {server.stderr_path}")
            results[name] = {
                "label": variant.label,
                "env": envs[name].name,
                "python": str(envs[name].python),
                "server": server.server_kind,
                "command": shlex.join(server.process.args),  # type: ignore[arg-type]
                "environment": variant.environment(sink.endpoint(index) if variant.exports else None),
                "rounds": [],
            }
        time.sleep(args.settle)
        for server in servers.values():
            _freeze(server, True)  # idle servers must not run (metric exports, timers) beside the measured one
        for round_index in range(args.rounds):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                _freeze(servers[name], False)
                time.sleep(0.3)  # timers that fell due while it was stopped fire now, outside the window
                row = measure_round(args, servers[name], sink, wrk)
                _freeze(servers[name], True)
                row["round"] = round_index
                results[name]["rounds"].append(row)
                log(
                    f"round {round_index + 1}/{args.rounds} {name:28s} {row['cpu_us_per_request']:8.1f} us/req "
                    f"(main {row['main_us_per_request']:.1f}, background {row['background_us_per_request']:.1f}) "
                    f"{row['throughput_rps']} req/s"
                )
    finally:
        for server in servers.values():
            _freeze(server, False)
            server.stop()
    bare_rounds = {r["round"]: r["cpu_us_per_request"] for r in results["bare"]["rounds"]}
    for result in results.values():
        result["summary"] = summarise(result["rounds"])
        paired = [r["cpu_us_per_request"] / bare_rounds[r["round"]] for r in result["rounds"]]
        result["summary"]["paired_ratios"] = paired
    bare_median = results["bare"]["summary"]["cpu_us_per_request"]["median"]
    for result in results.values():
        result["summary"]["ratio_to_bare"] = result["summary"]["cpu_us_per_request"]["median"] / bare_median
    return results


# ----------------------------------------------------------------------------------------------------------------
# RSS over a long run
# ----------------------------------------------------------------------------------------------------------------


def _slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope, bytes per request."""
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / denominator if denominator else 0.0


def run_rss(
    args: argparse.Namespace, envs: dict[str, Env], sink: Sink, first_port: int, wrk: str | None
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    names = [n for n in args.rss_variants.split(",") if n in envs]
    for offset, name in enumerate(names):
        variant = BY_NAME[name]
        sink_index = first_port + offset
        log(f"RSS run {name}: {args.rss_start} -> {args.rss_total} requests")
        server = start_server(
            variant,
            envs[name],
            cores=args.server_core_set,
            sink=sink if variant.exports else None,
            sink_index=sink_index,
            logs_dir=args.out / "logs",
        )
        try:
            done = 0
            points: list[tuple[int, int]] = []
            cpu_start: CpuSample | None = None
            started = time.perf_counter()
            while done < args.rss_total:
                chunk = args.rss_start if done == 0 else min(args.rss_step, args.rss_total - done)
                result = load(args, wrk, server.url, chunk)
                done += result.requests
                now = sample(server.pid)
                if cpu_start is None:
                    cpu_start = now
                points.append((done, now.rss))
            end = sample(server.pid)
            assert cpu_start is not None
            slope = _slope(points)
            results[name] = {
                "checkpoints": points,
                "rss_first_mib": points[0][1] / 2**20,
                "rss_last_mib": points[-1][1] / 2**20,
                "slope_kib_per_10k_requests": slope * 10000 / 1024,
                "growth_mib_first_to_last": (points[-1][1] - points[0][1]) / 2**20,
                "cpu_us_per_request_after_first": (end.cpu - cpu_start.cpu) / max(1, done - points[0][0]) * 1e6,
                "wall_s": time.perf_counter() - started,
            }
            log(f"RSS {name}: {results[name]['slope_kib_per_10k_requests']:.1f} KiB per 10k requests")
        finally:
            server.stop()
    return results


# ----------------------------------------------------------------------------------------------------------------
# In-process parts: instruction counts, log-line and export micro-benchmarks, profile and ablations
# ----------------------------------------------------------------------------------------------------------------


def _run_json(
    command: list[str], environ: dict[str, str], result: Path, cores: set[int], timeout: float = 900
) -> dict[str, Any]:
    result.unlink(missing_ok=True)
    completed = subprocess.run(
        command,
        env=environ,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
        check=False,
    )
    if completed.returncode != 0 or not result.exists():
        raise RuntimeError(f"{shlex.join(command)} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    data: dict[str, Any] = json.loads(result.read_text())
    return data


def _quick_batch_timers() -> dict[str, str]:
    """--quick: batch timers shorter than the settle time, so each tiny round exports inside its own window (the
    size trigger alone would fire in some rounds and not in others)."""
    return dict.fromkeys(("OTEL_BSP_SCHEDULE_DELAY", "OTEL_BLRP_SCHEDULE_DELAY"), "100")


def _quiet_exports() -> dict[str, str]:
    """Batch timers far away, so nothing is exported during a measured in-process window by accident."""
    return dict.fromkeys(
        ("OTEL_BSP_SCHEDULE_DELAY", "OTEL_BLRP_SCHEDULE_DELAY", "OTEL_METRIC_EXPORT_INTERVAL"), "600000"
    )


def run_callgrind(args: argparse.Namespace, envs: dict[str, Env], sink: Sink, port: int) -> dict[str, Any]:
    if shutil.which("valgrind") is None or shutil.which("gcc") is None:
        return {"skipped": "valgrind or gcc missing"}
    work = args.out / "callgrind"
    work.mkdir(parents=True, exist_ok=True)
    library = work / "callgrind_ctl.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(BENCH_DIR / "callgrind_ctl.c")], check=True
    )
    results: dict[str, Any] = {}
    for name, env in envs.items():
        variant = BY_NAME[name]
        environ = clean_environ() | variant.environment(sink.endpoint(port)) | _quiet_exports()
        out_file = work / f"{name}.callgrind.out"
        for stale in work.glob(f"{name}.callgrind.out*"):
            stale.unlink()
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out_file}",
            str(env.python),
            str(BENCH_DIR / "inproc.py"),
            "callgrind",
            "--requests",
            str(args.callgrind_requests),
            "--warmup",
            str(args.callgrind_warmup),
            "--lib",
            str(library),
            *(["--wrapper"] if variant.wrapper else []),
        ]
        completed = subprocess.run(
            command, env=environ, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            timeout=1800, check=False,
            preexec_fn=lambda: os.sched_setaffinity(0, args.server_core_set),
        )  # fmt: skip
        totals = [
            int(match.group(1))
            for path in work.glob(f"{name}.callgrind.out*")
            for match in re.finditer(r"^totals: (\d+)", path.read_text(errors="replace"), re.MULTILINE)
        ]
        if completed.returncode != 0 or not totals:
            results[name] = {"error": completed.stderr[-2000:]}
            continue
        instructions = max(totals)
        results[name] = {
            "instructions_per_request": instructions / args.callgrind_requests,
            "requests": args.callgrind_requests,
        }
        log(f"callgrind {name}: {results[name]['instructions_per_request'] / 1e6:.3f} M instructions/request")
    bare = results.get("bare", {}).get("instructions_per_request")
    for result in results.values():
        if bare and "instructions_per_request" in result:
            result["ratio_to_bare"] = result["instructions_per_request"] / bare
    return results


def _repeat_interleaved(
    cases: dict[str, Callable[[Path], dict[str, Any]]], repeats: int, out: Path, keys: Sequence[str]
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            runs[name].append(run(out / f"{name}.json"))
    summary: dict[str, Any] = {}
    for name, rows in runs.items():
        summary[name] = {key: statistics.median(r[key] for r in rows) for key in keys}
        summary[name]["runs"] = rows
    return summary


def run_log_micro(args: argparse.Namespace, env: Env, sink: Sink, port: int) -> dict[str, Any]:
    out = args.out / "micro"
    out.mkdir(parents=True, exist_ok=True)
    environ = clean_environ() | {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint(port)}
    cases: dict[str, Callable[[Path], dict[str, Any]]] = {}
    for name in (
        "stdlib",
        "structlog",
        "ours_stdout",
        "ours_otlp",
        "ours_otlp_stock",
        "ours_stdlib_otlp",
        "ours_stdlib_otlp_stock",
    ):
        case = name.removesuffix("_stock")
        command = [str(env.python), str(BENCH_DIR / "micro_log.py"), case, "--lines", str(args.log_lines)]
        case_environ = environ | {"OTEL_DIST_FAST_EXPORT": "false" if name.endswith("_stock") else "true"}

        def run(
            result: Path, command: list[str] = command, case_environ: dict[str, str] = case_environ
        ) -> dict[str, Any]:
            return _run_json([*command, "--result", str(result)], case_environ, result, args.server_core_set)

        cases[name] = run  # defaults bind the loop variables
    log("log-line micro-benchmark")
    results = _repeat_interleaved(cases, args.log_repeats, out, ("main_us", "process_us"))
    base = results["stdlib"]["process_us"]
    for value in results.values():
        value["ratio_to_stdlib"] = value["process_us"] / base if base else None
    return results


def run_export_micro(args: argparse.Namespace, env: Env, sink: Sink, port: int) -> dict[str, Any]:
    out = args.out / "micro"
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in ("sdk", "ours", "ours_stock"):
        log(f"export-path micro-benchmark: {name}")
        result = out / f"export_{name}.json"
        case = name.removesuffix("_stock")
        command = [str(env.python), str(BENCH_DIR / "micro_export.py"), case, "--spans", str(args.export_spans)]
        command += ["--endpoint", sink.endpoint(port), "--result", str(result)]
        environ = clean_environ() | {"OTEL_DIST_FAST_EXPORT": "false" if name.endswith("_stock") else "true"}
        results[name] = _run_json(command, environ, result, args.server_core_set)
    return results


#: In-process configurations of full mode with one part switched off (the difference is that part's cost).
ABLATIONS: dict[str, tuple[str, dict[str, str]]] = {
    "bare app (stdlib line, no telemetry)": ("stdlib", {}),
    "ours full": ("otel_dist", {}),
    "full, fast export off (OTEL_DIST_FAST_EXPORT=false: the SDK's encoding and log-record path)": (
        "otel_dist",
        {"OTEL_DIST_FAST_EXPORT": "false"},
    ),
    "full, fast recording off (OTEL_DIST_FAST_RECORDING=false: SDK attribute validation and metric recording)": (
        "otel_dist",
        {"OTEL_DIST_FAST_RECORDING": "false"},
    ),
    "full, FastAPI's native server spans (OTEL_DIST_SERVER_SPANS=native)": (
        "otel_dist",
        {"OTEL_DIST_SERVER_SPANS": "native"},
    ),
    "full, access log off": ("otel_dist", {"OTEL_DIST_ACCESS_LOG": "false"}),
    "full, logs exporter none (no OTel log records)": ("otel_dist", {"OTEL_LOGS_EXPORTER": "none"}),
    "full, traces exporter none (no spans)": ("otel_dist", {"OTEL_TRACES_EXPORTER": "none"}),
    "full, metrics exporter none (no HTTP metrics)": ("otel_dist", {"OTEL_METRICS_EXPORTER": "none"}),
    "full, exemplars off (OTEL_METRICS_EXEMPLAR_FILTER=always_off)": (
        "otel_dist",
        {"OTEL_METRICS_EXEMPLAR_FILTER": "always_off"},
    ),
    "full, traces sampled 10%": (
        "otel_dist",
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    ),
    "metrics only": ("otel_dist", {"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}),
    "sdk disabled (stdout lines only)": ("otel_dist", {"OTEL_SDK_DISABLED": "true"}),
}


def run_ablations(args: argparse.Namespace, env: Env, sink: Sink, port: int) -> dict[str, Any]:
    out = args.out / "ablation"
    out.mkdir(parents=True, exist_ok=True)
    cases: dict[str, Callable[[Path], dict[str, Any]]] = {}
    for index, (setup, extra) in enumerate(ABLATIONS.values()):
        environ = clean_environ() | {
            "BENCH_SETUP": setup,
            "OTEL_SERVICE_NAME": "bench",
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint(port),
            **extra,
        }
        command = [str(env.python), str(BENCH_DIR / "inproc.py"), "cpu"]
        command += ["--requests", str(args.inproc_requests), "--warmup", str(args.inproc_warmup)]

        def run(result: Path, command: list[str] = command, environ: dict[str, str] = environ) -> dict[str, Any]:
            return _run_json([*command, "--result", str(result)], environ, result, args.server_core_set)

        cases[f"{index:02d}"] = run  # defaults bind the loop variables
    log("in-process ablations of full mode")
    raw = _repeat_interleaved(
        cases, args.inproc_repeats, out, ("main_thread_us", "process_us_before_flush", "process_us_with_export")
    )
    results = {name: raw[f"{index:02d}"] for index, name in enumerate(ABLATIONS)}
    full = results["ours full"]["process_us_with_export"]
    for value in results.values():
        value["saving_vs_full_us"] = full - value["process_us_with_export"]
    return results


def run_profile(args: argparse.Namespace, env: Env, sink: Sink, port: int, measured_us: float | None) -> dict[str, Any]:
    out = args.out / "profile"
    out.mkdir(parents=True, exist_ok=True)
    pstats_path = out / "ours_full.pstats"
    result = out / "ours_full.json"
    # No export during the profiled requests: cProfile's clock is wall time, and an export thread holding the GIL
    # would be charged to whatever the request path was doing (writing a line, typically). Big queues, far timers.
    no_export = {f"OTEL_{p}_MAX_{q}": "1000000" for p in ("BSP", "BLRP") for q in ("QUEUE_SIZE", "EXPORT_BATCH_SIZE")}
    environ = (
        clean_environ()
        | {"BENCH_SETUP": "otel_dist", "OTEL_SERVICE_NAME": "bench", "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint(port)}
        | _quiet_exports()
        | no_export
    )
    command = [str(env.python), str(BENCH_DIR / "inproc.py"), "profile", "--requests", str(args.profile_requests)]
    command += ["--warmup", str(args.inproc_warmup), "--profile-out", str(pstats_path), "--result", str(result)]
    log("cProfile of full mode (in-process)")
    _run_json(command, environ, result, args.server_core_set)
    return profile_report.analyse(str(pstats_path), args.profile_requests, measured_us)


# ----------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "hostname_hash": hex(hash(platform.node()) & 0xFFFF),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    (args.out / "logs").mkdir(parents=True, exist_ok=True)  # pip logs of new environments, the relay collector
    os.sched_setaffinity(0, args.load_core_set)
    started = time.perf_counter()
    envs, skipped = resolve_envs(args)
    wrk = None
    if args.loadgen in ("auto", "wrk"):
        wrk = ensure_wrk(install=not args.no_install)
        if wrk is None and args.loadgen == "wrk":
            raise SystemExit("wrk is not installed and could not be installed")
        if wrk is None:
            log("wrk unavailable: using the built-in Python load generator")
    rss_names = [] if args.no_rss else [n for n in args.rss_variants.split(",") if n in envs]
    n_ports = len(envs) + len(rss_names) + 1
    sink = start_sink(n_ports, args.load_core_set, sys.executable)
    relay = None
    if args.receiver == "collector":
        try:
            relay = start_relay(sink, args.load_core_set, args.out / "logs")
        except BaseException:
            sink.stop()
            raise
        log(f"exporting through the real collector ({relay.log_path.parent / 'relay-collector.yaml'})")
    spare_port = n_ports - 1
    results: dict[str, Any] = {
        "meta": {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": shlex.join([Path(sys.executable).name, "-m", "benchmarks.run", *(argv or sys.argv[1:])]),
            "machine": machine(),
            "parameters": {
                "quick": args.quick,
                "envs": args.envs,
                "rounds": args.rounds,
                "requests_per_round": args.requests,
                "warmup": args.warmup,
                "connections": args.connections,
                "settle_s": args.settle,
                "server_cores": sorted(args.server_core_set),
                "load_cores": sorted(args.load_core_set),
                "load_generator": "wrk " + _wrk_version(wrk) if wrk else "python (benchmarks/loadgen.py)",
                "path": "/items/42?q=bench",
                "receiver": "the real collector, relaying to the sink" if relay else "the sink",
            },
            "skipped": skipped,
        }
    }
    try:
        log(f"variants: {', '.join(envs)}")
        results["variants"] = run_rounds(args, envs, sink, wrk)
        if rss_names:
            results["rss"] = run_rss(args, envs, sink, len(envs), wrk)
        ours = envs.get("ours_full")
        if not args.no_callgrind:
            results["instructions"] = run_callgrind(args, envs, sink, spare_port)
        if ours is not None and not args.no_micro:
            results["log_line"] = run_log_micro(args, ours, sink, spare_port)
            results["export_path"] = run_export_micro(args, ours, sink, spare_port)
        if ours is not None and not args.no_profile:
            results["ablation"] = run_ablations(args, ours, sink, spare_port)
            measured = results["ablation"]["ours full"]["main_thread_us"]
            results["profile"] = run_profile(args, ours, sink, spare_port, measured)
    finally:
        if relay is not None:
            relay.stop()
        sink.stop()
    results["meta"]["duration_s"] = round(time.perf_counter() - started, 1)
    json_path = args.out / "results.json"
    json_path.write_text(json.dumps(results, indent=2, default=_json_default))
    markdown = report.render(results)
    (args.out / "results.md").write_text(markdown)
    print(markdown)
    log(f"wrote {json_path} and {args.out / 'results.md'} in {results['meta']['duration_s']} s")
    return 0


def _wrk_version(wrk: str | None) -> str:
    if wrk is None:
        return ""
    completed = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"wrk (\S+)", completed.stdout + completed.stderr)
    return match.group(1) if match else "?"


def _json_default(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
