"""Runbooks (runbooks/<AlertName>.md): their structure and their executable steps.

Fenced code blocks carry the language of the backend they run against: ``promql`` (Prometheus), ``logsql``
(VictoriaLogs, the local stack), ``logql`` (Loki, docker-compose), ``jaeger`` (a path of Jaeger's query API) and
``bash`` (amtool). Placeholders such as ``$service`` stand for the alert's labels (runbooks/README.md);
``substitute`` fills them in, longest name first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SECTIONS: Final = ("## Meaning", "## Impact", "## Diagnose", "## Mitigate", "## Silence")
#: Block languages every runbook must have: exact PromQL, traces, logs in both query languages, a silence.
REQUIRED_BLOCKS: Final = ("promql", "jaeger", "logsql", "logql", "bash")
PLACEHOLDERS: Final = ("$service", "$env", "$instance", "$route", "$request_id", "$trace_id", "$start", "$end")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[a-z]+)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language and its text (indentation removed)."""

    lang: str
    code: str


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    found = []
    for match in _FENCE.finditer(text):
        indent = match.group("indent")
        code_lines = [line.removeprefix(indent) for line in match.group("body").splitlines()]
        found.append(Block(match.group("lang"), "\n".join(code_lines).strip()))
    return found


def substitute(code: str, values: Mapping[str, str]) -> str:
    """Replace ``$name`` placeholders by ``values[name]``, longest names first (``$request_id`` before ``$re...``)."""
    for name in sorted(values, key=len, reverse=True):
        code = code.replace(f"${name}", values[name])
    return code


def runbook_paths(directory: Path) -> dict[str, Path]:
    """Alert name -> its runbook (every Markdown file but README.md)."""
    return {path.stem: path for path in sorted(directory.glob("*.md")) if path.name != "README.md"}
