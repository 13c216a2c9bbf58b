"""End to end: the batch-job helper's metrics reach Prometheus under the names the jobs[] alerts read.

A short-lived process (as a scraper is) runs two batch jobs, one failing, and exits; batch_job flushes before
the exit. The catalog's names (catalog.DOMAIN_METRICS) must be the ones Prometheus holds, and the JobStale and
JobFailureRateHigh expressions must evaluate on them.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from otel_dist.rules import catalog
from otel_dist.stack import http
from otel_dist.stack.example import app_environment
from otel_dist.stack.supervisor import REPO_ROOT, Stack
from tests.e2e.conftest import APP_ENV, eventually

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]

JOB_SCRIPT = """
import otel_dist
otel_dist.configure()
with otel_dist.batch_job("scrape.bills") as job:
    job.processed(3)
    job.failed(1)
try:
    with otel_dist.batch_job("scrape.votes"):
        raise ConnectionError("upstream down")
except ConnectionError:
    pass
"""


def test_batch_job_metrics_arrive_by_their_catalog_names(stack: Stack) -> None:
    service = f"e2e-jobs-{uuid.uuid4().hex[:8]}"
    env = app_environment(service, otlp_endpoint=stack.otlp_http_endpoint, env=APP_ENV)
    done = subprocess.run(
        [sys.executable, "-c", JOB_SCRIPT],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    wanted = {
        catalog.JOB_RUNS,
        catalog.JOB_LAST_SUCCESS,
        "job_run_duration_seconds_bucket",
        "job_items_processed_total",
        "job_items_failed_total",
    }
    assert wanted <= catalog.DOMAIN_METRICS

    def arrived() -> None:
        assert sorted(wanted - http.metric_names(stack.prometheus_url, f'{{job="{service}"}}')) == []

    eventually(arrived)
    prometheus = stack.prometheus_url
    runs = http.promql(
        prometheus, f'sum by (job_name, job_outcome, error_type) ({catalog.JOB_RUNS}{{job="{service}"}})'
    )
    assert {(r["metric"]["job_name"], r["metric"]["job_outcome"], r["metric"].get("error_type")) for r in runs} == {
        ("scrape.bills", "success", None),
        ("scrape.votes", "error", "ConnectionError"),
    }
    # JobStale's two branches: the age of the last success, and "ran, never succeeded" for the failing job.
    age = http.promql(
        prometheus,
        f'time() - max by (job_name) (max_over_time({catalog.JOB_LAST_SUCCESS}{{job="{service}"}}[7d]))',
    )
    assert [(a["metric"]["job_name"], float(a["value"][1]) < 120) for a in age] == [("scrape.bills", True)]
    never = http.promql(
        prometheus,
        f'max by (job_name) (count_over_time({catalog.JOB_RUNS}{{job="{service}"}}[7d])) unless on (job_name) '
        f'max by (job_name) (max_over_time({catalog.JOB_LAST_SUCCESS}{{job="{service}"}}[7d]))',
    )
    assert [n["metric"]["job_name"] for n in never] == ["scrape.votes"]
    processed = http.promql_scalar(prometheus, f'sum(job_items_processed_total{{job="{service}"}})')
    assert processed == 3
