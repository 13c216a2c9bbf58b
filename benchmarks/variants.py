"""The benchmarked variants: which environment, which app set-up, which command and environment variables.

Every variant serves the same ``bench_app.py`` under the same uvicorn (uvloop + httptools where the
environment has them), one worker. Exporting variants send OTLP/HTTP to their own port of the sink process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

SERVICE: Final = "bench"


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    env: str  # environment name (envs.REQUIREMENTS)
    setup: str  # BENCH_SETUP (bench_app.py)
    wrapper: bool = False  # run under opentelemetry-instrument
    exports: bool = False  # sends OTLP to the sink
    access_log: bool = True  # uvicorn's own access log (otel-dist switches it off and writes its own)
    environ: dict[str, str] = field(default_factory=dict)
    modules: tuple[str, ...] = ()  # needed to run it (checked with --envs current)

    def environment(self, endpoint: str | None) -> dict[str, str]:
        values = {"BENCH_SETUP": self.setup, **self.environ}
        if self.exports:
            assert endpoint is not None
            values |= {"OTEL_SERVICE_NAME": SERVICE, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        return values


_OURS = ("otel_dist", "structlog")
_STOCK_OTLP = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",  # the stock distro's default is gRPC; the sink speaks HTTP
    # Explicit, so the stock distro is the one chosen even where otel-dist is installed too (--envs current).
    "OTEL_PYTHON_DISTRO": "distro",
    "OTEL_PYTHON_CONFIGURATOR": "configurator",
}
_NATIVE_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")

VARIANTS: Final[tuple[Variant, ...]] = (
    Variant("bare", "bare FastAPI (uvicorn access log + 1 stdlib app line)", "base", "stdlib"),
    Variant(
        "bare_no_access_log",
        "bare FastAPI, uvicorn --no-access-log (1 stdlib app line)",
        "base",
        "stdlib",
        access_log=False,
    ),
    Variant(
        "prometheus_instrumentator",
        "prometheus-fastapi-instrumentator (metrics, pull)",
        "base",
        "prometheus",
        modules=("prometheus_fastapi_instrumentator",),
    ),
    Variant(
        "otel_instrument_stock",
        "stock opentelemetry-instrument (opentelemetry-distro, contrib fastapi + logging; 3 signals OTLP)",
        "stock",
        "stdlib",
        wrapper=True,
        exports=True,
        environ=_STOCK_OTLP,
        modules=(
            "opentelemetry.distro",
            "opentelemetry.instrumentation.fastapi",
            "opentelemetry.instrumentation.logging",
            "opentelemetry.exporter.otlp.proto.http",
        ),
    ),
    Variant(
        "fastapi_native",
        "FastAPI native telemetry, FASTAPI_OTEL_AUTO_CONFIGURE=true (with operation spans)",
        "stock",
        "native",
        exports=True,
        environ={"FASTAPI_OTEL_AUTO_CONFIGURE": "true"},
        modules=_NATIVE_MODULES,
    ),
    Variant(
        "fastapi_native_no_op_spans",
        "FastAPI native telemetry, without operation spans",
        "stock",
        "native_no_operation_spans",
        exports=True,
        environ={"FASTAPI_OTEL_AUTO_CONFIGURE": "true"},
        modules=_NATIVE_MODULES,
    ),
    Variant(
        "ours_full",
        "otel-dist configure(): 3 signals OTLP, 100% sampling, access line + app line",
        "ours",
        "otel_dist",
        exports=True,
        modules=_OURS,
    ),
    Variant(
        "ours_full_fast_off",
        "otel-dist configure(), full, OTEL_DIST_FAST_EXPORT=false and OTEL_DIST_FAST_RECORDING=false (the SDK's OTLP"
        " encoding, log-record path, attribute validation and metric recording)",
        "ours",
        "otel_dist",
        exports=True,
        environ={"OTEL_DIST_FAST_EXPORT": "false", "OTEL_DIST_FAST_RECORDING": "false"},
        modules=_OURS,
    ),
    Variant(
        "ours_full_native_spans",
        "otel-dist configure(), full, OTEL_DIST_SERVER_SPANS=native (FastAPI's native telemetry makes the server span"
        " and HTTP metrics, as before the own layer)",
        "ours",
        "otel_dist",
        exports=True,
        environ={"OTEL_DIST_SERVER_SPANS": "native"},
        modules=_OURS,
    ),
    Variant(
        "ours_full_before",
        "otel-dist at the commit before the issue-7 cuts (envs.BASELINE_REV), full mode: the before of this run",
        "before",
        "otel_dist",
        exports=True,
        modules=_OURS,
    ),
    Variant(
        "ours_metrics_only",
        "otel-dist configure(): metrics only (traces/logs exporters none; stdout lines kept)",
        "ours",
        "otel_dist",
        exports=True,
        environ={"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
        modules=_OURS,
    ),
    Variant(
        "ours_metrics_only_before",
        "otel-dist at envs.BASELINE_REV, metrics only: the before of ours_metrics_only",
        "before",
        "otel_dist",
        exports=True,
        environ={"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
        modules=_OURS,
    ),
    Variant(
        "ours_sampled_10",
        "otel-dist configure(): full, traces sampled at 10% (parentbased_traceidratio 0.1)",
        "ours",
        "otel_dist",
        exports=True,
        environ={"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
        modules=_OURS,
    ),
    Variant(
        "ours_wrapper",
        "otel-dist via OTEL_PYTHON_DISTRO=otel_dist opentelemetry-instrument (full, zero-code)",
        "ours",
        "otel_dist_zero_code",
        wrapper=True,
        exports=True,
        environ={"OTEL_PYTHON_DISTRO": "otel_dist"},
        modules=(*_OURS, "opentelemetry.instrumentation.auto_instrumentation"),
    ),
)

BY_NAME: Final = {v.name: v for v in VARIANTS}
#: What --quick runs (each skipped if the interpreter lacks its packages).
QUICK: Final = (
    "bare",
    "fastapi_native_no_op_spans",
    "ours_full",
    "ours_full_fast_off",
    "ours_full_native_spans",
    "ours_metrics_only",
    "ours_wrapper",
)
