"""Prometheus metrics of one ingester process (own registry, so tests can run several side by side)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["IngestMetrics"]


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
