"""Histograms recorded through bound attribute sets: validated and hashed once, not on every measurement.

The SDK's ``Histogram.record`` validates the attribute mapping (``Measurement.__post_init__``), copies it, and
sorts and hashes it (``_hash_attributes``) for every view of every reader, on every call: most of the ~6 µs one
HTTP measurement costs. A request path records the same few attribute sets over and over (one per method, route,
status and scheme), so :class:`BoundHistogram` does that work once per set (:meth:`BoundHistogram.bind`) and then
hands each measurement straight to the aggregation the SDK keeps for the set. Everything else stays the SDK's:
the views and their attribute keys, the aggregation (buckets, min/max, temporality), the exemplar filter and
reservoirs, the cardinality limit and its overflow series. Whenever the aggregation of a set does not exist yet
(the first measurement, after a delta collection released it, or a set over the cardinality limit) the measurement
goes through the SDK's own per-view path, which creates it or picks the overflow series exactly as
``Histogram.record`` would.

This reaches into SDK internals (``_measurement_consumer._reader_storages``, ``_ViewInstrumentMatch``'s
aggregation map and key function). :func:`fast_path_supported` checks their shape when an instrument is bound;
when they are not what this module was written against, every measurement takes the public ``record()`` (correct,
only slower). ``tests/unit/test_bound_metrics.py`` fails on such an SDK change and compares both paths' exported
data point for point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from time import time_ns
from typing import Any, Final

from opentelemetry.attributes import _clean_attribute_value
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram
from opentelemetry.util.types import AnyValue

try:  # the SDK internals the fast path uses; any of them missing means the public API only
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes, _ViewInstrumentMatch
    from opentelemetry.sdk.metrics._internal.instrument import _Synchronous
    from opentelemetry.sdk.metrics._internal.measurement import Measurement
    from opentelemetry.sdk.metrics._internal.measurement_consumer import SynchronousMeasurementConsumer
    from opentelemetry.sdk.metrics._internal.metric_reader_storage import MetricReaderStorage
except ImportError:  # pragma: no cover - exercised only by an SDK that moved them
    _INTERNALS = False
else:
    _INTERNALS = True

    @dataclass(frozen=True)
    class _ValidatedMeasurement(Measurement):
        """The SDK's Measurement for attributes validated when they were bound (no second validation)."""

        def __post_init__(self) -> None:
            pass


#: The context for measurements that should offer no exemplar: no span in it, so the trace-based filter offers
#: nothing (each offer costs about a microsecond). Not empty: the SDK takes the current context in place of a
#: falsy one.
NO_EXEMPLARS: Final = Context({"otel_dist.no_exemplars": True})

#: What the fast path reads on the SDK objects; checked once per instrument.
_VIM_FIELDS: Final = ("_attributes_aggregation", "_reset_on_collect", "_lock", "_view", "consume_measurement")


class Bound:
    """One validated attribute set of one :class:`BoundHistogram` (get it from :meth:`BoundHistogram.bind`)."""

    __slots__ = ("attributes", "storages", "targets")

    def __init__(self, attributes: Mapping[str, AnyValue]) -> None:
        self.attributes = attributes
        self.storages: object = None  # the reader-storage map the targets were resolved against
        self.targets: tuple[tuple[Any, Any], ...] = ()  # (_ViewInstrumentMatch, its aggregation key)


def fast_path_supported(histogram: object) -> bool:
    """Whether ``histogram`` is an SDK histogram whose internals have the shape the fast path relies on."""
    if not _INTERNALS or not isinstance(histogram, _Synchronous):
        return False
    consumer = getattr(histogram, "_measurement_consumer", None)
    if type(consumer) is not SynchronousMeasurementConsumer:
        return False
    storages = getattr(consumer, "_reader_storages", None)
    config = getattr(consumer, "_sdk_config", None)
    if not isinstance(storages, Mapping) or not hasattr(getattr(config, "exemplar_filter", None), "should_sample"):
        return False
    if not callable(getattr(histogram, "_is_enabled", None)):
        return False
    for storage in storages.values():
        if type(storage) is not MetricReaderStorage:
            return False
        for match in storage._get_or_init_view_instrument_match(histogram):
            if type(match) is not _ViewInstrumentMatch or not all(hasattr(match, f) for f in _VIM_FIELDS):
                return False
            if not hasattr(match._view, "_attribute_keys") or not isinstance(match._attributes_aggregation, dict):
                return False
    return True


class BoundHistogram:
    """An SDK histogram recorded through :class:`Bound` attribute sets (see the module docstring)."""

    __slots__ = ("_consumer", "_histogram")

    def __init__(self, histogram: Histogram, *, fast: bool = True) -> None:
        """``fast=False``: every measurement through the public ``record()`` (``OTEL_DIST_FAST_RECORDING=false``)."""
        self._histogram = histogram
        supported = fast and fast_path_supported(histogram)
        self._consumer: Any = histogram._measurement_consumer if supported else None  # type: ignore[attr-defined]

    @property
    def fast(self) -> bool:
        """False when every measurement goes through the public ``record()`` (an SDK this was not written for)."""
        return self._consumer is not None

    def bind(self, attributes: Mapping[str, AnyValue]) -> Bound:
        """Validate ``attributes`` once, as ``Histogram.record`` does on every call."""
        return Bound(_clean_attribute_value(dict(attributes), None))

    def record(self, value: float, bound: Bound, context: Context) -> None:
        """``histogram.record(value, bound.attributes, context=context)``, without the per-call attribute work.

        ``context`` is the measurement's context (the exemplar filter reads the span from it), as passing it to
        ``record()`` would be: give the request's context, not None.
        """
        consumer = self._consumer
        histogram: Any = self._histogram
        if consumer is None or not histogram._is_enabled() or not value >= 0 or value == math.inf:
            histogram.record(value, bound.attributes, context=context)  # the SDK's warnings and checks
            return
        storages = consumer._reader_storages
        if bound.storages is not storages:  # first use, or a reader was added or removed since
            bound.targets = _targets(histogram, storages, bound.attributes)
            bound.storages = storages
        now = time_ns()
        attributes = bound.attributes
        measurement = _ValidatedMeasurement(value, now, histogram, context, attributes)
        sample = consumer._sdk_config.exemplar_filter.should_sample(value, now, attributes, context)
        for match, key in bound.targets:
            if match._reset_on_collect:  # delta: a collection may release the aggregation under the lock
                with match._lock:
                    aggregation = match._attributes_aggregation.get(key)
                    if aggregation is not None:
                        aggregation.aggregate(measurement, sample)
                        continue
            else:
                aggregation = match._attributes_aggregation.get(key)
                if aggregation is not None:
                    aggregation.aggregate(measurement, sample)
                    continue
            match.consume_measurement(measurement, sample)  # creates the aggregation, or overflows


def _targets(histogram: Any, storages: Mapping[Any, Any], attributes: Mapping[str, AnyValue]) -> tuple[Any, ...]:
    """Each view match of each reader with the aggregation key the SDK computes for ``attributes`` there."""
    targets = []
    for storage in storages.values():
        for match in storage._get_or_init_view_instrument_match(histogram):
            keys = match._view._attribute_keys
            kept = dict(attributes) if keys is None else {k: v for k, v in attributes.items() if k in keys}
            targets.append((match, _hash_attributes(kept)))
    return tuple(targets)
