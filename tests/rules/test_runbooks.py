"""Runbooks: exactly one per alert, each with the same sections and runnable steps for every backend."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from otel_dist.rules.promql import metric_names, stream_selector_labels
from otel_dist.rules.runbooks import PLACEHOLDERS, REQUIRED_BLOCKS, SECTIONS, blocks, runbook_paths
from otel_dist.rules.spec import Spec
from otel_dist.stack.supervisor import REPO_ROOT
from tests.rules.conftest import RUNBOOKS_DIR, load_yaml

RUNBOOKS = runbook_paths(RUNBOOKS_DIR)
#: The shipped runbooks and the examples' own (examples/<name>/runbooks/): the same structure for all.
ALL_RUNBOOKS = [
    *RUNBOOKS.values(),
    *(p for d in sorted(REPO_ROOT.glob("examples/*/runbooks")) for p in runbook_paths(d).values()),
]
LOKI_INDEX_LABELS = {
    label.replace(".", "_")
    for label in load_yaml(REPO_ROOT / "loki/loki.yaml")["distributor"]["otlp_config"][
        "default_resource_attributes_as_index_labels"
    ]
}


def test_every_alert_has_a_runbook_and_every_runbook_an_alert(alert_rules: list[dict[str, Any]]) -> None:
    alerts = {rule["alert"] for rule in alert_rules}
    assert sorted(alerts - set(RUNBOOKS)) == [], "alerts without a runbook"
    assert sorted(set(RUNBOOKS) - alerts) == [], "runbooks without an alert"


def test_runbook_urls_point_at_the_runbook_files(spec: Spec, alert_rules: list[dict[str, Any]]) -> None:
    for rule in alert_rules:
        url = rule["annotations"]["runbook_url"]
        assert url.removeprefix(spec.runbook_base_url + "/") == RUNBOOKS[rule["alert"]].name


@pytest.mark.parametrize("path", ALL_RUNBOOKS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_runbook_structure(path: Path) -> None:
    name, text = path.stem, path.read_text()
    assert text.startswith(f"# {name}\n")
    positions = [text.find(f"\n{section}\n") for section in SECTIONS]
    assert all(p > 0 for p in positions), f"{name}: needs the sections {SECTIONS}"
    assert positions == sorted(positions), f"{name}: sections in the order {SECTIONS}"
    found = blocks(text)
    langs = {b.lang for b in found}
    assert set(REQUIRED_BLOCKS) <= langs, f"{name}: missing {set(REQUIRED_BLOCKS) - langs}"
    assert "Jaeger" in text
    assert "| Severity |" in text
    silence = [b.code for b in found if b.lang == "bash"]
    assert any(f"silence add alertname={name}" in code for code in silence), name


@pytest.mark.parametrize("path", ALL_RUNBOOKS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_runbook_queries_are_well_formed(path: Path) -> None:
    name = path.stem
    for block in blocks(path.read_text()):
        code = block.code
        for placeholder in re.findall(r"\$[a-z_]+", code):
            assert placeholder in PLACEHOLDERS, f"{name}: unknown placeholder {placeholder}"
        if block.lang in ("promql", "logql", "logsql"):
            assert code.count("(") == code.count(")"), f"{name}: unbalanced parentheses in {code}"
            assert code.count("{") == code.count("}"), f"{name}: unbalanced braces in {code}"
            assert "\n" not in code, f"{name}: one query per block, on one line: {code}"
        if block.lang == "promql":
            names = metric_names(code)
            assert names.metrics or names.regexes or code.startswith("vector("), f"{name}: no metric in {code}"
        if block.lang == "logql":
            labels = stream_selector_labels(code)
            assert labels, f"{name}: a LogQL query needs a stream selector: {code}"
            assert labels <= LOKI_INDEX_LABELS, f"{name}: {code} selects by {labels - LOKI_INDEX_LABELS}, not indexed"
        if block.lang == "jaeger":
            assert re.fullmatch(r"/api/traces\?\S+", code), f"{name}: a Jaeger query API path: {code}"
