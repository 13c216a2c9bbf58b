"""A stack of its own for alert delivery tests, and what the examples' tests share.

The stack: the repository's configs with test timings and given rules.

Prometheus evaluates every second and loads the rule files given (rendered by the product from a spec with short
``for`` durations); Alertmanager runs the local variant of alertmanager.yml (otel_dist.rules.alertmanager), whose
receivers all point at a webhook server of the test. Used by test_alerting.py (the shipped spec) and by the
examples' tests (their own specs). ``dashboard_panels`` and ``assert_panel_returns_series`` run an example's
dashboards against such a stack; ``runbook_steps`` and ``run_runbook_step`` an example's own runbooks.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_dist.rules.alertmanager import local_variant
from otel_dist.rules.dashboards import queries
from otel_dist.rules.render import render
from otel_dist.rules.runbooks import Block, blocks, runbook_paths, substitute
from otel_dist.rules.spec import parse_spec
from otel_dist.stack import http
from otel_dist.stack.supervisor import LOCAL_ONLY_CONFIGS, REPO_ROOT, SHARED_CONFIGS, Ports, Stack, start_stack
from tests.stack.binaries import stack_binaries

#: Alertmanager timings of the tests. group_wait above Prometheus's send delay: Alertmanager flushes a new group
#: at once when its first alert started more than group_wait ago, and could then beat the inhibitor to the
#: critical alert.
TIMINGS = {"group_wait": "3s", "group_interval": "1s", "repeat_interval": "1h"}


def rendered_with(spec_path: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, str]:
    """The rule files of the spec at ``spec_path`` after ``change`` (e.g. shorter ``for``), rendered by the product."""
    data = yaml.safe_load(spec_path.read_text())
    change(data)
    return render(parse_spec(data, source=spec_path))


def write_alerting_config(
    repo: Path, receiver_url: str, rules: Mapping[str, str], *, scrape_interval: str | None = None
) -> None:
    """A copy of the repository's stack configs with test timings, laid out as start_stack(repo=...) expects.

    ``scrape_interval`` shortens the scrapes too (pull-mode apps), which otherwise come every 15 s.
    """
    for path in (*SHARED_CONFIGS, *LOCAL_ONLY_CONFIGS):
        source, target = REPO_ROOT / path, repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_file():
            shutil.copy(source, target)
    prometheus = yaml.safe_load((REPO_ROOT / "prometheus/prometheus.yml").read_text())
    prometheus["global"]["evaluation_interval"] = "1s"
    if scrape_interval is not None:
        prometheus["global"]["scrape_interval"] = scrape_interval
        prometheus["global"]["scrape_timeout"] = scrape_interval
    (repo / "prometheus/prometheus.yml").write_text(yaml.safe_dump(prometheus, sort_keys=False))
    (repo / "prometheus/rules").mkdir(parents=True, exist_ok=True)
    for name, text in rules.items():
        (repo / "prometheus/rules" / name).write_text(text)
    (repo / "alertmanager/alertmanager.yml").write_text(
        local_variant(
            REPO_ROOT / "alertmanager/alertmanager.yml",
            base_url=receiver_url,
            secrets_dir=repo / "alertmanager/secrets",
            timings=TIMINGS,
        )
    )


def start_alerting_stack(
    tmp_path_factory: pytest.TempPathFactory,
    receiver_url: str,
    rules: Mapping[str, str],
    *,
    scrape_interval: str | None = None,
) -> Stack:
    """Start a stack on free ports that evaluates ``rules`` every second and notifies ``receiver_url``."""
    repo = tmp_path_factory.mktemp("alerting-repo")
    write_alerting_config(repo, receiver_url, rules, scrape_interval=scrape_interval)
    return start_stack(
        ports=Ports.free(), data_dir=tmp_path_factory.mktemp("alerting-stack"), binaries=stack_binaries(), repo=repo
    )


def dashboard_panels(folder: Path) -> list[tuple[str, str, str]]:
    """(file, panel title, expr) of every query of the dashboards in ``folder``."""
    return [
        (path.name, title, expr)
        for path in sorted(folder.glob("*.json"))
        for title, _, expr in queries(json.loads(path.read_text()))
    ]


def assert_panel_returns_series(prometheus_url: str, service: str, dashboard: str, title: str, expr: str) -> None:
    """The panel's query, with Grafana's variables filled in, returns series of ``service`` and of nothing else."""
    query = substitute(expr, {"service": service, "env": ".*", "__rate_interval": "5m"})
    assert "$" not in query, query
    result = http.promql(prometheus_url, query)
    assert result, f"{dashboard} / {title}: no series for\n{query}"
    assert {series["metric"].get("job") for series in result} == {service}, result


def runbook_steps(folder: Path) -> list[tuple[str, int, Block]]:
    """(alert, index, block) of every PromQL, LogsQL and Jaeger step of the runbooks in ``folder``."""
    return [
        (name, index, block)
        for name, path in runbook_paths(folder).items()
        for index, block in enumerate(blocks(path.read_text()))
        if block.lang in ("promql", "logsql", "jaeger")
    ]


def run_runbook_step(stack: Stack, block: Block, values: Mapping[str, str]) -> None:
    """Run one step with its placeholders filled in; a query about one request must find its lines."""
    code = substitute(block.code, values)
    assert "$" not in code.replace("$__", ""), code
    if block.lang == "promql":
        http.promql(stack.prometheus_url, code)  # raises QueryError on a bad query
    elif block.lang == "logsql":
        lines = http.logsql(stack.victorialogs_url, code)
        if "request_id:=" in code:
            assert lines, f"no line of the request for {code}"
    else:
        path, _, query = code.partition("?")
        answer = http.get_json(f"{stack.jaeger_url}{path}", dict(urllib.parse.parse_qsl(query)))
        assert answer.get("errors") is None, answer
