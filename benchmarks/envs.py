"""Virtual environments for the variants whose packages conflict (git-ignored, under benchmarks/.venvs/).

* ``base``:  FastAPI + uvicorn[standard] + prometheus-fastapi-instrumentator (bare and Prometheus variants).
* ``stock``: the stock OpenTelemetry distro, the OTLP/HTTP exporter, the contrib FastAPI and logging
  instrumentations (the ``opentelemetry-instrument`` variant) - also FastAPI's native telemetry, which needs
  the SDK and the OTLP/HTTP exporter and nothing of ours.
* ``ours``:  otel-dist itself, installed in editable mode from this work tree (it measures the code as it is).
* ``before``: otel-dist as it was at :data:`BASELINE_REV` (the commit before the per-request cuts of issue 7),
  exported from git into ``.venvs/src-<rev>/``: the same run measures before and after.

Every environment installs the same pinned FastAPI/Starlette/uvicorn/OTel versions (``constraints.txt``), with
uvloop and httptools (``uvicorn[standard]``), so the variants differ only in their instrumentation. An
environment is rebuilt when its requirements or the constraints change (stamp file).

``--envs current`` runs every variant with the harness's own interpreter instead (CI, quick runs): variants
whose packages are missing there are skipped and reported as such.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

BENCH_DIR: Final = Path(__file__).resolve().parent
ROOT: Final = BENCH_DIR.parent
VENVS_DIR: Final = BENCH_DIR / ".venvs"
CONSTRAINTS: Final = BENCH_DIR / "constraints.txt"

_SERVER: Final = ("fastapi", "uvicorn[standard]")
#: otel-dist before the per-request cuts of issue 7 (the ``before`` environment).
BASELINE_REV: Final = "56718d7c5107a0d47af19eff5754ec73028a0154"
BASELINE_SRC: Final = VENVS_DIR / f"src-{BASELINE_REV[:12]}"

#: pip requirements of each environment (installed with ``-c constraints.txt``).
REQUIREMENTS: Final[dict[str, tuple[str, ...]]] = {
    "base": (*_SERVER, "prometheus-fastapi-instrumentator==8.1.0"),
    "stock": (
        *_SERVER,
        "opentelemetry-distro",
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-http",
        "opentelemetry-instrumentation-fastapi",
        "opentelemetry-instrumentation-logging",
    ),
    "ours": (*_SERVER, "-e", f"{ROOT}[fastapi]"),
    "before": (*_SERVER, f"{BASELINE_SRC}[fastapi]"),
}


def _export_baseline() -> None:
    """The tree of BASELINE_REV under BASELINE_SRC (git archive; needs the repository's history)."""
    if (BASELINE_SRC / "pyproject.toml").exists():
        return
    BASELINE_SRC.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE_REV], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(BASELINE_SRC)], input=archive.stdout, check=True)


@dataclass(frozen=True)
class Env:
    name: str
    python: Path

    @property
    def bin(self) -> Path:
        return self.python.parent


def _stamp(name: str) -> str:
    digest = hashlib.sha256()
    digest.update(CONSTRAINTS.read_bytes())
    digest.update("\n".join(REQUIREMENTS[name]).encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def _base_python() -> str:
    return getattr(sys, "_base_executable", sys.executable)


def ensure_env(name: str, log: Path | None = None) -> Env:
    """Create or refresh environment ``name``; returns it. Output of pip goes to ``log``."""
    directory = VENVS_DIR / name
    python = directory / "bin" / "python"
    stamp_file = directory / ".stamp"
    want = _stamp(name)
    if python.exists() and stamp_file.exists() and stamp_file.read_text().strip() == want:
        return Env(name, python)
    print(f"[bench] creating environment {directory} (once; a few minutes)", flush=True)
    if name == "before":
        _export_baseline()
    directory.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab") if log else subprocess.DEVNULL
    try:
        subprocess.run([_base_python(), "-m", "venv", "--clear", str(directory)], check=True, stdout=out, stderr=out)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-c", str(CONSTRAINTS), *REQUIREMENTS[name]],
            check=True,
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    stamp_file.write_text(want + "\n")
    return Env(name, python)


def current_env() -> Env:
    return Env("current", Path(sys.executable))


def has_modules(env: Env, modules: tuple[str, ...]) -> bool:
    """True when every module in ``modules`` can be imported by ``env``'s interpreter."""
    if not modules:
        return True
    probe = "import importlib.util,sys;sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))"
    return subprocess.run([str(env.python), "-c", probe, *modules], check=False).returncode == 0


if __name__ == "__main__":
    for env_name in sys.argv[1:] or list(REQUIREMENTS):
        print(ensure_env(env_name))
