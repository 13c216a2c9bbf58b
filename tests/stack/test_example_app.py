"""The demo's and the e2e tests' driver of the example app (otel_dist/stack/example.py), without the stack."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from otel_dist.otlp_sink import running_http_receiver
from otel_dist.stack.example import (
    ExampleAppError,
    Request,
    app_command,
    app_environment,
    expected_counts,
    send,
    start_example_app,
    traffic,
)
from otel_dist.stack.supervisor import REPO_ROOT


def test_the_traffic_mixes_every_kind_with_unique_request_ids() -> None:
    planned = traffic("svc", 12, not_found_every=3, error_every=4, slow_every=5, probes=3)
    assert Counter(r.kind for r in planned) == {"ok": 4, "not_found": 3, "error": 3, "slow": 2, "probe": 3}
    assert len({r.request_id for r in planned}) == len(planned)
    user = [r for r in planned if not r.probe]
    assert [r.request_id for r in user] == [f"svc-{n:04d}" for n in range(1, 13)]
    assert {(r.path, r.route, r.status) for r in user if r.kind == "error"} == {("/fail", "/fail", 500)}
    assert {(r.path, r.status) for r in user if r.kind == "not_found"} == {("/items/404", 404)}
    assert {r.path for r in user if r.kind == "slow"} == {"/slow?seconds=1.2"}
    # the probes are spread through the traffic, not bunched at one end
    positions = [i for i, r in enumerate(planned) if r.probe]
    assert positions[0] > 0
    assert positions[-1] < len(planned) - 1
    assert [planned[i].path for i in positions] == ["/health", "/health/ready", "/health/disk"]
    assert {planned[i].route for i in positions} == {None}


def test_item_404_is_the_missing_item_whatever_the_mix() -> None:
    planned = traffic("svc", 404, not_found_every=0, error_every=0, slow_every=0, probes=0)
    assert [r.request_id for r in planned if r.kind == "not_found"] == ["svc-0404"]


def test_the_app_environment_drops_the_callers_telemetry_settings() -> None:
    base = {"PATH": "/bin", "OTEL_TRACES_SAMPLER": "always_off", "FASTAPI_X": "1", "EXAMPLE_SKIP_CONFIGURE": "1"}
    env = app_environment("svc", otlp_endpoint="http://127.0.0.1:1", base={**base, "PYTHONPATH": "/lib"})
    assert env == {
        "PATH": "/bin",
        "PYTHONPATH": f"{REPO_ROOT}:/lib",
        "OTEL_SERVICE_NAME": "svc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
    }
    wrapped = app_environment("svc", otlp_endpoint=None, wrapper=True, env={"OTEL_X": "y"}, base=base)
    assert wrapped["EXAMPLE_SKIP_CONFIGURE"] == "1"
    assert wrapped["OTEL_PYTHON_DISTRO"] == "otel_dist"
    assert wrapped["OTEL_X"] == "y"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in wrapped
    assert app_command(8000, wrapper=True)[0].endswith("opentelemetry-instrument")
    assert app_command(8000)[-4:] == ["--host", "127.0.0.1", "--port", "8000"]


def test_an_app_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(ExampleAppError, match="exited with status") as failure:
        start_example_app("svc", otlp_endpoint=None, log_path=tmp_path / "app.log", env={"OTEL_TRACES_SAMPLER": "x"})
    assert "OTEL_TRACES_SAMPLER" in str(failure.value)  # the tail of its output names the bad setting


def test_send_checks_every_answer_against_the_plan(tmp_path: Path) -> None:
    with (
        running_http_receiver() as receiver,
        start_example_app("svc", otlp_endpoint=receiver.endpoint, log_path=tmp_path / "app.log") as app,
    ):
        answers = send(app.base_url, traffic("ok", 4, not_found_every=2, error_every=3, slow_every=0, probes=1))
        assert [a.status for a in answers] == [200, 404, 200, 500, 404]
        assert all(a.request_id == a.request.request_id for a in answers)
        assert [bool(a.trace_id) for a in answers] == [True, True, False, True, True]  # the probe has no trace
        assert expected_counts(answers) == {
            ("/items/{item_id}", "GET", "200"): 1,
            ("/items/{item_id}", "GET", "404"): 2,
            ("/fail", "GET", "500"): 1,
        }
        unplanned = Request("GET", "/fail", "/fail", 200, "unplanned-1", "ok")
        with pytest.raises(ExampleAppError, match="expected status 200, got 500"):
            send(app.base_url, [unplanned])
    assert app.process.returncode is not None
