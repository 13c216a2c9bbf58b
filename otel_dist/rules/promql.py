"""Just enough PromQL and LogQL lexing to check which metrics and which stream labels a query uses.

Not a parser: it removes strings, label matchers, ranges and grouping clauses, then reads the identifiers that are
not functions or keywords. ``{__name__=~"..."}`` selectors are returned as regular expressions to match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

KEYWORDS: Final = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"inf", "nan", "Inf", "NaN", "atan2", "start", "end"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_REGEX = re.compile(r'__name__\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:$])[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*(\()?)")
_VARIABLE = re.compile(r"\$\{?\w+\}?")


@dataclass
class Names:
    """What a query reads: metric names, and regular expressions of ``__name__`` selectors."""

    metrics: set[str] = field(default_factory=set)
    regexes: set[str] = field(default_factory=set)


def metric_names(expr: str) -> Names:
    """The metric names (and ``__name__`` regexes) a PromQL expression reads; Grafana variables are ignored."""
    names = Names()
    for op, value in _NAME_REGEX.findall(expr):
        raw = value.replace('\\"', '"').replace("\\\\", "\\")
        if op == "=":
            names.metrics.add(raw)
        else:
            names.regexes.add(raw)
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub("", text)
    text = _BRACES.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    for match in _IDENT.finditer(text):
        word = match.group(0)
        if match.group(1) or word in KEYWORDS:
            continue  # a function call or aggregation, or a keyword
        names.metrics.add(word)
    return names


def stream_selector_labels(logql: str) -> set[str]:
    """Label names used in the stream selectors (``{...}``) of a LogQL query."""
    labels: set[str] = set()
    text = _VARIABLE.sub("", logql)
    for selector in re.findall(r"(?<!\{)\{([^{}]*)\}(?!\})", text):
        labels.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", selector))
    return labels
