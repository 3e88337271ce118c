"""Validation as a product feature: seeded cohorts end to end, flags against the simulator's ground truth.

:mod:`risk.validation.truth` defines "true exposure" per criterion (pure), :mod:`risk.validation.metrics`
scores flags against it and renders docs/validation.md with a figure (pure), :mod:`risk.validation.pipeline`
runs simulate -> ingest write path -> features -> models -> flags on a scratch database (I/O).
"""
