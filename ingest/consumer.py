"""The MQTT consumer: at-least-once from the broker, exactly-once into the tables.

The five conditions of reliability_security.md section 3 all hold here:

- QoS 1 subscription to ``$share/{group}/fatigue/v1/+/+/+`` (several ingesters split the load);
- ``clean_start=False`` with a Session Expiry Interval (7 days), so messages published while the ingester is
  down wait in its broker session; it subscribes on *every* connect, whatever ``session_present`` says,
  because Mosquitto does not keep a ``$share`` subscription in a session it restores after a restart
  (verified on 2.0.11; docs/ingest.md "Delivery design"), and it reports ready only once the SUBACK arrives;
- ``manual_ack=True``: a message is acknowledged only after the transaction holding its rows (or its dead
  letter) has committed, and never on a later connection than the one it arrived on (a connection
  generation counter; the redelivery is absorbed by the ledger instead);
- idempotent writes (:mod:`ingest.writer`);
- bounded in-flight work: Receive Maximum caps what the broker sends before we acknowledge, and the queue
  between the network thread and the worker holds no more than that.

The network callback only enqueues; decoding and writing happen on the worker (the caller's thread). A
database outage keeps the batch, acknowledges nothing and retries with backoff; a batch that fails a
constraint (SQLSTATE class 22 or 23) is split so the rest commits and the culprit is dead-lettered.

Stopping is bounded in every state: :meth:`Ingester.stop` interrupts the database retry loop (the batch in
hand is then neither committed nor acknowledged, and the broker redelivers it), and the connect timeout bounds
a connection attempt; :data:`STOP_BOUND_S` is the documented bound.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import psycopg
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from psycopg.conninfo import make_conninfo

from ingest.broker_watch import BrokerWatch
from ingest.contract import SUBSCRIPTION
from ingest.metrics import IngestMetrics
from ingest.prepare import Decoded, Inbound, Rejected, prepare
from ingest.writer import BatchResult, Writer

__all__ = ["IngestConfig", "Ingester"]

log = structlog.get_logger("ingest")
SESSION_EXPIRY_S = 7 * 24 * 3600
DB_CONNECT_TIMEOUT_S = 5
# A database that vanishes without closing the socket (network partition) must not hold a statement for
# minutes: TCP keepalives and a user timeout turn it into a connection error within ~10 s.
DB_SOCKET_OPTIONS: dict[str, int] = {"keepalives": 1, "keepalives_idle": 4, "keepalives_interval": 2,
                                     "keepalives_count": 3, "tcp_user_timeout": 10_000}
STOP_BOUND_S = 15  # worst case: a statement on a dead socket (~10 s), then the retry loop leaves at once


class StoppedError(Exception):
    """Raised inside the worker when a stop interrupts a batch that could not be committed."""


@dataclass(frozen=True)
class IngestConfig:
    """Everything the ingester needs, passed down from the settings."""

    database_url: str
    mqtt_host: str
    mqtt_port: int
    client_id: str
    group: str = "ingest"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    timezone: str = "Europe/London"
    receive_maximum: int = 1000
    batch_size: int = 200
    batch_age_s: float = 0.2
    max_lateness_days: int = 30
    programme_days: int = 120  # the programme file's ``days``: samples after day days+1 are refused (issue 14)
    broker_counters: bool = True  # watch the broker's $SYS counters on a second connection (ingest.broker_watch)
    trace_path: Path | None = None  # test aid: records commit and ack order


class Ingester:
    """One ingester process: MQTT network thread + a worker loop in :meth:`run`."""

    def __init__(self, config: IngestConfig, metrics: IngestMetrics | None = None,
                 crash: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.metrics = metrics or IngestMetrics()
        self.crash = crash or (lambda point: None)
        self.tz = ZoneInfo(config.timezone)
        self.inbox: queue.Queue[Inbound] = queue.Queue(maxsize=config.receive_maximum + 16)
        self.generation = 0
        self.stopping = threading.Event()
        self.connected = threading.Event()  # connected and subscribed: messages will reach us
        self.totals = BatchResult()
        self._trace = config.trace_path.open("a", buffering=1) if config.trace_path else None
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._writer: Writer | None = None
        self._retiring = threading.Event()
        self._unsubscribed = threading.Event()
        self.client = self._make_client()

    # -- MQTT side (network thread) ---------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.config.client_id,
                        protocol=mqtt.MQTTv5, manual_ack=True)
        if self.config.username:
            c.username_pw_set(self.config.username, self.config.password)
        if self.config.tls:
            c.tls_set()
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = lambda *_args: self._unsubscribed.set()
        c.on_disconnect = self._on_disconnect
        return c

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("mqtt_connect_refused", reason=str(reason))
            return
        self.generation += 1
        log.info("mqtt_connected", session_present=bool(flags.session_present), generation=self.generation)
        # Always subscribe: a restored session may have lost its $share subscription (Mosquitto drops it on
        # a graceful restart). Subscribing again to a subscription the session still holds is harmless.
        if self._retiring.is_set():
            return
        client.subscribe(self.topic_filter, options=SubscribeOptions(qos=1))

    @property
    def topic_filter(self) -> str:
        """The shared subscription of this ingester's group."""
        return f"$share/{self.config.group}/{SUBSCRIPTION}"

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("mqtt_subscribe_refused", reasons=[str(r) for r in reasons])
            return
        self._ready()

    def _ready(self) -> None:
        if self._trace:
            self._trace.write(f"ready {self.generation}\n")
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        log.warning("mqtt_disconnected", reason=str(reason))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg._topic.decode("utf-8", errors="replace")  # never raise on the network thread
        self.inbox.put(Inbound(topic, bytes(msg.payload), msg.mid if msg.qos else 0, self.generation, bool(msg.dup)))

    def connect(self) -> None:
        """Connect with a persistent session and start the network thread."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = self.config.receive_maximum
        self.client.connect_async(self.config.mqtt_host, self.config.mqtt_port, keepalive=30,
                                  clean_start=False, properties=props)
        self.client.loop_start()

    # -- database side (worker) -------------------------------------------------------------------
    def _db(self) -> Writer:
        if self._writer is None or self._conn is None or self._conn.closed:
            conninfo = make_conninfo(self.config.database_url, connect_timeout=DB_CONNECT_TIMEOUT_S,
                                     **DB_SOCKET_OPTIONS)
            self._conn = psycopg.connect(conninfo, autocommit=False)
            self._writer = Writer(self._conn, self.tz, self.crash, programme_days=self.config.programme_days)
        return self._writer

    def _drop_db(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = self._writer = None

    def _commit(self, batch: list[Decoded | Rejected]) -> BatchResult:
        writer = self._db()
        try:
            result = writer.write(batch)
            self.crash("before_commit")
            writer.conn.commit()
            return result
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            writer.conn.rollback()
            if len(batch) == 1:
                only = batch[0]
                msg_id = only.records.msg_id if isinstance(only, Decoded) else only.msg_id
                reason = Rejected(only.inbound, "db_constraint", f"database refused the rows: SQLSTATE "
                                  f"{exc.sqlstate}", msg_id)
                return self._commit([reason])
            merged = BatchResult()
            for item in batch:  # isolate the culprit: the rest commits one by one
                merged.add(self._commit([item]))
            return merged

    def _write_durably(self, batch: list[Decoded | Rejected]) -> BatchResult:
        delay = 0.5
        while True:
            try:
                return self._commit(batch)
            except psycopg.OperationalError as exc:
                self.metrics.db_retries.inc()
                log.warning("database_unavailable", error=exc.__class__.__name__, retry_in_s=delay)
                self._drop_db()
                if self.stopping.wait(delay):  # SIGTERM during an outage: leave without acknowledging
                    raise StoppedError from exc
                delay = min(delay * 2, 10.0)

    def _take_batch(self) -> list[Inbound]:
        batch: list[Inbound] = []
        deadline = time.monotonic() + self.config.batch_age_s
        while len(batch) < self.config.batch_size:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                break
            try:
                batch.append(self.inbox.get(timeout=timeout))
            except queue.Empty:
                break
        return batch

    def process(self, batch: list[Inbound]) -> BatchResult:
        """Decode, write and commit one batch, then acknowledge what arrived on this connection."""
        started = time.perf_counter()
        now_ms = int(time.time() * 1000)
        too_late_ms = self.config.max_lateness_days * 86_400_000
        result = self._write_durably([prepare(m, now_ms, too_late_ms) for m in batch])
        self._record(result, time.perf_counter() - started)
        if self._trace:
            self._trace.write("commit " + " ".join(f"{m.generation}:{m.mid}" for m in batch) + "\n")
        self.crash("after_commit")
        generation = self.generation
        for m in batch:
            if m.mid and m.generation == generation:
                if self._trace:
                    self._trace.write(f"ack {m.generation}:{m.mid}\n")
                self.client.ack(m.mid, 1)
        return result

    def _record(self, result: BatchResult, seconds: float) -> None:
        self.totals.add(result)
        m = self.metrics
        for stream, n in result.by_stream.items():
            m.samples.labels(stream).inc(n)
        for reason, n in result.dead.items():
            m.dead_letters.labels(reason).inc(n)
        m.messages.labels("all").inc(result.stored)
        m.duplicates.inc(result.duplicates)
        m.quarantined.inc(result.quarantined)
        m.future_dropped.inc(result.dropped_future)
        m.samples_absorbed.inc(result.samples_absorbed)
        m.revisions.inc(result.revised)
        m.batch_seconds.observe(seconds)
        m.queue_depth.set(self.inbox.qsize())
        m.last_commit.set(time.time())
        log.debug("batch_committed", stored=result.stored, samples=result.samples, dead=sum(result.dead.values()),
                  duplicates=result.duplicates, quarantined=result.quarantined, seconds=round(seconds, 4))

    def run(self, idle_exit_s: float | None = None) -> BatchResult:
        """Consume until :meth:`stop` (or ``idle_exit_s`` without messages); returns the totals."""
        c = self.config
        watch = BrokerWatch(c.mqtt_host, c.mqtt_port, f"{c.client_id}-sys", self.metrics, c.username, c.password,
                            c.tls) if c.broker_counters else None
        if watch:
            watch.start()
        self.connect()
        idle_since = time.monotonic()
        try:
            while not self.stopping.is_set():
                batch = self._take_batch()
                if batch:
                    self.process(batch)
                    idle_since = time.monotonic()
                elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                    break
        except StoppedError:
            log.warning("ingester_stopped_uncommitted", messages=self.inbox.qsize(),
                        detail="database unavailable at stop; nothing uncommitted was acknowledged")
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            if watch:
                watch.stop()
            self._drop_db()
            log.info("ingester_stopped", stored=self.totals.stored, samples=self.totals.samples)
        return self.totals

    def retire(self, idle_s: float = 3.0, timeout_s: float = 30.0) -> BatchResult:
        """Drain this client id's broker session, then end it, so the shared group stops dealing it a share.

        The procedure for a replica slot that will not come back (docs/ingest.md "Retiring a slot"): connect
        under the retired slot's client id (its session is restored with everything waiting in it), ingest
        until idle, unsubscribe, ingest what was dealt before the UNSUBACK, and disconnect with Session Expiry
        0 so that the broker deletes the session. Returns the totals.
        """
        self.run(idle_exit_s=idle_s)  # connects, drains the waiting share, disconnects (session kept)
        if self.stopping.is_set():  # SIGTERM while draining: leave the session as it is
            return self.totals
        self._retiring.set()
        self.connected.clear()
        self.client = self._make_client()
        self.connect()
        try:
            if not self._unsubscribe(timeout_s):
                raise RuntimeError("the broker did not confirm the unsubscribe; the slot is not retired")
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < idle_s and not self.stopping.is_set():
                batch = self._take_batch()  # what was dealt before the UNSUBACK
                if batch:
                    self.process(batch)
                    idle_since = time.monotonic()
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0  # the broker deletes the session (and its place in the group)
            if self.stopping.is_set():  # interrupted: keep the session, so nothing in it is lost
                self.client.disconnect()
            else:
                self.client.disconnect(properties=props)
        finally:
            self.client.loop_stop()
            self._drop_db()
        log.info("ingest_slot_retired", stored=self.totals.stored, samples=self.totals.samples)
        return self.totals

    def _unsubscribe(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        self.client.unsubscribe(self.topic_filter)
        return self._unsubscribed.wait(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        """Finish the batch in hand, commit, acknowledge and leave (SIGTERM handler)."""
        self.stopping.set()

