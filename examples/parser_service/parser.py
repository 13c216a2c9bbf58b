"""A small Markdown parser with collectors, instrumented the way seed 000 asks, on otel-dist's public API only.

``parse(content, document_type=..., security_profile=...)``:

1. **Security validation** against the profile's limits (size, lines, nesting depth, tokens, template syntax).
   A violation is a ``security_event("validation_failure", reason=<validation type>)`` (counted, logged without
   the document) and raises :class:`ValidationFailed`: rejected input is not a parse error.
2. **The parse**, one ``track_operation("document.parse")`` labelled by document type, security profile and size
   bucket (small < 10 kB < medium < 100 kB < large), with the input size (the document size distribution) and
   the peak of Python memory during the parse (``track_memory``).
3. **Collectors** (headings, links, code blocks, tables, images), each one ``track_operation("document.collect")``
   labelled by collector and document type, under a cooperative deadline: a collector past its timeout raises
   ``TimeoutError`` (outcome ``timeout``), any other exception is outcome ``error``; the parse goes on without it
   and reports it in ``collector_errors``, as the seed's parse events do. A document whose structure is broken
   (a code fence never closed) fails the parse itself: :class:`MalformedDocument`, outcome ``error``.
4. One structured ``document.parsed`` log line per document (size, duration, collector errors).

Nothing here configures telemetry: without ``otel_dist.configure()`` in the process the metrics and spans are
no-ops, so the parser stays a library.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import otel_dist

log = otel_dist.get_logger("parser")

DOCUMENT_TYPES: Final = ("markdown", "readme", "changelog", "docs")


@dataclass(frozen=True)
class Profile:
    """The limits of a security profile."""

    max_bytes: int
    max_lines: int
    max_nesting: int
    max_tokens: int
    allow_templates: bool


PROFILES: Final = {
    "strict": Profile(100_000, 2_000, 8, 20_000, allow_templates=False),
    "moderate": Profile(1_000_000, 20_000, 16, 200_000, allow_templates=True),
    "permissive": Profile(10_000_000, 200_000, 64, 2_000_000, allow_templates=True),
}
#: Seconds each collector may run (seed 000: 2 s by default).
DEFAULT_COLLECTOR_TIMEOUT: Final = 2.0
_TEMPLATE = re.compile(r"\{\{|\{%")
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
_REFERENCE = re.compile(r"\[([^\]]+)\]\[([^\]]+)\]")
_DEFINITION = re.compile(r"^\s*\[([^\]]+)\]:\s*(\S+)")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


class ValidationFailed(ValueError):
    """The document breaks a limit of its security profile."""

    def __init__(self, validation_type: str, detail: str) -> None:
        super().__init__(f"{validation_type}: {detail}")
        self.validation_type = validation_type
        self.detail = detail


class MalformedDocument(ValueError):
    """The document cannot be parsed (a code fence never closed): a parse error, outcome ``error``."""


class Deadline:
    """A cooperative timeout: collectors call :meth:`check` as they go."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise TimeoutError(f"{self.what} exceeded {self.seconds:g}s")


@dataclass
class Parsed:
    """What a parse found."""

    document_type: str
    security_profile: str
    size_bucket: str
    size: int
    seconds: float = 0.0
    found: dict[str, list[Any]] = field(default_factory=dict)
    collector_errors: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "document_type": self.document_type,
            "security_profile": self.security_profile,
            "size_bucket": self.size_bucket,
            "size": self.size,
            "parse_time_ms": round(self.seconds * 1000, 3),
            "counts": {name: len(items) for name, items in sorted(self.found.items())},
            "collector_errors": self.collector_errors,
        }


def size_bucket(size: int) -> str:
    """small (< 10 kB), medium (< 100 kB), large."""
    if size < 10_000:
        return "small"
    if size < 100_000:
        return "medium"
    return "large"


def _nesting(line: str) -> int:
    stripped = line.lstrip(" >")
    quotes = line[: len(line) - len(stripped)].count(">")
    indent = (len(line) - len(line.lstrip(" "))) // 2
    return max(quotes, indent)


def validate(content: str, profile_name: str) -> None:
    """Raise ValidationFailed (and record a security event) when ``content`` breaks the profile's limits."""
    profile = PROFILES[profile_name]
    size = len(content.encode())
    lines = content.splitlines()
    checks: list[tuple[str, bool, str]] = [
        ("size_limit", size > profile.max_bytes, f"{size} bytes > {profile.max_bytes}"),
        ("line_count", len(lines) > profile.max_lines, f"{len(lines)} lines > {profile.max_lines}"),
    ]
    for validation_type, failed, detail in checks:
        if failed:
            _reject(validation_type, detail, content, profile_name)
    depth = max((_nesting(line) for line in lines), default=0)
    if depth > profile.max_nesting:
        _reject("nesting_depth", f"depth {depth} > {profile.max_nesting}", content, profile_name)
    tokens = len(content.split())
    if tokens > profile.max_tokens:
        _reject("token_count", f"{tokens} tokens > {profile.max_tokens}", content, profile_name)
    if not profile.allow_templates and _TEMPLATE.search(content):
        _reject("template_syntax", "template markers in a strict-profile document", content, profile_name)


def _reject(validation_type: str, detail: str, content: str, profile_name: str) -> None:
    # The document itself is never logged: only its length and a fingerprint (security_event's offending=).
    otel_dist.security_event(
        "validation_failure", reason=validation_type, offending=content, security_profile=profile_name, detail=detail
    )
    raise ValidationFailed(validation_type, detail)


# --- collectors ---------------------------------------------------------------------------------------------


def _headings(lines: list[str], deadline: Deadline) -> list[Any]:
    found = []
    for line in lines:
        deadline.check()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            found.append({"level": level, "text": line[level:].strip()})
    return found


def _links(lines: list[str], deadline: Deadline) -> list[Any]:
    """Inline links, and reference links resolved against their definitions (quadratic in the references)."""
    found = []
    definitions: list[tuple[str, str]] = []
    references: list[tuple[str, str]] = []
    for line in lines:
        deadline.check()
        found += [{"text": t, "url": u} for t, u in _LINK.findall(line)]
        references += _REFERENCE.findall(line)
        if match := _DEFINITION.match(line):
            definitions.append((match.group(1).lower(), match.group(2)))
    for text, ref in references:
        deadline.check()
        url = next((u for name, u in definitions if name == ref.lower()), None)
        found.append({"text": text, "url": url})
    return found


def _code_blocks(lines: list[str], deadline: Deadline) -> list[Any]:
    found, language, open_at = [], "", -1
    for number, line in enumerate(lines):
        deadline.check()
        if line.startswith("```"):
            if open_at < 0:
                language, open_at = line[3:].strip(), number
            else:
                found.append({"language": language, "lines": number - open_at - 1})
                open_at = -1
    return found


def _tables(lines: list[str], deadline: Deadline) -> list[Any]:
    found, rows = [], 0
    for line in [*lines, ""]:
        deadline.check()
        if line.startswith("|"):
            rows += 1
        elif rows:
            found.append({"rows": rows})
            rows = 0
    return found


def _images(lines: list[str], deadline: Deadline) -> list[Any]:
    found = []
    for line in lines:
        deadline.check()
        found += [{"alt": a, "src": s} for a, s in _IMAGE.findall(line)]
    return found


COLLECTORS: Final[dict[str, Callable[[list[str], Deadline], list[Any]]]] = {
    "headings": _headings,
    "links": _links,
    "code_blocks": _code_blocks,
    "tables": _tables,
    "images": _images,
}


def parse(
    content: str,
    *,
    document_type: str = "markdown",
    security_profile: str = "moderate",
    collector_timeout: float = DEFAULT_COLLECTOR_TIMEOUT,
) -> Parsed:
    """Validate, then parse ``content`` with every collector; see the module docstring."""
    if document_type not in DOCUMENT_TYPES:
        raise ValueError(f"document_type must be one of {', '.join(DOCUMENT_TYPES)}, got {document_type!r}")
    if security_profile not in PROFILES:
        raise ValueError(f"security_profile must be one of {', '.join(PROFILES)}, got {security_profile!r}")
    validate(content, security_profile)
    size = len(content.encode())
    result = Parsed(document_type, security_profile, size_bucket(size), size)
    started = time.perf_counter()
    labels = {
        "document.type": document_type,
        "security.profile": security_profile,
        "document.size_bucket": result.size_bucket,
    }
    with otel_dist.track_operation("document.parse", attributes=labels, input_size=size, track_memory=True) as op:
        lines = content.splitlines()
        op.set_attribute("document.lines", len(lines))
        for name, collect in COLLECTORS.items():
            attributes = {"collector.name": name, "document.type": document_type}
            try:
                with otel_dist.track_operation("document.collect", attributes=attributes, log_level="debug"):
                    result.found[name] = collect(lines, Deadline(collector_timeout, f"collector {name}"))
            except Exception as error:  # noqa: BLE001 - a failing collector must not fail the parse
                result.collector_errors.append({"collector": name, "error": type(error).__name__})
        fences = sum(1 for line in lines if line.startswith("```"))
        if fences % 2:
            raise MalformedDocument(f"a code fence is never closed ({fences} fence lines)")
    result.seconds = time.perf_counter() - started
    log.info(
        "document.parsed",
        event_type="parse_complete",
        document_size=size,
        parse_time_ms=round(result.seconds * 1000, 3),
        collector_errors=result.collector_errors,
        **{k.replace(".", "_"): v for k, v in labels.items()},
    )
    return result
