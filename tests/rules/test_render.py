"""Rendering: deterministic, equal to what is committed, and every alert shaped the same way."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from otel_dist.cli.main import main
from otel_dist.rules.dashboards import GENERIC_DASHBOARDS, render_dashboards
from otel_dist.rules.render import RULE_FILES, render
from otel_dist.rules.spec import SEVERITIES, Spec, load_spec
from tests.rules.conftest import DASHBOARDS_DIR, RULES_DIR, SPEC_PATH


def test_rendering_is_deterministic(spec: Spec) -> None:
    again = load_spec(SPEC_PATH)
    assert render(spec) == render(again)
    assert render_dashboards(spec) == render_dashboards(again)


def test_the_committed_rules_are_the_rendering_of_the_committed_spec(spec: Spec) -> None:
    committed = {p.name: p.read_text() for p in RULES_DIR.glob("*.yml")}
    assert set(committed) == set(RULE_FILES), "prometheus/rules/ holds only rendered files"
    assert committed == render(spec), "run: otel-dist rules render"


def test_the_committed_dashboards_are_the_rendering_of_the_committed_spec(spec: Spec) -> None:
    committed = {p.name: p.read_text() for p in DASHBOARDS_DIR.glob("*.json")}
    assert set(committed) == set(GENERIC_DASHBOARDS)
    assert committed == render_dashboards(spec), "run: otel-dist rules render"


def test_render_check_passes_on_the_repository_and_fails_on_a_stale_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["rules", "render", "--check", "--spec", str(SPEC_PATH)]
    assert main([*args, "--rules-dir", str(RULES_DIR), "--dashboards-dir", str(DASHBOARDS_DIR)]) == 0
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    stale = rules / "otel-dist-service-alerts.yml"
    stale.write_text(stale.read_text().replace("> 0.05", "> 0.5", 1))
    capsys.readouterr()
    assert main([*args, "--rules-dir", str(rules), "--dashboards-dir", str(DASHBOARDS_DIR)]) == 1
    assert f"differs from a fresh rendering: {stale}" in capsys.readouterr().err
    # Without --check the same command repairs it, and a second run changes nothing.
    assert main(["rules", "render", "--spec", str(SPEC_PATH), "--rules-dir", str(rules), "--dashboards-dir", "-"]) == 0
    assert "1 of 5 files changed" in capsys.readouterr().out
    assert main(["rules", "render", "--spec", str(SPEC_PATH), "--rules-dir", str(rules), "--dashboards-dir", "-"]) == 0
    assert "0 of 5 files changed" in capsys.readouterr().out


def test_every_alert_has_severity_summary_description_with_the_value_and_runbook(
    spec: Spec, alert_rules: list[dict[str, Any]]
) -> None:
    assert len({r["alert"] for r in alert_rules}) >= 20
    for rule in alert_rules:
        name = rule["alert"]
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", name), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert "$value" in annotations["description"], f"{name}: the description shows the current value"
        assert annotations["runbook_url"] == f"{spec.runbook_base_url}/{name}.md"
        if name != "Watchdog":
            assert rule["labels"]["service"] == "{{ $labels.job }}", name


def test_the_severities_in_use(alert_rules: list[dict[str, Any]]) -> None:
    by_alert: dict[str, set[str]] = {}
    for rule in alert_rules:
        by_alert.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    assert {s for severities in by_alert.values() for s in severities} == set(SEVERITIES)
    # Two-tier alerts share one name, so that Alertmanager's critical-inhibits-warning rule can pair them.
    for name in ("HTTPErrorRateHigh", "HTTPLatencyHigh", "ProcessMemoryNearLimit", "DBConnectionPoolSaturated"):
        assert by_alert[name] == {"critical", "warning"}, name
    assert by_alert["Watchdog"] == {"info"}


def test_the_burn_rate_alerts_follow_the_sre_workbook(alert_rules: list[dict[str, Any]]) -> None:
    burn = [r for r in alert_rules if r["alert"] == "AvailabilityBudgetBurn"]
    pairs = {
        (r["labels"]["long_window"], r["labels"]["short_window"], r["labels"]["severity"], r.get("for")) for r in burn
    }
    assert pairs == {
        ("1h", "5m", "critical", "2m"),
        ("6h", "30m", "critical", "15m"),
        ("1d", "2h", "warning", "1h"),
        ("3d", "6h", "warning", "3h"),
    }
    one_hour = next(r for r in burn if r["labels"]["long_window"] == "1h")
    assert one_hour["expr"] == (
        "job:slo_availability_errors:ratio_rate1h > (14.4 * 0.005)\n"
        "and\n"
        "job:slo_availability_errors:ratio_rate5m > (14.4 * 0.005)"
    )


def test_recording_rule_names_follow_the_convention(groups: dict[str, list[dict[str, Any]]]) -> None:
    names = {r["record"] for gs in groups.values() for g in gs for r in g["rules"] if "record" in r}
    for name in names:
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name
    group_names = [g["name"] for gs in groups.values() for g in gs]
    assert len(group_names) == len(set(group_names))


def test_an_application_spec_renders_into_its_own_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    data = yaml.safe_load(SPEC_PATH.read_text())
    data.update(name="parser", dashboards=["operations", "security"], baseline=None)
    spec_path = tmp_path / "objectives.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    out = tmp_path / "monitoring"
    assert main(["rules", "render", "--spec", str(spec_path), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "rules").iterdir()) == sorted(RULE_FILES)
    assert sorted(p.name for p in (out / "dashboards").iterdir()) == ["operations.json", "security.json"]
    operations = json.loads((out / "dashboards/operations.json").read_text())
    assert (operations["uid"], operations["title"]) == ("parser-operations", "parser / Operations")
    titles = [p["title"] for p in operations["panels"]]
    assert "document.parse: duration by document_type" in titles
    assert main(["rules", "render", "--spec", str(spec_path), "--out", str(out), "--check"]) == 0
    data["dashboards"] = ["operations", "billing"]
    spec_path.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["rules", "render", "--spec", str(spec_path), "--out", str(out)]) == 2
    assert "dashboards[1]: must be one of" in capsys.readouterr().err
