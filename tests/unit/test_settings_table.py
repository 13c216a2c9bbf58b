"""Every row of the settings table has a negative test, errors name the setting and never print a secret; the
TLS and headers-file settings resolve as the OTLP exporter specification says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from otel_dist.settings import _SPECS, SECRET_SETTINGS, ConfigurationError, describe, resolve
from tests.unit.test_settings import BAD_ARGUMENTS, BAD_VARIABLES

MISSING = "/nonexistent/otel-dist/ca.pem"
TLS_VARIABLES = [
    f"OTEL_EXPORTER_OTLP_{signal}{name}"
    for signal in ("", "TRACES_", "METRICS_", "LOGS_")
    for name in ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE")
]

#: Bad values for the rows test_settings.py does not cover.
MORE_BAD_VARIABLES = [
    *((variable, MISSING) for variable in TLS_VARIABLES),
    ("OTEL_DIST_OTLP_HEADERS_FILE", MISSING),
    ("OTEL_DIST_REQUEST_ID_HEADER", "x request id"),
    ("OTEL_DIST_REQUEST_ID_HEADER", "x-request-id\r\nx-injected: 1"),
    ("OTEL_DIST_EXCLUDED_PATHS", "health"),
    ("OTEL_DIST_EXCLUDED_PATHS", "/health?probe=1"),
    ("OTEL_DIST_FASTAPI_OPERATION_SPANS", "yes"),
    ("OTEL_DIST_ACCESS_LOG", "1"),
    ("OTEL_DIST_INSTRUMENT_CLIENTS", "maybe"),
    ("OTEL_DIST_FILESYSTEM_PATHS", "/no/such/directory"),
]
MORE_BAD_ARGUMENTS: list[tuple[str, Any]] = [
    ("certificate", MISSING),
    ("certificate", ""),
    ("client_key", 42),
    ("client_certificate", MISSING),
    ("headers_file", MISSING),
    ("prometheus_multiprocess_dir", ""),
    ("request_id_header", "x y"),
    ("excluded_paths", "no-slash"),
    ("operation_spans", "yes"),
    ("access_log", 1),
    ("instrument_clients", "no"),
]
#: Variables no value of which is wrong: any non-blank text is accepted (blank means unset).
NO_BAD_VALUE = {
    "OTEL_EXPORTER_PROMETHEUS_HOST": "any non-blank text is a host name or address",
    "OTEL_DIST_PROMETHEUS_MULTIPROCESS_DIR": "any non-blank text is a directory (created when first used)",
}


def test_every_variable_of_the_table_has_a_negative_test() -> None:
    covered = {variable for variable, _ in [*BAD_VARIABLES, *MORE_BAD_VARIABLES]} | set(NO_BAD_VALUE)
    missing = [variable for spec in _SPECS for variable in spec.env if variable not in covered]
    assert missing == []


def test_every_argument_of_the_table_has_a_negative_test() -> None:
    covered = {name for name, _ in [*BAD_ARGUMENTS, *MORE_BAD_ARGUMENTS]}
    missing = [spec.name for spec in _SPECS if spec.argument and spec.name not in covered]
    assert missing == []


@pytest.mark.parametrize(("variable", "value"), MORE_BAD_VARIABLES, ids=[f"{v}={x!r}" for v, x in MORE_BAD_VARIABLES])
def test_a_bad_variable_is_named_in_the_error(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve({}, {variable: value})
    assert caught.value.setting == variable
    assert str(caught.value).startswith(f"{variable}: ")


@pytest.mark.parametrize(("name", "value"), MORE_BAD_ARGUMENTS, ids=[f"{n}={v!r}" for n, v in MORE_BAD_ARGUMENTS])
def test_a_bad_argument_is_named_in_the_error(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve({name: value}, {})
    assert caught.value.setting == f"configure(..., {name}=)"


SECRET = "hunter2-Zq8vX"


@pytest.mark.parametrize("spec", [s for s in _SPECS if s.secret], ids=lambda s: s.name)
def test_no_error_about_a_secret_setting_shows_its_value(spec: Any, tmp_path: Path) -> None:
    bad = f"{SECRET}-without-an-equals-sign"
    if spec.name == "headers_file":  # the secret is the file's content
        path = tmp_path / "headers"
        path.write_text(bad)
        bad = str(path)
    for variable in spec.env:
        with pytest.raises(ConfigurationError) as caught:
            resolve({}, {variable: bad})
        assert SECRET not in str(caught.value)
        assert caught.value.setting == variable
    if spec.argument:
        with pytest.raises(ConfigurationError) as caught:
            resolve({spec.name: bad}, {})
        assert SECRET not in str(caught.value)


def test_the_secret_settings_are_the_header_settings() -> None:
    assert {"headers", "traces_headers", "metrics_headers", "logs_headers", "headers_file"} == SECRET_SETTINGS


# --- TLS and headers from a file ------------------------------------------------------------------------------


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name in ("ca", "key", "cert", "traces-ca"):
        path = tmp_path / f"{name}.pem"
        path.write_text("-----BEGIN CERTIFICATE-----\n")
        paths[name] = str(path)
    return paths


def test_tls_files_apply_to_every_signal_and_per_signal_ones_win(pems: dict[str, str]) -> None:
    resolved = resolve(
        {},
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318",
            "OTEL_EXPORTER_OTLP_CERTIFICATE": pems["ca"],
            "OTEL_EXPORTER_OTLP_CLIENT_KEY": pems["key"],
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": pems["cert"],
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": pems["traces-ca"],
        },
    )
    traces, logs = resolved.otlp("traces"), resolved.otlp("logs")
    assert (traces.certificate, traces.client_key, traces.client_certificate) == (
        pems["traces-ca"],
        pems["key"],
        pems["cert"],
    )
    assert logs.certificate == pems["ca"]
    assert not traces.insecure


def test_certificate_argument_beats_the_variable(pems: dict[str, str]) -> None:
    resolved = resolve({"certificate": pems["ca"]}, {"OTEL_EXPORTER_OTLP_CERTIFICATE": pems["traces-ca"]})
    assert resolved.otlp("metrics").certificate == pems["ca"]
    assert resolved.sources["certificate"] == "argument"


def test_headers_from_a_file_sit_under_the_headers_given_directly(tmp_path: Path) -> None:
    path = tmp_path / "otlp-headers"
    path.write_text("# mounted from a secret\nauthorization=Bearer%20s3cr3t\nx-tenant=from-file\n")
    resolved = resolve({}, {"OTEL_DIST_OTLP_HEADERS_FILE": str(path), "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=env"})
    assert dict(resolved.otlp("traces").headers) == {"authorization": "Bearer s3cr3t", "x-tenant": "env"}
    shown = {name: value for name, value, _ in describe(resolved)}
    assert "s3cr3t" not in shown["headers_file"]
    assert shown["headers_file"] == "authorization=<redacted>, x-tenant=<redacted>"


def test_per_signal_headers_replace_the_generic_ones_but_not_the_file(tmp_path: Path) -> None:
    path = tmp_path / "otlp-headers"
    path.write_text("authorization=Bearer t")
    resolved = resolve({}, {"OTEL_DIST_OTLP_HEADERS_FILE": str(path), "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-logs=1"})
    assert dict(resolved.otlp("logs").headers) == {"authorization": "Bearer t", "x-logs": "1"}
    assert dict(resolved.otlp("traces").headers) == {"authorization": "Bearer t"}
