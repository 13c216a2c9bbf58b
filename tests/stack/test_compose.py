"""docker-compose.yml: valid against the Compose Specification, and built from the local stack's configs.

No Docker engine runs here, so the file is checked statically: the JSON schema vendored by check-jsonschema
(no network), plus what the project requires of it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_dist.stack.supervisor import LOCAL_ONLY_CONFIGS, REPO_ROOT, SHARED_CONFIGS

COMPOSE = REPO_ROOT / "docker-compose.yml"
TAIL_SAMPLING = REPO_ROOT / "docker-compose.tail-sampling.yml"
ENV_REF = re.compile(r"\$\{env:([A-Z0-9_]+)(?::-[^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Host path (repository-relative, normalised) -> container path, for bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            found[str(Path(source).as_posix()).removeprefix("./") or "."] = target
    return found


@pytest.mark.parametrize("path", [COMPOSE, TAIL_SAMPLING], ids=lambda p: p.name)
def test_compose_file_is_valid_against_the_compose_specification(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0


def test_the_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "otel-collector",
        "otel-collector-queues",
        "prometheus",
        "alertmanager",
        "jaeger",
        "loki",
        "grafana",
        "example-app",
    }


def test_compose_mounts_every_config_file_the_local_runner_shares(compose: dict[str, Any]) -> None:
    mounted = {path for service in compose["services"].values() for path in mounts(service)}
    missing = [path for path in SHARED_CONFIGS if path not in mounted]
    assert missing == []
    # What is per deployment stays per deployment: compose mounts its own log exporter and targets.
    assert not mounted & set(LOCAL_ONLY_CONFIGS)
    assert "collector/logs-loki.yaml" in mounted
    assert mounts(compose["services"]["prometheus"])["prometheus/targets/compose"] == "/etc/prometheus/targets"
    assert mounts(compose["services"]["grafana"])["grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts(compose["services"]["loki"])["loki/loki.yaml"] == "/etc/loki/loki.yaml"


def test_the_collector_runs_the_shared_config_plus_the_loki_pipeline(compose: dict[str, Any]) -> None:
    collector = compose["services"]["otel-collector"]
    targets = mounts(collector)
    assert collector["command"] == [
        f"--config=file:{targets['collector/otelcol.yaml']}",
        f"--config=file:{targets['collector/logs-loki.yaml']}",
    ]


def test_the_tail_sampling_override_adds_the_overlay_to_the_same_command(compose: dict[str, Any]) -> None:
    override = yaml.safe_load(TAIL_SAMPLING.read_text())["services"]["otel-collector"]
    targets = {**mounts(compose["services"]["otel-collector"]), **mounts(override)}
    assert override["command"] == [
        *compose["services"]["otel-collector"]["command"],
        f"--config=file:{targets['collector/tail-sampling.yaml']}",
    ]
    wanted = set(ENV_REF.findall((REPO_ROOT / "collector/tail-sampling.yaml").read_text()))
    assert wanted - {"OTELCOL_TAIL_SAMPLING_NUM_TRACES"} == set(override["environment"])


@pytest.mark.parametrize(
    ("service", "files"),
    [("otel-collector", ["collector/otelcol.yaml", "collector/logs-loki.yaml"]), ("jaeger", ["jaeger/config.yaml"])],
)
def test_compose_sets_every_address_the_configs_read(compose: dict[str, Any], service: str, files: list[str]) -> None:
    wanted = {m for f in files for m in ENV_REF.findall((REPO_ROOT / f).read_text())}
    optional = {"OTELCOL_MEMORY_LIMIT_MIB", "OTELCOL_MEMORY_SPIKE_MIB", "JAEGER_MAX_TRACES"}
    assert wanted - optional <= set(compose["services"][service]["environment"])


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        assert ":" in image, name
        assert not image.endswith((":latest", ":main")), name
        assert re.search(r":v?\d+\.\d+(\.\d+)?(-slim)?$", image), f"{name}: {image}"


def test_long_running_services_have_healthchecks(compose: dict[str, Any]) -> None:
    # The collector image is FROM scratch: nothing inside can run a probe (see the comment in the file).
    for name, service in compose["services"].items():
        if name != "otel-collector" and service.get("restart") != "no":  # one-shot jobs run to completion
            assert "test" in service.get("healthcheck", {}), name


def test_the_collector_queues_persist_in_a_volume_it_owns(compose: dict[str, Any]) -> None:
    collector = compose["services"]["otel-collector"]
    directory = collector["environment"]["OTELCOL_STORAGE_DIR"]
    assert f"otelcol-queues:{directory}" in collector["volumes"]
    assert "otelcol-queues" in compose["volumes"]
    init = compose["services"]["otel-collector-queues"]
    assert f"otelcol-queues:{directory}" in init["volumes"]
    assert init["entrypoint"][-1] == directory
    assert collector["depends_on"]["otel-collector-queues"] == {"condition": "service_completed_successfully"}


def test_published_ports_are_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_the_example_app_sends_to_the_collector(compose: dict[str, Any]) -> None:
    env = compose["services"]["example-app"]["environment"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    command = " ".join(compose["services"]["example-app"]["command"])
    assert "uvicorn examples.fastapi_app.app:app" in command
    assert (Path(__file__).parents[2] / "examples/fastapi_app/app.py").is_file()
