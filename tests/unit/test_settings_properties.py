"""Property tests for settings resolution: whatever the environment holds, resolve() either returns Settings or
raises ConfigurationError naming the culprit, and encoded values come back exactly as they went in."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_dist.settings import ConfigurationError, Options, Settings, describe, resolve

FAST = settings(max_examples=200, deadline=None)

#: Every environment variable resolve() reads.
VARIABLES = (
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_DIST_ENVIRONMENT",
    "OTEL_DIST_SERVICE_VERSION",
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    *(
        f"OTEL_EXPORTER_OTLP_{signal}_{suffix}"
        for signal in ("TRACES", "METRICS", "LOGS")
        for suffix in ("ENDPOINT", "PROTOCOL", "HEADERS", "TIMEOUT", "COMPRESSION")
    ),
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_PROPAGATORS",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_METRIC_EXPORT_TIMEOUT",
    "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
    "OTEL_METRICS_EXEMPLAR_FILTER",
    "OTEL_DIST_METRIC_CARDINALITY_LIMIT",
    "OTEL_EXPORTER_PROMETHEUS_HOST",
    "OTEL_EXPORTER_PROMETHEUS_PORT",
    "OTEL_DIST_SYSTEM_METRICS",
    "OTEL_DIST_MEMORY_LIMIT",
    "OTEL_DIST_LOG_FORMAT",
    "OTEL_DIST_LOG_LEVEL",
    "OTEL_DIST_CAPTURE_STDLIB_LOGGING",
    "OTEL_DIST_REDACT_KEYS",
    "OTEL_DIST_REDACT_ALLOW",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BLRP_MAX_QUEUE_SIZE",
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BLRP_SCHEDULE_DELAY",
    "OTEL_BLRP_EXPORT_TIMEOUT",
    "OTEL_DIST_SHUTDOWN_TIMEOUT",
    "OTEL_DIST_HANDLE_SIGTERM",
)
SECRET_VARIABLES = frozenset(v for v in VARIABLES if v.endswith("_HEADERS"))

#: Words that are valid somewhere, and fragments that trip up parsers, so that examples reach past the first check.
VOCABULARY = (
    "otlp", "console", "none", "prometheus", "jaeger", "grpc", "http/protobuf", "gzip", "true", "FALSE",
    "always_on", "parentbased_traceidratio", "traceidratio", "tracecontext", "baggage", "b3",
    "dev", "prod", "staging", "json", "debug", "trace_based", "base2_exponential_bucket_histogram",
    "512Mi", "2G", "1K", "0Ki", "http://collector:4318", "https://collector", "http://[::1", "http://h:99999",
    "0", "1", "2", "0.5", "1.5", "-1", "nan", "inf", "1e400", "=", ",", "%", "%ZZ", "%2C", "%F0%9F", "a=b",
    "service.name=x", "deployment.environment.name=prod", " ", "\x00", "٣",
)  # fmt: skip

ARBITRARY_TEXT = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])))
ENV_VALUES = st.one_of(
    ARBITRARY_TEXT,
    st.sampled_from(VOCABULARY),
    st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=4).map(",".join),
    st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=3).map("".join),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.floats().map(str),
)


def resolve_or_error(arguments: dict[str, Any], environ: dict[str, str]) -> Settings | ConfigurationError:
    """Settings, or the ConfigurationError; any other exception propagates and fails the test."""
    try:
        return resolve(arguments, environ)
    except ConfigurationError as error:
        return error


def assert_well_formed(error: ConfigurationError) -> None:
    assert error.setting
    assert str(error).startswith(f"{error.setting}: ")
    assert len(str(error)) > len(error.setting) + 2


# --------------------------------------------------------------------------------------------------------------
# Arbitrary input: ConfigurationError or nothing
# --------------------------------------------------------------------------------------------------------------


@FAST
@given(environ=st.dictionaries(st.sampled_from(VARIABLES), ENV_VALUES, max_size=8))
def test_any_environment_resolves_or_raises_configuration_error(environ: dict[str, str]) -> None:
    outcome = resolve_or_error({}, environ)

    if isinstance(outcome, ConfigurationError):
        assert_well_formed(outcome)
    else:
        assert describe(outcome)  # a resolved Settings can always be displayed


@FAST
@given(variable=st.sampled_from(VARIABLES), value=ENV_VALUES)
def test_a_bad_variable_is_always_the_one_named(variable: str, value: str) -> None:
    outcome = resolve_or_error({}, {variable: value})

    if isinstance(outcome, ConfigurationError):
        assert_well_formed(outcome)
        assert outcome.setting == variable
        if variable in SECRET_VARIABLES:
            assert repr(value) not in str(outcome)
            assert "<redacted>" in str(outcome)


OPTION_NAMES = sorted(Options.__annotations__)
ARGUMENT_VALUES = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    ENV_VALUES,
    st.binary(max_size=8),
    st.lists(st.sampled_from(VOCABULARY), max_size=3),
    st.tuples(st.integers(), st.text(max_size=3)),
    st.dictionaries(ARBITRARY_TEXT, ARBITRARY_TEXT, max_size=3),
)


@FAST
@given(name=st.sampled_from(OPTION_NAMES), value=ARGUMENT_VALUES)
def test_any_argument_resolves_or_raises_configuration_error_naming_it(name: str, value: Any) -> None:
    outcome = resolve_or_error({name: value}, {})

    if isinstance(outcome, ConfigurationError):
        assert_well_formed(outcome)
        assert outcome.setting == f"configure(..., {name}=)"
        if name == "headers" and isinstance(value, str):
            assert repr(value) not in str(outcome)


@FAST
@given(name=st.text(min_size=1).filter(lambda name: name not in Options.__annotations__), value=ARGUMENT_VALUES)
def test_an_unknown_argument_is_always_rejected(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve({name: value}, {})

    assert caught.value.setting == f"configure(..., {name}=)"


# --------------------------------------------------------------------------------------------------------------
# Percent-encoded key=value lists round-trip
# --------------------------------------------------------------------------------------------------------------

IDENTITY_KEYS = {"service.name", "service.version", "deployment.environment.name"}
KEYS = st.text(min_size=1, max_size=20).filter(lambda key: key not in IDENTITY_KEYS)
PAIRS = st.dictionaries(KEYS, st.text(max_size=30), max_size=6)


def encode(pairs: dict[str, str]) -> str:
    """The W3C-Baggage-style form OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS use."""
    return ",".join(f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in pairs.items())


@FAST
@given(attributes=PAIRS)
def test_resource_attributes_round_trip_through_percent_encoding(attributes: dict[str, str]) -> None:
    resolved = resolve({}, {"OTEL_RESOURCE_ATTRIBUTES": encode(attributes)})

    assert dict(resolved.resource_attributes) == attributes


@FAST
@given(name=st.text(max_size=30), attributes=PAIRS)
def test_service_name_round_trips_through_resource_attributes(name: str, attributes: dict[str, str]) -> None:
    resolved = resolve({}, {"OTEL_RESOURCE_ATTRIBUTES": encode({**attributes, "service.name": name})})

    assert resolved.service_name == (name.strip() or "unknown_service:python")
    assert dict(resolved.resource_attributes) == attributes


@FAST
@given(
    headers=PAIRS,
    variable=st.sampled_from(sorted(SECRET_VARIABLES)),
)
def test_headers_round_trip_through_percent_encoding(headers: dict[str, str], variable: str) -> None:
    resolved = resolve({}, {variable: encode(headers)})

    signal = variable.removeprefix("OTEL_EXPORTER_OTLP_").removesuffix("HEADERS").rstrip("_").lower()
    if signal:
        assert dict(resolved.otlp(signal).headers) == headers  # type: ignore[arg-type]
    else:
        assert dict(resolved.headers) == headers
        assert all(dict(resolved.otlp(s).headers) == headers for s in ("traces", "metrics", "logs"))

    shown = {name: value for name, value, _ in describe(resolved)}
    header_row = shown[f"{signal}_headers" if signal else "headers"]
    assert header_row == (", ".join(f"{key}=<redacted>" for key in headers) or "-")


@FAST
@given(attributes=PAIRS, overrides=PAIRS)
def test_resource_attributes_argument_merges_over_the_variable(
    attributes: dict[str, str], overrides: dict[str, str]
) -> None:
    overrides = {key.strip(): value for key, value in overrides.items() if key.strip() not in IDENTITY_KEYS | {""}}

    resolved = resolve({"resource_attributes": overrides}, {"OTEL_RESOURCE_ATTRIBUTES": encode(attributes)})

    assert dict(resolved.resource_attributes) == {**attributes, **overrides}


# --------------------------------------------------------------------------------------------------------------
# Numbers with units
# --------------------------------------------------------------------------------------------------------------

UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
SPACE = st.sampled_from(["", " ", "  ", "\t"])


@FAST
@given(
    number=st.integers(min_value=1, max_value=10**12),
    unit=st.sampled_from(sorted(UNITS)),
    before=SPACE,
    between=SPACE,
    after=SPACE,
)
def test_byte_sizes_with_suffixes_parse_to_bytes(number: int, unit: str, before: str, between: str, after: str) -> None:
    text = f"{before}{number}{between}{unit}{after}"

    from_env = resolve({}, {"OTEL_DIST_MEMORY_LIMIT": text})
    from_argument = resolve({"memory_limit": text}, {})

    assert from_env.memory_limit == from_argument.memory_limit == number * UNITS[unit]


@FAST
@given(number=st.integers(min_value=1, max_value=2**70))
def test_byte_size_argument_may_be_a_plain_integer(number: int) -> None:
    assert resolve({"memory_limit": number}, {}).memory_limit == number


@FAST
@given(
    unit=st.sampled_from(sorted(UNITS)),
    bad_unit=st.sampled_from(["k", "m", "g", "KB", "MB", "GiB", "B", "T", "Ti", "ki", "%"]),
)
def test_zero_sizes_and_unknown_units_are_rejected(unit: str, bad_unit: str) -> None:
    for text in (f"0{unit}", f"512{bad_unit}"):
        with pytest.raises(ConfigurationError) as caught:
            resolve({}, {"OTEL_DIST_MEMORY_LIMIT": text})
        assert caught.value.setting == "OTEL_DIST_MEMORY_LIMIT"


@FAST
@given(milliseconds=st.integers(min_value=1, max_value=10**12))
def test_duration_variables_are_milliseconds(milliseconds: int) -> None:
    resolved = resolve(
        {},
        {
            "OTEL_EXPORTER_OTLP_TIMEOUT": str(milliseconds),
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": f" {milliseconds} ",
            "OTEL_METRIC_EXPORT_INTERVAL": str(milliseconds),
        },
    )

    assert resolved.export_timeout == milliseconds / 1000
    assert resolved.otlp("traces").timeout == milliseconds / 1000
    assert resolved.metric_export_interval == milliseconds / 1000


@FAST
@given(
    ratio=st.floats(min_value=0.0, max_value=1.0), sampler=st.sampled_from(["traceidratio", "parentbased_traceidratio"])
)
def test_sampler_ratios_between_zero_and_one_are_kept_exactly(ratio: float, sampler: str) -> None:
    resolved = resolve({}, {"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": repr(ratio)})

    assert resolved.sampler == sampler
    assert resolved.sampler_ratio == ratio
