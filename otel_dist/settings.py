"""Settings: every option resolved once, from one documented order, into a frozen object.

Order of precedence, highest first:

1. arguments to :func:`otel_dist.configure`;
2. environment variables (the standard ``OTEL_*`` ones and our ``OTEL_DIST_*`` ones);
3. the *profile* chosen by ``deployment.environment.name`` (``development``, ``staging``, ``production``);
4. built-in defaults.

This module is the only place in otel-dist that reads the environment. Everything downstream receives a
:class:`Settings` and passes the resolved values to the OpenTelemetry SDK explicitly, so changing the
environment after :func:`~otel_dist.configure` changes nothing.

A bad value never falls back silently: :func:`resolve` raises :class:`ConfigurationError` naming the
argument or variable, the value (unless it is secret) and what is accepted.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Final, Literal, TypedDict, cast
from urllib.parse import unquote, urlsplit

__all__ = [
    "PROFILES",
    "ConfigurationError",
    "Options",
    "OtlpSignalSettings",
    "Settings",
    "resolve",
]

Signal = Literal["traces", "metrics", "logs"]
SIGNALS: Final[tuple[Signal, ...]] = ("traces", "metrics", "logs")

#: The name of the request-ID attribute everywhere: JSON log lines, OTel log records, span attributes.
#: One name with no dots, so that Loki (which turns dots into underscores), VictoriaLogs and Jaeger all
#: see the same key and every query in the repo uses it unchanged.
REQUEST_ID_KEY: Final = "request_id"


class ConfigurationError(ValueError):
    """A setting has a value otel-dist cannot use.

    ``setting`` names the argument or environment variable; the message says what is accepted.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class Options(TypedDict, total=False):
    """Keyword arguments of :func:`otel_dist.configure`. Each overrides its environment variable."""

    service_name: str
    service_version: str
    environment: str
    resource_attributes: Mapping[str, str]
    sdk_disabled: bool
    traces_exporter: str
    metrics_exporter: str
    logs_exporter: str
    endpoint: str
    protocol: str
    headers: Mapping[str, str]
    export_timeout: float
    compression: str
    certificate: str
    client_key: str
    client_certificate: str
    headers_file: str
    sampler: str
    sampler_ratio: float
    propagators: str
    metric_export_interval: float
    metric_export_timeout: float
    histogram_aggregation: str
    exemplar_filter: str
    cardinality_limit: int
    prometheus_host: str
    prometheus_port: int
    prometheus_multiprocess_dir: str
    system_metrics: bool
    memory_limit: int
    filesystem_paths: str | list[str]
    log_format: str
    log_level: str
    capture_stdlib_logging: bool
    redact_keys: str
    redact_allow: str
    redact_path_params: str | list[str]
    attribute_value_length_limit: int
    attribute_count_limit: int
    span_event_count_limit: int
    span_link_count_limit: int
    span_queue_size: int
    span_batch_size: int
    span_schedule_delay: float
    span_export_timeout: float
    log_queue_size: int
    log_batch_size: int
    log_schedule_delay: float
    log_export_timeout: float
    shutdown_timeout: float
    handle_sigterm: bool
    request_id_header: str
    excluded_paths: str
    operation_spans: bool
    access_log: bool
    instrument_clients: bool
    db_slow_query_threshold: float
    fast_export: bool
    server_spans: str
    fast_recording: bool
    capture_request_headers: str | list[str]
    capture_response_headers: str | list[str]
    capture_headers_sanitize: str | list[str]


@dataclass(frozen=True, slots=True)
class OtlpSignalSettings:
    """The effective OTLP exporter settings of one signal (per-signal variables over the generic ones)."""

    endpoint: str
    protocol: str
    headers: Mapping[str, str]
    timeout: float
    compression: str
    insecure: bool
    certificate: str | None = None  # CA bundle that verifies the collector (https); None: the system's
    client_key: str | None = None  # mutual TLS: this client's key and certificate (PEM files)
    client_certificate: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved, immutable configuration. Build it with :func:`resolve`; never construct it field by field.

    Durations are in seconds. ``sources`` maps each field to where its value came from: ``argument``,
    ``env:NAME``, ``profile:NAME`` or ``default`` (``otel-dist doctor`` prints it).
    """

    service_name: str
    service_version: str | None
    environment: str | None
    resource_attributes: Mapping[str, str]
    sdk_disabled: bool
    traces_exporter: tuple[str, ...]
    metrics_exporter: tuple[str, ...]
    logs_exporter: tuple[str, ...]
    endpoint: str
    protocol: str
    headers: Mapping[str, str]
    export_timeout: float
    compression: str
    traces_endpoint: str | None
    metrics_endpoint: str | None
    logs_endpoint: str | None
    traces_protocol: str | None
    metrics_protocol: str | None
    logs_protocol: str | None
    traces_headers: Mapping[str, str] | None
    metrics_headers: Mapping[str, str] | None
    logs_headers: Mapping[str, str] | None
    traces_timeout: float | None
    metrics_timeout: float | None
    logs_timeout: float | None
    traces_compression: str | None
    metrics_compression: str | None
    logs_compression: str | None
    certificate: str | None
    client_key: str | None
    client_certificate: str | None
    traces_certificate: str | None
    metrics_certificate: str | None
    logs_certificate: str | None
    traces_client_key: str | None
    metrics_client_key: str | None
    logs_client_key: str | None
    traces_client_certificate: str | None
    metrics_client_certificate: str | None
    logs_client_certificate: str | None
    headers_file: Mapping[str, str]
    sampler: str
    sampler_ratio: float
    propagators: tuple[str, ...]
    metric_export_interval: float
    metric_export_timeout: float
    histogram_aggregation: str
    exemplar_filter: str
    cardinality_limit: int
    prometheus_host: str
    prometheus_port: int
    prometheus_multiprocess_dir: str | None
    system_metrics: bool
    memory_limit: int | None
    filesystem_paths: tuple[str, ...]
    log_format: str
    log_level: str
    capture_stdlib_logging: bool
    redact_keys: tuple[str, ...]
    redact_allow: tuple[str, ...]
    #: Path parameters whose values never leave the process (``url.path`` and the access line show
    #: ``/reset/[REDACTED]``), besides those with secret names (``{token}``, ``{api_key}``, ...).
    redact_path_params: tuple[str, ...]
    attribute_value_length_limit: int
    attribute_count_limit: int
    span_event_count_limit: int
    span_link_count_limit: int
    span_queue_size: int
    span_batch_size: int
    span_schedule_delay: float
    span_export_timeout: float
    log_queue_size: int
    log_batch_size: int
    log_schedule_delay: float
    log_export_timeout: float
    shutdown_timeout: float
    handle_sigterm: bool
    request_id_header: str
    excluded_paths: tuple[str, ...]
    operation_spans: bool
    access_log: bool
    instrument_clients: bool
    db_slow_query_threshold: float
    fast_export: bool
    #: "otel_dist": our own server span and HTTP metrics layer; "native": FastAPI's native telemetry (contrib ASGI
    #: middleware for other apps).
    server_spans: str
    #: Our layer's HTTP metrics through bound attribute sets and its span attributes without per-value validation.
    fast_recording: bool
    #: Header names (regular expressions, matched whole and case-insensitively) captured on server spans as
    #: http.request.header.<name> / http.response.header.<name>; the values of the sanitize ones are blanked.
    capture_request_headers: tuple[str, ...]
    capture_response_headers: tuple[str, ...]
    capture_headers_sanitize: tuple[str, ...]
    profile: str | None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def otlp(self, signal: Signal) -> OtlpSignalSettings:
        """The effective OTLP settings of ``signal``: its own variables first, then the generic ones.

        A generic HTTP endpoint gets the signal path appended (``/v1/traces``); a per-signal endpoint is
        used as given, as the OTLP exporter specification says.
        """
        protocol = getattr(self, f"{signal}_protocol") or self.protocol
        own_endpoint: str | None = getattr(self, f"{signal}_endpoint")
        if own_endpoint is not None:
            endpoint = own_endpoint
        elif protocol == "grpc":
            endpoint = self.endpoint
        else:
            parts = urlsplit(self.endpoint)
            endpoint = parts._replace(path=parts.path.rstrip("/") + f"/v1/{signal}").geturl()
        headers = getattr(self, f"{signal}_headers")
        timeout = getattr(self, f"{signal}_timeout")
        compression = getattr(self, f"{signal}_compression")
        # Headers from the file (OTEL_DIST_OTLP_HEADERS_FILE) under the ones given directly.
        effective_headers = {**self.headers_file, **(self.headers if headers is None else headers)}
        return OtlpSignalSettings(
            endpoint=endpoint,
            protocol=protocol,
            headers=MappingProxyType(effective_headers),
            timeout=self.export_timeout if timeout is None else timeout,
            compression=compression or self.compression,
            insecure=urlsplit(endpoint).scheme != "https",
            certificate=getattr(self, f"{signal}_certificate") or self.certificate,
            client_key=getattr(self, f"{signal}_client_key") or self.client_key,
            client_certificate=getattr(self, f"{signal}_client_certificate") or self.client_certificate,
        )

    @property
    def enabled_signals(self) -> tuple[Signal, ...]:
        """The signals with at least one exporter (pull-mode Prometheus counts for metrics)."""
        chosen = {"traces": self.traces_exporter, "metrics": self.metrics_exporter, "logs": self.logs_exporter}
        return tuple(s for s in SIGNALS if chosen[s] != ("none",))


# --------------------------------------------------------------------------------------------------------------
# Profiles: defaults keyed by deployment.environment.name. Environment variables and arguments override them.
# --------------------------------------------------------------------------------------------------------------

PROFILES: Final[Mapping[str, Mapping[str, Any]]] = MappingProxyType(
    {
        "development": MappingProxyType(
            {
                "log_format": "console",
                "log_level": "debug",
                "sampler": "parentbased_always_on",
                "sampler_ratio": 1.0,
                "metric_export_interval": 5.0,
                "span_schedule_delay": 1.0,
                "log_schedule_delay": 1.0,
            }
        ),
        "staging": MappingProxyType(
            {
                "log_format": "json",
                "log_level": "info",
                "sampler": "parentbased_always_on",
                "sampler_ratio": 1.0,
                "metric_export_interval": 30.0,
            }
        ),
        "production": MappingProxyType(
            {
                "log_format": "json",
                "log_level": "info",
                "sampler": "parentbased_traceidratio",
                "sampler_ratio": 0.1,
                "metric_export_interval": 60.0,
            }
        ),
    }
)

#: Common spellings of environment names, mapped to the profile they select.
PROFILE_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "dev": "development",
        "local": "development",
        "development": "development",
        "stage": "staging",
        "staging": "staging",
        "prod": "production",
        "production": "production",
    }
)

# --------------------------------------------------------------------------------------------------------------
# Parsers: each turns one raw value (a string from the environment, or a Python value from an argument) into a
# typed value, or raises ValueError saying what is accepted.
# --------------------------------------------------------------------------------------------------------------

Parser = Callable[[Any], Any]


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value.strip()


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("expected true or false")


def _choice(*accepted: str) -> Parser:
    def parse(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in accepted:
            return value.strip().lower()
        raise ValueError(f"expected one of: {', '.join(accepted)}")

    return parse


def _choices(*accepted: str, exclusive: str | None = None) -> Parser:
    """A comma-separated list whose items are all in ``accepted``; ``exclusive`` may only stand alone."""

    def parse(value: Any) -> tuple[str, ...]:
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        chosen = tuple(dict.fromkeys(str(i).strip().lower() for i in items if str(i).strip()))
        if not chosen or any(c not in accepted for c in chosen):
            raise ValueError(f"expected a comma-separated list of: {', '.join(accepted)}")
        if exclusive is not None and exclusive in chosen and len(chosen) > 1:
            raise ValueError(f"{exclusive!r} cannot be combined with other values")
        return chosen

    return parse


def _integer(minimum: int, maximum: int | None = None) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            number = value
        elif re.fullmatch(r"[+-]?[0-9]+", str(value).strip()):  # ASCII digits only: no 1_000, no other scripts
            number = int(str(value).strip())
        else:
            raise ValueError("expected an integer")
        if number < minimum or (maximum is not None and number > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ValueError(f"expected an integer {bounds}")
        return number

    return parse


def _seconds(minimum: float = 0.0, *, positive: bool = True) -> Parser:
    """A duration argument in seconds (int or float)."""

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("expected a number of seconds")
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise ValueError("expected a number of seconds") from None
        if not math.isfinite(number) or number < minimum or (positive and number <= 0):
            raise ValueError("expected a positive, finite number of seconds")
        return number

    return parse


def _env_milliseconds(value: Any) -> float:
    """The OTEL_* duration variables are integers in milliseconds; we keep seconds."""
    milliseconds = cast(int, _integer(1, 10**12)(value))  # about 30 years: anything larger is a typo
    return milliseconds / 1000.0


def _ratio(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number between 0 and 1")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("expected a number between 0 and 1") from None
    if not 0.0 <= number <= 1.0:
        raise ValueError("expected a number between 0 and 1")
    return number


def _key_values(value: Any) -> Mapping[str, str]:
    """``key=value`` pairs separated by commas, values percent-decoded (W3C Baggage octets), or a mapping."""
    if isinstance(value, Mapping):
        pairs = {str(k).strip(): str(v) for k, v in value.items()}
    else:
        pairs = {}
        for item in str(value).split(","):
            if not item.strip():
                continue
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                # Never echo the item: it may carry a credential.
                raise ValueError("expected comma-separated key=value pairs")
            pairs[unquote(key.strip())] = unquote(raw.strip())
    if any(not k for k in pairs):
        raise ValueError("expected comma-separated key=value pairs with non-empty keys")
    return MappingProxyType(pairs)


def _url(value: Any) -> str:
    text = _text(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("expected an http:// or https:// URL with a valid port") from None
    return text


def _file(value: Any) -> str:
    """A path to a readable file (certificates, keys): checked now, so a typo fails at start-up."""
    path = _text(value)
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise ValueError(f"cannot read the file: {error.strerror or error}") from None
    return path


def _key_values_file(value: Any) -> Mapping[str, str]:
    """Headers from a file (a mounted secret), in the OTEL_EXPORTER_OTLP_HEADERS syntax; lines join with commas."""
    try:
        path = _file(value)
    except ValueError as error:
        raise ValueError(f"{value!s}: {error}") from None  # the path is not the secret; the content is
    try:
        with open(path, encoding="utf-8") as handle:
            text = ",".join(line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#"))
    except (OSError, UnicodeDecodeError):
        raise ValueError("cannot read the file as UTF-8 text") from None
    try:
        return _key_values(text)
    except ValueError:
        raise ValueError(f"the file {path} does not hold key=value pairs (its content is not shown)") from None


def _byte_size(value: Any) -> int:
    """A size in bytes: an integer, optionally with a suffix K, M, G (powers of 1000) or Ki, Mi, Gi."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("expected a positive size in bytes")
        return value
    match = re.fullmatch(r"\s*(\d+)\s*(K|M|G|Ki|Mi|Gi)?\s*", str(value))
    if not match:
        raise ValueError("expected a size in bytes, e.g. 536870912, 512Mi or 2G")
    units = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    size = int(match.group(1)) * units[match.group(2)]
    if size <= 0:
        raise ValueError("expected a positive size in bytes")
    return size


def _header_name(value: Any) -> str:
    text = _text(value).lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", text):
        raise ValueError("expected an HTTP header name (letters, digits and -)")
    return text


def _paths(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    paths = tuple(str(i).strip().rstrip("/") or "/" for i in items if str(i).strip())
    if any(not p.startswith("/") or any(c in p for c in "?#* ") for p in paths):
        raise ValueError("expected comma-separated URL paths starting with / (each also excludes its sub-paths)")
    return paths


def _filesystem_paths(value: Any) -> tuple[str, ...]:
    """Comma-separated directories (or a list) whose filesystems are measured; ``none`` measures none.

    Each must exist now: a typo would otherwise leave the disk alerts silently without data.
    """
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    paths = tuple(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))
    if paths == ("none",):
        return ()
    if not paths:
        raise ValueError("expected comma-separated directories, or none")
    missing = [p for p in paths if not os.path.isdir(p)]
    if missing:
        raise ValueError(f"not a directory: {missing[0]} (expected comma-separated existing directories, or none)")
    return tuple(os.path.abspath(p) for p in paths)


def _word_list(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    words = tuple(str(i).strip().lower() for i in items if str(i).strip())
    if any(not re.fullmatch(r"[a-z0-9_.\-]+", w) for w in words):
        raise ValueError("expected a comma-separated list of field names (letters, digits, _ . -)")
    return words


def _header_patterns(value: Any) -> tuple[str, ...]:
    """Comma-separated header names or regular expressions (``x-tenant,x-.*-id``, ``.*`` for every header)."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    patterns = tuple(str(i).strip() for i in items if str(i).strip())
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{pattern!r} is not a regular expression ({error}): expected header names") from None
    return patterns


def _path_params(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    names = tuple(str(i).strip().lower() for i in items if str(i).strip())
    if any(not re.fullmatch(r"[a-z_][a-z0-9_]*", n) for n in names):
        raise ValueError(
            "expected a comma-separated list of path parameter names, as in /reset/{token} (letters, digits, _)"
        )
    return names


_PROTOCOLS = ("http/protobuf", "grpc")
_COMPRESSION = ("gzip", "none")
_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
PROPAGATORS: Final = ("tracecontext", "baggage", "b3", "b3multi", "none")

# --------------------------------------------------------------------------------------------------------------
# The table: one row per setting. env lists the variables in precedence order; secret settings never have their
# value printed in errors or by doctor.
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    default: Any
    parse: Parser
    env: tuple[str, ...] = ()
    env_parse: Parser | None = None  # when the environment form differs (milliseconds, strings)
    argument: bool = True  # False: environment only (per-signal OTLP overrides)
    secret: bool = False


def _per_signal(signal: Signal) -> list[_Spec]:
    upper = signal.upper()
    return [
        _Spec(f"{signal}_endpoint", None, _url, (f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT",), argument=False),
        _Spec(
            f"{signal}_protocol", None, _choice(*_PROTOCOLS), (f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL",), argument=False
        ),
        _Spec(
            f"{signal}_headers",
            None,
            _key_values,
            (f"OTEL_EXPORTER_OTLP_{upper}_HEADERS",),
            argument=False,
            secret=True,
        ),
        _Spec(
            f"{signal}_timeout",
            None,
            _seconds(),
            (f"OTEL_EXPORTER_OTLP_{upper}_TIMEOUT",),
            env_parse=_env_milliseconds,
            argument=False,
        ),
        _Spec(
            f"{signal}_compression",
            None,
            _choice(*_COMPRESSION),
            (f"OTEL_EXPORTER_OTLP_{upper}_COMPRESSION",),
            argument=False,
        ),
    ]


def _per_signal_tls(signal: Signal) -> list[_Spec]:
    upper = signal.upper()
    return [
        _Spec(f"{signal}_{name}", None, _file, (f"OTEL_EXPORTER_OTLP_{upper}_{name.upper()}",), argument=False)
        for name in ("certificate", "client_key", "client_certificate")
    ]


_SPECS: Final[tuple[_Spec, ...]] = (
    _Spec("sdk_disabled", False, _boolean, ("OTEL_SDK_DISABLED",)),
    _Spec(
        "traces_exporter", ("otlp",), _choices("otlp", "console", "none", exclusive="none"), ("OTEL_TRACES_EXPORTER",)
    ),
    _Spec(
        "metrics_exporter",
        ("otlp",),
        _choices("otlp", "console", "prometheus", "none", exclusive="none"),
        ("OTEL_METRICS_EXPORTER",),
    ),
    _Spec("logs_exporter", ("otlp",), _choices("otlp", "console", "none", exclusive="none"), ("OTEL_LOGS_EXPORTER",)),
    _Spec("endpoint", "http://127.0.0.1:4318", _url, ("OTEL_EXPORTER_OTLP_ENDPOINT",)),
    _Spec("protocol", "http/protobuf", _choice(*_PROTOCOLS), ("OTEL_EXPORTER_OTLP_PROTOCOL",)),
    _Spec("headers", MappingProxyType({}), _key_values, ("OTEL_EXPORTER_OTLP_HEADERS",), secret=True),
    _Spec("export_timeout", 10.0, _seconds(), ("OTEL_EXPORTER_OTLP_TIMEOUT",), env_parse=_env_milliseconds),
    _Spec("compression", "none", _choice(*_COMPRESSION), ("OTEL_EXPORTER_OTLP_COMPRESSION",)),
    *_per_signal("traces"),
    *_per_signal("metrics"),
    *_per_signal("logs"),
    # TLS between the app and the collector (https:// endpoints), per the OTLP exporter specification.
    _Spec("certificate", None, _file, ("OTEL_EXPORTER_OTLP_CERTIFICATE",)),
    _Spec("client_key", None, _file, ("OTEL_EXPORTER_OTLP_CLIENT_KEY",)),
    _Spec("client_certificate", None, _file, ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",)),
    *_per_signal_tls("traces"),
    *_per_signal_tls("metrics"),
    *_per_signal_tls("logs"),
    _Spec("headers_file", MappingProxyType({}), _key_values_file, ("OTEL_DIST_OTLP_HEADERS_FILE",), secret=True),
    _Spec("sampler", "parentbased_always_on", _choice(*_SAMPLERS), ("OTEL_TRACES_SAMPLER",)),
    _Spec("sampler_ratio", 1.0, _ratio, ("OTEL_TRACES_SAMPLER_ARG",)),
    _Spec(
        "propagators",
        ("tracecontext", "baggage"),
        _choices(*PROPAGATORS, exclusive="none"),
        ("OTEL_PROPAGATORS",),
    ),
    _Spec("metric_export_interval", 60.0, _seconds(), ("OTEL_METRIC_EXPORT_INTERVAL",), env_parse=_env_milliseconds),
    _Spec("metric_export_timeout", 10.0, _seconds(), ("OTEL_METRIC_EXPORT_TIMEOUT",), env_parse=_env_milliseconds),
    _Spec(
        "histogram_aggregation",
        "explicit_bucket_histogram",
        _choice("explicit_bucket_histogram", "base2_exponential_bucket_histogram"),
        ("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",),
    ),
    _Spec(
        "exemplar_filter",
        "trace_based",
        _choice("trace_based", "always_on", "always_off"),
        ("OTEL_METRICS_EXEMPLAR_FILTER",),
    ),
    _Spec("cardinality_limit", 2000, _integer(2), ("OTEL_DIST_METRIC_CARDINALITY_LIMIT",)),
    _Spec("prometheus_host", "127.0.0.1", _text, ("OTEL_EXPORTER_PROMETHEUS_HOST",)),
    _Spec("prometheus_port", 9464, _integer(0, 65535), ("OTEL_EXPORTER_PROMETHEUS_PORT",)),
    _Spec("prometheus_multiprocess_dir", None, _text, ("OTEL_DIST_PROMETHEUS_MULTIPROCESS_DIR",)),
    _Spec("system_metrics", True, _boolean, ("OTEL_DIST_SYSTEM_METRICS",)),
    _Spec("memory_limit", None, _byte_size, ("OTEL_DIST_MEMORY_LIMIT",)),
    # The working directory and the temporary directory: where services usually write (uploads, workspaces).
    _Spec("filesystem_paths", (".", tempfile.gettempdir()), _filesystem_paths, ("OTEL_DIST_FILESYSTEM_PATHS",)),
    _Spec("log_format", "json", _choice("json", "console"), ("OTEL_DIST_LOG_FORMAT",)),
    _Spec("log_level", "info", _choice("debug", "info", "warning", "error", "critical"), ("OTEL_DIST_LOG_LEVEL",)),
    _Spec("capture_stdlib_logging", True, _boolean, ("OTEL_DIST_CAPTURE_STDLIB_LOGGING",)),
    _Spec("redact_keys", (), _word_list, ("OTEL_DIST_REDACT_KEYS",)),
    _Spec("redact_allow", (), _word_list, ("OTEL_DIST_REDACT_ALLOW",)),
    _Spec("redact_path_params", (), _path_params, ("OTEL_DIST_REDACT_PATH_PARAMS",)),
    _Spec(
        "attribute_value_length_limit",
        4096,
        _integer(1),
        ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"),
    ),
    _Spec("attribute_count_limit", 128, _integer(1), ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT")),
    _Spec("span_event_count_limit", 128, _integer(0), ("OTEL_SPAN_EVENT_COUNT_LIMIT",)),
    _Spec("span_link_count_limit", 128, _integer(0), ("OTEL_SPAN_LINK_COUNT_LIMIT",)),
    _Spec("span_queue_size", 2048, _integer(1), ("OTEL_BSP_MAX_QUEUE_SIZE",)),
    _Spec("span_batch_size", 512, _integer(1), ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",)),
    _Spec("span_schedule_delay", 5.0, _seconds(), ("OTEL_BSP_SCHEDULE_DELAY",), env_parse=_env_milliseconds),
    _Spec("span_export_timeout", 30.0, _seconds(), ("OTEL_BSP_EXPORT_TIMEOUT",), env_parse=_env_milliseconds),
    _Spec("log_queue_size", 2048, _integer(1), ("OTEL_BLRP_MAX_QUEUE_SIZE",)),
    _Spec("log_batch_size", 512, _integer(1), ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",)),
    _Spec("log_schedule_delay", 1.0, _seconds(), ("OTEL_BLRP_SCHEDULE_DELAY",), env_parse=_env_milliseconds),
    _Spec("log_export_timeout", 30.0, _seconds(), ("OTEL_BLRP_EXPORT_TIMEOUT",), env_parse=_env_milliseconds),
    _Spec("shutdown_timeout", 5.0, _seconds(), ("OTEL_DIST_SHUTDOWN_TIMEOUT",)),
    _Spec("handle_sigterm", True, _boolean, ("OTEL_DIST_HANDLE_SIGTERM",)),
    _Spec("request_id_header", "x-request-id", _header_name, ("OTEL_DIST_REQUEST_ID_HEADER",)),
    _Spec("excluded_paths", ("/health", "/metrics"), _paths, ("OTEL_DIST_EXCLUDED_PATHS",)),
    _Spec("operation_spans", False, _boolean, ("OTEL_DIST_FASTAPI_OPERATION_SPANS",)),
    _Spec("access_log", True, _boolean, ("OTEL_DIST_ACCESS_LOG",)),
    _Spec("instrument_clients", True, _boolean, ("OTEL_DIST_INSTRUMENT_CLIENTS",)),
    _Spec("db_slow_query_threshold", 1.0, _seconds(), ("OTEL_DIST_DB_SLOW_QUERY_THRESHOLD",)),
    _Spec("fast_export", True, _boolean, ("OTEL_DIST_FAST_EXPORT",)),
    _Spec("server_spans", "otel_dist", _choice("otel_dist", "native"), ("OTEL_DIST_SERVER_SPANS",)),
    _Spec("fast_recording", True, _boolean, ("OTEL_DIST_FAST_RECORDING",)),
    # The contrib instrumentations' variables for captured headers: the same meaning under either server_spans.
    _Spec(
        "capture_request_headers", (), _header_patterns, ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",)
    ),
    _Spec(
        "capture_response_headers", (), _header_patterns, ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",)
    ),
    _Spec(
        "capture_headers_sanitize", (), _header_patterns, ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",)
    ),
)

_SPEC_BY_NAME: Final = {spec.name: spec for spec in _SPECS}
#: Every keyword configure() accepts.
OPTION_NAMES: Final[frozenset[str]] = frozenset(Options.__annotations__)
#: Names of settings whose values must never be printed.
SECRET_SETTINGS: Final[frozenset[str]] = frozenset(s.name for s in _SPECS if s.secret)


def _fail(setting: str, raw: Any, problem: str, *, secret: bool) -> ConfigurationError:
    shown = "<redacted>" if secret else repr(raw)
    return ConfigurationError(setting, f"invalid value {shown}: {problem}")


def _from_environment(spec: _Spec, environ: Mapping[str, str]) -> tuple[Any, str] | None:
    for variable in spec.env:
        raw = environ.get(variable)
        if raw is None or not raw.strip():
            continue  # the spec treats empty variables as unset
        try:
            return (spec.env_parse or spec.parse)(raw), f"env:{variable}"
        except ValueError as error:
            raise _fail(variable, raw, str(error), secret=spec.secret) from None
    return None


def _resolve_one(
    spec: _Spec,
    arguments: Mapping[str, Any],
    environ: Mapping[str, str],
    profile_name: str | None,
) -> tuple[Any, str]:
    if spec.argument and arguments.get(spec.name) is not None:
        raw = arguments[spec.name]
        try:
            return spec.parse(raw), "argument"
        except ValueError as error:
            raise _fail(f"configure(..., {spec.name}=)", raw, str(error), secret=spec.secret) from None
    from_env = _from_environment(spec, environ)
    if from_env is not None:
        return from_env
    if profile_name is not None and spec.name in PROFILES[profile_name]:
        return PROFILES[profile_name][spec.name], f"profile:{profile_name}"
    return spec.default, "default"


def _identity(
    arguments: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str], Mapping[str, str]]:
    """service.name, service.version, deployment.environment.name and the resource attributes.

    Each identity field has a variable of its own that wins over the attribute in OTEL_RESOURCE_ATTRIBUTES
    (OTEL_SERVICE_NAME over service.name, as the OTel spec says; OTEL_DIST_SERVICE_VERSION and
    OTEL_DIST_ENVIRONMENT likewise). Arguments win over both.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    attributes: dict[str, str] = {}
    attribute_sources: dict[str, str] = {}  # where each resource attribute came from
    raw_attributes = environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if raw_attributes.strip():
        try:
            attributes.update(_key_values(raw_attributes))
        except ValueError as error:
            raise _fail("OTEL_RESOURCE_ATTRIBUTES", raw_attributes, str(error), secret=False) from None
        attribute_sources.update(dict.fromkeys(attributes, "env:OTEL_RESOURCE_ATTRIBUTES"))
    sources["resource_attributes"] = "env:OTEL_RESOURCE_ATTRIBUTES" if attributes else "default"
    if arguments.get("resource_attributes") is not None:
        try:
            given = _key_values(arguments["resource_attributes"])
            attributes.update(given)
            attribute_sources.update(dict.fromkeys(given, "argument"))
        except ValueError as error:
            raise _fail(
                "configure(..., resource_attributes=)", arguments["resource_attributes"], str(error), secret=False
            ) from None
        sources["resource_attributes"] = "argument"

    def pick(name: str, argument: str, variable: str, attribute: str) -> None:
        if arguments.get(argument) is not None:
            try:
                values[name] = _text(arguments[argument])
            except ValueError as error:
                raise _fail(f"configure(..., {argument}=)", arguments[argument], str(error), secret=False) from None
            sources[name] = "argument"
        elif environ.get(variable, "").strip():
            values[name] = environ[variable].strip()
            sources[name] = f"env:{variable}"
        elif attributes.get(attribute, "").strip():
            values[name] = attributes[attribute].strip()
            sources[name] = attribute_sources[attribute]
        else:
            values[name] = None
            sources[name] = "default"

    pick("service_name", "service_name", "OTEL_SERVICE_NAME", "service.name")
    pick("environment", "environment", "OTEL_DIST_ENVIRONMENT", "deployment.environment.name")
    pick("service_version", "service_version", "OTEL_DIST_SERVICE_VERSION", "service.version")
    if values["service_name"] is None:
        values["service_name"] = "unknown_service:python"
    # These live in their own fields; keeping them in the mapping too would give two truths.
    for attribute in ("service.name", "deployment.environment.name", "service.version"):
        attributes.pop(attribute, None)
    return values, sources, MappingProxyType(attributes)


def resolve(arguments: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve ``arguments`` (configure()'s keywords) and ``environ`` (default: ``os.environ``) into Settings.

    Raises :class:`ConfigurationError` for an unknown argument or any bad value.
    """
    arguments = dict(arguments or {})
    environ = dict(os.environ if environ is None else environ)
    unknown = sorted(set(arguments) - OPTION_NAMES)
    if unknown:
        raise ConfigurationError(
            f"configure(..., {unknown[0]}=)", f"unknown argument; accepted: {', '.join(sorted(OPTION_NAMES))}"
        )

    values, sources, attributes = _identity(arguments, environ)
    environment = values["environment"]
    profile = PROFILE_ALIASES.get(environment.lower()) if environment else None

    for spec in _SPECS:
        values[spec.name], sources[spec.name] = _resolve_one(spec, arguments, environ, profile)

    _check_consistency(values, sources)
    return Settings(
        resource_attributes=attributes,
        profile=profile,
        sources=MappingProxyType(sources),
        **values,
    )


def _check_consistency(values: dict[str, Any], sources: Mapping[str, str]) -> None:
    """Rules that span several settings."""

    def origin(name: str) -> str:
        source = sources[name]
        if source.startswith("env:"):
            return source[4:]
        return f"configure(..., {name}=)" if source == "argument" else name

    for kind in ("span", "log"):
        batch, queue = f"{kind}_batch_size", f"{kind}_queue_size"
        if sources[batch] in ("default",) or sources[batch].startswith("profile:"):
            # A smaller queue given alone shrinks the default batch with it.
            values[batch] = min(values[batch], values[queue])
        if values[batch] > values[queue]:
            raise ConfigurationError(
                origin(f"{kind}_batch_size"),
                f"export batch size {values[f'{kind}_batch_size']} exceeds the queue size "
                f"{values[f'{kind}_queue_size']} ({origin(f'{kind}_queue_size')})",
            )
    if values["sampler"] in ("traceidratio", "parentbased_traceidratio"):
        return
    if sources["sampler_ratio"] in ("argument",) or sources["sampler_ratio"].startswith("env:"):
        # Setting a ratio that the chosen sampler ignores is almost always a mistake worth naming.
        raise ConfigurationError(
            origin("sampler_ratio"),
            f"a sampling ratio only applies to the traceidratio samplers, but the sampler is "
            f"{values['sampler']!r} ({origin('sampler')})",
        )


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(setting, value, source) rows for display, secrets redacted. Used by ``otel-dist doctor``."""
    rows: list[tuple[str, str, str]] = []
    for item in fields(settings):
        if item.name == "sources":
            continue
        value = getattr(settings, item.name)
        if item.name in SECRET_SETTINGS and value:
            shown = ", ".join(f"{k}=<redacted>" for k in value)
        elif isinstance(value, Mapping):
            shown = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, tuple):
            shown = ",".join(value) or "-"
        else:
            shown = "-" if value is None else str(value)
        rows.append((item.name, shown, settings.sources.get(item.name, "derived")))
    return rows
