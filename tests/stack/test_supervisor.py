"""The supervisor without the real binaries: ports, pid files, failures, the CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from otel_dist.cli.main import main as cli
from otel_dist.stack import supervisor
from otel_dist.stack.supervisor import Ports, ProcessRecord, StackError, stack_status, start_stack, stop_stack

NAMES = ("victoria-logs", "jaeger", "prometheus", "alertmanager", "otelcol")


def processes_under(path: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions ``path`` (what a test started there)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(str(path) in part for part in cmdline):
            found.append(proc)
    return found


def fake_binaries(tmp_path: Path, script: str) -> dict[str, Path]:
    """Every binary is the same small program (argv and environment are ignored)."""
    paths = {}
    for name in NAMES:
        path = tmp_path / "bin" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"#!{sys.executable}\n{script}\n")
        path.chmod(0o755)
        paths[name] = path
    return paths


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = Ports.free()
    numbers = [port for _, port in ports.items()]
    assert len(set(numbers)) == len(numbers)
    assert 4317 not in numbers or ports == Ports()


def test_flags_file_ignores_comments_and_blank_lines(tmp_path: Path) -> None:
    flags = tmp_path / "flags"
    flags.write_text("# a comment\n\n-retentionPeriod=7d\n  -loggerFormat=json  \n")
    assert supervisor.read_flags(flags) == ["-retentionPeriod=7d", "-loggerFormat=json"]


def test_every_service_listens_on_loopback_only() -> None:
    binaries = {name: Path(name) for name in NAMES}
    for service in supervisor.plan(Ports(), Path("/data"), binaries):
        text = " ".join([*service.argv, *service.env.values()])
        assert "0.0.0.0" not in text, service.name
        assert service.ready_url.startswith("http://127.0.0.1:"), service.name


def test_a_busy_port_is_named_and_nothing_starts(tmp_path: Path) -> None:
    ports = Ports.free()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports.prometheus))
        busy.listen()
        with pytest.raises(StackError, match=rf"{ports.prometheus} \(prometheus: prometheus\)"):
            start_stack(ports=ports, data_dir=tmp_path / "d", binaries=fake_binaries(tmp_path, "import time"))
    assert stack_status(tmp_path / "d") == []


def test_a_service_that_dies_fails_the_start_with_its_output_and_stops_the_others(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "if 'otelcol' in sys.argv[0]:\n"
        "    print('bad config: no such exporter')\n"
        "    sys.exit(3)\n"
        "time.sleep(60)"
    )
    data_dir = tmp_path / "d"
    with pytest.raises(StackError, match="otelcol exited with status 3") as failure:
        start_stack(ports=Ports.free(), data_dir=data_dir, binaries=fake_binaries(tmp_path, script), ready_timeout=20)
    assert "bad config: no such exporter" in str(failure.value)
    assert processes_under(tmp_path) == []  # the four that were still running were stopped
    assert stack_status(data_dir) == []
    assert not list((data_dir / "run").glob("*.pid"))


def test_a_service_that_never_gets_ready_times_out(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    with pytest.raises(StackError, match="not ready after 1s"):
        start_stack(
            ports=Ports.free(),
            data_dir=data_dir,
            binaries=fake_binaries(tmp_path, "import time\ntime.sleep(60)"),
            ready_timeout=1,
        )
    assert processes_under(tmp_path) == []
    assert stack_status(data_dir) == []


def test_down_stops_only_the_process_it_started(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    (data_dir / "run").mkdir(parents=True)
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for name, proc, shift in (("ours", ours, 0.0), ("stranger", stranger, 100.0)):
            # "stranger": its pid file says the process started at another time, as after a pid was reused
            record = ProcessRecord(
                name=name,
                pid=proc.pid,
                create_time=psutil.Process(proc.pid).create_time() + shift,
                executable=sys.executable,
            )
            (data_dir / "run" / f"{name}.pid").write_text(json.dumps(record.__dict__))
        assert [s.name for s in stack_status(data_dir) if s.running] == ["ours"]
        assert stop_stack(data_dir, timeout=5) == ["ours"]
        assert ours.wait(timeout=5) is not None
        time.sleep(0.1)
        assert stranger.poll() is None  # untouched
        assert stack_status(data_dir) == []
    finally:
        for proc in (ours, stranger):
            proc.kill()
            proc.wait()


def test_cli_status_and_down_when_nothing_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["stack", "status", "--data-dir", str(tmp_path)]) == 1
    assert "not running" in capsys.readouterr().out
    assert cli(["stack", "down", "--data-dir", str(tmp_path)]) == 0
    assert "nothing was running" in capsys.readouterr().out


def test_cli_up_reports_a_failure_with_exit_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    binaries = fake_binaries(tmp_path, "import sys\nsys.exit(2)")
    monkeypatch.setattr("otel_dist.stack.build.ensure_binaries", lambda *a, **k: binaries)
    assert cli(["stack", "up", "--free-ports", "--data-dir", str(tmp_path / "d"), "--timeout", "10"]) == 1
    assert "exited with status 2" in capsys.readouterr().err
    assert processes_under(tmp_path) == []


def test_up_status_down_with_stand_in_binaries(tmp_path: Path) -> None:
    """The whole life cycle against stand-ins that serve every ready URL (the real one is in tests/e2e)."""
    script = (
        "import http.server, os, re, sys, threading\n"
        "text = ' '.join(sys.argv[1:] + list(os.environ.values()))\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'OK')\n"
        "    def log_message(self, *a): pass\n"
        "ports = {int(p) for p in re.findall(r'127\\.0\\.0\\.1:(\\d+)', text)}\n"
        "for p in ports:  # its own ports; the ones it sends to are taken by the others\n"
        "    try: s = http.server.ThreadingHTTPServer(('127.0.0.1', p), H)\n"
        "    except OSError: continue\n"
        "    threading.Thread(target=s.serve_forever, daemon=True).start()\n"
        "threading.Event().wait()\n"
    )
    data_dir = tmp_path / "d"
    stack = start_stack(ports=Ports.free(), data_dir=data_dir, binaries=fake_binaries(tmp_path, script))
    try:
        statuses = stack_status(data_dir)
        assert [s.name for s in statuses] == ["otelcol", "prometheus", "alertmanager", "jaeger", "victorialogs"]
        assert all(s.running and s.ready for s in statuses)
        assert len(processes_under(tmp_path)) == 5
        with pytest.raises(StackError, match="already runs"):
            start_stack(ports=Ports.free(), data_dir=data_dir, binaries=fake_binaries(tmp_path, script))
        loaded = supervisor.load_stack(data_dir)
        assert loaded is not None
        assert (loaded.ports, loaded.records) == (stack.ports, stack.records)
        targets = (data_dir / "prometheus/etc/targets/scrape.yml").read_text()
        assert f"127.0.0.1:{stack.ports.collector_metrics}" in targets
        assert (
            data_dir / "prometheus/etc/prometheus.yml"
        ).resolve() == supervisor.REPO_ROOT / "prometheus/prometheus.yml"
    finally:
        stopped = stack.stop()
    assert sorted(stopped) == ["alertmanager", "jaeger", "otelcol", "prometheus", "victorialogs"]
    assert processes_under(tmp_path) == []
    assert stack_status(data_dir) == []


def test_outside_a_source_checkout_the_start_says_so(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="source checkout"):
        start_stack(data_dir=tmp_path / "d", binaries=fake_binaries(tmp_path, "pass"), repo=tmp_path)
