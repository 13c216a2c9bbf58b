"""Alert and recording rules rendered from a small objectives spec, and the dashboards that go with them.

    otel-dist rules render                     # prometheus/objectives.yaml -> prometheus/rules/, grafana/dashboards/
    otel-dist rules render --check             # exit status 1 when the committed files differ from a fresh render

``spec`` reads and validates the YAML spec (and its baseline file), ``render`` turns it into Prometheus rule
files, ``dashboards`` into Grafana dashboards, ``alertmanager`` derives the local-stack variant of the
Alertmanager config, and ``catalog`` holds the one list of metric names the product emits. PyYAML is needed
(it comes with the ``dev`` extra); the rest of otel-dist does not use it.
"""

from __future__ import annotations

from otel_dist.rules.spec import Spec, SpecError, load_spec

__all__ = ["Spec", "SpecError", "load_spec"]
