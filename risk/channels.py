"""The delivery channels of a weekly report (import-light: the CLI's ``--help`` reads them)."""

from __future__ import annotations

__all__ = ["CHANNELS"]

#: Outbox file, MQTT notice, e-mail: each delivered (or cancelled) on its own (:mod:`risk.delivery`).
CHANNELS: tuple[str, ...] = ("outbox", "mqtt", "email")
