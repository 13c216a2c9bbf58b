"""Run the local stack: the pinned binaries as processes on 127.0.0.1, data and logs under one folder.

``start_stack()`` builds (or finds cached) binaries, starts VictoriaLogs, Jaeger, Prometheus, Alertmanager and
the collector with the repository's config files (the ones docker-compose mounts), waits until each answers its
health endpoint and returns a :class:`Stack`. ``stop_stack()`` stops exactly the processes a ``start_stack()``
started, found through the pid files in ``<data_dir>/run/`` (a pid is trusted only while the process there is
still the one that was started: same start time, same executable). ``stack_status()`` tells what runs.

Layout of ``data_dir`` (default ``.stack/`` in the repository)::

    stack.json                 ports, URLs, pids of the running stack
    run/<service>.pid          one JSON record per process
    logs/<service>.log         each process's stdout and stderr
    <service>/                 each process's data (and Prometheus's config directory, etc/)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import psutil

from otel_dist.stack import http

#: The repository: the configs live in its top-level folders (collector/, prometheus/, ...).
REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR: Final = REPO_ROOT / ".stack"
LOOPBACK: Final = "127.0.0.1"

#: Config files the local stack reads, repository-relative. SHARED ones are mounted by docker-compose too
#: (tests/stack checks it); LOCAL_ONLY ones are this deployment's choice (log store, target addresses).
SHARED_CONFIGS: Final = (
    "collector/otelcol.yaml",
    "prometheus/prometheus.yml",
    "prometheus/rules",
    "alertmanager/alertmanager.yml",
    "jaeger/config.yaml",
)
LOCAL_ONLY_CONFIGS: Final = (
    "collector/logs-victorialogs.yaml",
    "victorialogs/victoria-logs.flags",
)
#: Optional collector overlays, merged after the others when asked for (``start_stack(collector_overlays=...)``).
TAIL_SAMPLING_OVERLAY: Final = "collector/tail-sampling.yaml"


def merged_collector_config(paths: Iterable[Path]) -> dict[str, Any]:
    """The collector config that ``--config=file:A --config=file:B ...`` makes: maps merge, lists are replaced."""
    import yaml  # type: ignore[import-untyped,unused-ignore]  # the rules extra (PyYAML); tests and benchmarks have it

    def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
        return out

    config: dict[str, Any] = {}
    for path in paths:
        config = merge(config, yaml.safe_load(path.read_text()))
    return config


#: Seconds to wait for every service to become ready, and for one to stop after SIGTERM.
READY_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 10.0


class StackError(RuntimeError):
    """The stack could not be started, or its state is not what was expected."""


@dataclass(frozen=True)
class Ports:
    """Every port the local stack listens on (all on 127.0.0.1)."""

    otlp_grpc: int = 4317
    otlp_http: int = 4318
    collector_health: int = 13133
    collector_metrics: int = 8888
    prometheus: int = 9090
    alertmanager: int = 9093
    jaeger_query: int = 16686
    jaeger_query_grpc: int = 16685
    jaeger_otlp_grpc: int = 14317
    jaeger_otlp_http: int = 14318
    jaeger_health: int = 13134
    jaeger_metrics: int = 14269
    victorialogs: int = 9428

    @classmethod
    def free(cls) -> Ports:
        """Ports the kernel says are free right now (for tests that must not collide with anything)."""
        sockets: list[socket.socket] = []
        try:
            for _ in fields(cls):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind((LOOPBACK, 0))
                sockets.append(sock)
            return cls(*(sock.getsockname()[1] for sock in sockets))
        finally:
            for sock in sockets:
                sock.close()

    def items(self) -> list[tuple[str, int]]:
        """(name, port) pairs."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


@dataclass(frozen=True)
class Service:
    """One process of the stack: how to start it and how to know it is ready."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    ready_url: str
    ports: tuple[str, ...]  # the Ports fields it listens on


@dataclass(frozen=True)
class ProcessRecord:
    """What a pid file holds: enough to recognise the process later."""

    name: str
    pid: int
    create_time: float
    executable: str

    def process(self) -> psutil.Process | None:
        """The live process this record describes, or None (gone, or the pid was reused)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.05 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            cmdline = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        # argv[0] is the binary; for a script run through its #! interpreter, it is the next argument.
        return proc if self.executable in cmdline[:2] else None


@dataclass(frozen=True)
class ServiceStatus:
    """One line of ``stack status``."""

    name: str
    pid: int | None
    running: bool
    ready: bool
    url: str


@dataclass
class Stack:
    """A running local stack (see :func:`start_stack`)."""

    data_dir: Path
    ports: Ports
    records: dict[str, ProcessRecord] = field(default_factory=dict)
    started_seconds: float = 0.0

    # --- addresses -------------------------------------------------------------------------------------
    @property
    def otlp_http_endpoint(self) -> str:
        """Where applications send OTLP/HTTP (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        return f"http://{LOOPBACK}:{self.ports.otlp_http}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        """Where applications send OTLP/gRPC."""
        return f"http://{LOOPBACK}:{self.ports.otlp_grpc}"

    @property
    def prometheus_url(self) -> str:
        """Prometheus's HTTP API (no web UI in the module build)."""
        return f"http://{LOOPBACK}:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        """Alertmanager's UI and API."""
        return f"http://{LOOPBACK}:{self.ports.alertmanager}"

    @property
    def jaeger_url(self) -> str:
        """Jaeger's query API (``/api/v3/...``)."""
        return f"http://{LOOPBACK}:{self.ports.jaeger_query}"

    @property
    def victorialogs_url(self) -> str:
        """VictoriaLogs' API; its UI is at ``/select/vmui/``."""
        return f"http://{LOOPBACK}:{self.ports.victorialogs}"

    @property
    def collector_metrics_url(self) -> str:
        """The collector's own metrics (Prometheus text format)."""
        return f"http://{LOOPBACK}:{self.ports.collector_metrics}/metrics"

    def urls(self) -> dict[str, str]:
        """What to print after ``stack up``: name -> URL."""
        return {
            "OTLP/HTTP (apps send here)": self.otlp_http_endpoint,
            "OTLP/gRPC (apps send here)": self.otlp_grpc_endpoint,
            "Prometheus API": self.prometheus_url,
            "Jaeger query API": self.jaeger_url,
            "VictoriaLogs UI": f"{self.victorialogs_url}/select/vmui/",
            "Alertmanager": self.alertmanager_url,
            "Collector metrics": self.collector_metrics_url,
        }

    # --- lifecycle -------------------------------------------------------------------------------------
    def stop(self, timeout: float = STOP_TIMEOUT) -> list[str]:
        """Stop the processes this stack started; return their names."""
        return stop_stack(self.data_dir, timeout=timeout)

    def status(self) -> list[ServiceStatus]:
        """What runs now."""
        return stack_status(self.data_dir)

    def log_path(self, name: str) -> Path:
        """Where a service's output goes."""
        return self.data_dir / "logs" / f"{name}.log"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- planning ---------------------------------------------------------------------------------------------


def _addr(port: int, host: str = LOOPBACK) -> str:
    return f"{host}:{port}"


def read_flags(path: Path) -> list[str]:
    """Flags from a file with one flag per line; blank lines and ``#`` comments ignored."""
    flags = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            flags.append(line)
    return flags


def render_targets(ports: Ports) -> dict[str, str]:
    """The Prometheus file_sd files of the local stack: file name -> YAML text."""
    scrape = [
        ("otelcol", ports.collector_metrics),
        ("prometheus", ports.prometheus),
        ("alertmanager", ports.alertmanager),
        ("jaeger", ports.jaeger_metrics),
        ("victorialogs", ports.victorialogs),
    ]
    header = (
        "# Local stack: rendered by otel_dist.stack.supervisor.render_targets() with the ports the stack uses.\n"
        "# prometheus/targets/local/ holds the rendering for the standard ports (tests/stack checks it).\n"
    )
    scrape_text = header + "".join(f"- targets: [{_addr(port)}]\n  labels: {{job: {job}}}\n" for job, port in scrape)
    alertmanagers_text = header + f"- targets: [{_addr(ports.alertmanager)}]\n"
    apps_text = header + "# Applications in pull mode: add groups here or in more apps*.yml files.\n[]\n"
    return {"scrape.yml": scrape_text, "alertmanagers.yml": alertmanagers_text, "apps.yml": apps_text}


def plan(
    ports: Ports,
    data_dir: Path,
    binaries: Mapping[str, Path],
    *,
    repo: Path = REPO_ROOT,
    collector_overlays: Sequence[str] = (),
) -> list[Service]:
    """The processes of the local stack, backends first, the collector last.

    ``collector_overlays``: repository-relative collector config files merged after the shared file and the log
    pipeline (``collector/tail-sampling.yaml``).
    """
    d = data_dir
    return [
        Service(
            name="victorialogs",
            argv=(
                str(binaries["victoria-logs"]),
                f"-httpListenAddr={_addr(ports.victorialogs)}",
                f"-storageDataPath={d / 'victorialogs'}",
                *read_flags(repo / "victorialogs/victoria-logs.flags"),
            ),
            env={},
            ready_url=f"http://{_addr(ports.victorialogs)}/health",
            ports=("victorialogs",),
        ),
        Service(
            name="jaeger",
            argv=(str(binaries["jaeger"]), f"--config=file:{repo / 'jaeger/config.yaml'}"),
            env={
                "JAEGER_OTLP_GRPC_LISTEN": _addr(ports.jaeger_otlp_grpc),
                "JAEGER_OTLP_HTTP_LISTEN": _addr(ports.jaeger_otlp_http),
                "JAEGER_QUERY_HTTP_LISTEN": _addr(ports.jaeger_query),
                "JAEGER_QUERY_GRPC_LISTEN": _addr(ports.jaeger_query_grpc),
                "JAEGER_HEALTH_LISTEN": _addr(ports.jaeger_health),
                "JAEGER_METRICS_HOST": LOOPBACK,
                "JAEGER_METRICS_PORT": str(ports.jaeger_metrics),
            },
            ready_url=f"http://{_addr(ports.jaeger_health)}/status",
            ports=(
                "jaeger_query",
                "jaeger_query_grpc",
                "jaeger_otlp_grpc",
                "jaeger_otlp_http",
                "jaeger_health",
                "jaeger_metrics",
            ),
        ),
        Service(
            name="prometheus",
            argv=(
                str(binaries["prometheus"]),
                f"--config.file={d / 'prometheus/etc/prometheus.yml'}",
                f"--storage.tsdb.path={d / 'prometheus/data'}",
                f"--web.listen-address={_addr(ports.prometheus)}",
                "--web.enable-otlp-receiver",
                "--enable-feature=exemplar-storage",
                # A counter's first OTLP sample then starts from zero at its start time, so rate() sees a burst
                # on a series that did not exist before (an error route failing for the first time).
                "--enable-feature=created-timestamp-zero-ingestion",
            ),
            env={},
            ready_url=f"http://{_addr(ports.prometheus)}/-/ready",
            ports=("prometheus",),
        ),
        Service(
            name="alertmanager",
            argv=(
                str(binaries["alertmanager"]),
                f"--config.file={repo / 'alertmanager/alertmanager.yml'}",
                f"--storage.path={d / 'alertmanager'}",
                f"--web.listen-address={_addr(ports.alertmanager)}",
                f"--web.external-url=http://{_addr(ports.alertmanager)}",
                "--cluster.listen-address=",  # a single instance: no gossip port
                "--data.retention=120h",
            ),
            env={},
            ready_url=f"http://{_addr(ports.alertmanager)}/-/ready",
            ports=("alertmanager",),
        ),
        Service(
            name="otelcol",
            argv=(
                str(binaries["otelcol"]),
                f"--config=file:{repo / 'collector/otelcol.yaml'}",
                f"--config=file:{repo / 'collector/logs-victorialogs.yaml'}",
                *(f"--config=file:{repo / overlay}" for overlay in collector_overlays),
            ),
            env={
                "OTELCOL_OTLP_GRPC_ENDPOINT": _addr(ports.otlp_grpc),
                "OTELCOL_OTLP_HTTP_ENDPOINT": _addr(ports.otlp_http),
                "OTELCOL_HEALTH_ENDPOINT": _addr(ports.collector_health),
                "OTELCOL_METRICS_HOST": LOOPBACK,
                "OTELCOL_METRICS_PORT": str(ports.collector_metrics),
                "JAEGER_OTLP_GRPC_ENDPOINT": _addr(ports.jaeger_otlp_grpc),
                "PROMETHEUS_OTLP_ENDPOINT": f"http://{_addr(ports.prometheus)}/api/v1/otlp",
                "VICTORIALOGS_URL": f"http://{_addr(ports.victorialogs)}",
                # The persistent sending queues: kept across restarts of the collector, like the others' data.
                "OTELCOL_STORAGE_DIR": str(d / "otelcol/queues"),
            },
            ready_url=f"http://{_addr(ports.collector_health)}/",
            ports=("otlp_grpc", "otlp_http", "collector_health", "collector_metrics"),
        ),
    ]


def _prepare(data_dir: Path, ports: Ports, repo: Path) -> None:
    for sub in (
        "run",
        "logs",
        "victorialogs",
        "alertmanager",
        "prometheus/data",
        "prometheus/etc/targets",
        "otelcol/queues",
    ):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
    etc = data_dir / "prometheus/etc"
    # Prometheus resolves rule_files and file_sd paths against its config file's directory: etc/ mirrors
    # docker-compose's /etc/prometheus, with the shared prometheus.yml and rules/ linked, not copied.
    for name, target in (("prometheus.yml", repo / "prometheus/prometheus.yml"), ("rules", repo / "prometheus/rules")):
        link = etc / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    for name, text in render_targets(ports).items():
        (etc / "targets" / name).write_text(text)


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without OTEL_* (the Go SDKs inside Jaeger/otelcol would read them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(extra)
    return env


def _check_ports_free(services: Sequence[Service], ports: Ports) -> None:
    busy = []
    for service in services:
        for name in service.ports:
            port = getattr(ports, name)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((LOOPBACK, port))
                except OSError:
                    busy.append(f"{port} ({service.name}: {name})")
    if busy:
        raise StackError(
            "ports already in use on 127.0.0.1: "
            + ", ".join(busy)
            + ". Stop what uses them (`otel-dist stack status` shows a stack started earlier), "
            "or run with --free-ports."
        )


# --- state files ------------------------------------------------------------------------------------------


def _pid_file(data_dir: Path, name: str) -> Path:
    return data_dir / "run" / f"{name}.pid"


def _write_record(data_dir: Path, record: ProcessRecord) -> None:
    path = _pid_file(data_dir, record.name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)) + "\n")
    tmp.replace(path)


def _read_records(data_dir: Path) -> dict[str, ProcessRecord]:
    records: dict[str, ProcessRecord] = {}
    run = data_dir / "run"
    if not run.is_dir():
        return records
    for path in sorted(run.glob("*.pid")):
        try:
            data = json.loads(path.read_text())
            record = ProcessRecord(
                name=str(data["name"]),
                pid=int(data["pid"]),
                create_time=float(data["create_time"]),
                executable=str(data["executable"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
        records[record.name] = record
    return records


def _state_file(data_dir: Path) -> Path:
    return data_dir / "stack.json"


def load_stack(data_dir: Path | None = None) -> Stack | None:
    """The stack recorded in ``data_dir`` if any of its processes still runs, else None."""
    data_dir = (data_dir or DEFAULT_DATA_DIR).resolve()
    records = _read_records(data_dir)
    if not any(r.process() for r in records.values()):
        return None
    ports = Ports()
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        ports = Ports(**json.loads(_state_file(data_dir).read_text())["ports"])
    return Stack(data_dir=data_dir, ports=ports, records=records)


# --- start / stop / status --------------------------------------------------------------------------------


def _say(message: str, out: Callable[[str], None] | None) -> None:
    if out is not None:
        out(message)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def start_stack(
    *,
    ports: Ports | None = None,
    data_dir: Path | None = None,
    binaries: Mapping[str, Path] | None = None,
    ready_timeout: float = READY_TIMEOUT,
    repo: Path = REPO_ROOT,
    collector_overlays: Sequence[str] = (),
    out: Callable[[str], None] | None = None,
) -> Stack:
    """Start the local stack and wait until every service is ready; see the module docstring.

    ``ports`` defaults to the standard ones (:class:`Ports`); tests pass ``Ports.free()``. ``binaries``
    defaults to the cached builds (built first when missing). ``collector_overlays``: more collector config
    files (repository-relative, e.g. :data:`TAIL_SAMPLING_OVERLAY`). ``out`` receives progress lines.
    Raises :class:`StackError` when a stack already runs in ``data_dir``, a port is taken, or a service
    does not become ready (then every process started here is stopped again).
    """
    started = time.monotonic()
    ports = ports or Ports()
    data_dir = (data_dir or DEFAULT_DATA_DIR).resolve()
    missing = [
        path for path in (*SHARED_CONFIGS, *LOCAL_ONLY_CONFIGS, *collector_overlays) if not (repo / path).exists()
    ]
    if missing:
        raise StackError(f"the stack runs from a source checkout; {repo} lacks {', '.join(missing)}")
    if load_stack(data_dir) is not None:
        raise StackError(f"a stack already runs from {data_dir}; `otel-dist stack down` stops it")
    if binaries is None:
        from otel_dist.stack.build import ensure_binaries

        binaries = ensure_binaries()
    for name in _read_records(data_dir):  # stale pid files of processes that are gone
        _pid_file(data_dir, name).unlink(missing_ok=True)

    services = plan(ports, data_dir, binaries, repo=repo, collector_overlays=collector_overlays)
    _check_ports_free(services, ports)
    _prepare(data_dir, ports, repo)
    state = {"ports": asdict(ports), "repo": str(repo), "collector_overlays": list(collector_overlays)}
    _state_file(data_dir).write_text(json.dumps({**state, "started_at": time.time()}, indent=2) + "\n")

    stack = Stack(data_dir=data_dir, ports=ports)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for service in services:
            procs[service.name] = _launch(stack, service)
            _say(f"started {service.name} (pid {procs[service.name].pid})", out)
        _wait_ready(stack, services, procs, ready_timeout, out)
    except BaseException:
        _terminate(procs.values())
        stop_stack(data_dir)
        raise
    stack.started_seconds = time.monotonic() - started
    return stack


def _launch(stack: Stack, service: Service) -> subprocess.Popen[bytes]:
    """Start one service's process (output appended to its log) and record its pid file."""
    log_path = stack.log_path(service.name)
    with log_path.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(service.argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            service.argv,
            cwd=stack.data_dir,
            env=_child_env(service.env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal that ran `stack up` does not reach them
        )
    record = ProcessRecord(
        name=service.name,
        pid=proc.pid,
        create_time=psutil.Process(proc.pid).create_time(),
        executable=service.argv[0],
    )
    _write_record(stack.data_dir, record)
    stack.records[service.name] = record
    return proc


def restart_service(
    stack: Stack,
    name: str,
    *,
    binaries: Mapping[str, Path],
    repo: Path = REPO_ROOT,
    ready_timeout: float = READY_TIMEOUT,
) -> subprocess.Popen[bytes]:
    """Start one service of ``stack`` again, on its ports and with its config, after it stopped or was killed.

    For fault-injection tests (a collector restarted, a backend back up). A process of it still running is
    stopped first (SIGTERM). Waits until it is ready; raises :class:`StackError` otherwise.
    """
    services = {s.name: s for s in plan(stack.ports, stack.data_dir, binaries, repo=repo)}
    if name not in services:
        raise StackError(f"no service {name!r} in the stack; known: {', '.join(services)}")
    record = stack.records.get(name)
    running = record.process() if record is not None else None
    if running is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            running.terminate()
            running.wait(timeout=STOP_TIMEOUT)
    proc = _launch(stack, services[name])
    _wait_ready(stack, [services[name]], {name: proc}, ready_timeout, None)
    return proc


def _wait_ready(
    stack: Stack,
    services: Sequence[Service],
    procs: Mapping[str, subprocess.Popen[bytes]],
    timeout: float,
    out: Callable[[str], None] | None,
) -> None:
    deadline = time.monotonic() + timeout
    waiting = {s.name: s for s in services}
    while waiting:
        for name, service in list(waiting.items()):
            code = procs[name].poll()
            if code is not None:
                raise StackError(
                    f"{name} exited with status {code} while starting; last lines of {stack.log_path(name)}:\n"
                    + _tail(stack.log_path(name))
                )
            if http.is_ready(service.ready_url, timeout=0.5):
                del waiting[name]
                _say(f"{name} ready ({service.ready_url})", out)
        if not waiting:
            return
        if time.monotonic() > deadline:
            details = "\n".join(
                f"--- {name}: not ready at {s.ready_url}; last lines of {stack.log_path(name)}:\n"
                + _tail(stack.log_path(name), 10)
                for name, s in waiting.items()
            )
            raise StackError(f"not ready after {timeout:.0f}s: {', '.join(waiting)}\n{details}")
        time.sleep(0.1)


def _terminate(procs: Iterable[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT) -> None:
    """Stop processes started by this call (used when the start fails half-way)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


#: Stop order: the collector first (it flushes its queues to the backends), then the backends.
_STOP_ORDER: Final = ("otelcol", "prometheus", "alertmanager", "jaeger", "victorialogs")


def stop_stack(data_dir: Path | None = None, *, timeout: float = STOP_TIMEOUT) -> list[str]:
    """Stop the processes recorded in ``data_dir``'s pid files (SIGTERM, then SIGKILL); return their names."""
    data_dir = (data_dir or DEFAULT_DATA_DIR).resolve()
    records = _read_records(data_dir)
    order = sorted(records, key=lambda n: _STOP_ORDER.index(n) if n in _STOP_ORDER else len(_STOP_ORDER))
    stopped = []
    for name in order:
        record = records[name]
        proc = record.process()
        if proc is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except psutil.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
            stopped.append(name)
        _pid_file(data_dir, name).unlink(missing_ok=True)
    return stopped


def stack_status(data_dir: Path | None = None) -> list[ServiceStatus]:
    """One :class:`ServiceStatus` per recorded process."""
    data_dir = (data_dir or DEFAULT_DATA_DIR).resolve()
    records = _read_records(data_dir)
    stack = load_stack(data_dir)
    ports = stack.ports if stack else Ports()
    ready_urls = {s.name: s.ready_url for s in plan(ports, data_dir, _placeholder_binaries())}
    statuses = []
    for name in sorted(records, key=lambda n: _STOP_ORDER.index(n) if n in _STOP_ORDER else 99):
        record = records[name]
        running = record.process() is not None
        url = ready_urls.get(name, "")
        statuses.append(
            ServiceStatus(
                name=name,
                pid=record.pid,
                running=running,
                ready=running and bool(url) and http.is_ready(url),
                url=url,
            )
        )
    return statuses


def _placeholder_binaries() -> dict[str, Path]:
    return {n: Path(n) for n in ("victoria-logs", "jaeger", "prometheus", "alertmanager", "otelcol")}


def print_line(message: str) -> None:
    """Progress printer for the CLI."""
    print(f"[stack] {message}", file=sys.stdout, flush=True)
