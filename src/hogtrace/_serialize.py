"""Turn arbitrary Python values into JSON-safe snapshots.

The PostHog client silently sends unknown objects as ``null``, so hogtrace converts captured
inputs and outputs itself. The common case (plain dicts, lists and strings, such as chat messages)
is checked by a cheap type scan and then copied by pydantic-core in Rust. Anything else (bytes,
non-finite floats, models, dataclasses, cycles, deep nesting, custom objects) goes through a
pure-Python walker that never raises.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import uuid
from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from pydantic_core import to_jsonable_python

__all__ = ["CYCLE_MARKER", "MAX_DEPTH", "MAX_DEPTH_MARKER", "to_json_safe"]

MAX_DEPTH = 64
"""Containers nested deeper than this are replaced by `MAX_DEPTH_MARKER`."""
CYCLE_MARKER = "<cycle>"
MAX_DEPTH_MARKER = "<max depth>"

_SCALARS = frozenset({str, int, bool, type(None)})
# Leaf types pydantic-core converts to strings without surprises (and that hold no bytes).
_PYDANTIC_LEAVES = frozenset(
    {datetime.datetime, datetime.date, datetime.time, datetime.timedelta, uuid.UUID, Decimal}
)
_FAST_LEAVES = _SCALARS | _PYDANTIC_LEAVES
_PYDANTIC_LEAF_BASES = (
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    Decimal,
    PurePath,
)
_BYTES_LIKE = (bytes, bytearray, memoryview)
_SEQUENCES = (list, tuple, set, frozenset, deque)


def to_json_safe(value: object) -> Any:
    """Return a fresh JSON-safe copy of ``value``.

    The result is built only from dicts with string keys, lists, strings, ints, finite floats,
    bools and None, and shares no mutable container with ``value``.

    Args:
        value: Any Python object, including hostile ones whose dunder methods raise.

    Returns:
        The JSON-safe snapshot. Bytes become ``"<N bytes>"``, non-finite floats become
        ``"NaN"``/``"Infinity"``/``"-Infinity"``, cycles become ``"<cycle>"``, containers deeper
        than `MAX_DEPTH` become ``"<max depth>"`` and unknown objects become their ``repr()``.
    """
    try:
        if _is_fast(value, 0):
            return to_jsonable_python(value)
    except Exception:  # noqa: S110 - anything odd falls through to the careful walker
        pass
    return _walk(value, 0, set())


def _is_fast(value: object, depth: int) -> bool:
    """Tell whether pydantic-core can copy ``value`` exactly as `_walk` would."""
    kind = type(value)
    if kind is str:
        return True
    if kind is dict:
        if depth >= MAX_DEPTH:
            return False
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                return False
            if type(item) is not str and not _is_fast(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            return False
        for item in value:  # type: ignore[attr-defined]
            if type(item) is not str and not _is_fast(item, depth + 1):
                return False
        return True
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    return kind in _FAST_LEAVES


def _walk(value: object, depth: int, active: set[int]) -> Any:
    """Convert ``value`` recursively; ``active`` holds ids of containers on the current path."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    try:
        return _convert(value, kind, depth, active)
    except Exception:
        return _safe_repr(value)


def _convert(value: Any, kind: type, depth: int, active: set[int]) -> Any:
    """Convert one non-trivial value; may raise, in which case the caller falls back to repr."""
    if isinstance(value, float):
        return _float(float.__float__(value))
    if isinstance(value, enum.Enum):
        return _walk(value.value, depth, active)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, _BYTES_LIKE):
        size = value.nbytes if isinstance(value, memoryview) else len(value)
        return f"<{size} bytes>"
    if isinstance(value, _PYDANTIC_LEAF_BASES):
        return to_jsonable_python(value)

    is_mapping = isinstance(value, Mapping)
    is_sequence = isinstance(value, _SEQUENCES)
    is_model = hasattr(kind, "__pydantic_serializer__") and hasattr(kind, "model_dump")
    is_dataclass = dataclasses.is_dataclass(kind)
    to_list = getattr(kind, "tolist", None)
    if not (is_mapping or is_sequence or is_model or is_dataclass or callable(to_list)):
        return _safe_repr(value)

    if id(value) in active:
        return CYCLE_MARKER
    if depth >= MAX_DEPTH:
        return MAX_DEPTH_MARKER
    active.add(id(value))
    try:
        if is_mapping:
            return {_key(k): _walk(v, depth + 1, active) for k, v in value.items()}
        if is_sequence:
            return [_walk(item, depth + 1, active) for item in value]
        if is_model:
            return _model(value, depth, active)
        if is_dataclass:
            return {
                f.name: _walk(getattr(value, f.name), depth + 1, active)
                for f in dataclasses.fields(value)
            }
        return _walk(value.tolist(), depth, active)
    finally:
        active.discard(id(value))


def _model(model: Any, depth: int, active: set[int]) -> Any:
    """Convert a pydantic model through its own serializer, falling back to its fields."""
    try:
        dumped = model.model_dump(mode="python", warnings=False)
    except Exception:
        fields = type(model).model_fields
        return {name: _walk(getattr(model, name), depth + 1, active) for name in fields}
    if _is_fast(dumped, depth):
        return to_jsonable_python(dumped)
    return _walk(dumped, depth, active)


def _float(number: float) -> float | str:
    """Return a finite float unchanged and spell NaN and infinities as strings."""
    if math.isfinite(number):
        return number
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def _key(key: object) -> str:
    """Turn a mapping key into a string, spelling scalars the way `json.dumps` does."""
    if type(key) is str:
        return key
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    converted = _walk(key, 0, set())
    return converted if isinstance(converted, str) else _safe_repr(key)


def _safe_repr(value: object) -> str:
    """Return ``repr(value)``, or a placeholder naming the type if that raises."""
    try:
        text = repr(value)
        if type(text) is str:
            return text
    except Exception:  # noqa: S110 - hostile __repr__, use the placeholder below
        pass
    try:
        name = type(value).__name__
    except Exception:
        name = "object"
    return f"<unrepresentable {name}>"
