"""Build the stack's pinned binaries from Go recipes, cached outside the work tree.

Each component has a recipe directory ``recipes/<name>/`` with its own
``go.mod``/``go.sum`` (so one tool's requirements cannot drag another's
modules), and is built into::

    ${OTEL_DIST_CACHE:-~/.cache/otel-dist}/bin/<name>-<version>-<hash>/

where ``<hash>`` covers the recipe's go.mod, go.sum and ``*.go`` files and the
build settings below (tags, ldflags, packages). A second run finds the directory
and returns at once; building needs only the Go toolchain and the module
proxy. Go's module and build caches (``go env GOMODCACHE GOCACHE``) stay at
their defaults.

Usage::

    python -m otel_dist.stack.build [--jobs N] [--check] [NAME ...]

NAME is a component (otelcol, prometheus, alertmanager, jaeger, victorialogs)
or one of its binaries (promtool, amtool, victoria-logs); no NAME means all.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from otel_dist.stack import versions

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"

#: Flags for every build: no cgo (static binaries, no C compiler needed),
#: paths trimmed, symbol tables and DWARF dropped.
CGO_ENABLED = "0"
GOFLAGS_EXTRA = ("-trimpath", "-mod=readonly")
LDFLAGS_BASE = ("-s", "-w")

#: The files of a recipe directory that its hash covers, besides ``*.go``.
RECIPE_FILES = frozenset({"go.mod", "go.sum"})

#: Seconds between "still running" lines of a long step.
HEARTBEAT_SECONDS = 60.0
#: Lines of build output shown when a step fails.
FAILURE_TAIL_LINES = 40

_PRINT_LOCK = threading.Lock()


@dataclass(frozen=True)
class Binary:
    """One executable of a component: its file name, Go package and version check."""

    name: str
    package: str
    version_args: tuple[str, ...]


@dataclass(frozen=True)
class Pin:
    """go.mod must require ``module`` at one of ``versions``.

    With ``prefix=True`` the rule holds for every required module whose path
    starts with ``module`` (at least one must be present).
    """

    module: str
    versions: frozenset[str]
    prefix: bool = False

    def matches(self, path: str) -> bool:
        """Tell whether the rule applies to the module at ``path``."""
        return path.startswith(self.module) if self.prefix else path == self.module


@dataclass(frozen=True)
class Component:
    """A pinned component: its recipe, the binaries it yields and how they are built."""

    name: str
    version: str
    binaries: tuple[Binary, ...]
    pins: tuple[Pin, ...]
    tags: tuple[str, ...] = ()
    xflags: tuple[tuple[str, str], ...] = ()  # -ldflags -X name=value
    recipes: Path = RECIPES_DIR  # the folder that holds recipes/<name>/

    @property
    def recipe_dir(self) -> Path:
        """The directory holding this component's go.mod."""
        return self.recipes / self.name

    def ldflags(self) -> str:
        """Return the linker flags: no symbols, no DWARF, version strings."""
        parts = list(LDFLAGS_BASE)
        parts += [f"-X {name}={value}" for name, value in self.xflags]
        return " ".join(parts)

    def build_spec(self) -> dict[str, object]:
        """Return the settings that, with the recipe files, decide the output."""
        return {
            "name": self.name,
            "version": self.version,
            "binaries": [[b.name, b.package] for b in self.binaries],
            "tags": list(self.tags),
            "ldflags": self.ldflags(),
            "goflags": list(GOFLAGS_EXTRA),
            "cgo": CGO_ENABLED,
        }


def _exact(module: str, version: str, *, prefix: bool = False) -> Pin:
    return Pin(module=module, versions=frozenset({version}), prefix=prefix)


_PROM_VERSION_PKG = "github.com/prometheus/common/version"


def _prometheus_version_flags(version: str, revision: str) -> tuple[tuple[str, str], ...]:
    """The -X flags that Prometheus-family binaries read their --version output from."""
    return (
        (f"{_PROM_VERSION_PKG}.Version", version),
        (f"{_PROM_VERSION_PKG}.Revision", revision),
        (f"{_PROM_VERSION_PKG}.Branch", "go-module"),
        (f"{_PROM_VERSION_PKG}.BuildUser", "otel-dist"),
    )


_COLLECTOR_CORE = "go.opentelemetry.io/collector/"
_COLLECTOR_CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib/"

COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            name="otelcol",
            version=versions.OTELCOL_CORE_VERSION,
            binaries=(Binary("otelcol", ".", ("--version",)),),
            pins=(
                _exact(_COLLECTOR_CORE + "otelcol", versions.OTELCOL_CORE_VERSION),
                # Every collector module at one release: core 0.x and 1.x, contrib.
                Pin(
                    _COLLECTOR_CORE,
                    frozenset(
                        {
                            versions.OTELCOL_CORE_VERSION,
                            versions.OTELCOL_CORE_STABLE_VERSION,
                        }
                    ),
                    prefix=True,
                ),
                _exact(_COLLECTOR_CONTRIB, versions.OTELCOL_CONTRIB_VERSION, prefix=True),
            ),
            xflags=(("main.version", versions.OTELCOL_DIST_VERSION),),
        ),
        Component(
            name="prometheus",
            version=versions.PROMETHEUS_MODULE_VERSION,
            binaries=(
                Binary(
                    "prometheus",
                    "github.com/prometheus/prometheus/cmd/prometheus",
                    ("--version",),
                ),
                Binary(
                    "promtool",
                    "github.com/prometheus/prometheus/cmd/promtool",
                    ("--version",),
                ),
            ),
            pins=(
                _exact(
                    "github.com/prometheus/prometheus",
                    versions.PROMETHEUS_MODULE_VERSION,
                ),
            ),
            # remove_all_sd drops every service discovery but file_sd and http_sd
            # (prometheus/plugins/minimum.go); promtool links kubernetes SD anyway.
            tags=("remove_all_sd",),
            xflags=_prometheus_version_flags(versions.PROMETHEUS_VERSION, versions.PROMETHEUS_MODULE_VERSION),
        ),
        Component(
            name="alertmanager",
            version=versions.ALERTMANAGER_MODULE_VERSION,
            binaries=(
                Binary(
                    "alertmanager",
                    "github.com/prometheus/alertmanager/cmd/alertmanager",
                    ("--version",),
                ),
                Binary(
                    "amtool",
                    "github.com/prometheus/alertmanager/cmd/amtool",
                    ("--version",),
                ),
            ),
            pins=(
                _exact(
                    "github.com/prometheus/alertmanager",
                    versions.ALERTMANAGER_MODULE_VERSION,
                ),
            ),
            xflags=_prometheus_version_flags(versions.ALERTMANAGER_VERSION, versions.ALERTMANAGER_MODULE_VERSION),
        ),
        Component(
            name="jaeger",
            version=versions.JAEGER_MODULE_VERSION,
            binaries=(Binary("jaeger", "github.com/jaegertracing/jaeger/cmd/jaeger", ("version",)),),
            pins=(_exact("github.com/jaegertracing/jaeger", versions.JAEGER_MODULE_VERSION),),
            xflags=(
                (
                    "github.com/jaegertracing/jaeger/internal/version.latestVersion",
                    versions.JAEGER_VERSION,
                ),
                (
                    "github.com/jaegertracing/jaeger/internal/version.commitSHA",
                    f"go-module-{versions.JAEGER_MODULE_VERSION}",
                ),
            ),
        ),
        Component(
            name="victorialogs",
            version=versions.VICTORIALOGS_VERSION,
            binaries=(
                Binary(
                    "victoria-logs",
                    "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs",
                    ("-version",),
                ),
            ),
            pins=(
                _exact(
                    "github.com/VictoriaMetrics/VictoriaLogs",
                    versions.VICTORIALOGS_VERSION,
                ),
            ),
            xflags=(
                (
                    "github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version",
                    f"victoria-logs-{versions.VICTORIALOGS_VERSION}",
                ),
            ),
        ),
    )
}


class BuildError(RuntimeError):
    """A component failed to build: names it and shows the tail of the build output."""

    def __init__(self, component: str, step: str, detail: str) -> None:
        self.component = component
        self.step = step
        self.detail = detail
        super().__init__(f"building {component} failed at step '{step}': {detail}")


def cache_root() -> Path:
    """``$OTEL_DIST_CACHE``, else ``~/.cache/otel-dist``."""
    configured = os.environ.get("OTEL_DIST_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "otel-dist"


def recipe_hash(component: Component) -> str:
    """Hash the recipe directory's files and the component's build settings."""
    digest = hashlib.sha256()
    digest.update(json.dumps(component.build_spec(), sort_keys=True).encode())
    root = component.recipe_dir
    for path in sorted(p for p in root.rglob("*") if _is_recipe_file(p)):
        digest.update(b"\0" + path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _is_recipe_file(path: Path) -> bool:
    """Tell whether a file is part of a recipe (not a stray build output)."""
    return path.is_file() and (path.name in RECIPE_FILES or path.suffix == ".go")


def install_dir(component: Component) -> Path:
    """Where the component's binaries are (or will be) cached."""
    key = f"{component.name}-{component.version}-{recipe_hash(component)}"
    return cache_root() / "bin" / key


def resolve(names: Sequence[str] | None) -> list[Component]:
    """Map component or binary names to components, in build order, once each."""
    if not names:
        return list(COMPONENTS.values())
    by_binary = {b.name: c for c in COMPONENTS.values() for b in c.binaries}
    chosen: set[str] = set()
    for name in names:
        component = COMPONENTS.get(name) or by_binary.get(name)
        if component is None:
            known = sorted({*COMPONENTS, *by_binary})
            raise ValueError(f"unknown stack component {name!r}; known: {', '.join(known)}")
        chosen.add(component.name)
    return [c for c in COMPONENTS.values() if c.name in chosen]


def go_mod_requirements(go_mod: Path) -> dict[str, str]:
    """Return the ``require`` entries of a go.mod file: module path -> version."""
    requirements: dict[str, str] = {}
    in_block = False
    for raw in go_mod.read_text().splitlines():
        line = raw.split("//", 1)[0].strip()
        if in_block:
            if line == ")":
                in_block = False
                continue
            entry = line
        elif line == "require (":
            in_block = True
            continue
        elif line.startswith("require "):
            entry = line.removeprefix("require ").strip()
        else:
            continue
        match = re.fullmatch(r"(\S+)\s+(v\S+)", entry)
        if match:
            requirements[match.group(1)] = match.group(2)
    return requirements


def check_pins(component: Component) -> None:
    """Raise :class:`BuildError` unless the recipe's go.mod agrees with versions.py."""
    go_mod = component.recipe_dir / "go.mod"
    if not go_mod.is_file():
        raise BuildError(component.name, "check pins", f"{go_mod} is missing")
    requirements = go_mod_requirements(go_mod)
    problems: list[str] = []
    for pin in component.pins:
        matched = {m: v for m, v in requirements.items() if pin.matches(m)}
        if not matched:
            problems.append(f"no module {pin.module!r}{'*' if pin.prefix else ''} in go.mod")
        for module, version in sorted(matched.items()):
            if version not in pin.versions:
                wanted = " or ".join(sorted(pin.versions))
                problems.append(f"{module} is {version}, versions.py pins {wanted}")
    if problems:
        raise BuildError(component.name, "check pins", "; ".join(problems))


def _say(component: str, message: str, stream: TextIO | None = None) -> None:
    with _PRINT_LOCK:
        print(
            f"[stack build] {component}: {message}",
            file=stream or sys.stdout,
            flush=True,
        )


def _tail(log: Path, lines: int = FAILURE_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no build output)"
    return "\n".join(text[-lines:])


def _go_env() -> dict[str, str]:
    """Return the caller's environment plus our build flags.

    GOMODCACHE and GOCACHE stay at Go's defaults (or whatever the caller set).
    """
    env = dict(os.environ)
    env["CGO_ENABLED"] = CGO_ENABLED
    env["GOFLAGS"] = " ".join([*env.get("GOFLAGS", "").split(), *GOFLAGS_EXTRA])
    return env


def _run_step(
    component: Component,
    step: str,
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log: Path,
) -> float:
    """Run one build step, output appended to ``log``; return its seconds."""
    _say(component.name, f"{step} ...")
    start = time.monotonic()
    with log.open("a") as out:
        out.write(f"$ {shlex.join(argv)}\n")
        out.flush()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise BuildError(component.name, step, f"cannot run {argv[0]}: {exc}") from exc
        while True:
            try:
                code = proc.wait(timeout=HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                _say(
                    component.name,
                    f"{step} still running ({time.monotonic() - start:.0f}s)",
                )
    elapsed = time.monotonic() - start
    if code != 0:
        raise BuildError(
            component.name,
            step,
            f"exit status {code} after {elapsed:.1f}s; full output in {log}; last lines:\n" + _tail(log),
        )
    _say(component.name, f"{step} done in {elapsed:.1f}s")
    return elapsed


def _binaries_in(directory: Path, component: Component) -> dict[str, Path] | None:
    paths = {b.name: directory / b.name for b in component.binaries}
    if all(p.is_file() and os.access(p, os.X_OK) for p in paths.values()):
        return paths
    return None


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_component(component: Component) -> dict[str, Path]:
    """Return the component's cached binaries, building them first if missing."""
    target = install_dir(component)
    cached = _binaries_in(target, component)
    if cached is not None:
        _say(component.name, f"cached at {target}")
        return cached

    with _locked(target.parent / f".{component.name}.lock"):
        cached = _binaries_in(target, component)  # another process may have built it
        if cached is not None:
            _say(component.name, f"cached at {target}")
            return cached
        return _build(component, target)


def _build(component: Component, target: Path) -> dict[str, Path]:
    gobin = shutil.which("go")
    if gobin is None:
        raise BuildError(
            component.name,
            "find go",
            f"the Go toolchain ('go') is not on PATH; install Go >= {versions.GO_VERSION}",
        )
    start = time.monotonic()
    _say(component.name, f"building {component.version} into {target}")
    check_pins(component)

    logs = cache_root() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{target.name}.log"
    log.write_text("")
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    env = _go_env()
    cwd = component.recipe_dir
    steps: dict[str, float] = {}
    try:
        go_version = subprocess.run(
            [gobin, "env", "GOVERSION"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        steps["go mod download"] = _run_step(
            component,
            "go mod download",
            [gobin, "mod", "download"],
            cwd=cwd,
            env=env,
            log=log,
        )
        for binary in component.binaries:
            argv = [
                gobin,
                "build",
                "-ldflags",
                component.ldflags(),
                "-o",
                str(staging / binary.name),
            ]
            if component.tags:
                argv += ["-tags", ",".join(component.tags)]
            argv.append(binary.package)
            step = f"go build {binary.name}"
            steps[step] = _run_step(component, step, argv, cwd=cwd, env=env, log=log)
        for binary in component.binaries:
            step = f"smoke {binary.name} {' '.join(binary.version_args)}"
            steps[step] = _run_step(
                component,
                step,
                [str(staging / binary.name), *binary.version_args],
                cwd=staging,
                env=env,
                log=log,
            )
        info = {
            **component.build_spec(),
            "recipe_hash": recipe_hash(component),
            "go_version": go_version,
            "seconds": {k: round(v, 1) for k, v in steps.items()},
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
        if target.exists():  # an incomplete earlier result
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    _say(component.name, f"built in {time.monotonic() - start:.1f}s")
    built = _binaries_in(target, component)
    if built is None:  # pragma: no cover - the rename above makes this unreachable
        raise BuildError(component.name, "install", f"binaries missing from {target}")
    return built


def ensure_binaries(names: list[str] | None = None, *, jobs: int = 1) -> dict[str, Path]:
    """Build (or find cached) the named components; return binary name -> path.

    ``names`` are components or binary names (``None``: all). ``jobs`` builds up
    to that many components at once (at most 2: the machines have 2 cores and
    each Go build already uses both).
    """
    components = resolve(names)
    workers = max(1, min(jobs, 2, len(components)))
    results: dict[str, Path] = {}
    if workers == 1:
        for component in components:
            results.update(build_component(component))
        return results
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for built in pool.map(build_component, components):
            results.update(built)
    return results


def cached_binaries(names: list[str] | None = None) -> dict[str, Path | None]:
    """Binary name -> cached path, or None where that component is not built yet."""
    found: dict[str, Path | None] = {}
    for component in resolve(names):
        paths = _binaries_in(install_dir(component), component)
        for binary in component.binaries:
            found[binary.name] = paths[binary.name] if paths else None
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m otel_dist.stack.build",
        description="Build the stack's pinned binaries (instant when cached).",
    )
    parser.add_argument(
        "names",
        nargs="*",
        help=f"components or binaries (default: {' '.join(COMPONENTS)})",
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=1,
        help="components built at once (1 or 2; default 1)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="build nothing; exit 1 if any binary is not cached",
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            found = cached_binaries(args.names or None)
            for name, path in found.items():
                print(f"{name}\t{path or 'not built'}")
            return 0 if all(found.values()) else 1
        start = time.monotonic()
        paths = ensure_binaries(args.names or None, jobs=args.jobs)
    except BuildError as exc:
        print(f"[stack build] ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    except ValueError as exc:
        parser.error(str(exc))
    for name, path in paths.items():
        print(f"{name}\t{path}")
    print(f"[stack build] all done in {time.monotonic() - start:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
