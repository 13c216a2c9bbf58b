"""The objectives spec: the shipped one loads, and every kind of mistake fails naming its field."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_dist.cli.main import main
from otel_dist.rules.render import render, rule_groups
from otel_dist.rules.spec import Duration, Matcher, Spec, SpecError, load_spec, parse_selector
from tests.rules.conftest import SPEC_PATH, load_yaml, run

BASE: dict[str, Any] = load_yaml(SPEC_PATH)


def write_spec(tmp_path: Path, data: dict[str, Any], baseline: str | None = None) -> Path:
    path = tmp_path / "objectives.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    (tmp_path / "baseline.yaml").write_text(
        baseline if baseline is not None else (SPEC_PATH.parent / "baseline.yaml").read_text()
    )
    return path


def mutated(path: str, value: Any) -> dict[str, Any]:
    """The shipped spec with one field (dotted path, [i] for list items) set to ``value`` (DELETE removes it)."""
    data = copy.deepcopy(BASE)
    parts = path.replace("[", ".[").split(".")
    node: Any = data
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node.setdefault(part, {})
    last = parts[-1]
    if value is DELETE:
        del node[last]
    elif last.startswith("["):
        node[int(last[1:-1])] = value
    else:
        node[last] = value
    return data


DELETE = object()
CHECKOUT = {"name": "checkout", "selector": 'job="checkout"'}


def test_the_shipped_spec_loads(spec: Spec) -> None:
    assert [s.name for s in spec.scopes] == ["default"]
    assert spec.scopes[0].matchers == ()
    assert [(b.severity, str(b.long), str(b.short), b.factor) for b in spec.burn_rates] == [
        ("critical", "1h", "5m", 14.4),
        ("critical", "6h", "30m", 6.0),
        ("warning", "1d", "2h", 3.0),
        ("warning", "3d", "6h", 1.0),
    ]
    o = spec.scopes[0].objectives
    assert o.availability == 0.995
    assert o.latency_slo is not None
    assert (o.latency_slo.threshold_seconds, o.latency_slo.target) == (1.0, 0.95)
    assert o.error_ratio is not None
    assert (o.error_ratio.warning, o.error_ratio.critical) == (0.01, 0.05)
    assert o.latency is not None
    assert (o.latency.threshold.warning, o.latency.threshold.critical) == (1.0, 4.0)
    assert o.memory is not None
    assert (o.memory.warning, o.memory.critical) == (0.8, 0.95)
    assert o.db_pool is not None
    assert o.db_pool.warning == 0.8
    assert spec.baseline is not None
    assert len(spec.baseline.entries) == 3
    assert spec.quantiles == (0.5, 0.95, 0.99)


@pytest.mark.parametrize(
    ("path", "value", "field", "says"),
    [
        ("version", 2, "version", "must be 1"),
        ("runbook_base_url", DELETE, "runbook_base_url", "is required"),
        ("runbook_base_url", "ftp://example.org/runbooks", "runbook_base_url", "http(s)://"),
        ("defaults.error_ratio.warning", 5, "defaults.error_ratio.warning", "between 0 and 1"),
        ("defaults.error_ratio.critical", 0.005, "defaults.error_ratio.critical", "must be above warning"),
        ("defaults.error_ratio.warning", "1%", "defaults.error_ratio.warning", "must be a number"),
        ("defaults.error_ratio.warning", True, "defaults.error_ratio.warning", "must be a number"),
        ("defaults.latency_slo.threshold_seconds", 0.3, "defaults.latency_slo.threshold_seconds", "bucket edge"),
        ("defaults.latency_slo.target", 95, "defaults.latency_slo.target", "between 0 and 1"),
        ("defaults.latency.percentile", 95, "defaults.latency.percentile", "between 0 and 1"),
        ("defaults.latency.critical", -4, "defaults.latency.critical", "positive"),
        ("defaults.memory.warning_for", "5 minutes", "defaults.memory.warning_for", "duration"),
        ("defaults.memory.warning_for", "1h30m", "defaults.memory.warning_for", "duration"),
        ("defaults.memroy", {"warning": 0.8}, "defaults.memroy", "unknown field"),
        ("defaults.error_ratio.warnign", 0.01, "defaults.error_ratio.warnign", "unknown field"),
        ("defaults.cpu", {"warning": None, "critical": None}, "defaults.cpu", "needs warning, critical or both"),
        ("defaults.telemetry.lookback", "5m", "defaults.telemetry.lookback", "longer than silent_after"),
        ("defaults.min_request_rate", -1, "defaults.min_request_rate", "zero or a positive number"),
        ("defaults", [], "defaults", "must be a mapping"),
        ("slo.burn_rates[0].severity", "page", "slo.burn_rates[0].severity", "critical, warning, info"),
        ("slo.burn_rates[1].short", "6h", "slo.burn_rates[1].short", "shorter than long"),
        ("slo.burn_rates[1].long", "1h", "slo.burn_rates", "share the long window 1h"),
        ("slo.burn_rates[0].factor", 0, "slo.burn_rates[0].factor", "positive"),
        ("slo.window", "2d", "slo.burn_rates", "exceeds the SLO window"),
        ("slo.burn_rates", [], "slo.burn_rates", "non-empty list"),
        ("labels.severity", "page", "labels.severity", "set by the rules"),
        ("labels.team-name", "x", "labels.team-name", "not a valid label name"),
        ("labels.team", "{{ $value }}", "labels.team", "must not contain '{{'"),
        ("annotations.runbook_url", "x", "annotations.runbook_url", "set by the rules"),
        ("baseline.file", "missing.yaml", "baseline.file", "no such file"),
        ("baseline.latency_critical_factor", 1.5, "baseline.latency_critical_factor", "above latency_warning_factor"),
        ("defaults.disk.free_ratio.critical", 0.2, "defaults.disk.free_ratio.critical", "must be below warning"),
        ("defaults.disk.free_bytes", {"warning": -1}, "defaults.disk.free_bytes.warning", "positive"),
        ("defaults.disk.fill_critical_hours", 48, "defaults.disk.fill_critical_hours", "fewer hours"),
        ("platform.disk", {"free": {"warning": 0.1}}, "platform.disk", "per service now"),
        ("platform.collector.queue_warning", 80, "platform.collector.queue_warning", "between 0 and 1"),
        ("platform.collector.backlog_for", "0s", "platform.collector.backlog_for", "must be positive"),
        ("platform.collector.backlog_for", 60, "platform.collector.backlog_for", "must be a duration"),
        ("services", [{**CHECKOUT, "name": "Checkout!"}], "services[0].name", "lowercase"),
        ("services", [CHECKOUT, CHECKOUT], "services[1].name", "used twice"),
        ("services", [{**CHECKOUT, "name": "default"}], "services[0].name", "reserved"),
        ("services", [{**CHECKOUT, "selector": 'instance="a"'}], "services[0].selector", "may match only"),
        (
            "services",
            [{**CHECKOUT, "selector": 'deployment_environment_name="prod"'}],
            "services[0].selector",
            "must select the service by job",
        ),
        ("services", [{**CHECKOUT, "selector": 'job=~"("'}], "services[0].selector", "invalid regular expression"),
        ("services", [{**CHECKOUT, "selector": "job=checkout"}], "services[0].selector", "cannot parse"),
        ("services", [{**CHECKOUT, "availability": {"target": 1.5}}], "services[0].availability.target", "0 and 1"),
        ("services", [{**CHECKOUT, "latency": {"critical": 0.5}}], "services[0].latency.critical", "above warning"),
        ("services", [{**CHECKOUT, "colour": "blue"}], "services[0].colour", "unknown field"),
        (
            "defaults.db_slow_queries.threshold_seconds",
            0.3,
            "defaults.db_slow_queries.threshold_seconds",
            "bucket edge",
        ),
        ("defaults.db_slow_queries.warning", 2, "defaults.db_slow_queries.warning", "between 0 and 1"),
        ("defaults.cache_hit_ratio.critical_below", 0.6, "defaults.cache_hit_ratio.critical_below", "below warning"),
        ("defaults.cache_hit_ratio", {"warning_for": "5m"}, "defaults.cache_hit_ratio", "needs warning_below"),
        ("defaults.cache_hit_ratio.min_lookup_rate", -1, "defaults.cache_hit_ratio.min_lookup_rate", "zero or"),
        ("operations[0].name", DELETE, "operations[0].name", "is required"),
        ("operations[0].by", ["operation_name"], "operations[0].by[0]", "kept or summed"),
        ("operations[0].by", ["document.type"], "operations[0].by[0]", "must be a label name"),
        ("operations[0].selector", 'instance="a"', "operations[0].selector", "may match only"),
        ("operations[0].latency.percentile", 99, "operations[0].latency.percentile", "between 0 and 1"),
        ("operations[0].error_ratio.critical", 0.0001, "operations[0].error_ratio.critical", "above warning"),
        ("operations[0].memory.warning", "100MB", "operations[0].memory.warning", "must be a number"),
        ("operations[0].timeout_ratio.warnign", 0.1, "operations[0].timeout_ratio.warnign", "unknown field"),
        ("operations", [{"name": "x"}], "operations[0]", "needs at least one"),
        ("operations", {"name": "x"}, "operations", "must be a list"),
        ("jobs[0].max_age", "26 hours", "jobs[0].max_age", "duration"),
        ("jobs[0].max_age_critical", "1h", "jobs[0].max_age_critical", "longer than max_age"),
        ("jobs[0].lookback", "1d", "jobs[0].lookback", "longer than the maximum age"),
        ("jobs", [{"name": "x"}], "jobs[0]", "needs max_age"),
        ("alerts[0].alert", "security-spike", "alerts[0].alert", "CamelCase"),
        ("alerts[0].expr", "sum(rate(x[5m])", "alerts[0].expr", "unclosed"),
        ("alerts[0].expr", "sum(rate(x[5m]))) > 1", "alerts[0].expr", "unbalanced"),
        ("alerts[0].severity", "page", "alerts[0].severity", "critical, warning, info"),
        ("alerts[0].description", "no value here", "alerts[0].description", "current value"),
        ("alerts[0].summary", "", "alerts[0].summary", "non-empty"),
        ("alerts[0].for", "5 minutes", "alerts[0].for", "duration"),
        ("alerts[0].labels", {"severity": "page"}, "alerts[0].labels.severity", "set by the rules"),
        ("alerts[0].colour", "x", "alerts[0].colour", "unknown field"),
        ("runbook_urls", {"JobStale": "ftp://x/y.md"}, "runbook_urls.JobStale", "http(s)://"),
        ("runbook_urls", {"job-stale": "https://x/y.md"}, "runbook_urls.job-stale", "not an alert name"),
        ("name", "Parser!", "name", "lowercase"),
        ("dashboards", "operations", "dashboards", "must be a list"),
    ],
)
def test_a_bad_spec_names_the_field(tmp_path: Path, path: str, value: Any, field: str, says: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, mutated(path, value)))
    assert caught.value.field == field, str(caught.value)
    assert says in caught.value.message, str(caught.value)
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("baseline", "field", "says"),
    [
        (
            "version: 1\nentries:\n  - labels: {job: a, http_route: /x}\n    latency_seconds: -1\n",
            "entries[0].latency_seconds",
            "positive",
        ),
        ("version: 1\nentries:\n  - labels: {http_route: /x}\n    latency_seconds: 1\n", "entries[0].labels", "job"),
        ("version: 1\nentries:\n  - labels: {job: a}\n    latency_seconds: 1\n", "entries[0].labels", "http_route"),
        (
            "version: 1\nentries:\n  - labels: {job: a, http_route: /x}\n",
            "entries[0]",
            "latency_seconds, request_rate, error_ratio or several",
        ),
        (
            "version: 1\nentries:\n  - metric: 'bad name'\n    labels: {job: a}\n    request_rate: 1\n",
            "entries[0].metric",
            "metric name",
        ),
        (
            "version: 1\nentries:\n  - {labels: {job: a, http_route: /x}, request_rate: 1}\n"
            "  - {labels: {job: a, http_route: /x}, request_rate: 2}\n",
            "entries[1]",
            "duplicates",
        ),
        (
            "version: 1\nentries:\n  - labels: {job: a, http_route: /x}\n    error_ratio: 2\n",
            "entries[0].error_ratio",
            "from 0 to 1",
        ),
        ("version: 2\nentries: []\n", "version", "must be 1"),
        ("entries: [\n", "baseline.yaml", "not valid YAML"),
    ],
)
def test_a_bad_baseline_file_names_the_file_and_field(tmp_path: Path, baseline: str, field: str, says: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, BASE, baseline))
    assert caught.value.field.endswith(field), str(caught.value)
    assert caught.value.field.startswith("baseline.yaml"), str(caught.value)
    assert says in caught.value.message, str(caught.value)


def test_invalid_yaml_and_missing_files_are_spec_errors(tmp_path: Path) -> None:
    broken = tmp_path / "objectives.yaml"
    broken.write_text("version: 1\ndefaults: {\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(broken)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "nope.yaml")
    broken.write_text("- a list\n")
    with pytest.raises(SpecError, match=r"\(top level\): must be a mapping"):
        load_spec(broken)


def test_the_cli_reports_a_bad_spec_with_its_field_and_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_spec(tmp_path, mutated("defaults.memory.critical", 2))
    assert main(["rules", "render", "--spec", str(path), "--rules-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "defaults.memory.critical: must be a number between 0 and 1 (exclusive), got 2" in err
    assert not (tmp_path / "out").exists()


def test_the_installed_command_renders(tmp_path: Path) -> None:
    result = run(
        [
            Path(sys.executable).parent / "otel-dist",
            "rules",
            "render",
            "--spec",
            SPEC_PATH,
            "--rules-dir",
            tmp_path / "rules",
            "--dashboards-dir",
            tmp_path / "dashboards",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert "10 of 10 files changed" in result.stdout
    assert "otel-dist-platform-alerts.yml" in {p.name for p in (tmp_path / "rules").iterdir()}


# --- per-service objectives -------------------------------------------------------------------------------------


def test_selectors_parse_and_render_back() -> None:
    matchers = parse_selector('job=~"checkout|cart", deployment_environment_name!="dev"', "s")
    assert matchers == (Matcher("job", "=~", "checkout|cart"), Matcher("deployment_environment_name", "!=", "dev"))
    assert [str(m) for m in matchers] == ['job=~"checkout|cart"', 'deployment_environment_name!="dev"']
    assert parse_selector('{job="a\\"b"}', "s") == (Matcher("job", "=", 'a"b'),)
    assert str(Matcher("job", "=", 'a"b')) == 'job="a\\"b"'


def test_services_get_their_own_objectives_and_leave_the_defaults(tmp_path: Path) -> None:
    services = [
        {
            "name": "checkout",
            "selector": 'job="checkout", deployment_environment_name="prod"',
            "availability": {"target": 0.999},
            "error_ratio": {"critical": 0.1},  # merged: the warning tier stays the default's 1 %
            "cpu": None,  # switched off for this service
        },
        {"name": "batch", "selector": 'job=~"batch-.*"', "latency_slo": None, "latency": None},
    ]
    spec = load_spec(write_spec(tmp_path, mutated("services", services)))
    default, checkout, batch = spec.scopes
    assert default.selector() == '{job!="checkout", job!~"batch-.*"}'
    assert checkout.selector() == '{job="checkout", deployment_environment_name="prod"}'
    assert checkout.objectives.availability == 0.999
    assert checkout.objectives.error_ratio is not None
    assert (checkout.objectives.error_ratio.warning, checkout.objectives.error_ratio.critical) == (0.01, 0.1)
    assert checkout.objectives.cpu is None
    assert default.objectives.cpu is not None
    assert batch.objectives.latency_slo is None
    assert batch.objectives.availability == 0.995

    files = render(spec)
    slo = files["otel-dist-slo-alerts.yml"]
    assert (
        'job:slo_availability_errors:ratio_rate1h{job="checkout", deployment_environment_name="prod"} > (14.4 * 0.001)'
        in slo
    )
    assert 'job:slo_availability_errors:ratio_rate1h{job!="checkout", job!~"batch-.*"} > (14.4 * 0.005)' in slo
    groups = rule_groups(spec)
    service_groups = {g["name"]: g for g in groups["otel-dist-service-alerts.yml"]}
    assert set(service_groups) == {
        "otel-dist-service-default",
        "otel-dist-service-checkout",
        "otel-dist-service-batch",
        "otel-dist-baseline",
    }
    checkout_alerts = {r["alert"] for r in service_groups["otel-dist-service-checkout"]["rules"]}
    assert "ProcessCPUHigh" not in checkout_alerts
    assert "HTTPErrorRateHigh" in checkout_alerts
    batch_slo = next(g for g in groups["otel-dist-slo-alerts.yml"] if g["name"] == "otel-dist-slo-alerts-batch")
    assert {r["alert"] for r in batch_slo["rules"]} == {"AvailabilityBudgetBurn", "ErrorBudgetLow"}
    # The SLIs of each scope are recorded with its own selector, so the scopes never overlap.
    recording = files["otel-dist-recording.yml"]
    assert (
        'http_server_request_duration_seconds_count{job="checkout", deployment_environment_name="prod"}[1h]'
        in recording
    )
    assert 'http_server_request_duration_seconds_count{job!="checkout", job!~"batch-.*"}[1h]' in recording


def test_extra_labels_and_annotations_reach_every_alert(tmp_path: Path) -> None:
    data = mutated("labels", {"team": "payments"})
    data["annotations"] = {"dashboard": "https://grafana.example/d/otel-dist-service"}
    data["runbook_base_url"] = "https://wiki.example/runbooks/"
    spec = load_spec(write_spec(tmp_path, data))
    alerts = [r for gs in rule_groups(spec).values() for g in gs for r in g["rules"] if "alert" in r]
    assert alerts
    for rule in alerts:
        assert rule["labels"]["team"] == "payments"
        assert rule["annotations"]["dashboard"] == "https://grafana.example/d/otel-dist-service"
        assert rule["annotations"]["runbook_url"] == f"https://wiki.example/runbooks/{rule['alert']}.md"


def test_objectives_set_to_null_render_nothing(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    for key in list(data["defaults"]):
        if key != "min_request_rate":
            data["defaults"][key] = None
    data["baseline"] = None
    data["operations"] = data["jobs"] = data["alerts"] = None
    groups = rule_groups(load_spec(write_spec(tmp_path, data)))
    alerts = {r["alert"] for gs in groups.values() for g in gs for r in g["rules"] if "alert" in r}
    assert alerts == {
        "OTelCollectorExportFailing",
        "OTelCollectorQueueNearCapacity",
        "OTelCollectorBackendUnreachable",
        "OTelCollectorDroppingData",
        "OTelCollectorRefusingData",
        "ScrapeTargetDown",
        "Watchdog",
    }
    assert [g["name"] for g in groups["otel-dist-recording.yml"]] == ["otel-dist-http"]


def test_durations() -> None:
    assert [str(Duration(s)) for s in (0, 0.5, 30, 300, 5400, 3600, 86400, 259200, 604800)] == [
        "0s",
        "500ms",
        "30s",
        "5m",
        "90m",
        "1h",
        "1d",
        "3d",
        "1w",
    ]
    assert Duration(30 * 86400 / 14.4).humanize() == "2d 2h"


def test_an_absolute_free_space_floor_renders_its_own_tier(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["defaults"]["disk"]["free_bytes"] = {"warning": 20e9, "critical": 2**30, "critical_for": "1m"}
    groups = rule_groups(load_spec(write_spec(tmp_path, data)))
    rules = [r for gs in groups.values() for g in gs for r in g["rules"] if r.get("alert") == "DiskSpaceLow"]
    by_tier = {(r["labels"]["disk_threshold"], r["labels"]["severity"]): r for r in rules}
    assert set(by_tier) == {("ratio", "critical"), ("ratio", "warning"), ("bytes", "critical"), ("bytes", "warning")}
    critical = by_tier["bytes", "critical"]
    assert critical["expr"] == (
        'system_filesystem_usage_bytes{system_filesystem_state="free", system_filesystem_mode!="ro"} < 1073741824'
    )
    assert critical["for"] == "1m"
    assert critical["annotations"]["description"].endswith("(critical below 1GiB).")
    assert by_tier["bytes", "warning"]["annotations"]["description"].endswith("(warning below 18.63GiB).")


def test_the_domain_sections_load(spec: Spec) -> None:
    (operation,) = spec.operations
    assert (operation.name, operation.by, operation.min_rate) == ("document.parse", ("document_type",), 0.01)
    assert operation.selector('operation_outcome="error"') == (
        '{operation_name="document.parse", job="parser", operation_outcome="error"}'
    )
    assert operation.timeout_ratio is not None
    assert (operation.timeout_ratio.warning, operation.timeout_ratio.critical) == (0.001, 0.01)
    assert operation.memory is not None
    assert operation.memory.threshold.critical == 500 * 2**20
    (job,) = spec.jobs
    assert (job.name, str(job.max_age), str(job.max_age_critical), str(job.lookback)) == (
        "scrape.bills",
        "26h",
        "50h",
        "1w",
    )
    assert [a.alert for a in spec.alerts] == ["SecurityEventsHigh"]
    o = spec.scopes[0].objectives
    assert o.db_slow_queries is not None
    assert (o.db_slow_queries.threshold_seconds, o.db_slow_queries.threshold.warning) == (1.0, 0.01)
    assert o.cache_hit_ratio is not None
    assert (o.cache_hit_ratio.threshold.warning, o.cache_hit_ratio.min_lookup_rate) == (0.5, 0.1)


def test_runbook_urls_override_the_base_and_must_name_a_rendered_alert(tmp_path: Path) -> None:
    data = mutated("runbook_urls", {"JobStale": "https://wiki.example/scrapers/stale.md"})
    groups = rule_groups(load_spec(write_spec(tmp_path, data)))
    urls = {
        r["alert"]: r["annotations"]["runbook_url"]
        for gs in groups.values()
        for g in gs
        for r in g["rules"]
        if "alert" in r
    }
    assert urls["JobStale"] == "https://wiki.example/scrapers/stale.md"
    assert urls["JobFailureRateHigh"].endswith("/runbooks/JobFailureRateHigh.md")
    data["runbook_urls"] = {"ParseTimeP99High": "https://wiki.example/x.md"}
    with pytest.raises(SpecError) as caught:
        rule_groups(load_spec(write_spec(tmp_path, data)))
    assert caught.value.field == "runbook_urls.ParseTimeP99High"
    assert "no alert of this name" in caught.value.message


def test_custom_alerts_get_the_spec_labels_and_their_own(tmp_path: Path) -> None:
    data = mutated("labels", {"team": "docs"})
    data["alerts"] = [
        {
            "alert": "QueueDeep",
            "expr": 'max by (job) (queue_depth{job="worker"}) > 100',
            "severity": "critical",
            "for": "10m",
            "summary": "{{ $labels.job }}: queue {{ $value }} deep",
            "description": "The queue of {{ $labels.job }} holds {{ $value }} items.",
            "labels": {"tier": "backend"},
        }
    ]
    groups = rule_groups(load_spec(write_spec(tmp_path, data)))
    (custom,) = next(g for g in groups["otel-dist-domain-alerts.yml"] if g["name"] == "otel-dist-custom")["rules"]
    assert custom["for"] == "10m"
    assert custom["labels"] == {
        "severity": "critical",
        "service": "{{ $labels.job }}",
        "tier": "backend",
        "team": "docs",
    }
    assert custom["annotations"]["runbook_url"].endswith("/runbooks/QueueDeep.md")
