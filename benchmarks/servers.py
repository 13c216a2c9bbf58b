"""Start and stop the benchmarked processes: the sink and one uvicorn server per variant, each pinned."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from benchmarks.envs import BENCH_DIR, ROOT, Env, has_modules
from benchmarks.variants import Variant

PATH: Final = "/items/42?q=bench"
_SCRUBBED_PREFIXES: Final = ("OTEL_", "FASTAPI_OTEL_", "BENCH_", "PYTHONPATH")


def clean_environ() -> dict[str, str]:
    """This process's environment without anything that would configure a variant behind its back.

    ``PYTHONSAFEPATH``: ``python -m uvicorn`` run in the work tree would otherwise put it first on ``sys.path``,
    and an environment's own otel-dist (the baseline's) would lose to the work tree's package.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    return environ | {"PYTHONSAFEPATH": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the group we started (start_new_session)
        process.wait(5)


@dataclass
class Sink:
    process: subprocess.Popen[str]
    ports: list[int]
    #: Where the servers export instead, when the real collector relays to the sink (``benchmarks/relay.py``).
    front_ports: list[int] | None = None

    def endpoint(self, index: int) -> str:
        """The OTLP endpoint a server exports to: the sink's port, or the relay collector's in front of it."""
        ports = self.front_ports if self.front_ports is not None else self.ports
        return f"http://127.0.0.1:{ports[index]}"

    def stats(self, index: int) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.ports[index]}/stats"
        with urllib.request.urlopen(url, timeout=10) as response:
            result: dict[str, Any] = json.load(response)
            return result

    def stop(self) -> None:
        _stop(self.process)


def start_sink(n_ports: int, cores: set[int], python: str) -> Sink:
    process = subprocess.Popen(
        [python, str(BENCH_DIR / "sink.py"), "--ports", str(n_ports), "--max-seconds", "14400"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),  # noqa: PLW1509 - sets only the child's affinity
        start_new_session=True,
        env=clean_environ(),
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError("the sink did not start")
    return Sink(process, json.loads(line)["ports"])


@dataclass
class Server:
    variant: Variant
    process: subprocess.Popen[bytes]
    port: int
    sink_index: int | None
    stderr_path: Path
    server_kind: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        _stop(self.process)


def server_command(variant: Variant, env: Env, port: int) -> tuple[list[str], str]:
    """The uvicorn command line (under opentelemetry-instrument for wrapper variants) and its loop/parser."""
    fast = has_modules(env, ("uvloop", "httptools"))
    loop, http = ("uvloop", "httptools") if fast else ("asyncio", "h11")
    command = [str(env.python), "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "bench_app:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--loop", loop, "--http", http, "--log-level", "info"]
    if not variant.access_log:
        command.append("--no-access-log")
    if variant.wrapper:
        command = [str(env.bin / "opentelemetry-instrument"), *command]
    return command, f"uvicorn {loop}/{http}"


def start_server(
    variant: Variant,
    env: Env,
    *,
    cores: set[int],
    sink: Sink | None,
    sink_index: int | None,
    logs_dir: Path,
    stdout: IO[bytes] | int = subprocess.DEVNULL,
    extra_environ: dict[str, str] | None = None,
) -> Server:
    port = free_port()
    command, kind = server_command(variant, env, port)
    endpoint = sink.endpoint(sink_index) if sink is not None and sink_index is not None else None
    environ = clean_environ() | variant.environment(endpoint) | (extra_environ or {})
    logs_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = logs_dir / f"{variant.name}.stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            stdout=stdout,
            stderr=stderr,
            env=environ,
            cwd=ROOT,
            preexec_fn=lambda: os.sched_setaffinity(0, cores),  # noqa: PLW1509 - sets only the child's affinity
            start_new_session=True,
        )
    server = Server(variant, process, port, sink_index, stderr_path, kind)
    _wait_ready(server)
    return server


def _wait_ready(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.variant.name} exited with {server.process.returncode}:\n{server.stderr_path.read_text()}"
            )
        try:
            with urllib.request.urlopen(server.url, timeout=2) as response:  # noqa: S310 - loopback only
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.variant.name} did not answer within {timeout}s:\n{server.stderr_path.read_text()}")
