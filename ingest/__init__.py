"""Ingest: the v1 MQTT wire contract (`ingest.contract`), decoding and validation, the MQTT consumer, the
batch writer, dead letters and quarantine.

May import: `store`. Must not import `features`, `models`, `risk`, `exports` or `service`.
"""
