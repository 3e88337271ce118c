"""Shared seed and helpers of the access tests: three forces with participants, identities, flags and reports,
tokens of every role, and an API client that connects as the ``fatigue_web`` login role (managers, researchers)
and ``fatigue_web_admin`` (administrators), as in production (migration 060). Real PostgreSQL only."""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from service.api import create_app
from service.auth import create_token
from service.local_servers import PrivateMosquitto
from service.mqtt_acl import plan_users, write_files

FORCES = ("WMP", "GMP", "MPS")
PROJECTS = ("P1", "P2")
WEEK_START = date(2024, 3, 4)


@dataclass
class World:
    """What the seed wrote: ids per force, tokens per role and scope, the outbox folder."""

    url: str
    api_url: str
    outbox: Path
    admin_api_url: str = ""
    participants: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    staff_refs: dict[str, list[str]] = field(default_factory=dict)
    reports: dict[str, uuid.UUID] = field(default_factory=dict)
    managers: dict[str, str] = field(default_factory=dict)
    researchers: dict[str, str] = field(default_factory=dict)
    admin: str = ""

    def all_tokens(self) -> list[str]:
        return [*self.managers.values(), *self.researchers.values(), self.admin]


def as_role(url: str, role: str) -> str:
    """The same database URL with another user name (the test server trusts loopback logins)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


def _seed_force(conn: psycopg.Connection[tuple[object, ...]], world: World, force: str) -> None:
    conn.execute("INSERT INTO core.forces (force_id, name) VALUES (%s, %s)", (force, f"Force {force}"))
    pids: list[uuid.UUID] = []
    refs: list[str] = []
    for k in range(3):
        pid = conn.execute(
            "INSERT INTO core.participants (force_id, role_group, age_band, sex, programme_start, "
            "consent_manager, consent_research) VALUES (%s, 'response', '30-34', 'female', %s, %s, true) "
            "RETURNING participant_id", (force, WEEK_START, k < 2)).fetchone()
        assert pid is not None
        ref = f"{force}-PC{k:04d}"
        conn.execute("INSERT INTO core.identities VALUES (%s, %s, %s)", (pid[0], force, ref))
        conn.execute("INSERT INTO risk.weekly_flags (participant_id, force_id, programme_week, week_start, week_end, "
                     "overall_level, criteria, programme_version, algorithm_version) VALUES "
                     "(%s, %s, 1, %s, %s, 'amber', %s, 'v1', 'a1')",
                     (pid[0], force, WEEK_START, WEEK_START + timedelta(days=6), Jsonb({"debt": "amber"})))
        pids.append(uuid.UUID(str(pid[0])))
        refs.append(ref)
    html = f"reports/{force}/2024-W10.html"
    (world.outbox / html).parent.mkdir(parents=True, exist_ok=True)
    (world.outbox / html).write_text(f"<html>report of {force}</html>", encoding="utf-8")
    rid = conn.execute("INSERT INTO risk.reports (force_id, iso_week, week_start, week_end, html_path, n_officers) "
                       "VALUES (%s, '2024-W10', %s, %s, %s, 3) RETURNING report_id",
                       (force, WEEK_START, WEEK_START + timedelta(days=6), html)).fetchone()
    assert rid is not None
    world.participants[force], world.staff_refs[force] = pids, refs
    world.reports[force] = uuid.UUID(str(rid[0]))
    world.managers[force] = create_token(conn, "manager", timedelta(days=1), force_id=force, label="t")[1]


@pytest.fixture(scope="module")
def world(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    """Three forces x three participants (two consent to be named), a flag each, a report per force."""
    w = World(db_url, as_role(db_url, "fatigue_web"), tmp_path_factory.mktemp("outbox"),
              as_role(db_url, "fatigue_web_admin"))
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET fatigue.all_forces = 'on'")
        for force in FORCES:
            _seed_force(conn, w, force)
        for project in PROJECTS:
            w.researchers[project] = create_token(conn, "researcher", timedelta(days=1), project=project)[1]
        w.admin = create_token(conn, "admin", timedelta(hours=1))[1]
    return w


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    """A TestClient on an app connected as ``fatigue_web`` / ``fatigue_web_admin`` (NOINHERIT, own nothing)."""
    with TestClient(create_app(world.api_url, world.outbox, pool_size=4,
                               admin_database_url=world.admin_api_url)) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def _readable_by_broker(path: Path) -> None:
    """Mosquitto drops to the mosquitto user when started as root: let it reach and read its files."""
    if os.geteuid() != 0:
        return
    for parent in path.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | stat.S_IXOTH)
    shutil.chown(path, "mosquitto", "mosquitto")
    for child in path.iterdir():
        shutil.chown(child, "mosquitto", "mosquitto")


def broker_under_acl(factory: pytest.TempPathFactory, gateways: Sequence[str], forces: Sequence[str],
                     name: str) -> Iterator[tuple[PrivateMosquitto, dict[str, str]]]:
    """A private Mosquitto with the password file and ACL `fatigue mqtt acl` generates, and the credentials."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed")
    cfg = factory.mktemp(f"{name}-files")
    result = write_files(cfg, plan_users(gateways, forces))
    creds = dict(line.split(":", 1) for line in result.credentials_file.read_text().splitlines()
                 if not line.startswith("#"))
    _readable_by_broker(cfg)
    broker = PrivateMosquitto(factory.mktemp(f"{name}-broker"), extra_config=(
        f"allow_anonymous false\npassword_file {result.password_file}\nacl_file {result.acl_file}\n"))
    broker.start()
    try:
        yield broker, creds
    finally:
        broker.stop()
