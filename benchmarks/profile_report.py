"""Where the request path's CPU goes: a cProfile (pstats) file grouped into components.

Self time is grouped by the file (and, for otel-dist's own modules, the class or function) each function lives
in. Built-in functions (``~`` in pstats: ``dict.get``, ``orjson.dumps``, ``time.time_ns``, ...) and the pure-Python
standard library outside asyncio (``typing.get_origin``, ``urllib.parse.parse_qsl``, ``datetime``, ...) are
*transparent*: their self time goes to their callers' components, in proportion to the time each caller spent in
them, recursively up to the first caller that is not transparent. cProfile sees only the thread it ran in (the
request path); export threads are measured separately (micro_export.py, and the background-thread CPU of the
server runs).
"""

from __future__ import annotations

import pstats
from collections import defaultdict
from pathlib import Path
from typing import Any, Final

Func = tuple[str, int, str]
_ROOT: Final = str(Path(__file__).resolve().parents[1])

#: (component, [(path fragment, function name or None)]): first match wins, so specific entries come first.
COMPONENTS: Final[list[tuple[str, list[tuple[str, str | None]]]]] = [
    (
        "OTel log record emission (EmitOtelRecord: lean record into the batch queue, or SDK Logger.emit)",
        [
            ("otel_dist/logging/processors.py", "EmitOtelRecord"),
            ("otel_dist/logging/processors.py", "_attribute"),
            ("otel_dist/logging/processors.py", "_exception_of"),
            ("otel_dist/logs.py", None),
            ("otel_dist/otlp_encoding.py", None),
            ("opentelemetry/sdk/_logs/", None),
            ("opentelemetry/_logs/", None),
            ("opentelemetry/sdk/_shared_internal/", None),
        ],
    ),
    ("FastAPI native telemetry (server span wrapper, route naming)", [("fastapi/telemetry/", None)]),
    (
        "otel-dist server telemetry (server span start/end, attributes, bound HTTP metrics)",
        [("otel_dist/asgi/server_telemetry.py", None), ("otel_dist/bound_metrics.py", None)],
    ),
    (
        "otel-dist ASGI middleware (request ID, response headers, active-request count, body-size metrics call)",
        [
            ("otel_dist/asgi/middleware.py", None),
            ("otel_dist/asgi/request_id.py", None),
            ("otel_dist/context.py", None),
        ],
    ),
    ("access log fields (otel_dist/asgi/access_log.py)", [("otel_dist/asgi/access_log.py", None)]),
    (
        "otel-dist log processors (timestamp, identity, trace context, request ID, redaction)",
        [("otel_dist/logging/processors.py", None), ("otel_dist/scrubbing.py", None)],
    ),
    (
        "structlog dispatch + JSON rendering (orjson) + stdout write",
        [("structlog/", None), ("otel_dist/logging/setup.py", None)],
    ),
    (
        "metrics recording (SDK instruments, aggregation, exemplars)",
        [("opentelemetry/sdk/metrics/", None), ("opentelemetry/metrics/", None)],
    ),
    (
        "SDK span processing (start/end, sampler, ids, attributes, BatchSpanProcessor.on_end)",
        [
            ("opentelemetry/sdk/trace/", None),
            ("opentelemetry/trace/__init__", None),
            ("opentelemetry/trace/span.py", None),
            ("opentelemetry/sdk/util/", None),
            ("opentelemetry/attributes/", None),
            ("opentelemetry/util/", None),
            ("opentelemetry/semconv", None),
        ],
    ),
    (
        "OTel context + propagation (contextvars attach/detach, W3C extract)",
        [
            ("opentelemetry/context/", None),
            ("opentelemetry/propagate", None),
            ("opentelemetry/propagators/", None),
            ("opentelemetry/baggage/", None),
            ("opentelemetry/trace/propagation/", None),
        ],
    ),
    ("stdlib logging", [("logging/__init__.py", None)]),
    (
        "the app itself: FastAPI/Starlette routing, validation, serialisation, endpoint",
        [("fastapi/", None), ("starlette/", None), ("pydantic", None), ("anyio/", None), ("bench_app.py", None)],
    ),
    ("asyncio / driver / other", [("", None)]),
]


def _owner(filename: str, line: int) -> str:
    """The top-level class or function of a source file that contains ``line`` (EmitOtelRecord, _attribute)."""
    lines = _source(filename)[:line]
    for text in reversed(lines):
        if text.startswith(("class ", "def ", "async def ")):
            head = text.removeprefix("async ").split(None, 1)[1]
            return head.split("(")[0].split(":")[0].strip()
    return "?"


_SOURCES: dict[str, list[str]] = {}


def _source(filename: str) -> list[str]:
    if filename not in _SOURCES:
        try:
            with open(filename, encoding="utf-8") as source:
                _SOURCES[filename] = source.readlines()
        except OSError:
            _SOURCES[filename] = []
    return _SOURCES[filename]


OTHER: Final = COMPONENTS[-1][0]


def _explicit_component(func: Func) -> str | None:
    """The component a pattern names for ``func`` (None: only the catch-all matches)."""
    filename = func[0].replace("\\", "/")
    owner: str | None = None
    for component, patterns in COMPONENTS[:-1]:
        for fragment, name in patterns:
            if fragment not in filename:
                continue
            if name is None:
                return component
            owner = owner if owner is not None else _owner(func[0], func[1])
            if name == owner:
                return component
    return None


def _is_transparent(func: Func) -> bool:
    filename = func[0].replace("\\", "/")
    if func[0] == "~" or func[0].startswith("<"):
        return True
    stdlib = "/lib/python3" in filename and "site-packages" not in filename
    return stdlib and "/asyncio/" not in filename and _explicit_component(func) is None


def _is_builtin(func: Func) -> bool:
    return func[0] == "~" or func[0].startswith("<")


def _shares(func: Func, raw: dict[Func, Any], depth: int = 0) -> dict[str, float]:
    """How ``func``'s self time splits over components (transparent functions pass it to their callers)."""
    explicit = _explicit_component(func)
    if explicit is not None:
        return {explicit: 1.0}
    callers = raw.get(func, (0, 0, 0, 0, {}))[4]
    if not _is_transparent(func) or not callers or depth > 8:
        return {OTHER: 1.0}
    edge_total = sum(edge[2] for edge in callers.values())
    if edge_total <= 0:
        edge_total = float(len(callers))
        weights = dict.fromkeys(callers, 1.0 / edge_total)
    else:
        weights = {caller: edge[2] / edge_total for caller, edge in callers.items()}
    shares: dict[str, float] = defaultdict(float)
    for caller, weight in weights.items():
        for component, part in _shares(caller, raw, depth + 1).items():
            shares[component] += weight * part
    return shares


def component_of(func: Func, raw: dict[Func, Any]) -> str:
    shares = _shares(func, raw)
    return max(shares.items(), key=lambda item: item[1])[0]


def _label(func: Func) -> str:
    filename, line, name = func
    if _is_builtin(func):
        return name
    short = filename.replace("\\", "/")
    for marker in ("site-packages/", f"{_ROOT}/"):
        if marker in short:
            short = short.split(marker, 1)[1]
    return f"{short}:{line}({name})"


def analyse(path: str, requests: int, measured_us: float | None, top: int = 25) -> dict[str, Any]:
    """Components and top functions, as shares of the profiled time and as µs per request.

    ``measured_us`` (the unprofiled main-thread CPU per request) scales the shares: cProfile's own overhead
    inflates every Python call, so its absolute times are not the real ones.
    """
    stats = pstats.Stats(path)
    raw: dict[Func, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    by_component: dict[str, float] = defaultdict(float)
    for func, entry in raw.items():
        for component, part in _shares(func, raw).items():
            by_component[component] += entry[2] * part
    scale = (measured_us / (total / requests * 1e6)) if measured_us and total else 1.0
    components = [
        {
            "component": name,
            "share": seconds / total if total else 0.0,
            "profiled_us_per_request": seconds / requests * 1e6,
            "estimated_us_per_request": seconds / requests * 1e6 * scale,
        }
        for name, seconds in sorted(by_component.items(), key=lambda item: -item[1])
    ]
    functions = sorted(raw.items(), key=lambda item: -item[1][2])[:top]
    top_functions = [
        {
            "function": _label(func),
            "component": component_of(func, raw) + (" (via callers)" if _is_transparent(func) else ""),
            "calls_per_request": entry[1] / requests,
            "self_share": entry[2] / total if total else 0.0,
            "self_us_per_request": entry[2] / requests * 1e6 * scale,
            "cumulative_us_per_request": entry[3] / requests * 1e6 * scale,
        }
        for func, entry in functions
    ]
    return {
        "requests": requests,
        "profiled_us_per_request": total / requests * 1e6,
        "measured_us_per_request": measured_us,
        "components": components,
        "top_functions": top_functions,
    }
