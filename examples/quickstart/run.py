"""README command 1 (for now): run the quickstart app against a local OTLP receiver and show what arrived.

Each signal is decoded from the real OTLP protobuf the app sent, and the correlation between a log record
and its span is checked the way a backend would join them: by trace_id.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from otel_dist.otlp_sink import running_http_receiver

APP = Path(__file__).with_name("app.py")


def main() -> int:
    with running_http_receiver() as sink:
        print(f"== OTLP receiver listening on {sink.endpoint}; starting {APP.name} ==\n", flush=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint, OTEL_METRIC_EXPORT_INTERVAL="1000")
        result = subprocess.run([sys.executable, str(APP)], env=env, check=False)
        if result.returncode != 0:
            print(f"the app failed with exit status {result.returncode}", file=sys.stderr)
            return result.returncode
        spans, logs, metrics = sink.spans(), sink.logs(), sink.metrics()
        print("\n== What the receiver decoded ==")
        print(f"spans:       {len(spans)} ({', '.join(sorted({s.item.name for s in spans}))})")
        print(f"log records: {len(logs)}")
        print(f"metrics:     {', '.join(sorted({m.item.name for m in metrics}))}")
        span_by_trace = {s.item.trace_id: s for s in spans}
        failed = [r for r in logs if r.item.body.string_value == "document.failed"]
        if failed:
            record = failed[0]
            span = span_by_trace.get(record.item.trace_id)
            print("\nan error log and the span it belongs to (joined by trace_id):")
            print(f"  log:  {record.item.body.string_value} {record.attributes}")
            print(f"  span: {span.item.name if span else '?'} status={span.item.status.code if span else '?'}")
            print(f"  trace_id={record.item.trace_id.hex()} resource service.name={record.resource['service.name']}")
        ok = bool(spans) and bool(logs) and bool(metrics) and all(r.item.trace_id in span_by_trace for r in failed)
        print("\nall three signals arrived, correlated" if ok else "\nSOMETHING IS MISSING")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
