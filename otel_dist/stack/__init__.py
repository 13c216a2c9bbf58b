"""The local observability stack: pinned, cached builds of its binaries (build.py) and a supervisor that runs
them on 127.0.0.1 (supervisor.py, behind ``otel-dist stack up|down|status``)."""
