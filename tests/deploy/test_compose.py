"""docker-compose.yml is read carefully, since no Docker engine runs here to try it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_services_and_images() -> None:
    services = _compose()["services"]
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert services["migrate"]["command"] == ["db", "migrate"]
    assert services["migrate"]["restart"] == "no"


def test_dependencies_exist_and_are_healthy_or_complete() -> None:
    services = _compose()["services"]
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert cond["condition"] in ("service_healthy", "service_completed_successfully")
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} needs a healthcheck"


def test_mounted_files_exist_in_repo() -> None:
    services = _compose()["services"]
    generated = {"passwd", "acl", "certs"}  # written by `fatigue mqtt acl` / the operator's CA
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and Path(source).name not in generated:
                assert (ROOT / source).exists(), f"{source} missing"
    assert (ROOT / "Dockerfile").exists()
    assert (ROOT / ".env.example").exists()


def test_mosquitto_config_is_durable_and_closed() -> None:
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text().splitlines()
    settings = dict(line.split(None, 1) for line in conf if line.strip() and not line.startswith("#"))
    assert settings["persistence"] == "true"
    assert int(settings["autosave_interval"]) <= 30
    assert settings["allow_anonymous"] == "false"
    assert "password_file" in settings and "acl_file" in settings
    # three days of ~1.3 M messages a day must fit in the queue of a disconnected ingester session
    assert int(settings["max_queued_messages"]) >= 3 * 1_300_000
    assert int(settings["max_packet_size"]) == 256 * 1024
    assert "certfile" in settings


def test_secrets_not_inlined() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD" in text
    assert "change-me" not in text
