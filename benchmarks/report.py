"""results.json -> Markdown: the table of ratios to bare, then the secondary measurements."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _main_table(results: dict[str, Any]) -> list[str]:
    instructions = results.get("instructions", {})
    lines = [
        "| variant | CPU µs/request (median) | min - max | spread | **ratio to bare** | per-round ratios | "
        "main thread µs | background µs | instructions/request (in-process) | instr. ratio | spans/req | "
        "log records/req | req/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, variant in results.get("variants", {}).items():
        summary = variant["summary"]
        cpu = summary["cpu_us_per_request"]
        paired = summary.get("paired_ratios", [])
        counted = instructions.get(name, {})
        per_request = counted.get("instructions_per_request")
        lines.append(
            f"| `{name}` | {_f(cpu['median'])} | {_f(cpu['min'])} - {_f(cpu['max'])} | {_f(cpu['spread_pct'])} % | "
            f"**{_f(summary['ratio_to_bare'], 2)}x** | "
            f"{_f(min(paired), 2) if paired else '-'} - {_f(max(paired), 2) if paired else '-'} | "
            f"{_f(summary['main_us_per_request'])} | {_f(summary['background_us_per_request'])} | "
            f"{_f(per_request / 1e6, 3) + ' M' if per_request else '-'} | {_f(counted.get('ratio_to_bare'), 2)} | "
            f"{_f(summary.get('spans_per_request'), 2)} | {_f(summary.get('log_records_per_request'), 2)} | "
            f"{_f(summary['throughput_rps'], 0)} |"
        )
    lines.append("")
    lines += [f"- `{name}`: {variant['label']}" for name, variant in results.get("variants", {}).items()]
    for name, reason in results.get("meta", {}).get("skipped", {}).items():
        lines.append(f"- `{name}`: skipped ({reason})")
    return lines


def _rss(results: dict[str, Any]) -> list[str]:
    rss = results.get("rss")
    if not rss:
        return []
    lines = [
        "## RSS over a long run",
        "",
        "| variant | requests | RSS first | RSS last | slope (least squares) | CPU µs/request over the run |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, value in rss.items():
        first, last = value["checkpoints"][0][0], value["checkpoints"][-1][0]
        lines.append(
            f"| `{name}` | {first:,} -> {last:,} | {_f(value['rss_first_mib'])} MiB | {_f(value['rss_last_mib'])} MiB "
            f"| {_f(value['slope_kib_per_10k_requests'])} KiB / 10k requests | "
            f"{_f(value['cpu_us_per_request_after_first'])} |"
        )
    return [*lines, ""]


def _log_line(results: dict[str, Any]) -> list[str]:
    micro = results.get("log_line")
    if not micro:
        return []
    lines = [
        "## One log line (micro-benchmark, in-process, stdout to /dev/null)",
        "",
        "| case | calling thread µs/line | process µs/line (incl. OTLP export) | ratio to stdlib |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, value in micro.items():
        lines.append(
            f"| `{name}` | {_f(value['main_us'], 2)} | {_f(value['process_us'], 2)} | "
            f"{_f(value['ratio_to_stdlib'], 2)}x |"
        )
    return [*lines, ""]


def _export(results: dict[str, Any]) -> list[str]:
    micro = results.get("export_path")
    if not micro:
        return []
    lines = [
        "## Export path: spans per CPU-second (OTLP/HTTP to the sink process)",
        "",
        "| pipeline | span create+end µs | pipeline µs/span | **spans per CPU-s (pipeline)** | SDK encoder alone | "
        "direct encoder alone | SDK export() (encode + POST) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, value in micro.items():
        fast = value.get("fast_encode_spans_per_cpu_s")
        lines.append(
            f"| `{name}` | {_f(value['create_end_us_per_span'], 2)} | {_f(value['pipeline_us_per_span'], 2)} | "
            f"**{_f(value['pipeline_spans_per_cpu_s'], 0)}** | {_f(value['encode_spans_per_cpu_s'], 0)} /s | "
            f"{_f(fast, 0) + ' /s' if fast else '-'} | {_f(value['export_spans_per_cpu_s'], 0)} /s |"
        )
    live = [
        (name, v["summary"].get("items_per_background_cpu_s"))
        for name, v in results.get("variants", {}).items()
        if v["summary"].get("items_per_background_cpu_s")
    ]
    if live:
        lines += [
            "",
            "Live servers: exported items (spans + log records) per CPU-second of their background threads:",
            "",
            *[f"- `{name}`: {_f(value, 0)} items/CPU-s" for name, value in live],
        ]
    return [*lines, ""]


def _ablation(results: dict[str, Any]) -> list[str]:
    ablation = results.get("ablation")
    if not ablation:
        return []
    lines = [
        "## Full mode with one part switched off (in-process ASGI loop, no server, export flushed in the window)",
        "",
        "| configuration | main thread µs/req | process µs/req (incl. export) | saving vs full |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, value in ablation.items():
        lines.append(
            f"| {name} | {_f(value['main_thread_us'])} | {_f(value['process_us_with_export'])} | "
            f"{_f(value['saving_vs_full_us'])} |"
        )
    return [*lines, ""]


def _profile(results: dict[str, Any]) -> list[str]:
    profile = results.get("profile")
    if not profile:
        return []
    lines = [
        "## Where full mode's request path goes (cProfile, in-process; shares scaled to the unprofiled CPU)",
        "",
        f"Profiled {profile['requests']:,} requests; measured main-thread CPU without the profiler: "
        f"{_f(profile['measured_us_per_request'])} µs/request.",
        "",
        "| component | share | ≈ µs/request |",
        "| --- | ---: | ---: |",
    ]
    for item in profile["components"]:
        lines.append(f"| {item['component']} | {_f(item['share'] * 100)} % | {_f(item['estimated_us_per_request'])} |")
    lines += [
        "",
        "| top functions by self time | component | calls/req | self % | self ≈ µs/req |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for item in profile["top_functions"]:
        lines.append(
            f"| `{item['function']}` | {item['component']} | {_f(item['calls_per_request'], 1)} | "
            f"{_f(item['self_share'] * 100)} | {_f(item['self_us_per_request'], 2)} |"
        )
    return [*lines, ""]


def render(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    parameters = meta.get("parameters", {})
    machine = meta.get("machine", {})
    lines = [
        "# Overhead benchmark results",
        "",
        f"- date: {meta.get('date')}; command: `{meta.get('command')}`; duration {meta.get('duration_s')} s",
        f"- machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('memory_gib')} GiB, "
        f"Linux {machine.get('kernel')}, Python {machine.get('python')}",
        f"- {parameters.get('rounds')} interleaved rounds x {parameters.get('requests_per_round'):,} requests "
        f"(`GET {parameters.get('path')}`), warm-up {parameters.get('warmup'):,}, "
        f"{parameters.get('connections')} connections, {parameters.get('load_generator')}, settle "
        f"{parameters.get('settle_s')} s; servers on cores {parameters.get('server_cores')}, load generator and "
        f"sink on {parameters.get('load_cores')}; environments: {parameters.get('envs')}; exporting to "
        f"{parameters.get('receiver', 'the sink')}",
        "",
        "## CPU per request (server process and its children), ratio to bare",
        "",
        *_main_table(results),
        "",
        *_rss(results),
        *_log_line(results),
        *_export(results),
        *_ablation(results),
        *_profile(results),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "out" / "results.json"
    print(render(json.loads(path.read_text())))
