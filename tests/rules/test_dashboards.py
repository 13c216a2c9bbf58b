"""Grafana dashboards and provisioning, checked statically (Grafana itself only runs in docker-compose)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from otel_dist.rules import catalog
from otel_dist.rules.dashboards import DEPENDENCY_DASHBOARDS, GENERIC_DASHBOARDS, queries
from otel_dist.rules.promql import metric_names, stream_selector_labels
from otel_dist.rules.spec import Spec
from otel_dist.stack.supervisor import REPO_ROOT
from tests.rules.conftest import DASHBOARDS_DIR, load_yaml

DATASOURCES = {
    d["uid"]: d for d in load_yaml(REPO_ROOT / "grafana/provisioning/datasources/datasources.yaml")["datasources"]
}
LOKI_INDEX_LABELS = {
    label.replace(".", "_")
    for label in load_yaml(REPO_ROOT / "loki/loki.yaml")["distributor"]["otlp_config"][
        "default_resource_attributes_as_index_labels"
    ]
}
FILES = sorted(DASHBOARDS_DIR.glob("*.json"))


def model(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


@pytest.fixture(scope="module")
def recorded(groups: dict[str, list[dict[str, Any]]]) -> set[str]:
    return {r["record"] for gs in groups.values() for g in gs for r in g["rules"] if "record" in r}


def test_the_five_dashboards() -> None:
    assert [p.name for p in FILES] == sorted(GENERIC_DASHBOARDS)
    titles = {model(p)["title"] for p in FILES}
    assert titles == {
        "otel-dist / Service overview",
        "otel-dist / SLOs and error budget",
        "otel-dist / Runtime and resources",
        "otel-dist / Logs",
        "otel-dist / Telemetry pipeline",
    }
    uids = [model(p)["uid"] for p in FILES]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dashboard_json_is_a_valid_model(path: Path) -> None:
    data = model(path)
    assert data["schemaVersion"] >= 36
    assert data["panels"]
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in DATASOURCES, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == panel["datasource"]["uid"]
            assert DATASOURCES[target["datasource"]["uid"]]["type"] == target["datasource"]["type"]
    variables = {v["name"] for v in data["templating"]["list"]}
    assert {"service", "env"} <= variables


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_prometheus_panels_query_only_metrics_the_product_emits(path: Path, recorded: set[str]) -> None:
    allowed = catalog.queryable(recorded)
    for title, kind, expr in queries(model(path)):
        if kind != "prometheus":
            continue
        names = metric_names(expr)
        assert names.metrics, f"{title}: {expr}"
        unknown = names.metrics - allowed
        assert not unknown, f"{path.name} / {title}: {sorted(unknown)} is not emitted (catalog.py)"
        assert not names.metrics & catalog.ASSUMED_METRICS, f"{title}: not emitted yet"
        for regex in names.regexes:
            assert any(re.fullmatch(regex, m) for m in allowed), f"{title}: {regex} matches no emitted metric"
        # Real series only: no padding that would make an empty panel look fine.
        assert "vector(" not in expr, f"{title}: {expr}"
        assert "absent(" not in expr, f"{title}: {expr}"
        assert "$service" in expr or "$collector" in expr, f"{title}: every query is about the selected service"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_loki_panels_select_streams_by_indexed_labels_only(path: Path) -> None:
    for title, kind, expr in queries(model(path)):
        if kind != "loki":
            continue
        labels = stream_selector_labels(expr)
        assert labels, f"{title}: {expr}"
        assert labels <= LOKI_INDEX_LABELS, f"{title}: {sorted(labels - LOKI_INDEX_LABELS)} is not an index label"


def test_the_logs_dashboard_finds_one_request_and_one_trace() -> None:
    data = model(DASHBOARDS_DIR / "logs.json")
    exprs = [expr for _, _, expr in queries(data)]
    assert any('| request_id="$request_id"' in e for e in exprs)
    assert any('| trace_id="$trace_id"' in e for e in exprs)
    assert any("sum by (severity_text)" in e for e in exprs)


def test_the_static_check_catches_an_unknown_metric(recorded: set[str]) -> None:
    names = metric_names('sum(rate(http_requests_total{job="$service"}[5m]))')
    assert names.metrics - catalog.queryable(recorded) == {"http_requests_total"}
    assert stream_selector_labels('{service_name="a", request_id="b"}') - LOKI_INDEX_LABELS == {"request_id"}


def test_datasources_link_metrics_traces_and_logs() -> None:
    prometheus, jaeger, loki = DATASOURCES["prometheus"], DATASOURCES["jaeger"], DATASOURCES["loki"]
    exemplar = prometheus["jsonData"]["exemplarTraceIdDestinations"][0]
    assert (exemplar["name"], exemplar["datasourceUid"]) == ("trace_id", "jaeger")
    to_logs = jaeger["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == "loki"
    assert 'trace_id="$${__span.traceId}"' in to_logs["query"]
    assert stream_selector_labels(to_logs["query"].replace("$${__span.process.serviceName}", "x")) <= LOKI_INDEX_LABELS
    to_metrics = jaeger["jsonData"]["tracesToMetrics"]
    assert to_metrics["datasourceUid"] == "prometheus"
    assert {"key": "service.name", "value": "job"} in to_metrics["tags"]
    for query in to_metrics["queries"]:
        assert metric_names(query["query"]).metrics <= catalog.SERVICE_METRICS
    derived = {d["name"]: d for d in loki["jsonData"]["derivedFields"]}
    assert derived["trace_id"]["datasourceUid"] == "jaeger"
    assert derived["trace_id"]["matcherType"] == "label"
    assert derived["request_id"]["datasourceUid"] == "loki"


def test_dashboards_are_provisioned_from_the_folder_compose_mounts() -> None:
    provider = load_yaml(REPO_ROOT / "grafana/provisioning/dashboards/dashboards.yaml")["providers"][0]
    grafana = load_yaml(REPO_ROOT / "docker-compose.yml")["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"] if v.startswith("./")}
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


@pytest.mark.parametrize("name", sorted(DEPENDENCY_DASHBOARDS))
def test_the_dependency_dashboards_query_only_client_metrics_of_the_service(
    name: str, spec: Spec, recorded: set[str]
) -> None:
    """overview, database, cache: rendered on request for services with a database or cache (tests/e2e runs them)."""
    data = DEPENDENCY_DASHBOARDS[name](spec)
    allowed = catalog.queryable(recorded)
    found = queries(data)
    assert found
    for title, kind, expr in found:
        assert kind == "prometheus", title
        names = metric_names(expr)
        assert names.metrics, f"{title}: {expr}"
        assert not names.metrics - allowed, f"{name} / {title}: {sorted(names.metrics - allowed)}"
        assert "$service" in expr, title
        assert "vector(" not in expr, title
        assert "absent(" not in expr, title
    used = {m for _, _, expr in found for m in metric_names(expr).metrics}
    assert used & catalog.CLIENT_METRICS, "a dependency dashboard shows client metrics"
