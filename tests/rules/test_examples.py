"""Every example's own spec (examples/<name>/monitoring/objectives.yaml): valid, rendered, tested, with runbooks.

An example renders its spec into its own folder (``otel-dist rules render --spec ... --out ...``). The generic
alerts it renders are tested in prometheus/tests/ with the shipped thresholds; the example's promtool tests cover
the alerts that are its own: the domain alerts (operations, jobs, free-form), the baseline-relative ones, and every
alert its spec points at a runbook of its own (``runbook_urls``: the seed's playbooks).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from otel_dist.rules import catalog
from otel_dist.rules.dashboards import queries, render_dashboards
from otel_dist.rules.promql import metric_names
from otel_dist.rules.render import DOMAIN_ALERTS_FILE, RULE_FILES, render, rule_groups
from otel_dist.rules.spec import Spec, load_spec
from otel_dist.stack.supervisor import REPO_ROOT
from tests.rules.conftest import load_yaml, run
from tests.rules.test_promtool import Key, expected_key, rule_key

SPECS = sorted(REPO_ROOT.glob("examples/*/monitoring/objectives.yaml"))
#: Where runbook URLs of the repository point (the spec's runbook_base_url and runbook_urls).
REPO_URL = "https://github.com/otel-dist/otel-dist/blob/main/"


def example(path: Path) -> str:
    return path.parents[1].name


@pytest.fixture(params=SPECS, ids=example)
def spec(request: pytest.FixtureRequest) -> Spec:
    return load_spec(request.param)


def monitoring(spec: Spec) -> Path:
    return spec.source.parent


def alert_rules(spec: Spec) -> list[dict[str, Any]]:
    return [r for gs in rule_groups(spec).values() for g in gs for r in g["rules"] if "alert" in r]


def own_alerts(spec: Spec) -> list[dict[str, Any]]:
    """The example's own alerts: domain and baseline alerts, and the ones with a runbook of the example's."""
    groups = rule_groups(spec)
    overridden = set(dict(spec.runbook_urls))
    own = [r for g in groups[DOMAIN_ALERTS_FILE] for r in g["rules"]]
    own += [r for gs in groups.values() for g in gs if g["name"] == "otel-dist-baseline" for r in g["rules"]]
    own += [r for r in alert_rules(spec) if r["alert"] in overridden and r not in own]
    return own


def test_there_are_examples() -> None:
    assert {example(p) for p in SPECS} >= {"parser_service"}


def test_the_committed_files_are_the_rendering_of_the_example_spec(spec: Spec) -> None:
    folder = monitoring(spec)
    committed = {p.name: p.read_text() for p in (folder / "rules").glob("*.yml")}
    assert set(committed) == set(RULE_FILES)
    assert committed == render(spec), f"run: otel-dist rules render --spec {spec.source} --out {folder}"
    dashboards = {p.name: p.read_text() for p in (folder / "dashboards").glob("*.json")}
    assert dashboards == render_dashboards(spec), f"run: otel-dist rules render --spec {spec.source} --out {folder}"


def test_promtool_checks_the_rules_and_runs_the_example_tests(spec: Spec, binaries: dict[str, Path]) -> None:
    folder = monitoring(spec)
    checked = run([binaries["promtool"], "check", "rules", *sorted((folder / "rules").glob("*.yml"))])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = sorted((folder / "tests").glob("*.yml"))
    assert tests, f"{folder}/tests: promtool tests of the example's own alerts"
    result = run([binaries["promtool"], "test", "rules", *tests], cwd=folder / "tests")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_every_own_alert_has_a_firing_and_a_not_firing_test(spec: Spec) -> None:
    rules = {rule_key(r) for r in own_alerts(spec)}
    assert rules
    fired: set[Key] = set()
    checked: dict[str, list[set[Key]]] = {}
    for path in sorted((monitoring(spec) / "tests").glob("*.yml")):
        for group in load_yaml(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                present = {
                    expected_key(case["alertname"], a.get("exp_labels", {})) for a in case.get("exp_alerts") or []
                }
                fired |= present
                checked.setdefault(case["alertname"], []).append(present)
    assert sorted(rules - fired) == [], "own alerts without a test where they fire"
    not_fired = [key for key in rules if all(key in p for p in checked.get(key[0], []))]
    assert sorted(not_fired) == [], "own alerts without a test where they must not fire"


def test_every_runbook_url_points_at_a_runbook_in_the_repository(spec: Spec) -> None:
    for rule in alert_rules(spec):
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(REPO_URL), url
        path = REPO_ROOT / url.removeprefix(REPO_URL)
        assert path.is_file(), f"{rule['alert']}: {url} -> {path} is missing"
        assert path.read_text().startswith(f"# {rule['alert']}\n")


def test_the_example_runbooks_are_used(spec: Spec) -> None:
    folder = monitoring(spec).parent / "runbooks"
    used = {REPO_ROOT / url.removeprefix(REPO_URL) for url in dict(spec.runbook_urls).values()}
    assert set(folder.glob("*.md")) <= used, "a runbook of the example no alert links to"


def test_the_example_dashboards_query_only_emitted_metrics_of_the_service(spec: Spec) -> None:
    recorded = {r["record"] for gs in rule_groups(spec).values() for g in gs for r in g["rules"] if "record" in r}
    allowed = catalog.queryable(recorded)
    for path in sorted((monitoring(spec) / "dashboards").glob("*.json")):
        model = json.loads(path.read_text())
        assert model["uid"].startswith(f"{spec.name}-"), "name: prefixes the uids, so examples never clash"
        for title, kind, expr in queries(model):
            assert kind == "prometheus", title
            names = metric_names(expr)
            assert names.metrics, f"{title}: {expr}"
            assert not names.metrics - allowed, f"{path.name} / {title}: {sorted(names.metrics - allowed)}"
            assert "$service" in expr, title
            assert not re.search(r"vector\(|absent\(", expr), title
