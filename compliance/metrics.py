"""Prometheus metrics of the compliance job (own registry by default, so tests can run several side by side)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

__all__ = ["ComplianceMetrics", "process_metrics"]


@dataclass
class ComplianceMetrics:
    """Counters and gauges named ``fatigue_compliance_*``, labelled by alert kind, level or channel only."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.opened = Counter("fatigue_compliance_alerts_opened", "Alert episodes opened, by kind", ["kind"],
                              registry=r)
        self.closed = Counter("fatigue_compliance_alerts_closed", "Alert episodes closed, by kind", ["kind"],
                              registry=r)
        self.open = Gauge("fatigue_compliance_alerts_open", "Alert episodes open now, by kind", ["kind"], registry=r)
        self.participants = Gauge("fatigue_compliance_participants", "Participants in programme, by level",
                                  ["level"], registry=r)
        self.delivered = Counter("fatigue_compliance_deliveries", "Alert events delivered, by channel",
                                 ["channel"], registry=r)
        self.failed = Counter("fatigue_compliance_delivery_failures", "Alert events not delivered (retried next "
                              "run), by channel", ["channel"], registry=r)
        self.last_run = Gauge("fatigue_compliance_last_run_timestamp_seconds", "End of the last compliance run",
                              registry=r)


_PROCESS: list[ComplianceMetrics] = []


def process_metrics() -> ComplianceMetrics:
    """The metrics of a long-running process (``fatigue serve``), on prometheus_client's default registry."""
    if not _PROCESS:
        _PROCESS.append(ComplianceMetrics(REGISTRY))
    return _PROCESS[0]
