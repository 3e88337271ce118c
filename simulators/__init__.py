"""Simulators: a seeded police cohort (rosters, sleep, physiology, self-reports, device faults), its
ground truth, and an MQTT publisher with back-pressure. One seed gives byte-identical output.

May import: `ingest.contract` only, so the simulator and the ingester cannot drift apart.
"""
