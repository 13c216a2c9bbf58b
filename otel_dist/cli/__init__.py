"""The ``otel-dist`` command line."""
