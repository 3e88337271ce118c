"""Syntax layer of the v1 wire contract: bytes -> typed msgspec Structs, with catalogue reason codes.

Helper of :mod:`ingest.contract`. The fast path is one strict, typed ``msgspec`` decode plus a duplicate-key
count; only when msgspec refuses a payload is it re-parsed by the slow diagnosis below, which tells
``too_deep``, ``non_finite_number``, ``duplicate_key``, ``number_out_of_range``, ``bad_text`` and
``malformed_json`` apart (reliability_security.md section 5, rows 1-9 and 21).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any, Final, NoReturn, TypeVar, get_type_hints

import msgspec
import numpy as np
import numpy.typing as npt
from msgspec import UnsetType

from ingest.contract_base import MAX_DEPTH, MAX_PAYLOAD_BYTES, ContractError

__all__ = [
    "check_duplicates", "check_payload", "decode_fast_or_general", "decode_typed", "diagnose", "digit_column",
    "raw_key_count",
]

T = TypeVar("T")
_BOM: Final = b"\xef\xbb\xbf"
# Possessive and end-anchored so that an unterminated string still matches once: linear time on any input.
_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_STRING_OR_KEY: Final = re.compile(rb'"(?:[^"\\]|\\.)*+"\s*(:)?', re.DOTALL)
_PATH: Final = re.compile(r" - at `(\$[A-Za-z0-9_.\[\]]*)`$")
_MAX_INT_DIGITS: Final = 20


class _FoundError(Exception):
    """Internal: carries the reason found by the diagnosis out of a json hook."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def check_payload(payload: bytes) -> None:
    """Cheap checks before any parsing: size, emptiness, BOM and UTF-8 validity (rows 1, 2, 8, 22)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
    if not payload or payload.isspace():
        raise ContractError("empty_payload", "payload is empty")
    if payload.startswith(_BOM):
        raise ContractError("malformed_json", "payload starts with a UTF-8 byte-order mark")
    if not payload.isascii():
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            raise ContractError("bad_encoding", "payload is not valid UTF-8") from None


def max_depth(payload: bytes) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text, ignoring brackets inside strings (no recursion)."""
    stripped = _STRING.sub(b'""', payload)
    buf = np.frombuffer(stripped, dtype=np.uint8)
    opens = (buf == ord("[")) | (buf == ord("{"))
    closes = (buf == ord("]")) | (buf == ord("}"))
    step = opens.astype(np.int32) - closes.astype(np.int32)
    return int(np.cumsum(step).max(initial=0))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _FoundError("duplicate_key", "an object repeats a key")
    return out


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _FoundError("number_out_of_range", f"integer with more than {_MAX_INT_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _FoundError("non_finite_number", "number overflows to infinity")
    return value


def _parse_constant(text: str) -> NoReturn:
    raise _FoundError("non_finite_number", "NaN or Infinity is not allowed")


def _has_surrogate(obj: object) -> bool:
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def diagnose(payload: bytes) -> ContractError | None:
    """Find the syntax-level fault of a payload msgspec refused, or ``None`` if its syntax is clean.

    Slow (stdlib ``json`` with hooks); runs only on the error path.
    """
    if max_depth(payload) > MAX_DEPTH:
        return ContractError("too_deep", f"nesting deeper than {MAX_DEPTH} levels")
    try:
        text = payload.decode("utf-8")
        obj = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except _FoundError as found:
        return ContractError(found.reason, found.detail)
    except RecursionError:
        return ContractError("too_deep", f"nesting deeper than {MAX_DEPTH} levels")
    except UnicodeDecodeError:
        return ContractError("bad_encoding", "payload is not valid UTF-8")
    except (ValueError, OverflowError):
        return ContractError("malformed_json", "payload is not a single valid JSON text")
    if _has_surrogate(obj):
        return ContractError("bad_text", "a string holds a lone UTF-16 surrogate")
    return None


def _schema_error(exc: msgspec.ValidationError) -> ContractError:
    """Turn a msgspec validation message into a detail that names fields and types, never values."""
    message = str(exc)
    match = _PATH.search(message)
    where = f" at {match.group(1)}" if match else ""
    if "out of range" in message:
        return ContractError("number_out_of_range", f"number outside the representable range{where}")
    if message.startswith("Object contains unknown field"):
        # The key itself is sender-controlled text, so it is not echoed.
        return ContractError("schema_violation", f"unknown field{where}")
    if message.startswith(("Expected `", "Object missing required field `")):
        head = message.split(" - at ", 1)[0]
        return ContractError("schema_violation", f"{head}{where}")
    return ContractError("schema_violation", f"invalid value{where}")


def decode_typed(payload: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode a checked payload with a strict typed decoder; classify any failure.

    Raises
    ------
    ContractError
        With the syntax-level reason if the diagnosis finds one, else ``schema_violation`` or
        ``number_out_of_range`` from the typed validation.
    """
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as exc:
        found = diagnose(payload)
        raise (found or _schema_error(exc)) from None
    except (msgspec.DecodeError, RecursionError):
        found = diagnose(payload)
        raise (found or ContractError("malformed_json", "payload is not a single valid JSON text")) from None


def decode_fast_or_general(
    payload: bytes, general: msgspec.json.Decoder[T], fast: msgspec.json.Decoder[T] | None
) -> T:
    """Try the canonical-form decoder first; on any failure decode (and classify) with the general one."""
    if fast is not None:
        try:
            return fast.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            pass
    return decode_typed(payload, general)


def digit_column(raw: msgspec.Raw) -> npt.NDArray[np.int64] | None:
    """Parse a raw JSON array of plain non-negative integers (``[12,3]``, no spaces) without Python ints.

    Returns ``None`` for anything else (negative numbers, floats, strings, whitespace), so the caller falls
    back to the strict typed decoder. Integers too large for int64 saturate, which later range checks reject.
    """
    text = bytes(raw)
    if len(text) < 2 or text[0] != 0x5B or text[-1] != 0x5D:
        return None
    inner = text[1:-1]
    if not inner or inner.translate(None, b"0123456789,"):
        return None
    arr = np.fromstring(inner, dtype=np.int64, sep=",")
    return arr if arr.size == inner.count(b",") + 1 else None


def raw_key_count(payload: bytes) -> int:
    """Number of object keys in a valid JSON text, counted by tokenising its strings."""
    marks = _STRING_OR_KEY.findall(payload)
    return len(marks) - marks.count(b"")


@lru_cache(maxsize=64)
def _int_list_fields(cls: type) -> frozenset[str]:
    """Fields typed ``list[int]`` or ``Raw`` (never hold strings), so the token count can skip them."""
    hints = get_type_hints(cls)
    skip = {list[int], list[int] | UnsetType, msgspec.Raw}
    return frozenset(name for name, hint in hints.items() if hint in skip)


def _tokens(obj: msgspec.Struct) -> tuple[int, int]:
    """(keys, string values) a decoded Struct tree was built from."""
    keys = strings = 0
    skip = _int_list_fields(type(obj))
    for name in obj.__struct_fields__:
        value = getattr(obj, name)
        if value is msgspec.UNSET:
            continue
        keys += 1
        if type(value) is str:
            strings += 1
        elif isinstance(value, msgspec.Struct):
            k, s = _tokens(value)
            keys, strings = keys + k, strings + s
        elif type(value) is list and name not in skip:
            for item in value:
                if type(item) is str:
                    strings += 1
                elif isinstance(item, msgspec.Struct):
                    k, s = _tokens(item)
                    keys, strings = keys + k, strings + s
    return keys, strings


def check_duplicates(payload: bytes, decoded: msgspec.Struct | list[Any]) -> None:
    """Raise ``duplicate_key`` if the text has more keys than the Struct tree kept (last value wins).

    Fast check: a valid JSON text holds two ``"`` per string token plus one per escaped quote, so if it has
    exactly two per key and string value that were kept, no key was dropped. Otherwise count keys exactly.
    """
    items = decoded if isinstance(decoded, list) else [decoded]
    keys = strings = 0
    for item in items:
        k, s = _tokens(item)
        keys, strings = keys + k, strings + s
    if payload.count(b'"') == 2 * (keys + strings):
        return
    if raw_key_count(payload) != keys:
        raise ContractError("duplicate_key", "an object repeats a key")
