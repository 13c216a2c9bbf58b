"""Local observability stack: pinned, cached builds of its binaries."""
