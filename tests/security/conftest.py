"""The security tests run against the real stack, like the fault matrix: its fixtures, shared."""

from tests.reliability.conftest import apps, binaries, fault_repo, fault_stack, report  # noqa: F401
