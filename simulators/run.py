"""Entry points that ``fatigue simulate`` wraps: generate to a directory, publish live, replay a log.

- :func:`simulate_to_dir` writes ``participants.csv``, ``roster.csv``, ``truth/*.parquet``,
  ``messages.bin`` (publish order) and ``manifest.json``; byte-identical for one set of parameters.
- :func:`publish_simulation` generates and publishes straight to a broker.
- :func:`replay` publishes a ``messages.bin`` written earlier.
- :func:`cli_entry` is a small argparse front end (``python -m simulators ...``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from tqdm import tqdm

from simulators.adapter_files import read_log, write_admin_csvs, write_log, write_truth
from simulators.messages import Message, iter_messages
from simulators.model import Simulation, simulate
from simulators.params import FaultRates, SimParams
from simulators.publisher import PublishStats, publish_messages
from simulators.truth import truth_frames

__all__ = ["cli_entry", "publish_simulation", "replay", "simulate_to_dir"]


def _manifest(sim: Simulation, n_messages: int) -> dict[str, Any]:
    params = dataclasses.asdict(sim.params)
    params["start_date"] = sim.params.start_date.isoformat()
    return {"format": "fatigue-sim/1", "params": params, "participants": sim.cohort.n,
            "duties": int(sim.roster.on_duty.sum()), "episodes": sim.episodes.n, "messages": n_messages,
            "files": ["participants.csv", "roster.csv", "messages.bin", "truth/*.parquet"]}


def _triples(messages: Iterator[Message]) -> Iterator[tuple[int, str, bytes]]:
    for m in messages:
        yield m.publish_ms, m.topic, m.payload


def simulate_to_dir(params: SimParams, out: Path, *, progress: bool = False) -> Simulation:
    """Generate a cohort and write every output file under ``out`` (created if needed).

    Parameters
    ----------
    params : SimParams
        What to simulate (the seed fixes every byte).
    out : Path
        Output directory.
    progress : bool
        Show a tqdm bar while encoding messages.

    Returns
    -------
    Simulation
        The generated tables, for callers that want to inspect them.
    """
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate(params)
    write_admin_csvs(sim, out)
    write_truth(truth_frames(sim), out)
    msgs = tqdm(iter_messages(sim), total=sim.table.n, disable=not progress, unit="msg")
    n = write_log(msgs, out / "messages.bin")
    (out / "manifest.json").write_text(json.dumps(_manifest(sim, n), indent=2, sort_keys=True) + "\n")
    return sim


def publish_simulation(params: SimParams, host: str, port: int, *, speed: float | None = None,
                       max_inflight: int = 1000, progress: bool = False, out: Path | None = None) -> PublishStats:
    """Generate a cohort and publish its messages over MQTT (optionally also writing CSVs and truth).

    Parameters
    ----------
    params : SimParams
        What to simulate.
    host, port : str, int
        Broker address.
    speed : float, optional
        Time acceleration; ``None`` = as fast as the broker acknowledges.
    max_inflight : int
        Bound on unacknowledged messages (see :mod:`simulators.publisher`).
    progress : bool
        Show progress.
    out : Path, optional
        Where to write ``participants.csv``, ``roster.csv`` and the truth tables first.
    """
    sim = simulate(params)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_admin_csvs(sim, out)
        write_truth(truth_frames(sim), out)
    return publish_messages(_triples(iter_messages(sim)), host, port, speed=speed, max_inflight=max_inflight,
                            progress=progress, total=sim.table.n)


def replay(log: Path, host: str, port: int, *, speed: float | None = None, max_inflight: int = 1000,
           progress: bool = False) -> PublishStats:
    """Publish a ``messages.bin`` written by :func:`simulate_to_dir`, in its order."""
    records = ((r.publish_ms, r.topic, r.payload) for r in read_log(log))
    return publish_messages(records, host, port, speed=speed, max_inflight=max_inflight, progress=progress)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fatigue simulate", description="Seeded police cohort simulator.")
    ap.add_argument("--participants", type=int, default=100)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--start", type=date.fromisoformat, default=date(2025, 3, 3), help="local start date")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write files here")
    ap.add_argument("--publish", metavar="HOST:PORT", help="publish to this broker")
    ap.add_argument("--replay", type=Path, metavar="MESSAGES_BIN", help="publish an existing log")
    ap.add_argument("--speed", type=float, default=None, help="time acceleration (default: as fast as acked)")
    ap.add_argument("--max-inflight", type=int, default=1000)
    ap.add_argument("--faults", choices=("none", "default", "heavy"), default="default",
                    help="device and transport faults: none (clean data), default, or heavy (3x device rates)")
    ap.add_argument("--no-faults", action="store_true", help="same as --faults none")
    ap.add_argument("--rr-whole-night", action="store_true", help="record RR over the whole main sleep")
    ap.add_argument("--quiet", action="store_true")
    return ap


def _params(ns: argparse.Namespace) -> SimParams:
    extra: dict[str, Any] = {}
    extra["faults"] = FaultRates.preset("none" if ns.no_faults else ns.faults)
    if ns.rr_whole_night:
        extra["rr_every_min"] = extra["rr_window_min"] = 30
    return SimParams(n_participants=ns.participants, n_days=ns.days, start_date=ns.start, seed=ns.seed, **extra)


def cli_entry(argv: Sequence[str] | None = None) -> int:
    """Command-line front end; returns a process exit code.

    Examples
    --------
    ``python -m simulators --participants 100 --days 120 --seed 7 --out /tmp/sim``
    ``python -m simulators --replay /tmp/sim/messages.bin --publish 127.0.0.1:1883 --speed 3600``
    """
    ns = _parser().parse_args(argv)
    progress = not ns.quiet
    host, _, port = (ns.publish or "").rpartition(":")
    if ns.replay:
        if not ns.publish:
            raise SystemExit("--replay needs --publish HOST:PORT")
        stats = replay(ns.replay, host, int(port), speed=ns.speed, max_inflight=ns.max_inflight, progress=progress)
    elif ns.publish:
        stats = publish_simulation(_params(ns), host, int(port), speed=ns.speed, max_inflight=ns.max_inflight,
                                   progress=progress, out=ns.out)
    elif ns.out:
        sim = simulate_to_dir(_params(ns), ns.out, progress=progress)
        print(f"wrote {sim.table.n} messages, {sim.cohort.n} participants to {ns.out}")
        return 0
    else:
        raise SystemExit("give --out DIR, --publish HOST:PORT or --replay FILE --publish HOST:PORT")
    print(f"published {stats.published}, acknowledged {stats.acked}, failed {stats.failed} "
          f"in {stats.seconds:.1f} s ({stats.rate:.0f}/s) over {stats.clients} gateway clients")
    return 0 if stats.failed == 0 and stats.acked == stats.published else 1
