"""promtool: the rendered rules are valid, their unit tests pass, and every alert has a firing and a not-firing test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from otel_dist.rules.render import RECORDING_FILE, RULE_FILES, alert_keys, rule_groups
from otel_dist.rules.spec import Spec
from tests.rules.conftest import RULES_DIR, TESTS_DIR, load_yaml, run

TEST_FILES = sorted(TESTS_DIR.glob("*.yml"))
#: Alerts that cannot be "not firing".
ALWAYS_FIRING = {"Watchdog"}
STATIC_LABELS = ("severity", "long_window", "short_window", "slo", "disk_threshold")

Key = tuple[str, tuple[tuple[str, str], ...]]


def rule_key(rule: dict[str, Any]) -> Key:
    """An alert rule's identity for coverage: its name and static labels (tier, burn-rate windows, SLO)."""
    labels = rule.get("labels", {})
    return rule["alert"], tuple((k, labels[k]) for k in STATIC_LABELS if k in labels)


def expected_key(alertname: str, exp_labels: dict[str, str]) -> Key:
    return alertname, tuple((k, str(exp_labels[k])) for k in STATIC_LABELS if k in exp_labels)


def test_promtool_check_rules(binaries: dict[str, Path]) -> None:
    result = run([binaries["promtool"], "check", "rules", *sorted(RULES_DIR.glob("*.yml"))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


def test_promtool_check_rules_rejects_a_broken_expression(binaries: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text((RULES_DIR / "otel-dist-service-alerts.yml").read_text().replace("max by (", "max by ((", 1))
    result = run([binaries["promtool"], "check", "rules", broken])
    assert result.returncode != 0


def test_promtool_unit_tests_pass(binaries: dict[str, Path]) -> None:
    assert TEST_FILES
    result = run([binaries["promtool"], "test", "rules", *TEST_FILES], cwd=TESTS_DIR)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


def test_a_wrong_expectation_fails_the_unit_tests(binaries: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules").symlink_to(RULES_DIR)
    text = (TESTS_DIR / "http.yml").read_text()
    assert "(critical above 5%)" in text
    (tmp_path / "tests/http.yml").write_text(text.replace("(critical above 5%)", "(critical above 6%)"))
    result = run([binaries["promtool"], "test", "rules", tmp_path / "tests/http.yml"])
    assert result.returncode != 0
    assert "critical above 5%" in result.stdout + result.stderr


def _cases() -> list[tuple[Path, dict[str, Any], dict[str, Any]]]:
    cases = []
    for path in TEST_FILES:
        for group in load_yaml(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.append((path, group, case))
    return cases


def test_every_alert_rule_has_a_firing_and_a_not_firing_unit_test(alert_rules: list[dict[str, Any]]) -> None:
    rules = {rule_key(r) for r in alert_rules}
    fired: set[Key] = set()
    checked: dict[str, list[set[Key]]] = {}
    for _, _, case in _cases():
        present = {expected_key(case["alertname"], a.get("exp_labels", {})) for a in case.get("exp_alerts") or []}
        fired |= present
        checked.setdefault(case["alertname"], []).append(present)
    assert sorted(rules - fired) == [], "alert rules without a test where they fire"
    not_fired = [key for key in rules if key[0] not in ALWAYS_FIRING and all(key in p for p in checked.get(key[0], []))]
    assert sorted(not_fired) == [], "alert rules without a test where they must not fire"
    assert sorted(fired - rules) == [], "tests expecting alerts the rules do not have"


def test_every_burn_rate_window_pair_is_tested_firing(alert_rules: list[dict[str, Any]]) -> None:
    pairs = {rule_key(r) for r in alert_rules if "long_window" in r["labels"]}
    assert len(pairs) == 8  # 4 window pairs x availability and latency
    fired = {expected_key(c["alertname"], a["exp_labels"]) for _, _, c in _cases() for a in c.get("exp_alerts") or []}
    assert pairs <= fired


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_unit_test_files_load_the_rendered_rules_and_order_recording_first(path: Path, spec: Spec) -> None:
    data = load_yaml(path)
    files = [(path.parent / f).resolve() for f in data["rule_files"]]
    assert all(f.parent == RULES_DIR.resolve() and f.exists() for f in files), files
    assert RECORDING_FILE in {f.name for f in files}, "alerts read recording rules: load them"
    by_file = rule_groups(spec)
    loaded = [g for f in files for g in by_file[f.name]]
    order = data.get("group_eval_order", [])
    # Without an explicit order promtool evaluates groups in random order, and an alert may read the previous
    # minute's recording: flaky values. Recording groups first, every loaded group named.
    assert sorted(order) == sorted(g["name"] for g in loaded), "group_eval_order must name every loaded group"
    kinds = [
        "record" if all("record" in r for r in g["rules"]) else "alert"
        for g in sorted(loaded, key=lambda g: order.index(g["name"]))
    ]
    assert kinds == sorted(kinds, key=lambda k: k != "record"), "recording groups first"


def test_alert_keys_helper_matches(groups: dict[str, list[dict[str, Any]]]) -> None:
    keys = alert_keys([g for gs in groups.values() for g in gs])
    assert ("Watchdog", "info", ()) in keys
    assert ("AvailabilityBudgetBurn", "critical", (("long_window", "1h"), ("short_window", "5m"))) in keys
