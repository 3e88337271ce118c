"""msgspec wire types of the native v1 streams and the canonical encoder.

Helper of :mod:`ingest.contract`. Every Struct is strict (no coercion; ``bool`` is not an ``int``) and
forbids unknown fields. Optional fields default to ``UNSET`` so that absent and present can be told apart
(``null`` is never accepted) and so that the encoder omits them.
"""

from __future__ import annotations

from typing import TypedDict

import msgspec
from msgspec import UNSET, UnsetType

from ingest.contract_records import DeviceStatus, HeartRate, Records, RRIntervals, SleepEpisodes, Survey

__all__ = [
    "DECODERS",
    "EpisodeWire",
    "HrFastWire",
    "HrIntWire",
    "HrWire",
    "RrWire",
    "SleepWire",
    "StatusWire",
    "SurveyFastWire",
    "SurveyWire",
    "encode",
]

Time = int | str


class _Strict(msgspec.Struct, forbid_unknown_fields=True):
    """Base: unknown keys are a schema violation."""


class _Envelope(_Strict):
    schema: str
    msg_id: str
    device_id: str
    sent_at: Time


class HrWire(_Envelope):
    """``hr/1`` body: sample times and bpm (floats are kept to be flagged as impossible)."""

    t: list[Time]
    bpm: list[int | float]


class HrFastWire(_Envelope):
    """``hr/1`` with the columns kept as raw JSON, tried first: if both are plain ``[digits,digits,...]``
    (the canonical encoding) NumPy parses them without creating Python ints; otherwise :class:`HrWire`."""

    t: msgspec.Raw
    bpm: msgspec.Raw


class HrIntWire(_Envelope):
    """``hr/1`` with integer columns; tried first for small payloads, where NumPy text parsing does not pay."""

    t: list[int]
    bpm: list[int]


class RrWire(_Envelope):
    """``rr/1`` body: run start and RR intervals in ms."""

    start: Time
    rr_ms: list[int]


class EpisodeWire(_Strict):
    """One ``sleep/1`` episode."""

    start: Time
    end: Time
    in_bed: bool
    epoch_s: int
    stages: list[int] | UnsetType = UNSET
    tst_min: int | float | UnsetType = UNSET


class SleepWire(_Envelope):
    """``sleep/1`` body: 1..32 episodes."""

    episodes: list[EpisodeWire]


class StatusWire(_Envelope):
    """``status/1`` body."""

    t: Time
    online: bool
    battery_pct: int | UnsetType = UNSET
    worn: bool | UnsetType = UNSET
    firmware: str | UnsetType = UNSET


class SurveyFastWire(_Envelope):
    """``survey/1`` with integer times: tried first."""

    t: list[int]
    kss: list[int]
    samn_perelli: list[int | None] | UnsetType = UNSET
    context: list[str] | UnsetType = UNSET


class SurveyWire(_Envelope):
    """``survey/1`` body."""

    t: list[Time]
    kss: list[int]
    samn_perelli: list[int | None] | UnsetType = UNSET
    context: list[str] | UnsetType = UNSET


#: Per stream: the general (strict) wire type and, where it pays, a faster canonical type tried first.
WIRE_TYPES: dict[str, tuple[type[_Envelope], type[_Envelope] | None]] = {
    "hr": (HrWire, None),
    "rr": (RrWire, None),
    "sleep": (SleepWire, None),
    "status": (StatusWire, None),
    "survey": (SurveyWire, SurveyFastWire),
}
DECODERS: dict[str, tuple[msgspec.json.Decoder[_Envelope], msgspec.json.Decoder[_Envelope] | None]] = {
    stream: (msgspec.json.Decoder(general), None if fast is None else msgspec.json.Decoder(fast))
    for stream, (general, fast) in WIRE_TYPES.items()
}
_ENCODER = msgspec.json.Encoder()


class _EnvelopeArgs(TypedDict):
    schema: str
    msg_id: str
    device_id: str
    sent_at: int


def _envelope(r: Records) -> _EnvelopeArgs:
    return {"schema": f"{r.stream}/1", "msg_id": str(r.msg_id), "device_id": r.device_id, "sent_at": r.sent_at_ms}


def _episodes(r: SleepEpisodes) -> list[EpisodeWire]:
    out = []
    for i in range(r.n_samples):
        stages = r.stages[i]
        tst = float(r.tst_min[i])
        out.append(
            EpisodeWire(
                start=int(r.start_ms[i]),
                end=int(r.end_ms[i]),
                in_bed=bool(r.in_bed[i]),
                epoch_s=int(r.epoch_s[i]),
                stages=UNSET if stages is None else stages.tolist(),
                tst_min=UNSET if tst != tst else tst,
            )
        )
    return out


def _survey(r: Survey) -> SurveyWire:
    sp = r.samn_perelli.tolist()
    return SurveyWire(
        **_envelope(r),
        t=r.t_ms.tolist(),
        kss=r.kss.tolist(),
        samn_perelli=[v or None for v in sp] if any(sp) else UNSET,
        context=list(r.context) if any(r.context) else UNSET,
    )


def _to_wire(r: Records) -> _Envelope:
    env = _envelope(r)
    if isinstance(r, HeartRate):
        return HrWire(**env, t=r.t_ms.tolist(), bpm=r.bpm.tolist())
    if isinstance(r, RRIntervals):
        return RrWire(**env, start=r.start_ms, rr_ms=r.rr_ms.tolist())
    if isinstance(r, SleepEpisodes):
        return SleepWire(**env, episodes=_episodes(r))
    if isinstance(r, DeviceStatus):
        return StatusWire(
            **env,
            t=r.t_ms,
            online=r.online,
            battery_pct=UNSET if r.battery_pct is None else r.battery_pct,
            worn=UNSET if r.worn is None else r.worn,
            firmware=UNSET if r.firmware is None else r.firmware,
        )
    return _survey(r)


def encode(records: Records) -> bytes:
    """Encode records as canonical ``{stream}/1`` JSON: fixed key order, times as epoch ms, absent optionals
    omitted. ``decode(topic_for(gw, records.device_id, records.stream), encode(records)) == records`` for
    every record :func:`ingest.contract.decode` can produce.

    Parameters
    ----------
    records : Records
        The message to encode. Quality flags (``suspect``, ``artifact``) are not on the wire; the decoder
        recomputes them.

    Returns
    -------
    bytes
        UTF-8 JSON payload.
    """
    return _ENCODER.encode(_to_wire(records))
