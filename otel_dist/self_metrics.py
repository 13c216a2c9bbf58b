"""Telemetry about the telemetry: the SDK's own dropped/exported counters, switched on explicitly.

The SDK (>= 1.45) counts, per processor and exporter, what it processed, dropped (``error.type=queue_full``)
and failed to export, as the semantic-convention metrics ``otel.sdk.processor.span.processed``,
``otel.sdk.processor.log.processed``, ``otel.sdk.exporter.span.exported``, ``otel.sdk.exporter.log.exported``
and ``otel.sdk.exporter.metric_data_point.exported``. It offers no constructor argument to enable them, only
the variable below, which it reads while building each processor and exporter. We set it for exactly that
moment, from Settings, so the decision stays ours and later changes to the environment change nothing.
It is not set while building the providers themselves: their per-span and per-log counters would sit on the
request path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

SDK_INTERNAL_METRICS_VARIABLE: Final = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
_lock = threading.Lock()


@contextmanager
def sdk_self_metrics(enabled: bool = True) -> Iterator[None]:
    """While active, SDK processors and exporters built in this block count drops and failed exports."""
    with _lock:
        previous = os.environ.get(SDK_INTERNAL_METRICS_VARIABLE)
        os.environ[SDK_INTERNAL_METRICS_VARIABLE] = "true" if enabled else "false"
        try:
            yield
        finally:
            if previous is None:
                del os.environ[SDK_INTERNAL_METRICS_VARIABLE]
            else:
                os.environ[SDK_INTERNAL_METRICS_VARIABLE] = previous
