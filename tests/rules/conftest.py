"""Fixtures of the rules tests: the committed spec, its rendering, and the stack's binaries (promtool, amtool)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_dist.rules.render import rule_groups
from otel_dist.rules.spec import Spec, load_spec
from otel_dist.stack.supervisor import REPO_ROOT
from tests.stack.binaries import stack_binaries

SPEC_PATH = REPO_ROOT / "prometheus/objectives.yaml"
RULES_DIR = REPO_ROOT / "prometheus/rules"
TESTS_DIR = REPO_ROOT / "prometheus/tests"
RUNBOOKS_DIR = REPO_ROOT / "runbooks"
DASHBOARDS_DIR = REPO_ROOT / "grafana/dashboards"
ALERTMANAGER_CONFIG = REPO_ROOT / "alertmanager/alertmanager.yml"


@pytest.fixture(scope="session")
def binaries() -> dict[str, Path]:
    return stack_binaries()


@pytest.fixture(scope="session")
def spec() -> Spec:
    return load_spec(SPEC_PATH)


@pytest.fixture(scope="session")
def groups(spec: Spec) -> dict[str, list[dict[str, Any]]]:
    """File name -> rule groups of the committed spec's rendering."""
    return rule_groups(spec)


@pytest.fixture(scope="session")
def alert_rules(groups: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [rule for file_groups in groups.values() for g in file_groups for rule in g["rules"] if "alert" in rule]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def run(argv: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, check=False, env=env, **kwargs
    )
