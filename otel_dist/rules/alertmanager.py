"""The local-stack variant of alertmanager/alertmanager.yml: the same routes, every receiver on loopback.

The committed config reads receiver secrets from files under ``/etc/alertmanager/secrets/``. The variant
rewrites those paths into a folder of its own, writes loopback URLs into the files (the Slack and heartbeat URLs
*are* the secrets), points PagerDuty's events endpoint at the same loopback server, and can shorten the
timings, so a test (or a developer) can run a receiver on 127.0.0.1 and watch real notifications arrive::

    variant = local_variant(REPO_ROOT / "alertmanager/alertmanager.yml", base_url="http://127.0.0.1:9099",
                            secrets_dir=tmp / "secrets", timings={"group_wait": "1s", "group_interval": "2s"})
    (tmp / "alertmanager.yml").write_text(variant)

Each receiver gets its own path: ``/pager`` (PagerDuty events v2 JSON), ``/chat`` and ``/chat-low-priority``
(Slack webhook JSON), ``/heartbeat`` (Alertmanager's webhook JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

SECRETS_DIR: Final = "/etc/alertmanager/secrets"
#: Secret file -> the path of the loopback receiver its URL points at (None: not a URL).
SECRET_PATHS: Final[dict[str, str | None]] = {
    "pagerduty_routing_key": None,
    "slack_webhook_url": "/chat",
    "slack_low_priority_webhook_url": "/chat-low-priority",
    "heartbeat_url": "/heartbeat",
}
PAGER_PATH: Final = "/pager"
TIMING_KEYS: Final = ("group_wait", "group_interval", "repeat_interval")


def _rewrite_paths(node: Any, secrets_dir: Path) -> Any:
    if isinstance(node, dict):
        return {key: _rewrite_paths(value, secrets_dir) for key, value in node.items()}
    if isinstance(node, list):
        return [_rewrite_paths(item, secrets_dir) for item in node]
    if isinstance(node, str) and node.startswith(SECRETS_DIR + "/"):
        return str(secrets_dir / node.removeprefix(SECRETS_DIR + "/"))
    return node


def _retime(route: dict[str, Any], timings: Mapping[str, str]) -> None:
    for key in TIMING_KEYS:
        if key in timings and (key in route or "routes" in route):
            route[key] = timings[key]
    for child in route.get("routes", []):
        _retime(child, timings)


def local_variant(
    config_path: Path, *, base_url: str, secrets_dir: Path, timings: Mapping[str, str] | None = None
) -> str:
    """The variant's YAML text; writes the secret files into ``secrets_dir``."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    from otel_dist.rules.yamlout import dump

    base_url = base_url.rstrip("/")
    config: dict[str, Any] = yaml.safe_load(config_path.read_text())
    config = _rewrite_paths(config, secrets_dir)
    config.setdefault("global", {})["pagerduty_url"] = base_url + PAGER_PATH
    if timings:
        unknown = set(timings) - set(TIMING_KEYS)
        if unknown:
            raise ValueError(f"unknown timing(s) {sorted(unknown)}; expected {', '.join(TIMING_KEYS)}")
        _retime(config["route"], timings)
    secrets_dir.mkdir(parents=True, exist_ok=True)
    for name, path in SECRET_PATHS.items():
        (secrets_dir / name).write_text("local-routing-key\n" if path is None else f"{base_url}{path}\n")
    header = f"# Local variant of {config_path.name}: receivers on {base_url} (otel_dist.rules.alertmanager).\n"
    return header + dump(config)
