"""Compliance alerts: episodes in the database, MQTT notices for the gateway, outbox lines for the administrator.

An alert is an *episode* (``compliance.alert_episodes``): it opens on the first run that sees its condition and
closes on the first run that no longer does; at most one episode per participant and kind is open (a partial
unique index). Each episode is published once ``open`` and once ``closed``, and written to the outbox once
for each; a failed delivery leaves its ``published_*`` / ``notified_*`` column empty and the next run retries
it. Delivery is recorded after it succeeds, so only a crash between the two can repeat a message: receivers
drop a repeat by ``episode_id`` and ``state``.

MQTT (for the gateway, so the officer's phone can nudge them): topic
``fatigue/v1/alerts/{gateway_id}/{device_id}/{kind}``, QoS 1, **retained** (a gateway that reconnects sees the
current state), payload ``{"schema": "alert/1", "episode_id", "device_id", "kind", "state", "opened_at",
"closed_at"?, "value"?}`` with epoch-millisecond times. Six topic levels, so the ingester's
``fatigue/v1/+/+/+`` never receives it. No personal data: device and gateway ids only.

Outbox (for the programme administrator): one JSON line per event appended to
``{outbox}/compliance/alerts.jsonl`` (folder 0700, file 0600). It names the officer (staff reference): the
outbox is the administrator's channel, like the admin API.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["ALERT_KINDS", "AlertEvent", "alert_payload", "alert_topic", "deliver_mqtt", "deliver_outbox",
           "sync_episodes"]

Conn = psycopg.Connection[Any]
ALERT_KINDS: tuple[str, ...] = ("silent", "battery", "nights")
OUTBOX_NAME = "alerts.jsonl"


@dataclass(frozen=True)
class AlertEvent:
    """One delivery to make: an episode in state ``open`` or ``closed``."""

    episode_id: uuid.UUID
    kind: str
    state: str
    device_id: str | None
    gateway_id: str | None
    opened_at: datetime
    closed_at: datetime | None
    value: float | None


def alert_topic(gateway_id: str, device_id: str, kind: str) -> str:
    """``fatigue/v1/alerts/{gateway_id}/{device_id}/{kind}`` (ids already match ``[A-Za-z0-9_-]{1,64}``)."""
    return f"fatigue/v1/alerts/{gateway_id}/{device_id}/{kind}"


def alert_payload(ev: AlertEvent) -> bytes:
    """The MQTT payload of an event: ids, kind, state, times and value; no personal data."""
    body: dict[str, Any] = {"schema": "alert/1", "episode_id": str(ev.episode_id), "device_id": ev.device_id,
                            "kind": ev.kind, "state": ev.state, "opened_at": int(ev.opened_at.timestamp() * 1000)}
    if ev.closed_at is not None:
        body["closed_at"] = int(ev.closed_at.timestamp() * 1000)
    if ev.value is not None:
        body["value"] = round(ev.value, 1)
    return json.dumps(body, separators=(",", ":")).encode()


_OPEN = """
INSERT INTO compliance.alert_episodes (participant_id, device_id, gateway_id, kind, opened_at, value_at_open)
SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::real[])
ON CONFLICT (participant_id, kind) WHERE closed_at IS NULL DO NOTHING
RETURNING kind
"""
_CLOSE = """
UPDATE compliance.alert_episodes e SET closed_at = %s
WHERE e.closed_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM unnest(%s::uuid[], %s::text[]) AS k(pid, kind) WHERE k.pid = e.participant_id AND k.kind = e.kind)
RETURNING kind
"""
# An open episode learns its gateway once the device has been heard through one.
_ROUTE = """
UPDATE compliance.alert_episodes e SET gateway_id = d.gateway_id, device_id = coalesce(e.device_id, d.device_id)
FROM compliance.device_state d
WHERE e.closed_at IS NULL AND e.gateway_id IS NULL AND d.device_id = e.device_id AND d.gateway_id IS NOT NULL
"""


def sync_episodes(conn: Conn, now: datetime, active: Sequence[tuple[uuid.UUID, str | None, str | None, str, float]]
                  ) -> tuple[list[str], list[str]]:
    """Open episodes for active conditions that have none, close open episodes whose condition ended.

    Parameters
    ----------
    active : sequence of (participant_id, device_id, gateway_id, kind, value)
        Every alert condition true now.

    Returns
    -------
    (opened, closed) : lists of kinds, one entry per episode opened or closed
    """
    cols = list(zip(*active, strict=True)) if active else [(), (), (), (), ()]
    pids, devices, gateways, kinds, values = (list(c) for c in cols)
    opened = conn.execute(_OPEN, (pids, devices, gateways, kinds, [now] * len(pids), values)).fetchall()
    closed = conn.execute(_CLOSE, (now, pids, kinds)).fetchall()
    conn.execute(_ROUTE)
    return [str(r[0]) for r in opened], [str(r[0]) for r in closed]


_PENDING = """
SELECT e.episode_id, e.kind, s.state, e.device_id, e.gateway_id, e.opened_at, e.closed_at, e.value_at_open,
       i.staff_ref, p.force_id
FROM compliance.alert_episodes e
JOIN core.participants p USING (participant_id)
LEFT JOIN core.identities i USING (participant_id)
CROSS JOIN LATERAL (VALUES ('open'), ('closed')) AS s(state)
WHERE CASE WHEN s.state = 'open' THEN e.{col}_open_at IS NULL
           ELSE e.closed_at IS NOT NULL AND e.{col}_close_at IS NULL END
  {extra}
ORDER BY e.opened_at, e.episode_id, s.state DESC
"""


def _pending(conn: Conn, col: str, extra: str) -> list[tuple[AlertEvent, str | None, str]]:
    rows = conn.execute(_PENDING.format(col=col, extra=extra)).fetchall()  # col/extra are constants
    return [(AlertEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]), r[8], r[9]) for r in rows]


def _mark(conn: Conn, col: str, ev: AlertEvent, at: datetime) -> None:
    which = f"{col}_open_at" if ev.state == "open" else f"{col}_close_at"
    conn.execute(f"UPDATE compliance.alert_episodes SET {which} = %s WHERE episode_id = %s", (at, ev.episode_id))


def deliver_mqtt(conn: Conn, connect: Callable[[], mqtt.Client | None], now: datetime,
                 timeout_s: float = 10.0) -> tuple[int, int]:
    """Publish pending events (retained, QoS 1); returns (published, failed).

    ``connect`` is called only when something is pending; when it returns None (broker unreachable) nothing
    is sent and every pending event stays pending for the next run.
    """
    pending = _pending(conn, "published", "AND e.gateway_id IS NOT NULL AND e.device_id IS NOT NULL")
    if not pending:
        return 0, 0
    client = connect()
    if client is None:
        return 0, len(pending)
    try:
        return _publish(conn, client, pending, now, timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()


def _publish(conn: Conn, client: mqtt.Client, pending: list[tuple[AlertEvent, str | None, str]], now: datetime,
             timeout_s: float) -> tuple[int, int]:
    done = failed = 0
    for ev, _, _ in pending:
        assert ev.gateway_id is not None and ev.device_id is not None
        info = client.publish(alert_topic(ev.gateway_id, ev.device_id, ev.kind), alert_payload(ev), qos=1,
                              retain=True)
        with contextlib.suppress(RuntimeError, ValueError):  # not connected, or timed out: retried next run
            info.wait_for_publish(timeout=timeout_s)
        if info.is_published():
            _mark(conn, "published", ev, now)
            done += 1
        else:
            failed += 1
    return done, failed


def connect_mqtt(host: str, port: int, username: str | None = None, password: str | None = None,
                 tls: bool = False, timeout_s: float = 10.0) -> mqtt.Client | None:
    """A client whose CONNECT the broker accepted (looping), or None: unreachable, refused or no answer."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fatigue-compliance-{uuid.uuid4().hex[:8]}")
    if username:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set()
    accepted = threading.Event()
    client.on_connect = lambda c, u, f, reason, p: accepted.set() if not reason.is_failure else None
    try:
        client.connect(host, port, keepalive=30)
    except OSError:
        return None
    client.loop_start()
    if not accepted.wait(timeout_s):
        client.disconnect()
        client.loop_stop()
        return None
    return client


def deliver_outbox(conn: Conn, outbox: Path | None, now: datetime) -> int:
    """Append pending events (naming the officer) to ``{outbox}/compliance/alerts.jsonl``; returns lines written."""
    if outbox is None:
        return 0
    pending = _pending(conn, "notified", "")
    if not pending:
        return 0
    folder = outbox / "compliance"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / OUTBOX_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        for ev, staff_ref, force_id in pending:
            fh.write(json.dumps({
                "episode_id": str(ev.episode_id), "state": ev.state, "kind": ev.kind, "force_id": force_id,
                "staff_ref": staff_ref, "device_id": ev.device_id, "opened_at": ev.opened_at.isoformat(),
                "closed_at": ev.closed_at.isoformat() if ev.closed_at else None, "value": ev.value,
                "what_to_do": _ADVICE[ev.kind] if ev.state == "open" else "nothing: the condition has ended",
            }) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    for ev, _, _ in pending:
        _mark(conn, "notified", ev, now)
    return len(pending)


_ADVICE = {
    "silent": "the device has sent nothing: check it is charged and near its phone/gateway",
    "battery": "the battery is low: remind the officer to charge the device",
    "nights": "too few valid nights this week: ask the officer to wear the device at night",
}
