"""The documentation and the code name the same settings."""

from __future__ import annotations

from pathlib import Path

from otel_dist.settings import _SPECS, OPTION_NAMES

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_environment_variable_is_in_the_readme_table() -> None:
    missing = [variable for spec in _SPECS for variable in spec.env if f"`{variable}`" not in README]
    assert missing == []


def test_every_configure_argument_is_documented_and_backed_by_a_setting() -> None:
    identity = {"service_name", "service_version", "environment", "resource_attributes"}
    assert {spec.name for spec in _SPECS if spec.argument} == OPTION_NAMES - identity
    missing = [name for name in OPTION_NAMES if f"`{name}=`" not in README]
    assert missing == []
