"""Publish simulated messages over MQTT: one paho-mqtt 2.x client per gateway, QoS 1, bounded in flight.

Back-pressure: paho queues without limit and, once more than 65,535 messages are waiting for an ack, its
16-bit message ids wrap and queued messages are silently overwritten (paho.mqtt.python issue #377). A single
semaphore bounds the messages published but not yet acknowledged across all gateways (released in
``on_publish``, i.e. on PUBACK), so the simulator never runs more than ``max_inflight`` ahead of the broker.

Each client sets a last will on its device's ``status`` stream (``online=false``); a clean disconnect at the
end does not fire it. ``speed`` replays at a time-acceleration factor (``publish_ms`` deltas divided by
``speed``); ``None`` publishes as fast as the broker acknowledges.

Gateway behaviour of docs/contract.md "Delivery" (issue 17), which a real gateway must copy:

- MQTT v5, so that every PUBACK carries a reason code. **0x10 "No matching subscribers"** means the broker
  accepted the message and dropped it because no ingester is subscribed (none running, or a broker restart
  before the ingesters subscribed again): the gateway *holds* the message and publishes it again with the
  same ``msg_id`` after a backoff (0.5 s doubling to 30 s) until it is accepted with 0x00. Other reason codes
  >= 0x80 are permanent refusals (counted in ``failed``, never retried).
- Messages not acknowledged when the connection drops are sent again after the reconnect (paho does this).
- After a reconnect the gateway also publishes again what the broker acknowledged in the last ``replay_s``
  seconds (default 30 s, more than the broker's 10 s autosave interval): a broker killed with ``kill -9``
  forgets what it acknowledged since its last save, and the ingester absorbs the repeats by ``msg_id``.
"""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from tqdm import tqdm

from ingest.contract import ContractError, DeviceStatus, encode, parse_topic, topic_for

__all__ = ["NO_MATCHING_SUBSCRIBERS", "InFlightWindow", "PublishError", "PublishStats", "gateway_client",
           "publish_messages", "will_payload"]

_WILL_NAMESPACE = uuid.UUID("6f6c2a52-6b9e-4c1e-9a53-5d8a0f1f2b11")
NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT v5 PUBACK reason: accepted, but nobody subscribed; the broker dropped it
HOLD_MIN_S, HOLD_MAX_S = 0.5, 30.0
REPLAY_S = 30.0


class PublishError(RuntimeError):
    """The broker refused a connection or did not acknowledge every message in time."""


@dataclass
class PublishStats:
    """What a publish run did.

    ``acked`` counts messages accepted with a success code (0x00); ``held`` the PUBACKs with 0x10 (no
    subscriber) after which the message was published again; ``replayed`` the messages published again after
    a reconnect; ``failed`` permanent refusals.
    """

    published: int = 0
    acked: int = 0
    failed: int = 0
    clients: int = 0
    seconds: float = 0.0
    max_in_flight: int = 0
    held: int = 0
    replayed: int = 0

    @property
    def rate(self) -> float:
        """Acknowledged messages per second."""
        return self.acked / self.seconds if self.seconds > 0 else float("nan")


@dataclass(order=True)
class _Retry:
    """A message to publish again at ``due`` (monotonic s); ``slot`` when it holds an in-flight slot."""

    due: float
    seq: int
    gateway: str = field(compare=False)
    topic: str = field(compare=False)
    payload: bytes = field(compare=False)
    attempt: int = field(compare=False, default=0)
    slot: bool = field(compare=False, default=True)


@dataclass
class InFlightWindow:
    """Counting window of unacknowledged (or held) messages shared by all clients, and the retry queue."""

    limit: int
    sem: threading.BoundedSemaphore = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    peak: int = 0
    acked: int = 0
    failed: int = 0
    held: int = 0
    replayed: int = 0
    retries: list[_Retry] = field(default_factory=list)
    _seq: int = 0

    def __post_init__(self) -> None:
        self.sem = threading.BoundedSemaphore(self.limit)

    def take(self, timeout: float, while_waiting: Callable[[], None] | None = None) -> None:
        """Wait for a free slot (at most ``timeout`` s) before publishing one message.

        ``while_waiting`` runs every 50 ms meanwhile: held messages keep their slots, so the caller must keep
        publishing them again while it waits, or a window full of held messages would never drain.
        """
        deadline = time.monotonic() + timeout
        while not self.sem.acquire(timeout=0.05):
            if time.monotonic() > deadline:
                raise PublishError(f"no PUBACK for {timeout:.0f} s with {self.limit} messages in flight")
            if while_waiting is not None:
                while_waiting()
        self._taken()

    def try_take(self) -> bool:
        """Take a free slot if there is one, without waiting."""
        if not self.sem.acquire(blocking=False):
            return False
        self._taken()
        return True

    def _taken(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def give(self, ok: bool) -> None:
        """Release a slot when the broker acknowledged (``ok``) or refused a message."""
        with self.lock:
            self.in_flight -= 1
            self.acked += ok
            self.failed += not ok
        self.sem.release()

    def hold(self, gateway: str, topic: str, payload: bytes, attempt: int) -> None:
        """Keep a message nobody received (PUBACK 0x10) and its slot; publish it again after a backoff."""
        with self.lock:
            self.held += 1
            self._push(gateway, topic, payload, attempt, min(HOLD_MIN_S * 2**attempt, HOLD_MAX_S), slot=True)

    def replay(self, gateway: str, items: list[tuple[str, bytes]]) -> None:
        """Queue acknowledged messages to publish again now (after a reconnect); they take new slots."""
        with self.lock:
            self.replayed += len(items)
            for topic, payload in items:
                self._push(gateway, topic, payload, 0, 0.0, slot=False)

    def _push(self, gateway: str, topic: str, payload: bytes, attempt: int, delay: float, slot: bool) -> None:
        self._seq += 1
        heapq.heappush(self.retries, _Retry(time.monotonic() + delay, self._seq, gateway, topic, payload,
                                            attempt, slot))

    def requeue(self, r: _Retry) -> None:
        """Put a replay back for a moment (no free slot yet)."""
        with self.lock:
            r.due = time.monotonic() + 0.05
            heapq.heappush(self.retries, r)

    def due(self) -> list[_Retry]:
        """Retries whose time has come (removed from the queue)."""
        now, out = time.monotonic(), []
        with self.lock:
            while self.retries and self.retries[0].due <= now:
                out.append(heapq.heappop(self.retries))
        return out

    def idle(self) -> bool:
        """Nothing in flight, held or queued for replay."""
        with self.lock:
            return self.in_flight == 0 and not self.retries


class _Gateway:
    """One gateway's MQTT client with its reaction to PUBACK reason codes and reconnects."""

    def __init__(self, gateway_id: str, window: InFlightWindow, replay_s: float) -> None:
        self.gateway_id = gateway_id
        self.window = window
        self.replay_s = replay_s
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[str, bytes, int]] = {}
        self.early: dict[int, int] = {}
        self.recent: deque[tuple[float, str, bytes]] = deque()
        self.connects = 0
        self.client: mqtt.Client | None = None

    def publish(self, topic: str, payload: bytes, attempt: int = 0) -> None:
        """Publish QoS 1 and remember the message until its PUBACK settles it."""
        assert self.client is not None
        info = self.client.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self.window.give(False)
            return
        with self.lock:
            code = self.early.pop(info.mid, None)
            if code is None:
                self.pending[info.mid] = (topic, payload, attempt)
        if code is not None:
            self._settle(topic, payload, attempt, code)

    def on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        code = int(getattr(reason, "value", 0))
        with self.lock:
            msg = self.pending.pop(mid, None)
            if msg is None:  # PUBACK before publish() returned: settle it there
                self.early[mid] = code
                return
        self._settle(*msg, code)

    def _settle(self, topic: str, payload: bytes, attempt: int, code: int) -> None:
        if code == NO_MATCHING_SUBSCRIBERS:
            self.window.hold(self.gateway_id, topic, payload, attempt + 1)
            return
        if code < 0x80 and self.replay_s > 0:
            now = time.monotonic()
            with self.lock:
                self.recent.append((now, topic, payload))
                while self.recent and self.recent[0][0] < now - self.replay_s:
                    self.recent.popleft()
        self.window.give(code < 0x80)

    def on_connect(self, reason: Any) -> None:
        """After a reconnect, queue what the broker acknowledged in the last ``replay_s`` seconds."""
        if getattr(reason, "is_failure", False):
            return
        self.connects += 1
        if self.connects > 1 and self.replay_s > 0:
            cutoff = time.monotonic() - self.replay_s
            with self.lock:
                items = [(t, p) for ts, t, p in self.recent if ts >= cutoff]
            self.window.replay(self.gateway_id, items)


def will_payload(gateway_id: str, device_id: str, t_ms: int) -> bytes:
    """Deterministic ``status`` payload with ``online=false`` used as a gateway client's last will."""
    mid = uuid.uuid5(_WILL_NAMESPACE, f"{gateway_id}/{device_id}/{t_ms}")
    return encode(DeviceStatus(mid, device_id, t_ms, t_ms, False, None, None, None))


def gateway_client(host: str, port: int, gateway_id: str, device_id: str, t_ms: int, window: InFlightWindow,
                   prefix: str, keepalive: int, replay_s: float = REPLAY_S, mqtt5: bool = True) -> mqtt.Client:
    """Connect one gateway's client (MQTT v5, QoS 1 publisher, last will ``online=false`` on ``device_id``).

    Each PUBACK settles a slot of ``window`` (0x10: held and retried). Waits for the CONNACK; raises
    :class:`PublishError` if refused. The gateway state is ``client.user_data_get()``. ``mqtt5=False`` speaks
    MQTT 3.1.1 (the demo's embedded broker listens for gateways with 3.1.1 only): PUBACKs then carry no reason
    code, so such a gateway cannot learn that nobody is subscribed.
    """
    gw = _Gateway(gateway_id, window, replay_s)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-{gateway_id}",
                         protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311, userdata=gw)
    gw.client = client
    client.max_inflight_messages_set(min(window.limit, 1000))
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    client.will_set(topic_for(gateway_id, device_id, "status"), will_payload(gateway_id, device_id, t_ms), qos=1)
    connected = threading.Event()
    refused: list[Any] = []

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False) and not connected.is_set():
            refused.append(reason)
        gw.on_connect(reason)
        connected.set()

    client.on_connect = on_connect
    client.on_publish = gw.on_publish
    if mqtt5:
        client.connect(host, port, keepalive=keepalive, clean_start=True)
    else:
        client.connect(host, port, keepalive=keepalive)
    client.loop_start()
    if not connected.wait(15.0) or refused:
        client.loop_stop()
        raise PublishError(f"gateway {gateway_id}: broker {host}:{port} refused or did not answer the CONNECT")
    return client


def _pace(first_ms: int | None, publish_ms: int, started: float, speed: float | None) -> int:
    if speed is None:
        return publish_ms if first_ms is None else first_ms
    first = publish_ms if first_ms is None else first_ms
    delay = started + (publish_ms - first) / 1000.0 / speed - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    return first


def publish_messages(messages: Iterable[tuple[int, str, bytes]], host: str, port: int, *,
                     speed: float | None = None, max_inflight: int = 1000, ack_timeout: float = 60.0,
                     progress: bool = False, total: int | None = None, client_prefix: str = "fatigue-sim",
                     keepalive: int = 60, replay_s: float = REPLAY_S, mqtt5: bool = True) -> PublishStats:
    """Publish ``(publish_ms, topic, payload)`` in order, QoS 1, one client per gateway of the topic.

    Parameters
    ----------
    messages : iterable of (int, str, bytes)
        Messages in publish order (from :func:`simulators.messages.iter_messages` or a log replay).
    host, port : str, int
        The broker.
    speed : float, optional
        Time acceleration (e.g. 3600 = one simulated hour per second); ``None`` = as fast as acknowledged.
    max_inflight : int
        Bound on published-but-unacknowledged (or held) messages over all clients (far below 65,535).
    ack_timeout : float
        Seconds to wait for a free slot, or for the last messages to be accepted, before :class:`PublishError`
        (messages held because nobody is subscribed count as not accepted).
    progress : bool
        Show a tqdm progress bar.
    total : int, optional
        Number of messages, for the progress bar.
    client_prefix : str
        MQTT client ids are ``{client_prefix}-{gateway_id}``.
    keepalive : int
        MQTT keepalive (s).
    replay_s : float
        After a reconnect, publish again what was acknowledged in the last ``replay_s`` seconds (0: never).
    mqtt5 : bool
        MQTT v5 (default; needed to see PUBACK 0x10); ``False`` for a 3.1.1-only broker listener.

    Returns
    -------
    PublishStats
    """
    if not 1 <= max_inflight <= 20000:
        raise ValueError("max_inflight must be 1..20000 (paho overwrites past 65,535 queued messages)")
    window = InFlightWindow(max_inflight)
    clients: dict[str, mqtt.Client] = {}
    stats = PublishStats()
    started = time.perf_counter()
    first_ms: int | None = None
    try:
        for publish_ms, topic, payload in tqdm(messages, total=total, disable=not progress, unit="msg"):
            first_ms = _pace(first_ms, publish_ms, started, speed)
            gw, dev = _route(topic)
            if gw not in clients:
                clients[gw] = gateway_client(host, port, gw, dev, publish_ms, window, client_prefix, keepalive,
                                             replay_s, mqtt5)
            _retry_due(window, clients)
            window.take(ack_timeout, lambda: _retry_due(window, clients))
            clients[gw].user_data_get().publish(topic, payload)
            stats.published += 1
        _drain(window, clients, ack_timeout)
    finally:
        for client in clients.values():
            client.disconnect()
            client.loop_stop()
    stats.acked, stats.failed, stats.clients = window.acked, window.failed, len(clients)
    stats.held, stats.replayed = window.held, window.replayed
    stats.seconds, stats.max_in_flight = time.perf_counter() - started, window.peak
    return stats


def _retry_due(window: InFlightWindow, clients: dict[str, mqtt.Client]) -> None:
    """Publish again the held messages (they own a slot) and the replays (when a slot is free) now due."""
    for r in window.due():
        if not r.slot and not window.try_take():
            window.requeue(r)
            continue
        clients[r.gateway].user_data_get().publish(r.topic, r.payload, r.attempt)


def _route(topic: str) -> tuple[str, str]:
    """Gateway and device of a topic; malformed-but-routable topics fall back to the raw levels."""
    try:
        t = parse_topic(topic)
        return t.gateway_id, t.device_id
    except ContractError:
        parts = topic.split("/")
        return parts[2], parts[3]


def _drain(window: InFlightWindow, clients: dict[str, mqtt.Client], timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while not window.idle():
        _retry_due(window, clients)
        if time.perf_counter() > deadline:
            with window.lock:
                held = sum(r.slot for r in window.retries)
            hint = (f"; {held} held because the broker reports no subscriber (PUBACK 0x10): start "
                    "`fatigue ingest` and publish again") if held else ""
            raise PublishError(f"{window.in_flight} messages not acknowledged after {timeout:.0f} s{hint}")
        time.sleep(0.01)

