"""Real PostgreSQL and Redis servers for tests: Debian's binaries, free loopback ports, temporary folders.

``./dev`` installs the packages (postgresql, redis-server) when they are missing. With CI=true a missing binary
fails the test; elsewhere it skips it with the reason. Each server is a child process of the test run, stopped
by ``stop()`` (or the context manager), and can be stopped and started again on the same port and data, so a
test can induce an outage and its recovery.

PostgreSQL refuses to run as root: as root, initdb and postgres run as the ``postgres`` user the package
creates, in a folder of their own under the system's temporary directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

from otel_dist.stack.example import free_port
from tests.stack.binaries import in_ci

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def _unavailable(what: str) -> Any:
    message = f"{what} is not installed (./dev installs it: apt-get install postgresql redis-server)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def postgres_bin_dir() -> Path | None:
    """Where initdb and postgres live: Debian's versioned folder (newest first), else the PATH."""
    for candidate in sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    ):
        if (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}:\n{_tail(log)}")
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{what} did not listen on port {port} within {timeout:.0f}s:\n{_tail(log)}"
                ) from None
            time.sleep(0.05)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def _stop(process: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


@dataclass
class PostgresServer:
    """One PostgreSQL cluster (initdb'd on first start) serving 127.0.0.1:``port`` with trust authentication."""

    port: int = field(default_factory=free_port)
    database: str = "app"
    max_connections: int = 100
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="otel-dist-pg-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, driver: str = "postgresql+psycopg", database: str | None = None) -> str:
        """A SQLAlchemy URL (``driver="postgresql"`` gives a libpq one)."""
        return f"{driver}://postgres@{LOOPBACK}:{self.port}/{database or self.database}"

    def _user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("the postgres user (from the postgresql package)")
        return "postgres"

    def _run(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        user = self._user()
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, user=user, cwd=self.root, **kwargs
            )

    def start(self) -> Self:
        """initdb (once), start the server, create the database (once); returns when it accepts connections."""
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            _unavailable("PostgreSQL")
        assert bin_dir is not None
        user = self._user()
        if user is not None:
            shutil.chown(self.root, user)
        fresh = not self.data_dir.exists()
        if fresh:
            initdb = self._run([
                str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                "--no-sync", "--no-instructions",
            ])  # fmt: skip
            if initdb.wait(timeout=120) != 0:
                raise RuntimeError(f"initdb failed:\n{_tail(self.log_path)}")
        # A test server: no durability, no disk waits.
        self.process = self._run([
            str(bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.root),
            "-c", f"listen_addresses={LOOPBACK}", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", f"max_connections={self.max_connections}",
        ])  # fmt: skip
        _wait_port(self.port, self.process, "postgres", self.log_path, START_TIMEOUT)
        self._wait_accepting()
        if fresh:
            self.execute("postgres", f'CREATE DATABASE "{self.database}"')
        return self

    def _wait_accepting(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                psycopg.connect(self.url("postgresql", "postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:  # "the database system is starting up"
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def execute(self, database: str, sql: str) -> None:
        """Run one statement outside a transaction (CREATE DATABASE, ...)."""
        import psycopg

        with psycopg.connect(self.url("postgresql", database), autocommit=True) as connection:
            connection.execute(sql.encode())

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open sessions are cut, as in a real outage."""
        _stop(self.process, signal.SIGINT)
        self.process = None

    def remove(self) -> None:
        """Stop and delete everything."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.remove()


@dataclass
class RedisServer:
    """One redis-server on 127.0.0.1:``port``, nothing persisted."""

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="otel-dist-redis-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.root / "redis.log"

    def start(self) -> Self:
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable("redis-server")
        assert binary is not None
        argv = [
            binary, "--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no",
            "--dir", str(self.root), "--protected-mode", "no",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_port(self.port, self.process, "redis-server", self.log_path, START_TIMEOUT)
        return self

    def stop(self) -> None:
        _stop(self.process, signal.SIGTERM)
        self.process = None

    def remove(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.remove()
