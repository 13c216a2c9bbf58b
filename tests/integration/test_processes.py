"""Whole processes: the opentelemetry-instrument wrapper, SIGTERM, fork."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from opentelemetry import trace

import otel_dist
from otel_dist.distro import CHOOSE_HINT
from tests.support.otlp_receiver import OtlpReceiver, wait_for

APP = Path(__file__).parent.parent / "support" / "sample_app.py"
BIN = Path(sys.executable).parent
#: Identity that differs per process by design.
PER_PROCESS = {"process.pid", "process.parent_pid", "service.instance.id", "process.command", "process.executable.name"}


def environment(receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_SERVICE_NAME="sample",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_DIST_SYSTEM_METRICS="false",
        OTEL_METRIC_EXPORT_INTERVAL="60000",
        PYTHONPATH=str(APP.parent.parent.parent),
    )
    env.update(extra)
    return env


def run(receiver: OtlpReceiver, mode: str, *, wrapper: bool, **extra: str) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "python"), str(APP), mode]
    if wrapper:
        command = [str(BIN / "opentelemetry-instrument"), *command]
    return subprocess.run(
        command, env=environment(receiver, **extra), capture_output=True, text=True, timeout=60, check=False
    )


def summary(receiver: OtlpReceiver) -> dict[str, Any]:
    """What a collector received, minus what differs per process."""
    spans, logs = receiver.spans(), receiver.logs()
    return {
        "spans": sorted(s.item.name for s in spans),
        "logs": sorted((r.item.body.string_value, tuple(sorted(r.attributes))) for r in logs),
        "metrics": sorted({m.item.name for m in receiver.metrics()}),
        "resource": sorted(set(spans[0].resource) - PER_PROCESS) if spans else [],
        "correlated": all(r.item.trace_id == spans[0].item.trace_id for r in logs) if spans else False,
    }


def test_the_wrapper_produces_what_configure_produces(receiver: OtlpReceiver) -> None:
    direct = run(receiver, "configure", wrapper=False)
    assert direct.returncode == 0, direct.stderr
    expected = summary(receiver)
    receiver.clear()

    wrapped = run(receiver, "wrapper", wrapper=True, OTEL_PYTHON_DISTRO="otel_dist")
    assert wrapped.returncode == 0, wrapped.stderr
    assert summary(receiver) == expected
    assert expected["spans"] == ["work"]
    assert [body for body, _ in expected["logs"]] == ["stdlib.line", "work.done"]
    assert "sample.items" in expected["metrics"]
    assert expected["correlated"]
    assert direct.stdout.count('"work.done"') == wrapped.stdout.count('"work.done"') == 1


def test_configure_under_the_wrapper_exports_once(receiver: OtlpReceiver) -> None:
    result = run(receiver, "configure", wrapper=True, OTEL_PYTHON_DISTRO="otel_dist")
    assert result.returncode == 0, result.stderr
    assert "configured by opentelemetry-instrument" in result.stderr
    assert len(receiver.spans()) == 1
    assert len(receiver.logs()) == 2


def test_with_the_stock_distro_installed_ours_runs_or_the_choice_is_explained(receiver: OtlpReceiver) -> None:
    result = run(receiver, "wrapper", wrapper=True)  # no OTEL_PYTHON_DISTRO: entry-point order decides
    assert result.returncode == 0, result.stderr
    if receiver.logs():
        assert summary(receiver)["logs"][1][0] == "work.done"
        assert '"work.done"' in result.stdout
    else:
        assert CHOOSE_HINT in result.stderr


def test_an_explicit_choice_of_the_stock_configurator_is_respected(receiver: OtlpReceiver) -> None:
    result = run(
        receiver, "wrapper", wrapper=True, OTEL_PYTHON_DISTRO="distro", OTEL_PYTHON_CONFIGURATOR="configurator"
    )
    assert result.returncode == 0, result.stderr
    assert "otel-dist did not configure" not in result.stderr


def test_sigterm_flushes_before_the_process_dies(receiver: OtlpReceiver) -> None:
    env = environment(receiver, OTEL_BSP_SCHEDULE_DELAY="60000", OTEL_BLRP_SCHEDULE_DELAY="60000")
    process = subprocess.Popen(
        [str(BIN / "python"), str(APP), "configure", "--wait"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert wait_for(lambda: "ready" in process.stdout.readline(), timeout=30)
    assert receiver.spans() == []  # nothing exported yet: the batch delay is a minute
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == -signal.SIGTERM  # it still dies of SIGTERM
    assert [s.item.name for s in receiver.spans()] == ["work"]
    assert len(receiver.logs()) == 2
    assert receiver.metrics("sample.items")


def test_a_forked_child_exports_under_its_own_identity(receiver, configure: OtlpReceiver) -> None:
    telemetry = configure(endpoint=receiver.endpoint, metrics_exporter="none", logs_exporter="none")
    parent_instance = telemetry.resource.attributes["service.instance.id"]
    pid = os.fork()
    if pid == 0:  # the child: one span, flushed, then leave without running the parent's atexit hooks
        with trace.get_tracer("child").start_as_current_span("in-child"):
            pass
        ok = otel_dist.current().force_flush(5)  # type: ignore[union-attr]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    [span] = receiver.spans()
    assert span.resource["process.pid"] == pid
    assert span.resource["service.instance.id"] != parent_instance
