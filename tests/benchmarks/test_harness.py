"""The overhead benchmark's harness works end to end (benchmarks/, issue 7). No timing is asserted: CI machines
are shared and noisy; these tests prove the harness runs and writes results of the documented shape."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from benchmarks.loadgen import run_python_client
from benchmarks.servers import Sink, start_sink
from benchmarks.sink import count_items

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--no-install", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text()


def test_quick_run_writes_every_section(quick_results: tuple[dict[str, Any], str]) -> None:
    results, _ = quick_results
    assert {"meta", "variants"} <= set(results)
    meta = results["meta"]
    assert meta["parameters"]["quick"] is True
    assert {"date", "command", "machine", "duration_s"} <= set(meta)
    for section in ("rss", "log_line", "export_path", "ablation", "profile"):
        assert section in results, section
    assert "bare" in results["variants"]
    assert "ours_full" in results["variants"]


def test_every_variant_has_rounds_and_a_ratio(quick_results: tuple[dict[str, Any], str]) -> None:
    results, _ = quick_results
    rounds = results["meta"]["parameters"]["rounds"]
    for name, variant in results["variants"].items():
        assert len(variant["rounds"]) == rounds, name
        for row in variant["rounds"]:
            assert row["requests"] >= results["meta"]["parameters"]["requests_per_round"], name
            assert row["errors"] == 0, name
            assert row["cpu_us_per_request"] > 0, name
        summary = variant["summary"]
        assert {"median", "min", "max", "spread_pct"} <= set(summary["cpu_us_per_request"])
        assert len(summary["paired_ratios"]) == rounds
        assert summary["ratio_to_bare"] > 0
    assert results["variants"]["bare"]["summary"]["ratio_to_bare"] == pytest.approx(1.0)


def test_exporting_variants_reached_the_sink(quick_results: tuple[dict[str, Any], str]) -> None:
    results, _ = quick_results
    for name in ("ours_full", "ours_full_fast_off"):
        rounds = results["variants"][name]["rounds"]
        assert sum(row["exported"]["items"]["traces"] for row in rounds) > 0, name
        assert sum(row["exported"]["items"]["logs"] for row in rounds) > 0, name


def test_secondary_measurements_have_their_shape(quick_results: tuple[dict[str, Any], str]) -> None:
    results, _ = quick_results
    for rss in results["rss"].values():
        assert len(rss["checkpoints"]) >= 2
        assert "slope_kib_per_10k_requests" in rss
    assert set(results["log_line"]) == {
        "stdlib",
        "structlog",
        "ours_stdout",
        "ours_otlp",
        "ours_otlp_stock",
        "ours_stdlib_otlp",
        "ours_stdlib_otlp_stock",
    }
    assert set(results["export_path"]) == {"sdk", "ours", "ours_stock"}
    assert all(v["pipeline_spans_per_cpu_s"] for v in results["export_path"].values())
    assert "ours full" in results["ablation"]
    components = results["profile"]["components"]
    assert sum(c["share"] for c in components) == pytest.approx(1.0, abs=1e-6)
    if "instructions" in results and "skipped" not in results["instructions"]:
        assert results["instructions"]["bare"]["instructions_per_request"] > 0


def test_markdown_has_the_ratio_table(quick_results: tuple[dict[str, Any], str]) -> None:
    results, markdown = quick_results
    assert "ratio to bare" in markdown
    for name in results["variants"]:
        assert f"`{name}`" in markdown


@pytest.fixture
def sink() -> Iterator[Sink]:
    running = start_sink(1, {0}, sys.executable)
    yield running
    running.stop()


def test_sink_counts_items_from_the_wire_format() -> None:
    request = ExportTraceServiceRequest()
    for n_scopes in (2, 1):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.add(key="service.name").value.string_value = "bench"
        for _ in range(n_scopes):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = "x"
            for _ in range(3):
                scope_spans.spans.add(name="GET /items/{item_id}", trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    assert count_items(request.SerializeToString()) == 9


def test_python_load_generator_sends_exactly_the_count(sink: Sink) -> None:
    result = run_python_client(f"{sink.endpoint(0)}/items/1", requests=57, connections=4, cores={0})
    assert (result.requests, result.errors) == (57, 0)
    assert sink.stats(0)["other"] == 57  # not an OTLP path: answered and counted apart


def test_the_real_collector_relays_every_server_to_its_own_sink_port(tmp_path: Path) -> None:
    """``--receiver collector``: the servers export to the real collector, which forwards to the sink's ports."""
    from benchmarks.relay import start_relay
    from tests.stack.binaries import stack_binaries

    stack_binaries()  # built (CI) or skipped with the reason
    running = start_sink(2, {0}, sys.executable)
    try:
        relay = start_relay(running, {0}, tmp_path)
        try:
            assert running.endpoint(0) != f"http://127.0.0.1:{running.ports[0]}"  # the collector's receiver
            request = ExportTraceServiceRequest()
            scope_spans = request.resource_spans.add().scope_spans.add()
            for index in range(5):
                scope_spans.spans.add(name="GET /", trace_id=b"\x01" * 16, span_id=bytes([index + 1]) * 8)
            for port in (0, 1):
                http_request = urllib.request.Request(
                    f"{running.endpoint(port)}/v1/traces",
                    data=request.SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf"},
                )
                with urllib.request.urlopen(http_request, timeout=10) as response:
                    assert response.status == 200
            deadline = time.monotonic() + 20
            while [running.stats(port)["items"]["traces"] for port in (0, 1)] != [5, 5]:
                assert time.monotonic() < deadline, [running.stats(port) for port in (0, 1)]
                time.sleep(0.2)
        finally:
            relay.stop()
    finally:
        running.stop()
