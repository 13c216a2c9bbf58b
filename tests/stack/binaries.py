"""The stack's binaries for tests: built when missing, never skipped in CI.

With CI=true a missing binary is built (a cold build takes about 9 minutes; `./dev test` builds before pytest
starts, so this is the fallback) and a build failure fails the tests. Elsewhere a build failure (no Go
toolchain, no module proxy) skips them with the reason.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest

from otel_dist.stack.build import BuildError, ensure_binaries


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@cache
def _build() -> dict[str, Path] | str:
    try:
        return ensure_binaries()
    except BuildError as error:
        return str(error)


def stack_binaries() -> dict[str, Path]:
    """Binary name -> path; fails (CI) or skips (elsewhere) when they cannot be built."""
    built = _build()
    if isinstance(built, str):
        if in_ci():
            pytest.fail(f"the stack binaries could not be built: {built}")
        pytest.skip(f"the stack binaries could not be built: {built}")
    return built
