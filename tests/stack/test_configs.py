"""Static checks of the stack's configs: each tool's own validator, plus the policies they must follow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_dist.stack import versions
from otel_dist.stack.supervisor import REPO_ROOT, SHARED_CONFIGS, Ports, plan, read_flags, render_targets
from otel_dist.stack.supervisor import merged_collector_config as merge_collector_files

COLLECTOR = REPO_ROOT / "collector"
#: The collector config of each deployment: the shared file plus the deployment's log pipeline.
COLLECTOR_DEPLOYMENTS = {
    "shared only": ["otelcol.yaml"],
    "local (VictoriaLogs)": ["otelcol.yaml", "logs-victorialogs.yaml"],
    "compose (Loki)": ["otelcol.yaml", "logs-loki.yaml"],
    "local with tail sampling": ["otelcol.yaml", "logs-victorialogs.yaml", "tail-sampling.yaml"],
    "compose with tail sampling": ["otelcol.yaml", "logs-loki.yaml", "tail-sampling.yaml"],
}
SERVICE_IDENTITY = {"service.name", "service.namespace", "deployment.environment.name"}
ENV_REF = re.compile(r"\$\{env:([A-Z0-9_]+)(?::-[^}]*)?\}")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def run(argv: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False, env=env, **kwargs
    )


def merged_collector_config(files: list[str]) -> dict[str, Any]:
    """The collector's merge of ``collector/<file>`` ...: maps merge recursively, lists are replaced."""
    return merge_collector_files(COLLECTOR / name for name in files)


# --- collector --------------------------------------------------------------------------------------------


def test_the_tail_sampling_overlay_appends_its_processor_to_the_base_list() -> None:
    base = load(COLLECTOR / "otelcol.yaml")["service"]["pipelines"]["traces"]["processors"]
    overlay = load(COLLECTOR / "tail-sampling.yaml")
    # The overlay's list replaces the base one: it must be the base list (the exporters batch) with tail_sampling
    # last, after the probe filter, so dropped probe spans never take a place in the sampler.
    assert "batch" not in base
    expected = [*base, "tail_sampling"]
    assert overlay["service"]["pipelines"]["traces"]["processors"] == expected
    assert set(overlay["service"]["pipelines"]) == {"traces"}  # metrics and logs are never sampled
    policies = {p["name"]: p["type"] for p in overlay["processors"]["tail_sampling"]["policies"]}
    assert policies == {"errors": "status_code", "slow": "latency", "rest": "probabilistic"}


def test_the_tail_sampling_overlay_names_the_setting_it_cannot_use(binaries: dict[str, Path]) -> None:
    files = COLLECTOR_DEPLOYMENTS["local with tail sampling"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [str(binaries["otelcol"]), "validate", *(f"--config=file:{COLLECTOR / name}" for name in files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**env, "OTELCOL_TAIL_SAMPLING_PERCENT": "ten"},
    )
    assert result.returncode != 0
    assert "sampling_percentage" in result.stderr


@pytest.mark.parametrize("deployment", COLLECTOR_DEPLOYMENTS)
def test_otelcol_validate(binaries: dict[str, Path], deployment: str) -> None:
    configs = [f"--config=file:{COLLECTOR / name}" for name in COLLECTOR_DEPLOYMENTS[deployment]]
    result = run([binaries["otelcol"], "validate", *configs])
    assert result.returncode == 0, result.stderr + result.stdout


def test_otelcol_validate_rejects_a_broken_config(binaries: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((COLLECTOR / "otelcol.yaml").read_text().replace("IsMatch(", "IsMatchTypo(", 1))
    result = run([binaries["otelcol"], "validate", f"--config=file:{broken}"])
    assert result.returncode != 0
    assert "IsMatchTypo" in result.stderr


@pytest.mark.parametrize("deployment", list(COLLECTOR_DEPLOYMENTS)[1:])
def test_every_pipeline_starts_with_memory_limiter_and_holds_nothing_in_memory(deployment: str) -> None:
    config = merged_collector_config(COLLECTOR_DEPLOYMENTS[deployment])
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    for name, pipeline in pipelines.items():
        assert pipeline["processors"][0] == "memory_limiter", name
        # No batch processor: it would acknowledge what it holds in memory; the exporters batch instead.
        assert "batch" not in pipeline["processors"], name
        assert pipeline["receivers"] == ["otlp"], name
    assert "filter/probes" in pipelines["traces"]["processors"]
    assert "batch" not in config.get("processors", {})


@pytest.mark.parametrize("deployment", list(COLLECTOR_DEPLOYMENTS)[1:])
def test_every_exporter_retries_and_queues_on_disk_and_batches(deployment: str) -> None:
    config = merged_collector_config(COLLECTOR_DEPLOYMENTS[deployment])
    used = {e for p in config["service"]["pipelines"].values() for e in p["exporters"]}
    assert used == set(config["exporters"])
    storage = config["extensions"]["file_storage/queues"]
    assert "file_storage/queues" in config["service"]["extensions"]
    assert storage["directory"] == "${env:OTELCOL_STORAGE_DIR:-/var/lib/otelcol/file_storage}"
    assert storage["create_directory"] is True
    for name, exporter in config["exporters"].items():
        queue = exporter["sending_queue"]
        assert exporter["retry_on_failure"]["enabled"] is True, name
        assert queue["enabled"] is True, name
        assert queue["queue_size"] > 0, name
        assert queue["storage"] == "file_storage/queues", name
        assert queue["batch"]["sizer"] == "items", name
        assert 0 < queue["batch"]["min_size"] <= queue["batch"]["max_size"], name


def test_collector_addresses_come_from_the_environment_with_loopback_defaults() -> None:
    text = "\n".join((COLLECTOR / n).read_text() for n in ("otelcol.yaml", "logs-victorialogs.yaml"))
    config = merged_collector_config(["otelcol.yaml", "logs-victorialogs.yaml"])
    endpoints = [
        config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
        config["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
        config["extensions"]["health_check"]["endpoint"],
        config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]["host"],
        config["exporters"]["otlp_grpc/jaeger"]["endpoint"],
        config["exporters"]["otlp_http/prometheus"]["metrics_endpoint"],
        config["exporters"]["otlp_http/victorialogs"]["logs_endpoint"],
    ]
    for endpoint in endpoints:
        match = ENV_REF.search(endpoint)
        assert match, f"{endpoint} is not taken from ${{env:...}}"
        assert ":-127.0.0.1" in endpoint or ":-http://127.0.0.1" in endpoint, endpoint
    assert "0.0.0.0" not in "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_probe_spans_are_dropped_by_the_filter() -> None:
    conditions = load(COLLECTOR / "otelcol.yaml")["processors"]["filter/probes"]["trace_conditions"]
    joined = " ".join(conditions)
    assert "SPAN_KIND_SERVER" in joined
    assert "^/health" in joined
    assert '"/metrics"' in joined


def test_collector_self_metrics_are_served_with_classic_names() -> None:
    telemetry = load(COLLECTOR / "otelcol.yaml")["service"]["telemetry"]["metrics"]
    prometheus = telemetry["readers"][0]["pull"]["exporter"]["prometheus"]
    assert prometheus["without_type_suffix"] is False
    assert prometheus["without_units"] is False


def test_victorialogs_streams_are_service_identity_only() -> None:
    exporter = load(COLLECTOR / "logs-victorialogs.yaml")["exporters"]["otlp_http/victorialogs"]
    assert exporter["logs_endpoint"].endswith("/insert/opentelemetry/v1/logs")
    fields = set(exporter["headers"]["VL-Stream-Fields"].split(","))
    assert fields == SERVICE_IDENTITY


def test_loki_exporter_uses_the_native_otlp_endpoint() -> None:
    exporter = load(COLLECTOR / "logs-loki.yaml")["exporters"]["otlp_http/loki"]
    assert exporter["endpoint"].endswith("/otlp")


def test_the_local_runner_sets_every_variable_the_configs_read() -> None:
    binaries = {name: Path(name) for name in ("victoria-logs", "jaeger", "prometheus", "alertmanager", "otelcol")}
    services = {s.name: s for s in plan(Ports(), Path("/data"), binaries)}
    for service, files in (
        ("otelcol", ["collector/otelcol.yaml", "collector/logs-victorialogs.yaml"]),
        ("jaeger", ["jaeger/config.yaml"]),
    ):
        wanted = {m for f in files for m in ENV_REF.findall((REPO_ROOT / f).read_text())}
        optional = {"OTELCOL_MEMORY_LIMIT_MIB", "OTELCOL_MEMORY_SPIKE_MIB", "JAEGER_MAX_TRACES"}
        assert wanted - optional <= set(services[service].env), service


# --- Jaeger -----------------------------------------------------------------------------------------------


def test_jaeger_validate(binaries: dict[str, Path]) -> None:
    result = run([binaries["jaeger"], "validate", f"--config=file:{REPO_ROOT / 'jaeger/config.yaml'}"])
    assert result.returncode == 0, result.stderr + result.stdout


def test_jaeger_does_not_trace_itself_and_keeps_bounded_memory() -> None:
    config = load(REPO_ROOT / "jaeger/config.yaml")
    assert config["extensions"]["jaeger_query"]["enable_tracing"] is False
    backend = config["extensions"]["jaeger_storage"]["backends"]["memstore"]["memory"]
    assert "max_traces" in backend
    assert "traces" not in config["service"]["telemetry"]


# --- Prometheus -------------------------------------------------------------------------------------------


def prometheus_dir(tmp_path: Path, deployment: str) -> Path:
    """Lay out the config directory the way each deployment does (docker-compose: /etc/prometheus)."""
    etc = tmp_path / deployment
    (etc / "targets").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "prometheus/prometheus.yml", etc)
    shutil.copytree(REPO_ROOT / "prometheus/rules", etc / "rules")
    for target in (REPO_ROOT / "prometheus/targets" / deployment).glob("*.yml"):
        shutil.copy(target, etc / "targets")
    return etc


@pytest.mark.parametrize("deployment", ["local", "compose"])
def test_promtool_check_config(binaries: dict[str, Path], tmp_path: Path, deployment: str) -> None:
    etc = prometheus_dir(tmp_path, deployment)
    result = run([binaries["promtool"], "check", "config", etc / "prometheus.yml"])
    assert result.returncode == 0, result.stderr + result.stdout
    assert "SUCCESS" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr  # e.g. a file_sd file that does not exist


def test_promtool_check_config_rejects_a_broken_targets_file(binaries: dict[str, Path], tmp_path: Path) -> None:
    etc = prometheus_dir(tmp_path, "local")
    (etc / "targets/scrape.yml").write_text("- targets: [127.0.0.1:8888]\n  labelz: {job: otelcol}\n")
    result = run([binaries["promtool"], "check", "config", etc / "prometheus.yml"])
    assert result.returncode != 0


def test_promtool_check_rules(binaries: dict[str, Path]) -> None:
    rule_files = sorted((REPO_ROOT / "prometheus/rules").glob("*.yml"))
    assert load(REPO_ROOT / "prometheus/prometheus.yml")["rule_files"] == ["rules/*.yml"]
    if rule_files:  # the alert rules arrive with their own issue; until then the glob matches nothing
        result = run([binaries["promtool"], "check", "rules", *rule_files])
        assert result.returncode == 0, result.stderr + result.stdout


def test_committed_local_targets_are_the_standard_ports_rendering() -> None:
    committed = {p.name: p.read_text() for p in (REPO_ROOT / "prometheus/targets/local").glob("*.yml")}
    assert committed == render_targets(Ports())


def test_both_deployments_scrape_the_same_jobs_but_the_log_store() -> None:
    def jobs(deployment: str) -> set[str]:
        groups = load(REPO_ROOT / f"prometheus/targets/{deployment}/scrape.yml")
        return {g["labels"]["job"] for g in groups}

    assert jobs("local") - {"victorialogs"} == jobs("compose") - {"loki"}
    assert {"otelcol", "prometheus", "alertmanager", "jaeger"} <= jobs("local")


def test_prometheus_metrics_path_and_naming_policy() -> None:
    config = load(REPO_ROOT / "prometheus/prometheus.yml")
    otlp = config["otlp"]
    assert otlp["translation_strategy"] == "UnderscoreEscapingWithSuffixes"
    assert set(otlp["promote_resource_attributes"]) == {"deployment.environment.name", "service.version"}
    assert otlp["keep_identifying_resource_attributes"] is False
    assert config["global"]["metric_name_validation_scheme"] == "legacy"
    tsdb = config["storage"]["tsdb"]
    assert tsdb["out_of_order_time_window"]
    assert tsdb["retention"]["time"]
    assert config["storage"]["exemplars"]["max_exemplars"] > 0
    # The documentation that rules and dashboards rely on names the same choices.
    doc = (COLLECTOR / "README.md").read_text()
    for needle in ("UnderscoreEscapingWithSuffixes", "target_info", "deployment_environment_name", "service_version"):
        assert needle in doc


def test_the_local_runner_enables_otlp_and_exemplars() -> None:
    binaries = {name: Path(name) for name in ("victoria-logs", "jaeger", "prometheus", "alertmanager", "otelcol")}
    prometheus = next(s for s in plan(Ports(), Path("/data"), binaries) if s.name == "prometheus")
    assert "--web.enable-otlp-receiver" in prometheus.argv
    assert "--enable-feature=exemplar-storage" in prometheus.argv


# --- Alertmanager, VictoriaLogs ---------------------------------------------------------------------------


def test_amtool_check_config(binaries: dict[str, Path]) -> None:
    result = run([binaries["amtool"], "check-config", REPO_ROOT / "alertmanager/alertmanager.yml"])
    assert result.returncode == 0, result.stderr + result.stdout
    assert "SUCCESS" in result.stdout


def test_victorialogs_flags_are_accepted_and_set_retention(binaries: dict[str, Path]) -> None:
    flags = read_flags(REPO_ROOT / "victorialogs/victoria-logs.flags")
    assert any(f.startswith("-retentionPeriod=") for f in flags)
    result = run([binaries["victoria-logs"], *flags, "-version"])
    assert result.returncode == 0, result.stderr + result.stdout
    assert run([binaries["victoria-logs"], "-noSuchFlag=1", "-version"]).returncode != 0


# --- Loki (docker-compose only: checked statically) -------------------------------------------------------


def test_loki_config_schema_index_labels_and_retention() -> None:
    config = load(REPO_ROOT / "loki/loki.yaml")
    schemas = config["schema_config"]["configs"]
    assert [(s["schema"], s["store"]) for s in schemas] == [("v13", "tsdb")]
    labels = config["distributor"]["otlp_config"]["default_resource_attributes_as_index_labels"]
    assert set(labels) <= SERVICE_IDENTITY
    assert "service.name" in labels
    assert "service.instance.id" not in labels
    limits = config["limits_config"]
    assert limits["allow_structured_metadata"] is True
    assert re.fullmatch(r"\d+[hdw]", limits["retention_period"])
    assert config["compactor"]["retention_enabled"] is True


# --- Grafana (docker-compose only) ------------------------------------------------------------------------


def test_grafana_datasources_link_the_three_signals() -> None:
    datasources = {
        d["uid"]: d for d in load(REPO_ROOT / "grafana/provisioning/datasources/datasources.yaml")["datasources"]
    }
    assert set(datasources) == {"prometheus", "jaeger", "loki"}
    assert datasources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"] == "jaeger"
    assert datasources["jaeger"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] == "loki"
    assert datasources["loki"]["jsonData"]["derivedFields"][0]["datasourceUid"] == "jaeger"
    assert datasources["prometheus"]["url"] == "http://prometheus:9090"
    assert datasources["jaeger"]["url"] == "http://jaeger:16686"
    assert datasources["loki"]["url"] == "http://loki:3100"


# --- shared --------------------------------------------------------------------------------------------


def test_every_shared_config_exists() -> None:
    for path in SHARED_CONFIGS:
        assert (REPO_ROOT / path).exists(), path


def test_versions_pinned_in_compose_match_the_local_builds() -> None:
    images = {name: s["image"] for name, s in load(REPO_ROOT / "docker-compose.yml")["services"].items()}
    assert images["prometheus"] == f"prom/prometheus:v{versions.PROMETHEUS_VERSION}"
    assert images["alertmanager"] == f"prom/alertmanager:v{versions.ALERTMANAGER_VERSION}"
    assert images["jaeger"] == f"jaegertracing/jaeger:{versions.JAEGER_VERSION.removeprefix('v')}"
    assert images["otel-collector"] == (
        f"otel/opentelemetry-collector-contrib:{versions.OTELCOL_CONTRIB_VERSION.removeprefix('v')}"
    )
