from __future__ import annotations

from pathlib import Path

import pytest

from tests.stack.binaries import stack_binaries


@pytest.fixture(scope="session")
def binaries() -> dict[str, Path]:
    return stack_binaries()
