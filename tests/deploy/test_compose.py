"""docker-compose.yml is read carefully, since no Docker engine runs here to try it."""

from __future__ import annotations

import re
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


def test_timescaledb_release_is_current_and_preloaded() -> None:
    """A release that supports its PostgreSQL, accepts schema changes with compression on, and is preloaded."""
    db = _compose()["services"]["timescaledb"]
    match = re.fullmatch(r"timescale/timescaledb:(\d+)\.(\d+)\.(\d+)-pg(\d+)", db["image"])
    assert match, f"pin an exact release and PostgreSQL major, e.g. 2.29.1-pg16, not {db['image']!r}"
    version, pg = tuple(int(g) for g in match.groups()[:3]), int(match.group(4))
    assert version >= (2, 20, 0), "TimescaleDB before 2.20 refuses CHECK constraints with compressed chunks"
    assert pg >= 16 if version >= (2, 29, 0) else pg >= 15, "2.28 was the last release line for PostgreSQL 15"
    assert pg >= 15, "the service needs PostgreSQL 15 or later"
    assert "shared_preload_libraries=timescaledb" in db.get("command", []), \
        "preload TimescaleDB explicitly; `fatigue db migrate` refuses a server where it is not preloaded"


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
    generated = {"passwd", "acl", "certs", "credentials.txt"}  # `fatigue mqtt acl` / the operator's CA
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
    # payload limit + header/topic/properties (issue 17: a payload at the limit must fit the packet)
    from ingest.contract_base import BROKER_MAX_PACKET_BYTES, MAX_PAYLOAD_BYTES

    assert int(settings["max_packet_size"]) == BROKER_MAX_PACKET_BYTES > MAX_PAYLOAD_BYTES
    assert "certfile" in settings


def test_secrets_not_inlined() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD" in text
    assert "change-me" not in text


def _app_services() -> dict[str, Any]:
    services = _compose()["services"]
    return {name: svc for name, svc in services.items() if name.startswith(("ingest-", "scheduler", "api"))}


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_two_ingesters_share_one_group_with_distinct_client_ids() -> None:
    services = _compose()["services"]
    ingesters = [services[name] for name in ("ingest-1", "ingest-2")]
    for svc in ingesters:
        assert svc["command"][0] == "ingest"
        assert svc["image"] == "fatigue-service:latest"
    ids = {_option(svc["command"], "--client-id") for svc in ingesters}
    assert len(ids) == 2, "each ingester needs its own broker session"
    groups = {svc.get("environment", {}).get("FATIGUE_INGEST_GROUP", "ingest") for svc in ingesters}
    assert len(groups) == 1, "ingesters must share one shared-subscription group"


def test_scheduler_and_api_commands() -> None:
    services = _compose()["services"]
    scheduler, api = services["scheduler"]["command"], services["api"]["command"]
    assert scheduler[0] == "serve" and "--no-ingest" in scheduler and "--no-api" in scheduler
    assert "--scheduler" not in scheduler or "--no-scheduler" not in scheduler
    assert api[0] == "serve" and "--no-ingest" in api and "--no-scheduler" in api and "--api" in api
    assert _option(api, "--port") == "8000"
    assert any(str(p).endswith("8000:8000") for p in services["api"]["ports"])


def test_app_services_use_the_anchor_healthchecks_and_wait_for_migrate() -> None:
    apps = _app_services()
    assert set(apps) == {"ingest-1", "ingest-2", "scheduler", "api"}
    for name, svc in apps.items():
        assert svc["env_file"] == ".env" and svc["restart"] == "unless-stopped", name
        assert svc["secrets"] == ["pseudonym_key"], name
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert svc["depends_on"]["mosquitto"]["condition"] == "service_healthy", name
    api_check = " ".join(apps["api"]["healthcheck"]["test"])
    assert "/healthz" in api_check and "8000" in api_check
    for name in ("ingest-1", "ingest-2"):
        assert "9101" in " ".join(apps[name]["healthcheck"]["test"])
    text = (ROOT / "docker-compose.yml").read_text()
    for name in apps:
        assert f"  {name}:\n    <<: *app" in text, f"{name} must use the x-app anchor"


def test_no_password_is_hardcoded_in_health_checks() -> None:
    services = _compose()["services"]
    for name, svc in services.items():
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        assert "-P healthcheck" not in test and "change-me" not in test, name
    assert "credentials.txt" in " ".join(services["mosquitto"]["healthcheck"]["test"])
    assert services["scheduler"]["environment"]["FATIGUE_MQTT_URL"].startswith("${FATIGUE_JOBS_MQTT_URL")


def test_api_logs_in_as_the_least_privileged_roles_not_the_owner() -> None:
    """Issue 15: the API's own login cannot widen its force scope; it must never get the owner's URL."""
    env = _compose()["services"]["api"]["environment"]
    assert "FATIGUE_API_DATABASE_URL" in env["FATIGUE_DATABASE_URL"]
    assert "FATIGUE_API_ADMIN_DATABASE_URL" in env["FATIGUE_API_ADMIN_DATABASE_URL"]
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert example["FATIGUE_API_DATABASE_URL"].startswith("postgresql://fatigue_web:")
    assert example["FATIGUE_API_ADMIN_DATABASE_URL"].startswith("postgresql://fatigue_web_admin:")
