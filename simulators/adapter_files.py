"""File output of the simulator: admin CSVs, ground-truth Parquet and the message log.

Message log (``messages.bin``): the magic line ``FATIGUESIM1\\n`` then one record per message in publish
order: big-endian ``int64 publish_ms, uint16 topic length, uint32 payload length``, the UTF-8 topic and the
payload bytes. Everything written is a pure function of the seed (no wall-clock, no hostnames), so two runs
with the same parameters produce byte-identical files.
"""

from __future__ import annotations

import csv
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from simulators.clock import LONDON
from simulators.cohort import AGE_BANDS, SEXES
from simulators.messages import Message
from simulators.model import Simulation
from simulators.params import ROLE_GROUPS

__all__ = ["MAGIC", "LogRecord", "read_log", "write_admin_csvs", "write_log", "write_truth"]

MAGIC = b"FATIGUESIM1\n"
_HEAD = struct.Struct(">qHI")
PARTICIPANT_COLUMNS = ("force_id", "staff_ref", "role_group", "age_band", "sex", "programme_start",
                       "consent_manager", "consent_research", "device_ids", "gateway_id")
ROSTER_COLUMNS = ("force_id", "staff_ref", "start", "end", "shift_type", "overtime")


@dataclass(frozen=True)
class LogRecord:
    """One record of the message log."""

    publish_ms: int
    topic: str
    payload: bytes


def _bool(v: object) -> str:
    return "true" if v else "false"


def write_admin_csvs(sim: Simulation, out: Path) -> tuple[Path, Path]:
    """Write ``participants.csv`` and ``roster.csv`` in the admin formats of docs/developing.md.

    Returns
    -------
    (participants, roster) : tuple of Path
    """
    c = sim.cohort
    people = out / "participants.csv"
    with people.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(PARTICIPANT_COLUMNS)
        for p in range(c.n):
            devices = ";".join(d for d in (c.device_a[p], c.device_b[p]) if d)
            w.writerow([c.force[p], c.staff_ref[p], ROLE_GROUPS[c.role[p]], AGE_BANDS[c.age_band[p]],
                        SEXES[c.sex[p]], sim.params.start_date.isoformat(), _bool(c.consent_manager[p]),
                        _bool(c.consent_research[p]), devices, c.gateway_id[p]])
    roster = out / "roster.csv"
    f = sim.duties
    start = pd.to_datetime(np.asarray(f["start_s"], dtype=np.int64), unit="s", utc=True).tz_convert(LONDON)
    end = pd.to_datetime(np.asarray(f["end_s"], dtype=np.int64), unit="s", utc=True).tz_convert(LONDON)
    with roster.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(ROSTER_COLUMNS)
        for i, p in enumerate(np.asarray(f["participant"], dtype=np.int64)):
            w.writerow([c.force[p], c.staff_ref[p], start[i].isoformat(), end[i].isoformat(),
                        str(f["shift_type"][i]), _bool(f["overtime"][i])])
    return people, roster


def write_truth(frames: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    """Write each ground-truth frame as ``truth/<name>.parquet`` (pyarrow, no pandas index)."""
    folder = out / "truth"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in frames.items():
        path = folder / f"{name}.parquet"
        frame.to_parquet(path, engine="pyarrow", index=False)
        paths.append(path)
    return paths


def write_log(messages: Iterable[Message], path: Path) -> int:
    """Write messages to the binary log in the order given; returns the number written."""
    n = 0
    with path.open("wb") as fh:
        fh.write(MAGIC)
        for m in messages:
            topic = m.topic.encode()
            fh.write(_HEAD.pack(m.publish_ms, len(topic), len(m.payload)))
            fh.write(topic)
            fh.write(m.payload)
            n += 1
    return n


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise ValueError("message log is truncated")
    return data


def read_log(path: Path) -> Iterator[LogRecord]:
    """Read the binary message log back in publish order.

    Raises
    ------
    ValueError
        If the file does not start with :data:`MAGIC` or ends inside a record.
    """
    with path.open("rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{path} is not a simulator message log")
        while head := fh.read(_HEAD.size):
            if len(head) != _HEAD.size:
                raise ValueError("message log is truncated")
            publish_ms, n_topic, n_payload = _HEAD.unpack(head)
            topic = _read_exact(fh, n_topic).decode()
            yield LogRecord(publish_ms, topic, _read_exact(fh, n_payload))
