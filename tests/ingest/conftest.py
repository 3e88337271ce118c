"""Fixtures of the ingest tests: a broker running the production delivery settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.local_servers import PrivateMosquitto


@pytest.fixture(scope="module")
def deploy_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    """A private Mosquitto with deploy/mosquitto/mosquitto.conf's persistence, sessions, queues and packet limit."""
    broker = PrivateMosquitto(tmp_path_factory.mktemp("mosquitto-deploy"), deploy_config=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
