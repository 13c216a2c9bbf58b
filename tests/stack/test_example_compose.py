"""The zip service example's compose override: valid, and wired to the files it mounts (no Docker engine here)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import yaml

from otel_dist.stack.supervisor import REPO_ROOT

OVERRIDE = REPO_ROOT / "examples/zip_service/docker-compose.yml"


def override() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(OVERRIDE.read_text())
    return loaded


def test_the_override_is_valid_against_the_compose_specification() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(OVERRIDE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_mounted_path_exists_and_overrides_a_mount_of_the_base_file() -> None:
    base = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    for name, service in override()["services"].items():
        for volume in service.get("volumes", []):
            if not isinstance(volume, str) or not volume.startswith("."):
                continue
            source, target = volume.split(":")[:2]
            assert (REPO_ROOT / source).exists(), volume
            if name in base:  # an existing service: the same target as one of its mounts, or a placeholder file
                targets = {v.split(":")[1] for v in base[name]["volumes"] if isinstance(v, str) and ":" in v}
                placeholder = target.replace("/etc/prometheus/targets/", "prometheus/targets/compose/")
                assert target in targets or (REPO_ROOT / placeholder).is_file(), volume


def test_the_service_is_scraped_as_the_job_its_rules_watch() -> None:
    (group,) = yaml.safe_load((REPO_ROOT / "examples/zip_service/monitoring/compose-targets.yml").read_text())
    assert group["targets"] == ["zip-service:8000"]
    assert group["labels"]["job"] == "zip-service"
    rules = (REPO_ROOT / "examples/zip_service/monitoring/rules/otel-dist-domain-alerts.yml").read_text()
    assert 'up{job="zip-service"} == 0' in rules
    assert yaml.safe_load((REPO_ROOT / "prometheus/targets/compose/apps-zip-service.yml").read_text()) == []


def test_the_service_is_pinned_probed_loopback_only_and_in_pull_mode() -> None:
    service = override()["services"]["zip-service"]
    assert service["image"] == "python:3.12-slim"
    assert "test" in service["healthcheck"]
    assert all(str(port).startswith("127.0.0.1:") for port in service["ports"])
    env = service["environment"]
    assert env["OTEL_METRICS_EXPORTER"] == "prometheus"
    assert env["OTEL_DIST_FILESYSTEM_PATHS"] == env["ZIP_WORK_DIR"] == "/work"
    tmpfs = next(v for v in service["volumes"] if isinstance(v, dict))
    assert (tmpfs["type"], tmpfs["target"]) == ("tmpfs", "/work")
