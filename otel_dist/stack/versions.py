"""Pinned versions of the stack's binaries: the one place each pin is written.

Each recipe under ``recipes/<name>/`` requires its module at the version
given here; ``build.py`` refuses to build when a recipe's ``go.mod`` disagrees,
and the cache key of every binary includes its version.
"""

from typing import Final

#: The Go toolchain the recipes' go.mod files were resolved with.
GO_VERSION: Final = "1.26.8"

#: OpenTelemetry Collector: every collector module is kept at one release.
#: The module proxy serves the contrib filter/transform processors at v0.161.0,
#: not newer; core v0.161.0 pairs with the core 1.x modules at v1.67.0.
OTELCOL_CORE_VERSION: Final = "v0.161.0"
OTELCOL_CORE_STABLE_VERSION: Final = "v1.67.0"
OTELCOL_CONTRIB_VERSION: Final = "v0.161.0"
#: What `otelcol --version` prints.
OTELCOL_DIST_VERSION: Final = "0.161.0-otel-dist"

#: Prometheus 3.16.0 is Go module github.com/prometheus/prometheus v0.316.0.
PROMETHEUS_MODULE_VERSION: Final = "v0.316.0"
PROMETHEUS_VERSION: Final = "3.16.0"

#: Alertmanager: the releases after v0.31.1 (v0.32.1 ... v0.35.0) embed a UI
#: build (ui/app/dist) that their Go module zip does not carry, so they fail to
#: build from the module proxy; v0.31.1 is the newest that builds (its UI is
#: committed). Debian bookworm's prometheus-alertmanager is 0.25.0, older still.
ALERTMANAGER_MODULE_VERSION: Final = "v0.31.1"
ALERTMANAGER_VERSION: Final = "0.31.1"

#: Jaeger v2.13.0 is Go module github.com/jaegertracing/jaeger v1.76.0
#: (cmd/jaeger is the v2 binary).
JAEGER_MODULE_VERSION: Final = "v1.76.0"
JAEGER_VERSION: Final = "v2.13.0"

#: VictoriaLogs single-node binary.
VICTORIALOGS_VERSION: Final = "v1.52.1"
