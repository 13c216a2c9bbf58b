"""The collector's hardening, statically: the auth-tls overlay validates with the real binary, keeps
memory_limiter first and the loopback defaults, and holds no secret itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from otel_dist.stack.supervisor import REPO_ROOT
from tests.stack.binaries import stack_binaries
from tests.stack.test_configs import merged_collector_config

COLLECTOR = REPO_ROOT / "collector"
HARDENED = ["otelcol.yaml", "logs-victorialogs.yaml", "auth-tls.yaml"]


def test_the_overlay_validates_with_the_real_collector(tmp_path: Path) -> None:
    binaries = stack_binaries()
    for name in ("tokens", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("placeholder\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL")}
    env.update(
        OTELCOL_AUTH_TOKEN_FILE=str(tmp_path / "tokens"),
        OTELCOL_TLS_CERT_FILE=str(tmp_path / "cert.pem"),
        OTELCOL_TLS_KEY_FILE=str(tmp_path / "key.pem"),
    )
    configs = [f"--config=file:{COLLECTOR / name}" for name in HARDENED]
    result = subprocess.run(
        [str(binaries["otelcol"]), "validate", *configs],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_every_receiver_protocol_needs_tls_and_the_token() -> None:
    config = merged_collector_config(HARDENED)
    for name, protocol in config["receivers"]["otlp"]["protocols"].items():
        assert protocol["auth"]["authenticator"] == "bearertokenauth/otlp", name
        assert protocol["tls"]["cert_file"] == "${env:OTELCOL_TLS_CERT_FILE}", name
        assert protocol["tls"]["min_version"] == "1.2", name
        assert ":-127.0.0.1:" in protocol["endpoint"], name  # still loopback unless configured
    # The overlay's list replaces the shared one: it must keep every extension otelcol.yaml starts.
    shared = yaml.safe_load((COLLECTOR / "otelcol.yaml").read_text())["service"]["extensions"]
    assert config["service"]["extensions"] == [*shared, "bearertokenauth/otlp"]


@pytest.mark.parametrize("pipeline", ["traces", "metrics", "logs"])
def test_memory_limiter_stays_first_with_the_overlay(pipeline: str) -> None:
    assert merged_collector_config(HARDENED)["service"]["pipelines"][pipeline]["processors"][0] == "memory_limiter"


def test_the_overlay_reads_secrets_from_files_only() -> None:
    overlay = yaml.safe_load((COLLECTOR / "auth-tls.yaml").read_text())
    auth = overlay["extensions"]["bearertokenauth/otlp"]
    assert set(auth) == {"filename"}  # never `token:` in a file that is committed
    assert auth["filename"].startswith("${env:")
