"""``otel-dist doctor`` as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.otlp_receiver import OtlpReceiver, free_port

DOCTOR = str(Path(sys.executable).parent / "otel-dist")


def doctor(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [DOCTOR, "doctor"], env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False
    )


def test_doctor_shows_sources_redacts_headers_and_probes_the_collector(receiver: OtlpReceiver) -> None:
    result = doctor(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20s3cr3t",
        OTEL_DIST_ENVIRONMENT="production",
        OTEL_DIST_LOG_LEVEL="warning",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "s3cr3t" not in out
    assert "authorization=<redacted>" in out
    assert "[env:OTEL_DIST_LOG_LEVEL]" in out
    assert "sampler_ratio                 0.1  [profile:production]" in out
    assert out.count("OK: HTTP 200") == 3
    assert len(receiver.requests["traces"]) == len(receiver.requests["logs"]) == 1


def test_doctor_reports_an_unreachable_collector_and_exits_non_zero() -> None:
    result = doctor(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stdout.count("FAILED") == 3
    assert "Connection refused" in result.stdout


def test_doctor_names_a_bad_setting() -> None:
    result = doctor(OTEL_TRACES_SAMPLER="sometimes")
    assert result.returncode == 2
    assert "OTEL_TRACES_SAMPLER" in result.stderr
    assert "parentbased_traceidratio" in result.stderr


def test_doctor_says_which_fast_paths_run_on_this_installation() -> None:
    out = doctor(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}").stdout
    fast = out.split("Fast paths", 1)[1].split("OTLP export check", 1)[0]
    assert "fast_export     on: direct OTLP/HTTP encoding" in fast
    assert "fast_recording  on: HTTP metrics through bound attribute sets" in fast
    assert "on: server-span attributes written directly" in fast
    assert "server_spans    otel_dist: our server-span layer, FastAPI" in fast
    assert "routing hooks found" in fast
    assert "FALLBACK" not in fast

    switched = doctor(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        OTEL_DIST_FAST_RECORDING="false",
        OTEL_DIST_SERVER_SPANS="native",
    ).stdout
    assert "fast_recording  off (setting)" in switched
    assert "server_spans    native: FastAPI's native telemetry" in switched


def test_an_sdk_without_the_internals_is_reported_as_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from otel_dist.cli import doctor as doctor_module
    from otel_dist.settings import resolve

    monkeypatch.setattr(doctor_module, "_fast_metrics_supported", lambda: False)
    monkeypatch.setattr(doctor_module, "_fastapi_hooks_state", lambda: "hooks NOT found")
    lines = doctor_module.fast_paths(resolve(environ={}))
    assert any(line.startswith("  fast_recording  FALLBACK: HTTP metrics") for line in lines)
    assert "  server_spans    otel_dist: hooks NOT found" in lines
