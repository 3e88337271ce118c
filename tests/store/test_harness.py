"""The harness itself: private servers really start, stop and serve."""

from __future__ import annotations

import psycopg

from service.local_servers import PrivateMosquitto, PrivatePostgres, port_open


def test_private_postgres_stops_and_restarts(private_pg: PrivatePostgres) -> None:
    with psycopg.connect(private_pg.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    private_pg.stop("immediate")
    assert not private_pg.running()
    private_pg.start()
    with psycopg.connect(private_pg.url) as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_private_mosquitto_listens(mqtt_broker: PrivateMosquitto) -> None:
    assert port_open(mqtt_broker.host, mqtt_broker.port)
    assert mqtt_broker.url.startswith("mqtt://127.0.0.1:")
