"""Deterministic YAML for rendered files: keys in insertion order, lists indented, multi-line strings as blocks."""

from __future__ import annotations

from typing import Any


def dump(data: Any) -> str:
    """YAML text of ``data`` (dicts keep their order; strings with newlines become ``|`` blocks)."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
            return super().increase_indent(flow, False)

    def string(dumper: Any, value: str) -> Any:
        if "\n" in value:
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
        return dumper.represent_scalar("tag:yaml.org,2002:str", value)

    Dumper.add_representer(str, string)
    text: str = yaml.dump(
        data, Dumper=Dumper, sort_keys=False, width=100_000, allow_unicode=True, default_flow_style=False
    )
    return text
