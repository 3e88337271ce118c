"""Benchmark ``ingest.contract.decode`` on ``hr/1`` messages against a stdlib baseline timed in the same run.

Baseline: ``json.loads`` with duplicate-key and NaN hooks plus per-field Python validation producing the same
NumPy columns (what a straightforward implementation would do). Run ``python -m benchmarks.bench_decode``;
``--quick`` runs a tiny size for smoke tests.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from ingest.contract import ContractError, HeartRate, decode, encode, suspect_mask, topic_for

TOPIC = topic_for("gw", "dev", "hr")
T0 = 1_711_845_000_000


def make_payload(n: int, seed: int = 0) -> bytes:
    """Canonical ``hr/1`` payload with ``n`` samples at 1 Hz."""
    rng = np.random.default_rng(seed)
    bpm = rng.integers(45, 180, n).astype(np.int16)
    t = T0 + np.arange(n, dtype=np.int64) * 1000
    return encode(HeartRate(uuid.UUID(int=seed + 1), "dev", T0, t, bpm, suspect_mask(bpm)))


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ContractError("duplicate_key", "repeated key")
    return out


def _const(_: str) -> float:
    raise ContractError("non_finite_number", "NaN")


def baseline_decode(payload: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Stdlib ``json`` plus per-field, per-sample Python validation."""
    doc = json.loads(payload.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_const)
    if not isinstance(doc, dict) or set(doc) != {"schema", "msg_id", "device_id", "sent_at", "t", "bpm"}:
        raise ContractError("schema_violation", "keys")
    uuid.UUID(doc["msg_id"])
    t, bpm = doc["t"], doc["bpm"]
    if not isinstance(t, list) or not isinstance(bpm, list) or len(t) != len(bpm):
        raise ContractError("schema_violation", "columns")
    for ti, b in zip(t, bpm, strict=True):
        if type(ti) is not int or not 10**11 <= ti < 10**13:
            raise ContractError("ts_unit", "t")
        if type(b) is not int and not (type(b) is float and math.isfinite(b)):
            raise ContractError("schema_violation", "bpm")
    return np.array(t, dtype=np.int64), np.array(bpm, dtype=np.int16)


def _rate(fn: Callable[[], object], min_seconds: float) -> float:
    """Calls per second, best of three runs of at least ``min_seconds / 3`` each."""
    best = math.inf
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_seconds / 3 or n == 0:
            fn()
            n += 1
        best = min(best, elapsed / n)
    return 1.0 / best


def run(sizes: tuple[int, ...], min_seconds: float) -> list[dict[str, float]]:
    """Time both decoders for each message size and print one line per size."""
    rows = []
    for n in sizes:
        payload = make_payload(n)
        assert decode(TOPIC, payload).n_samples == n
        ours = _rate(lambda p=payload: decode(TOPIC, p), min_seconds)  # type: ignore[misc]
        base = _rate(lambda p=payload: baseline_decode(p), min_seconds)  # type: ignore[misc]
        rows.append({"samples": n, "bytes": len(payload), "msg_s": ours, "base_msg_s": base, "ratio": ours / base})
        print(
            f"hr/1 {n:5d} samples ({len(payload):6d} B): contract.decode {ours:9.0f} msg/s "
            f"{ours * n / 1e6:7.2f} M samples/s | baseline json+python {base:8.0f} msg/s "
            f"{base * n / 1e6:6.2f} M samples/s | ratio {ours / base:5.1f}x"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    args = parser.parse_args(argv)
    if args.quick:
        run((10,), 0.03)
    else:
        run((60, 3600), 1.5)


if __name__ == "__main__":
    main()
