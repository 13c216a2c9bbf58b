"""How configure() arguments, environment variables, profiles and defaults become one frozen Settings.

Every test passes an explicit ``environ`` to :func:`resolve`, so none of them reads or changes ``os.environ``
(except the one test that proves exactly that).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from otel_dist.settings import PROFILES, ConfigurationError, Settings, describe, resolve

DEFAULT_SERVICE_NAME = "unknown_service:python"


def settings(environ: dict[str, str] | None = None, **arguments: Any) -> Settings:
    """resolve() the way configure(**arguments) would, with ``environ`` as the whole environment."""
    return resolve(arguments, environ or {})


def configuration_error(environ: dict[str, str] | None = None, **arguments: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        settings(environ, **arguments)
    return caught.value


# --------------------------------------------------------------------------------------------------------------
# Precedence: argument > environment variable > profile > default
# --------------------------------------------------------------------------------------------------------------


def test_log_level_comes_from_the_highest_layer_that_sets_it() -> None:
    default = settings()
    assert default.log_level == "info"
    assert default.sources["log_level"] == "default"

    from_profile = settings({"OTEL_DIST_ENVIRONMENT": "development"})
    assert from_profile.log_level == "debug"
    assert from_profile.sources["log_level"] == "profile:development"

    from_env = settings({"OTEL_DIST_ENVIRONMENT": "development", "OTEL_DIST_LOG_LEVEL": "warning"})
    assert from_env.log_level == "warning"
    assert from_env.sources["log_level"] == "env:OTEL_DIST_LOG_LEVEL"

    from_argument = settings(
        {"OTEL_DIST_ENVIRONMENT": "development", "OTEL_DIST_LOG_LEVEL": "warning"}, log_level="error"
    )
    assert from_argument.log_level == "error"
    assert from_argument.sources["log_level"] == "argument"


@dataclass(frozen=True)
class Layers:
    """One setting as each layer would set it, and the value each layer should produce."""

    name: str
    default: Any
    profile: str
    from_profile: Any
    variable: str
    env_value: str
    from_env: Any
    argument: Any
    from_argument: Any


LAYERED = [
    Layers("log_level", "info", "development", "debug", "OTEL_DIST_LOG_LEVEL", "WARNING", "warning", "error", "error"),
    Layers(
        "log_format", "json", "development", "console", "OTEL_DIST_LOG_FORMAT", "json", "json", "console", "console"
    ),
    Layers(
        "sampler",
        "parentbased_always_on",
        "production",
        "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER",
        "traceidratio",
        "traceidratio",
        "parentbased_traceidratio",
        "parentbased_traceidratio",
    ),
    # production's sampler is a ratio sampler, so a ratio from the environment or an argument is meaningful.
    Layers("sampler_ratio", 1.0, "production", 0.1, "OTEL_TRACES_SAMPLER_ARG", "0.25", 0.25, 0.5, 0.5),
    # The environment variable is in milliseconds, the argument in seconds.
    Layers("metric_export_interval", 60.0, "staging", 30.0, "OTEL_METRIC_EXPORT_INTERVAL", "20000", 20.0, 15, 15.0),
    Layers("span_schedule_delay", 5.0, "development", 1.0, "OTEL_BSP_SCHEDULE_DELAY", "250", 0.25, 0.5, 0.5),
]


@pytest.mark.parametrize("layers", LAYERED, ids=lambda layers: layers.name)
def test_each_layer_overrides_the_ones_below_it(layers: Layers) -> None:
    profile_env = {"OTEL_DIST_ENVIRONMENT": layers.profile}
    full_env = {**profile_env, layers.variable: layers.env_value}

    default = settings()
    profiled = settings(profile_env)
    from_env = settings(full_env)
    from_argument = settings(full_env, **{layers.name: layers.argument})

    assert getattr(default, layers.name) == layers.default
    assert getattr(profiled, layers.name) == layers.from_profile
    assert getattr(from_env, layers.name) == layers.from_env
    assert getattr(from_argument, layers.name) == layers.from_argument

    assert default.sources[layers.name] == "default"
    assert profiled.sources[layers.name] == f"profile:{layers.profile}"
    assert from_env.sources[layers.name] == f"env:{layers.variable}"
    assert from_argument.sources[layers.name] == "argument"


def test_an_argument_of_none_means_not_given() -> None:
    resolved = settings({"OTEL_DIST_LOG_LEVEL": "warning"}, log_level=None)

    assert resolved.log_level == "warning"
    assert resolved.sources["log_level"] == "env:OTEL_DIST_LOG_LEVEL"


def test_span_specific_limit_variable_beats_the_generic_one() -> None:
    generic_only = settings({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "100"})
    both = settings({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "100", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "200"})

    assert generic_only.attribute_value_length_limit == 100
    assert generic_only.sources["attribute_value_length_limit"] == "env:OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"
    assert both.attribute_value_length_limit == 200
    assert both.sources["attribute_value_length_limit"] == "env:OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"


def test_every_field_records_a_source() -> None:
    resolved = settings()

    fields_with_sources = {f.name for f in dataclasses.fields(Settings)} - {"sources", "profile"}
    assert fields_with_sources <= set(resolved.sources)
    assert set(resolved.sources.values()) == {"default"}


# --------------------------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "profile"),
    [
        ("development", "development"),
        ("dev", "development"),
        ("local", "development"),
        ("staging", "staging"),
        ("stage", "staging"),
        ("production", "production"),
        ("prod", "production"),
        ("PROD", "production"),
        ("Production", "production"),
        (" prod ", "production"),
    ],
)
def test_environment_names_and_aliases_select_a_profile(name: str, profile: str) -> None:
    resolved = settings({"OTEL_DIST_ENVIRONMENT": name})

    assert resolved.profile == profile
    assert resolved.environment == name.strip()  # the name as given is kept; only the profile is canonical
    for setting, value in PROFILES[profile].items():
        assert getattr(resolved, setting) == value
        assert resolved.sources[setting] == f"profile:{profile}"


@pytest.mark.parametrize(
    ("environ", "arguments", "source"),
    [
        ({}, {"environment": "prod"}, "argument"),
        ({"OTEL_DIST_ENVIRONMENT": "prod"}, {}, "env:OTEL_DIST_ENVIRONMENT"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod"}, {}, "env:OTEL_RESOURCE_ATTRIBUTES"),
    ],
    ids=["argument", "OTEL_DIST_ENVIRONMENT", "resource-attribute"],
)
def test_the_environment_can_be_chosen_three_ways(
    environ: dict[str, str], arguments: dict[str, Any], source: str
) -> None:
    resolved = settings(environ, **arguments)

    assert resolved.environment == "prod"
    assert resolved.profile == "production"
    assert resolved.sources["environment"] == source
    assert resolved.sampler == "parentbased_traceidratio"
    assert resolved.sampler_ratio == 0.1


def test_environment_argument_beats_variable_beats_resource_attribute() -> None:
    everything = {
        "OTEL_DIST_ENVIRONMENT": "staging",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=production",
    }

    assert settings(everything).profile == "staging"
    assert settings(everything, environment="dev").profile == "development"
    assert settings({"OTEL_RESOURCE_ATTRIBUTES": everything["OTEL_RESOURCE_ATTRIBUTES"]}).profile == "production"


def test_environment_is_not_duplicated_in_resource_attributes() -> None:
    resolved = settings({"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,team=payments"})

    assert resolved.environment == "prod"
    assert dict(resolved.resource_attributes) == {"team": "payments"}


def test_an_unknown_environment_name_selects_no_profile() -> None:
    resolved = settings({"OTEL_DIST_ENVIRONMENT": "qa"})

    assert resolved.environment == "qa"
    assert resolved.profile is None
    assert resolved == dataclasses.replace(settings(), environment="qa")
    assert resolved.sources["log_level"] == "default"


def test_no_environment_means_no_profile() -> None:
    resolved = settings()

    assert resolved.environment is None
    assert resolved.profile is None
    assert resolved.sources["environment"] == "default"


def test_a_variable_overrides_one_profile_value_and_keeps_the_rest() -> None:
    resolved = settings({"OTEL_DIST_ENVIRONMENT": "production", "OTEL_TRACES_SAMPLER": "always_on"})

    assert resolved.sampler == "always_on"
    assert resolved.sources["sampler"] == "env:OTEL_TRACES_SAMPLER"
    # The profile's ratio is not the user's mistake, so it does not conflict with a non-ratio sampler.
    assert resolved.sampler_ratio == 0.1
    assert resolved.log_format == "json"
    assert resolved.sources["log_format"] == "profile:production"


def test_profiles_cannot_be_modified() -> None:
    with pytest.raises(TypeError):
        PROFILES["production"]["log_level"] = "debug"  # type: ignore[index]


# --------------------------------------------------------------------------------------------------------------
# Identity: service.name, service.version, resource attributes
# --------------------------------------------------------------------------------------------------------------


def test_service_name_defaults_to_unknown_service() -> None:
    resolved = settings()

    assert resolved.service_name == DEFAULT_SERVICE_NAME
    assert resolved.sources["service_name"] == "default"


def test_service_name_from_resource_attributes() -> None:
    resolved = settings({"OTEL_RESOURCE_ATTRIBUTES": "service.name=checkout,team=payments"})

    assert resolved.service_name == "checkout"
    assert resolved.sources["service_name"] == "env:OTEL_RESOURCE_ATTRIBUTES"
    assert dict(resolved.resource_attributes) == {"team": "payments"}


def test_otel_service_name_beats_service_name_in_resource_attributes() -> None:
    resolved = settings({"OTEL_SERVICE_NAME": "checkout", "OTEL_RESOURCE_ATTRIBUTES": "service.name=other"})

    assert resolved.service_name == "checkout"
    assert resolved.sources["service_name"] == "env:OTEL_SERVICE_NAME"
    assert "service.name" not in resolved.resource_attributes


def test_service_name_argument_beats_both_variables() -> None:
    environ = {"OTEL_SERVICE_NAME": "from-variable", "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attribute"}

    resolved = settings(environ, service_name="  from-argument  ")

    assert resolved.service_name == "from-argument"
    assert resolved.sources["service_name"] == "argument"


def test_resource_attribute_values_are_percent_decoded() -> None:
    resolved = settings(
        {"OTEL_RESOURCE_ATTRIBUTES": "service.name=checkout%20api,team=a%2Cb,note=x%3Dy,path=%2Fsrv,emoji=%F0%9F%9A%80"}
    )

    assert resolved.service_name == "checkout api"
    assert dict(resolved.resource_attributes) == {"team": "a,b", "note": "x=y", "path": "/srv", "emoji": "🚀"}


def test_resource_attribute_pairs_are_trimmed_and_empty_items_skipped() -> None:
    resolved = settings({"OTEL_RESOURCE_ATTRIBUTES": " team = payments ,, region=eu-west-1 ,"})

    assert dict(resolved.resource_attributes) == {"team": "payments", "region": "eu-west-1"}


def test_service_version_sources() -> None:
    assert settings().service_version is None
    assert settings().sources["service_version"] == "default"

    from_attribute = settings({"OTEL_RESOURCE_ATTRIBUTES": "service.version=1.2.3,team=payments"})
    assert from_attribute.service_version == "1.2.3"
    assert from_attribute.sources["service_version"] == "env:OTEL_RESOURCE_ATTRIBUTES"
    assert dict(from_attribute.resource_attributes) == {"team": "payments"}

    environ = {"OTEL_RESOURCE_ATTRIBUTES": "service.version=1.2.3", "OTEL_DIST_SERVICE_VERSION": "2.0.0"}
    from_variable = settings(environ)
    assert from_variable.service_version == "2.0.0"
    assert from_variable.sources["service_version"] == "env:OTEL_DIST_SERVICE_VERSION"
    assert "service.version" not in from_variable.resource_attributes

    from_argument = settings(environ, service_version="3.0.0")
    assert from_argument.service_version == "3.0.0"
    assert from_argument.sources["service_version"] == "argument"


def test_resource_attributes_argument_merges_over_the_variable() -> None:
    resolved = settings(
        {"OTEL_RESOURCE_ATTRIBUTES": "team=payments,region=eu"},
        resource_attributes={"region": "us", "tier": "gold"},
    )

    assert dict(resolved.resource_attributes) == {"team": "payments", "region": "us", "tier": "gold"}
    assert resolved.sources["resource_attributes"] == "argument"


def test_resource_attributes_source_is_the_variable_when_only_it_is_set() -> None:
    assert settings({"OTEL_RESOURCE_ATTRIBUTES": "team=payments"}).sources["resource_attributes"] == (
        "env:OTEL_RESOURCE_ATTRIBUTES"
    )
    assert settings().sources["resource_attributes"] == "default"


def test_service_name_in_the_resource_attributes_argument_is_used() -> None:
    resolved = settings(resource_attributes={"service.name": "checkout", "team": "payments"})

    assert resolved.service_name == "checkout"
    assert dict(resolved.resource_attributes) == {"team": "payments"}


def test_identity_from_the_resource_attributes_argument_is_sourced_to_the_argument() -> None:
    resolved = settings(
        {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-env,team=payments"},
        resource_attributes={"service.name": "checkout", "service.version": "1.0"},
    )

    assert resolved.service_name == "checkout"
    assert resolved.service_version == "1.0"
    assert resolved.sources["service_name"] == "argument"
    assert resolved.sources["service_version"] == "argument"
    assert dict(resolved.resource_attributes) == {"team": "payments"}


# --------------------------------------------------------------------------------------------------------------
# OTLP exporter settings per signal
# --------------------------------------------------------------------------------------------------------------

SIGNALS = ("traces", "metrics", "logs")


@pytest.mark.parametrize("signal", SIGNALS)
def test_otlp_defaults(signal: str) -> None:
    otlp = settings().otlp(signal)  # type: ignore[arg-type]

    assert otlp.endpoint == f"http://127.0.0.1:4318/v1/{signal}"
    assert otlp.protocol == "http/protobuf"
    assert dict(otlp.headers) == {}
    assert otlp.timeout == 10.0
    assert otlp.compression == "none"
    assert otlp.insecure is True


@pytest.mark.parametrize(
    ("generic", "expected_traces"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("http://gateway/otlp", "http://gateway/otlp/v1/traces"),
    ],
)
def test_generic_http_endpoint_gets_the_signal_path_appended(generic: str, expected_traces: str) -> None:
    resolved = settings({"OTEL_EXPORTER_OTLP_ENDPOINT": generic})

    assert resolved.endpoint == generic
    assert resolved.otlp("traces").endpoint == expected_traces
    assert resolved.otlp("logs").endpoint == expected_traces.replace("/v1/traces", "/v1/logs")


def test_per_signal_endpoint_is_used_as_given() -> None:
    resolved = settings(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/custom/path",
        }
    )

    assert resolved.otlp("traces").endpoint == "http://tempo:4318/custom/path"
    assert resolved.otlp("metrics").endpoint == "http://collector:4318/v1/metrics"
    assert resolved.sources["traces_endpoint"] == "env:OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


def test_grpc_endpoint_is_used_as_given() -> None:
    resolved = settings({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})

    for signal in SIGNALS:
        assert resolved.otlp(signal).endpoint == "http://collector:4317"  # type: ignore[arg-type]
        assert resolved.otlp(signal).protocol == "grpc"  # type: ignore[arg-type]


def test_per_signal_protocol_overrides_the_generic_one() -> None:
    resolved = settings(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "GRPC",
        }
    )

    assert resolved.otlp("metrics").protocol == "grpc"
    assert resolved.otlp("metrics").endpoint == "http://collector:4317"
    assert resolved.otlp("traces").protocol == "http/protobuf"
    assert resolved.otlp("traces").endpoint == "http://collector:4317/v1/traces"


def test_per_signal_headers_replace_the_generic_ones() -> None:
    resolved = settings(
        {
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme,authorization=Bearer%20generic",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=Bearer%20traces",
        }
    )

    assert dict(resolved.otlp("traces").headers) == {"authorization": "Bearer traces"}
    assert dict(resolved.otlp("metrics").headers) == {"x-tenant": "acme", "authorization": "Bearer generic"}


def test_timeouts_from_the_environment_are_milliseconds() -> None:
    resolved = settings({"OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "500"})

    assert resolved.export_timeout == 2.5
    assert resolved.otlp("traces").timeout == 2.5
    assert resolved.otlp("metrics").timeout == 2.5
    assert resolved.otlp("logs").timeout == 0.5


def test_timeout_argument_is_seconds() -> None:
    resolved = settings({"OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}, export_timeout=3)

    assert resolved.export_timeout == 3.0
    assert resolved.otlp("traces").timeout == 3.0


def test_per_signal_compression_overrides_the_generic_one() -> None:
    resolved = settings({"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "none"})

    assert resolved.otlp("traces").compression == "gzip"
    assert resolved.otlp("metrics").compression == "none"
    assert resolved.otlp("logs").compression == "gzip"


def test_https_endpoints_are_secure() -> None:
    resolved = settings(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example.com",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://loki:4318/otlp/v1/logs",
        }
    )

    assert resolved.otlp("traces").endpoint == "https://collector.example.com/v1/traces"
    assert resolved.otlp("traces").insecure is False
    assert resolved.otlp("metrics").insecure is False
    assert resolved.otlp("logs").insecure is True


def test_otlp_arguments_beat_variables() -> None:
    resolved = settings(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://from-env:4318", "OTEL_EXPORTER_OTLP_HEADERS": "a=env"},
        endpoint="https://from-argument:4318",
        headers={"a": "argument"},
        compression="gzip",
        protocol="grpc",
    )
    traces = resolved.otlp("traces")

    assert traces.endpoint == "https://from-argument:4318"
    assert dict(traces.headers) == {"a": "argument"}
    assert traces.compression == "gzip"
    assert traces.protocol == "grpc"
    assert traces.insecure is False


# --------------------------------------------------------------------------------------------------------------
# Exporter lists
# --------------------------------------------------------------------------------------------------------------


def test_exporters_default_to_otlp_and_all_signals_are_enabled() -> None:
    resolved = settings()

    assert resolved.traces_exporter == resolved.metrics_exporter == resolved.logs_exporter == ("otlp",)
    assert resolved.enabled_signals == ("traces", "metrics", "logs")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("otlp,console", ("otlp", "console")),
        (" OTLP , Console ", ("otlp", "console")),
        ("console,otlp,console", ("console", "otlp")),
        ("otlp,,", ("otlp",)),
        ("none", ("none",)),
    ],
)
def test_exporter_lists(value: str, expected: tuple[str, ...]) -> None:
    assert settings({"OTEL_TRACES_EXPORTER": value}).traces_exporter == expected


def test_none_disables_a_signal() -> None:
    resolved = settings({"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"})

    assert resolved.enabled_signals == ("metrics",)


def test_prometheus_is_a_metrics_exporter() -> None:
    resolved = settings({"OTEL_METRICS_EXPORTER": "prometheus,otlp"})

    assert resolved.metrics_exporter == ("prometheus", "otlp")
    assert "metrics" in resolved.enabled_signals


def test_exporter_argument_accepts_a_list() -> None:
    assert settings(traces_exporter=["console", "otlp"]).traces_exporter == ("console", "otlp")


# --------------------------------------------------------------------------------------------------------------
# Bad values: always ConfigurationError, always naming the variable or argument
# --------------------------------------------------------------------------------------------------------------

PER_SIGNAL_BAD_VALUES = [
    (f"OTEL_EXPORTER_OTLP_{signal}_{suffix}", value)
    for signal in ("TRACES", "METRICS", "LOGS")
    for suffix, value in [
        ("ENDPOINT", "collector:4318"),
        ("ENDPOINT", "http://collector:123456"),
        ("PROTOCOL", "http/json"),
        ("HEADERS", "garbage"),
        ("TIMEOUT", "-1"),
        ("TIMEOUT", "soon"),
        ("COMPRESSION", "brotli"),
    ]
]

BAD_VARIABLES = [
    ("OTEL_SDK_DISABLED", "yes"),
    ("OTEL_SDK_DISABLED", "1"),
    ("OTEL_TRACES_EXPORTER", "jaeger"),
    ("OTEL_TRACES_EXPORTER", "none,otlp"),
    ("OTEL_TRACES_EXPORTER", "prometheus"),
    ("OTEL_METRICS_EXPORTER", "zipkin"),
    ("OTEL_METRICS_EXPORTER", "otlp,none"),
    ("OTEL_LOGS_EXPORTER", "prometheus"),
    ("OTEL_LOGS_EXPORTER", ","),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector:21"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:99999"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:port"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "garbage"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "=value"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "-1"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "abc"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "2.5"),  # the variable is whole milliseconds
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
    *PER_SIGNAL_BAD_VALUES,
    ("OTEL_TRACES_SAMPLER", "probabilistic"),
    ("OTEL_PROPAGATORS", "xray"),
    ("OTEL_PROPAGATORS", "none,tracecontext"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
    ("OTEL_METRIC_EXPORT_TIMEOUT", "-5"),
    ("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "exponential"),
    ("OTEL_METRICS_EXEMPLAR_FILTER", "sometimes"),
    ("OTEL_DIST_METRIC_CARDINALITY_LIMIT", "1"),
    ("OTEL_DIST_METRIC_CARDINALITY_LIMIT", "many"),
    ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000"),
    ("OTEL_EXPORTER_PROMETHEUS_PORT", "-1"),
    ("OTEL_DIST_SYSTEM_METRICS", "on"),
    ("OTEL_DIST_MEMORY_LIMIT", "lots"),
    ("OTEL_DIST_MEMORY_LIMIT", "0"),
    ("OTEL_DIST_MEMORY_LIMIT", "512MB"),
    ("OTEL_DIST_MEMORY_LIMIT", "-1G"),
    ("OTEL_DIST_LOG_FORMAT", "xml"),
    ("OTEL_DIST_LOG_LEVEL", "verbose"),
    ("OTEL_DIST_CAPTURE_STDLIB_LOGGING", "maybe"),
    ("OTEL_DIST_REDACT_KEYS", "pass word"),
    ("OTEL_DIST_REDACT_ALLOW", "a/b"),
    ("OTEL_DIST_REDACT_PATH_PARAMS", "reset-token"),
    ("OTEL_DIST_REDACT_PATH_PARAMS", "{token}"),
    ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "0"),
    ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "0"),
    ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "none"),
    ("OTEL_ATTRIBUTE_COUNT_LIMIT", "-3"),
    ("OTEL_SPAN_EVENT_COUNT_LIMIT", "-1"),
    ("OTEL_SPAN_LINK_COUNT_LIMIT", "x"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"),  # larger than the default queue of 2048
    ("OTEL_BSP_SCHEDULE_DELAY", "0"),
    ("OTEL_BSP_EXPORT_TIMEOUT", "never"),
    ("OTEL_BLRP_MAX_QUEUE_SIZE", "0"),
    ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "0"),
    ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "4096"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "-100"),
    ("OTEL_BLRP_EXPORT_TIMEOUT", "1s"),
    ("OTEL_DIST_SHUTDOWN_TIMEOUT", "0"),
    ("OTEL_DIST_SHUTDOWN_TIMEOUT", "nan"),
    ("OTEL_DIST_SHUTDOWN_TIMEOUT", "inf"),
    ("OTEL_DIST_HANDLE_SIGTERM", "sometimes"),
    ("OTEL_DIST_DB_SLOW_QUERY_THRESHOLD", "0"),
    ("OTEL_DIST_DB_SLOW_QUERY_THRESHOLD", "1s"),
    ("OTEL_DIST_FAST_EXPORT", "fast"),
    ("OTEL_DIST_SERVER_SPANS", "fastapi"),
    ("OTEL_DIST_FAST_RECORDING", "on"),
    ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-tenant,(unclosed"),
    ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "*"),
    ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "[a-"),
    ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
    ("OTEL_RESOURCE_ATTRIBUTES", "team=payments,=orphan"),
    ("OTEL_TRACES_SAMPLER_ARG", "half"),
]

SECRET_VARIABLES = {
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
}


@pytest.mark.parametrize(("variable", "value"), BAD_VARIABLES, ids=[f"{var}={val}" for var, val in BAD_VARIABLES])
def test_a_bad_variable_is_named_in_the_error(variable: str, value: str) -> None:
    error = configuration_error({variable: value})

    assert error.setting == variable
    assert str(error).startswith(f"{variable}: ")


SHOWN_BAD_VARIABLES = [(var, val) for var, val in BAD_VARIABLES if var not in SECRET_VARIABLES and val != "4096"]


@pytest.mark.parametrize(
    ("variable", "value"), SHOWN_BAD_VARIABLES, ids=[f"{var}={val}" for var, val in SHOWN_BAD_VARIABLES]
)
def test_a_bad_value_that_is_not_secret_is_shown(variable: str, value: str) -> None:
    assert repr(value) in str(configuration_error({variable: value}))


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"),
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "-0.1"},
            "OTEL_TRACES_SAMPLER_ARG",
        ),
        ({"OTEL_DIST_ENVIRONMENT": "production", "OTEL_TRACES_SAMPLER_ARG": "nan"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_TRACES_SAMPLER_ARG": "0.5"}, "OTEL_TRACES_SAMPLER_ARG"),  # the default sampler takes no ratio
        ({"OTEL_DIST_ENVIRONMENT": "dev", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "200"}, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
        (
            {"OTEL_BLRP_MAX_QUEUE_SIZE": "100", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "200"},
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        ),
        ({"OTEL_TRACES_SAMPLER": "probabilistic", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, "OTEL_TRACES_SAMPLER"),
    ],
    ids=[
        "ratio-above-one",
        "ratio-below-zero",
        "ratio-nan",
        "ratio-with-always_on",
        "ratio-with-default-sampler",
        "ratio-with-development-profile",
        "span-batch-over-queue",
        "log-batch-over-queue",
        "bad-sampler-reported-first",
    ],
)
def test_settings_that_conflict_name_the_variable_at_fault(environ: dict[str, str], variable: str) -> None:
    assert configuration_error(environ).setting == variable


def test_a_conflicting_ratio_says_which_sampler_ignores_it() -> None:
    message = str(configuration_error({"OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "0.5"}))

    assert "'always_on'" in message
    assert "OTEL_TRACES_SAMPLER" in message


def test_a_batch_larger_than_the_queue_names_both_sizes() -> None:
    message = str(configuration_error({"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "200"}))

    assert "200" in message
    assert "100" in message
    assert "OTEL_BSP_MAX_QUEUE_SIZE" in message


def test_a_batch_equal_to_the_queue_is_fine() -> None:
    resolved = settings({"OTEL_BSP_MAX_QUEUE_SIZE": "512", "OTEL_BLRP_MAX_QUEUE_SIZE": "512"})

    assert resolved.span_queue_size == resolved.span_batch_size == 512
    assert resolved.log_queue_size == resolved.log_batch_size == 512


@pytest.mark.parametrize(
    ("environ", "arguments", "kind"),
    [
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "100"}, {}, "span"),
        ({"OTEL_BLRP_MAX_QUEUE_SIZE": "100"}, {}, "log"),
        ({}, {"span_queue_size": 100}, "span"),
        ({}, {"log_queue_size": 100}, "log"),
    ],
    ids=["OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BLRP_MAX_QUEUE_SIZE", "span_queue_size=", "log_queue_size="],
)
def test_a_queue_given_alone_shrinks_the_default_batch_with_it(
    environ: dict[str, str], arguments: dict[str, Any], kind: str
) -> None:
    resolved = settings(environ, **arguments)

    assert getattr(resolved, f"{kind}_queue_size") == 100
    assert getattr(resolved, f"{kind}_batch_size") == 100


def test_a_queue_larger_than_the_default_batch_leaves_the_batch_alone() -> None:
    resolved = settings({"OTEL_BSP_MAX_QUEUE_SIZE": "100000"})

    assert resolved.span_queue_size == 100000
    assert resolved.span_batch_size == 512


BAD_ARGUMENTS: list[tuple[str, Any]] = [
    ("sdk_disabled", "yes"),
    ("sdk_disabled", 1),
    ("service_name", ""),
    ("service_name", 42),
    ("service_version", "   "),
    ("environment", ""),
    ("resource_attributes", "novalue"),
    ("resource_attributes", {"": "orphan"}),
    ("traces_exporter", "jaeger"),
    ("metrics_exporter", ["otlp", "none"]),
    ("logs_exporter", "prometheus"),
    ("endpoint", "localhost:4318"),
    ("endpoint", 4318),
    ("protocol", "http/json"),
    ("headers", "garbage"),
    ("export_timeout", -1),
    ("export_timeout", 0),
    ("export_timeout", "soon"),
    ("export_timeout", True),
    ("export_timeout", float("inf")),
    ("export_timeout", [1]),
    ("compression", "brotli"),
    ("sampler", "probabilistic"),
    ("sampler_ratio", "x"),
    ("sampler_ratio", True),
    ("sampler_ratio", 1.5),
    ("sampler_ratio", [0.5]),
    ("propagators", "xray"),
    ("metric_export_interval", 0),
    ("histogram_aggregation", "exponential"),
    ("exemplar_filter", "sometimes"),
    ("cardinality_limit", True),
    ("cardinality_limit", 1),
    ("cardinality_limit", 2.5),
    ("cardinality_limit", "many"),
    ("prometheus_host", ""),
    ("prometheus_port", 70000),
    ("prometheus_port", "http"),
    ("system_metrics", "on"),
    ("memory_limit", -1),
    ("memory_limit", "lots"),
    ("memory_limit", 1.5),
    ("filesystem_paths", "/no/such/directory"),
    ("filesystem_paths", ","),
    ("filesystem_paths", ["/", "/no/such/directory"]),
    ("log_format", "xml"),
    ("log_level", "verbose"),
    ("log_level", 10),
    ("capture_stdlib_logging", "nope"),
    ("redact_keys", "pass word"),
    ("redact_allow", ["ok", "not ok"]),
    ("redact_path_params", ["token", "1st"]),
    ("metric_export_timeout", 0),
    ("attribute_value_length_limit", 0),
    ("attribute_count_limit", -1),
    ("span_queue_size", 0),
    ("span_batch_size", 4096),
    ("span_event_count_limit", -1),
    ("span_link_count_limit", "x"),
    ("span_schedule_delay", 0),
    ("span_export_timeout", -1),
    ("log_queue_size", "big"),
    ("log_batch_size", 0),
    ("log_schedule_delay", -1.0),
    ("log_export_timeout", True),
    ("shutdown_timeout", 0),
    ("shutdown_timeout", float("nan")),
    ("handle_sigterm", "no"),
    ("db_slow_query_threshold", -0.5),
    ("db_slow_query_threshold", "slow"),
    ("fast_export", "yes"),
    ("server_spans", "contrib"),
    ("fast_recording", 1),
    ("capture_request_headers", ["x-ok", "x-(bad"]),
    ("capture_response_headers", "+"),
    ("capture_headers_sanitize", "(?P<"),
]


@pytest.mark.parametrize(("name", "value"), BAD_ARGUMENTS, ids=[f"{name}={value!r}" for name, value in BAD_ARGUMENTS])
def test_a_bad_argument_is_named_in_the_error(name: str, value: Any) -> None:
    error = configuration_error(**{name: value})

    assert error.setting == f"configure(..., {name}=)"
    assert str(error).startswith(f"configure(..., {name}=): ")


def test_a_bad_variable_is_not_read_when_an_argument_overrides_it() -> None:
    resolved = settings({"OTEL_DIST_LOG_LEVEL": "verbose"}, log_level="debug")

    assert resolved.log_level == "debug"


def test_a_bad_argument_is_reported_even_when_the_variable_is_fine() -> None:
    assert configuration_error({"OTEL_DIST_LOG_LEVEL": "info"}, log_level="verbose").setting == (
        "configure(..., log_level=)"
    )


def test_a_ratio_argument_with_a_non_ratio_sampler_names_the_argument() -> None:
    error = configuration_error(sampler="always_on", sampler_ratio=0.5)

    assert error.setting == "configure(..., sampler_ratio=)"
    assert "configure(..., sampler=)" in str(error)


def test_an_unknown_argument_is_named_and_the_accepted_ones_listed() -> None:
    error = configuration_error(servce_name="checkout")

    assert error.setting == "configure(..., servce_name=)"
    assert "unknown argument" in str(error)
    assert "service_name" in str(error)


@pytest.mark.parametrize(
    ("environ", "arguments", "setting"),
    [
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "1" + "0" * 400}, {}, "OTEL_EXPORTER_OTLP_TIMEOUT"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "9" * 309}, {}, "OTEL_METRIC_EXPORT_INTERVAL"),
        ({"OTEL_BSP_SCHEDULE_DELAY": "1" + "0" * 400}, {}, "OTEL_BSP_SCHEDULE_DELAY"),
        ({}, {"export_timeout": 10**400}, "configure(..., export_timeout=)"),
        ({}, {"sampler": "traceidratio", "sampler_ratio": 10**400}, "configure(..., sampler_ratio=)"),
    ],
    ids=[
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_METRIC_EXPORT_INTERVAL",
        "OTEL_BSP_SCHEDULE_DELAY",
        "export_timeout=",
        "sampler_ratio=",
    ],
)
def test_a_number_too_large_for_a_float_is_a_configuration_error(
    environ: dict[str, str], arguments: dict[str, Any], setting: str
) -> None:
    assert configuration_error(environ, **arguments).setting == setting


# --------------------------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------------------------

TOKEN = "s3cr3t-t0ken-do-not-print"


@pytest.mark.parametrize("variable", sorted(SECRET_VARIABLES))
def test_a_bad_headers_variable_never_shows_its_value(variable: str) -> None:
    error = configuration_error({variable: f"authorization=Bearer {TOKEN},{TOKEN}"})

    assert error.setting == variable
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)
    assert "<redacted>" in str(error)


def test_a_bad_headers_argument_never_shows_its_value() -> None:
    error = configuration_error(headers=f"authorization={TOKEN},{TOKEN}")

    assert error.setting == "configure(..., headers=)"
    assert TOKEN not in str(error)


def test_describe_redacts_header_values_but_shows_keys() -> None:
    resolved = settings(
        {
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{TOKEN},x-tenant=acme",
            "OTEL_EXPORTER_OTLP_LOGS_HEADERS": f"api-key={TOKEN}",
            "OTEL_RESOURCE_ATTRIBUTES": "team=payments",
        }
    )

    rows = {name: (shown, source) for name, shown, source in describe(resolved)}

    assert rows["headers"] == ("authorization=<redacted>, x-tenant=<redacted>", "env:OTEL_EXPORTER_OTLP_HEADERS")
    assert rows["logs_headers"] == ("api-key=<redacted>", "env:OTEL_EXPORTER_OTLP_LOGS_HEADERS")
    assert rows["resource_attributes"] == ("team=payments", "env:OTEL_RESOURCE_ATTRIBUTES")
    assert all(TOKEN not in shown for shown, _ in rows.values())


def test_describe_lists_every_setting_with_its_source() -> None:
    resolved = settings({"OTEL_DIST_ENVIRONMENT": "prod", "OTEL_DIST_LOG_LEVEL": "warning"}, service_name="checkout")

    rows = {name: (shown, source) for name, shown, source in describe(resolved)}

    assert rows["service_name"] == ("checkout", "argument")
    assert rows["log_level"] == ("warning", "env:OTEL_DIST_LOG_LEVEL")
    assert rows["sampler_ratio"] == ("0.1", "profile:production")
    assert rows["memory_limit"] == ("-", "default")
    assert rows["propagators"] == ("tracecontext,baggage", "default")
    assert rows["profile"] == ("production", "derived")
    assert "sources" not in rows


# --------------------------------------------------------------------------------------------------------------
# The result is frozen, and only the given environment is read
# --------------------------------------------------------------------------------------------------------------


def test_settings_are_frozen() -> None:
    resolved = settings({"OTEL_RESOURCE_ATTRIBUTES": "team=payments", "OTEL_EXPORTER_OTLP_HEADERS": "a=b"})

    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.log_level = "debug"  # type: ignore[misc]
    with pytest.raises(TypeError):
        resolved.resource_attributes["team"] = "other"  # type: ignore[index]
    with pytest.raises(TypeError):
        resolved.headers["a"] = "c"  # type: ignore[index]
    with pytest.raises(TypeError):
        resolved.sources["log_level"] = "argument"  # type: ignore[index]


def test_changing_the_environ_afterwards_changes_nothing() -> None:
    environ = {"OTEL_DIST_LOG_LEVEL": "warning"}
    resolved = resolve({}, environ)

    environ["OTEL_DIST_LOG_LEVEL"] = "error"

    assert resolved.log_level == "warning"


def test_an_explicit_environ_hides_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-os-environ")
    monkeypatch.setenv("OTEL_DIST_LOG_LEVEL", "error")

    resolved = resolve({}, {})

    assert resolved.service_name == DEFAULT_SERVICE_NAME
    assert resolved.log_level == "info"


def test_without_environ_os_environ_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-os-environ")

    assert resolve().service_name == "from-os-environ"


def test_settings_compare_by_value_and_ignore_sources() -> None:
    assert settings({"OTEL_DIST_LOG_LEVEL": "debug"}) == settings(log_level="debug")
    assert settings() != settings(log_level="debug")


# --------------------------------------------------------------------------------------------------------------
# Empty variables are unset
# --------------------------------------------------------------------------------------------------------------

ALL_VARIABLES = sorted(
    {variable for variable, _ in BAD_VARIABLES}
    | {"OTEL_SERVICE_NAME", "OTEL_DIST_ENVIRONMENT", "OTEL_DIST_SERVICE_VERSION", "OTEL_EXPORTER_PROMETHEUS_HOST"}
)


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"], ids=["empty", "spaces", "whitespace"])
@pytest.mark.parametrize("variable", ALL_VARIABLES)
def test_an_empty_variable_is_unset(variable: str, blank: str) -> None:
    resolved = settings({variable: blank})

    assert resolved == settings()
    assert dict(resolved.sources) == dict(settings().sources)


def test_an_empty_specific_variable_falls_back_to_the_generic_one() -> None:
    resolved = settings({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "", "OTEL_ATTRIBUTE_COUNT_LIMIT": "64"})

    assert resolved.attribute_count_limit == 64
    assert resolved.sources["attribute_count_limit"] == "env:OTEL_ATTRIBUTE_COUNT_LIMIT"


def test_an_empty_variable_does_not_hide_the_profile() -> None:
    resolved = settings({"OTEL_DIST_ENVIRONMENT": "dev", "OTEL_DIST_LOG_LEVEL": ""})

    assert resolved.log_level == "debug"
    assert resolved.sources["log_level"] == "profile:development"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_DIST_METRIC_CARDINALITY_LIMIT", "1_000"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "\u0668\u0660\u0668\u0660"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0x10"),
    ],
)
def test_integers_are_plain_ascii_digits(variable: str, value: str) -> None:
    assert configuration_error({variable: value}).setting == variable


def test_a_generic_endpoint_with_a_query_keeps_the_query_after_the_signal_path() -> None:
    settings = resolve({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/base?tenant=a"})
    assert settings.otlp("traces").endpoint == "http://collector:4318/base/v1/traces?tenant=a"
