"""Batch jobs in short-lived processes, and security events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

from tests.support.otlp_receiver import OtlpReceiver

JOB = textwrap.dedent(
    """
    import sys
    import otel_dist

    otel_dist.configure(service_name="scraper")
    with otel_dist.batch_job("scrape.bills") as job:
        for bill in range(7):
            job.processed()
        job.failed(2)
        if sys.argv[1] == "fail":
            raise ConnectionError("the source is down")
    """
)


def run_job(receiver: OtlpReceiver, outcome: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_DIST_SYSTEM_METRICS="false",
        OTEL_METRIC_EXPORT_INTERVAL="600000",  # only the job's own flush can deliver the metrics
        OTEL_BSP_SCHEDULE_DELAY="600000",
        OTEL_BLRP_SCHEDULE_DELAY="600000",
        OTEL_DIST_HANDLE_SIGTERM="false",
    )
    return subprocess.run(
        [sys.executable, "-c", JOB, outcome], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_batch_job_run_arrives_before_the_process_exits(receiver: OtlpReceiver) -> None:
    before = time.time()
    assert run_job(receiver, "ok").returncode == 0
    runs = {(a["job.outcome"]): p.as_int for a, p in receiver.latest_points("job.runs")}
    assert runs == {"success": 1}
    assert [p.as_int for _, p in receiver.latest_points("job.items.processed")] == [7]
    assert [p.as_int for _, p in receiver.latest_points("job.items.failed")] == [2]
    [(labels, last_success)] = receiver.latest_points("job.last_success.timestamp")
    assert labels == {"job.name": "scrape.bills"}
    assert before <= last_success.as_double <= time.time()
    [span] = receiver.spans()
    assert span.item.name == "job scrape.bills"
    assert [r.item.body.string_value for r in receiver.logs()] == ["job.completed"]


def test_a_failed_run_is_reported_and_sets_no_success_time(receiver: OtlpReceiver) -> None:
    result = run_job(receiver, "fail")
    assert result.returncode == 1
    runs = {(a["job.outcome"], a.get("error.type")): p.as_int for a, p in receiver.latest_points("job.runs")}
    assert runs == {("error", "ConnectionError"): 1}
    assert receiver.latest_points("job.last_success.timestamp") == []
    [record] = receiver.logs()
    assert record.item.body.string_value == "job.failed"
    assert record.attributes["exception.type"] == "ConnectionError"


def test_security_events_are_counted_and_never_log_the_offending_value(receiver, configure, capsys) -> None:
    import otel_dist

    telemetry = configure(endpoint=receiver.endpoint)
    otel_dist.security_event("auth_failure", reason="bad_api_key", offending="sk-live-9f8e7d", client="10.0.0.7")
    otel_dist.security_event("auth_failure", reason="bad_api_key", offending="sk-live-9f8e7d")
    otel_dist.security_event("validation_failure", reason="schema", password="hunter2")
    telemetry.force_flush(5)
    counts = {
        (a["security.event.kind"], a["security.event.reason"]): p.as_int
        for a, p in receiver.latest_points("security.events")
    }
    assert counts == {("auth_failure", "bad_api_key"): 2, ("validation_failure", "schema"): 1}
    out = capsys.readouterr().out
    exported = repr([r.attributes for r in receiver.logs()])
    for secret in ("sk-live-9f8e7d", "hunter2"):
        assert secret not in out
        assert secret not in exported
    lines = [json.loads(line) for line in out.splitlines() if "security.event" in line]
    assert lines[0]["offending_fingerprint"] == lines[1]["offending_fingerprint"]
    assert lines[0]["offending_length"] == len("sk-live-9f8e7d")
    assert lines[0]["level"] == "warning"
