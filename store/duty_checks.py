"""Roster sanity checks across rows: exact duplicates and overlapping duties of one officer.

Pure functions over already validated duties; :func:`store.enrolment.import_roster` turns what they find into
row problems, so a roster with a repeated or overlapping duty is refused whole, naming both lines.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Duty", "duty_conflicts"]


@dataclass(frozen=True)
class Duty:
    """One duty: ``line`` is the CSV line (0 for a duty already stored)."""

    line: int
    participant: Hashable
    start: datetime
    end: datetime
    shift_type: str = ""
    overtime: bool = False


def _when(d: Duty) -> str:
    return f"{d.start.isoformat()} to {d.end.isoformat()}"


def duty_conflicts(new: Sequence[Duty], stored: Sequence[Duty] = ()) -> list[tuple[int, str, str]]:
    """``(line, column, reason)`` for each duty of ``new`` that repeats or overlaps another.

    Parameters
    ----------
    new : sequence of Duty
        The file's duties (``line`` > 0).
    stored : sequence of Duty
        Duties already in the database for the same officers. A stored duty with the same start as a new one
        is the one the import replaces, so it is not compared.

    Notes
    -----
    Duties are half-open intervals ``[start, end)``: a duty ending at 07:00 and the next starting at 07:00 do
    not overlap. Sorting by officer and start makes each overlap show up between neighbours, O(n log n).
    """
    problems: list[tuple[int, str, str]] = []
    first: dict[tuple[Hashable, datetime], Duty] = {}
    for d in new:
        seen = first.get((d.participant, d.start))
        if seen is None:
            first[(d.participant, d.start)] = d
        elif (seen.end, seen.shift_type, seen.overtime) == (d.end, d.shift_type, d.overtime):
            problems.append((d.line, "start", f"repeats line {seen.line} exactly; delete one of the two lines"))
        else:
            problems.append((d.line, "start", f"same officer and start as line {seen.line} but a different duty; "
                                              "keep the right one"))
    replaced = set(first)
    duties = list(first.values()) + [d for d in stored if (d.participant, d.start) not in replaced]
    duties.sort(key=lambda d: (str(d.participant), d.start, d.line))
    reach: Duty | None = None  # the officer's duty that ends latest so far
    for cur in duties:
        if reach is None or reach.participant != cur.participant or cur.start >= reach.end:
            reach = cur
            continue
        if cur.line or reach.line:  # two stored duties that overlap are not this file's doing
            line, other = (cur, reach) if cur.line else (reach, cur)
            where = f"line {other.line}" if other.line else "a duty already stored"
            problems.append((line.line, "start", f"duty {_when(line)} overlaps {where} ({_when(other)}); fix the "
                                                 "times (a stored duty is replaced only by a row with its start)"))
        if cur.end > reach.end:
            reach = cur
    return problems
