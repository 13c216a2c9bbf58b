"""The Resource: who is sending (service identity, instance, host, process, SDK)."""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from opentelemetry.sdk.resources import Resource, ServiceInstanceIdResourceDetector
from opentelemetry.util.types import AttributeValue

from otel_dist.settings import Settings

DISTRO_NAME: Final = "otel-dist"


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def process_attributes() -> dict[str, AttributeValue]:
    """Attributes of this process. Deliberately no ``process.command_args``/``command_line``: they carry secrets."""
    return {
        "process.pid": os.getpid(),
        "process.parent_pid": os.getppid(),
        "process.executable.name": os.path.basename(sys.executable),
        "process.command": os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python",
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": platform.python_version(),
        "process.runtime.description": sys.version.replace("\n", " "),
    }


def build_resource(settings: Settings) -> Resource:
    """Build the Resource from settings alone (no environment reads: Settings already resolved them).

    ``service.instance.id`` comes from the SDK's detector, which the SDK itself calls again in a forked child,
    so every process (prefork workers included) gets its own ID.
    """
    attributes: dict[str, AttributeValue] = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": _package_version("opentelemetry-sdk"),
        "telemetry.distro.name": DISTRO_NAME,
        "telemetry.distro.version": _package_version("otel-dist"),
        "host.name": socket.gethostname(),
        "host.arch": platform.machine().lower(),
        "os.type": sys.platform,
        **process_attributes(),
    }
    attributes.update(ServiceInstanceIdResourceDetector().detect().attributes)
    attributes.update(settings.resource_attributes)
    attributes["service.name"] = settings.service_name
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    if settings.environment:
        attributes["deployment.environment.name"] = settings.environment
    return Resource(attributes)
