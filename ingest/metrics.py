"""Prometheus metrics of one ingester process (own registry, so tests can run several side by side)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["BROKER_SYS_TOPICS", "IngestMetrics"]

#: Mosquitto's own counters the ingester republishes as gauges (published every ``sys_interval``, 10 s).
#: Alert rules in docs/ingest.md "Detecting what cannot be prevented".
BROKER_SYS_TOPICS: dict[str, tuple[str, str]] = {
    "$SYS/broker/clients/disconnected": (
        "fatigue_broker_persistent_clients_disconnected",
        "Persistent sessions whose client is offline (a departed ingester slot strands its share)"),
    "$SYS/broker/store/messages/count": (
        "fatigue_broker_stored_messages", "Messages held by the broker (queued for sessions, in flight)"),
    "$SYS/broker/publish/messages/dropped": (
        "fatigue_broker_dropped_messages", "Messages the broker dropped (queue limits); must stay 0"),
    "$SYS/broker/publish/messages/received": (
        "fatigue_broker_received_publishes", "PUBLISH packets the broker received since it started"),
}


@dataclass
class IngestMetrics:
    """Counters and gauges named ``fatigue_ingest_*``; never labelled with ids or payload values."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages = Counter("fatigue_ingest_messages", "Messages stored, by stream", ["stream"], registry=r)
        self.samples = Counter("fatigue_ingest_samples", "Samples stored, by stream", ["stream"], registry=r)
        self.dead_letters = Counter("fatigue_ingest_dead_letters", "Dead-lettered messages, by reason",
                                    ["reason"], registry=r)
        self.duplicates = Counter("fatigue_ingest_duplicates_absorbed", "Redelivered or replayed messages "
                                  "absorbed by the ledger", registry=r)
        self.quarantined = Counter("fatigue_ingest_quarantined", "Messages from unknown devices", registry=r)
        self.future_dropped = Counter("fatigue_ingest_future_samples_dropped", "Samples > 5 min ahead dropped",
                                      registry=r)
        self.batch_seconds = Histogram("fatigue_ingest_batch_seconds", "Decode + write + commit per batch",
                                       registry=r)
        self.queue_depth = Gauge("fatigue_ingest_queue_depth", "Messages received and not yet committed",
                                 registry=r)
        self.last_commit = Gauge("fatigue_ingest_last_commit_timestamp_seconds", "Time of the last commit",
                                 registry=r)
        self.db_retries = Counter("fatigue_ingest_db_retries", "Batches retried after a connection error",
                                  registry=r)
        self.samples_absorbed = Counter("fatigue_ingest_samples_absorbed", "Samples of new messages that were "
                                        "already stored (re-batched or replayed runs)", registry=r)
        self.revisions = Counter("fatigue_ingest_sleep_revisions", "Sleep episodes replaced by a changed version "
                                 "(the earlier version is kept for audit)", registry=r)
        self.broker = {topic: Gauge(name, doc, registry=r) for topic, (name, doc) in BROKER_SYS_TOPICS.items()}

    def broker_counter(self, topic: str, payload: bytes) -> None:
        """Record one of the broker's ``$SYS`` counters; anything unparsable is ignored."""
        gauge = self.broker.get(topic)
        if gauge is None:
            return
        try:
            gauge.set(float(payload.decode("ascii").split()[0]))
        except (UnicodeDecodeError, ValueError, IndexError):
            return
