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
from collections.abc import Mapping, Sequence, ValuesView
from collections.abc import Set as AbstractSet
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from pydantic_core import to_jsonable_python

__all__ = ["CYCLE_MARKER", "MAX_DEPTH", "MAX_DEPTH_MARKER", "to_json_safe"]

MAX_DEPTH = 64
"""Containers nested deeper than this are replaced by `MAX_DEPTH_MARKER`."""
CYCLE_MARKER = "<cycle>"
MAX_DEPTH_MARKER = "<max depth>"

_SCALARS = frozenset({str, bool, type(None)})
#: Ints longer than this cannot be written as JSON (Python's 4,300-digit int-to-str limit).
_MAX_INT_BITS = 14_000
# Leaf types pydantic-core converts to strings without surprises (and that hold no bytes).
_PYDANTIC_LEAVES = frozenset(
    {datetime.datetime, datetime.date, datetime.time, datetime.timedelta, uuid.UUID, Decimal}
)
_FAST_LEAVES = _SCALARS | _PYDANTIC_LEAVES  # ints are checked for size first
_PYDANTIC_LEAF_BASES = (
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    Decimal,
    PurePath,
)
_BYTES_LIKE = (bytes, bytearray, memoryview)
_SEQUENCES = (Sequence, AbstractSet, ValuesView)  # lists, tuples, sets, deques, ranges, views

# Categories of types, decided once per type. Those from _CONTAINERS on can nest.
_OTHER, _FLOAT, _ENUM, _STR, _INT, _BYTES, _PYDANTIC_LEAF = range(7)
_CONTAINERS = 7
_MAPPING, _SEQUENCE, _MODEL, _DATACLASS, _TOLIST = range(_CONTAINERS, _CONTAINERS + 5)
_categories: dict[type, int] = {}
_MAX_CACHED_TYPES = 2048


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
    except Exception:  # anything odd falls through to the careful walker
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
            item_kind = type(item)
            if item_kind is str:
                continue
            if item_kind is dict and depth + 1 < MAX_DEPTH:
                # A list of dicts (chat messages) is the common payload: the dicts are scanned
                # here rather than by one more call each.
                for key, field in item.items():
                    if type(key) is not str:
                        return False
                    if type(field) is not str and not _is_fast(field, depth + 2):
                        return False
            elif not _is_fast(item, depth + 1):
                return False
        return True
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if kind is int:
        return int.bit_length(value) <= _MAX_INT_BITS  # type: ignore[arg-type]
    return kind in _FAST_LEAVES


def _walk(value: object, depth: int, active: set[int]) -> Any:
    """Convert ``value`` recursively; ``active`` holds ids of containers on the current path."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is int:
        return _int(value)  # type: ignore[arg-type]
    try:
        category = _categories.get(kind)
        if category is None:
            category = _categorize(kind)
            if len(_categories) < _MAX_CACHED_TYPES:
                _categories[kind] = category
        if category < _CONTAINERS:
            return _convert_leaf(value, category, depth, active)
        return _convert_container(value, category, depth, active)
    except Exception:
        return _safe_repr(value)


def _categorize(kind: type) -> int:
    """Return the category of a type; the order of the checks matters (IntEnum is an int)."""
    for category, bases in (
        (_FLOAT, float),
        (_ENUM, enum.Enum),
        (_STR, str),
        (_INT, int),
        (_BYTES, _BYTES_LIKE),
        (_PYDANTIC_LEAF, _PYDANTIC_LEAF_BASES),
        (_MAPPING, Mapping),
        (_SEQUENCE, _SEQUENCES),
    ):
        if issubclass(kind, bases):
            return category
    if hasattr(kind, "__pydantic_serializer__") and hasattr(kind, "model_dump"):
        return _MODEL
    if dataclasses.is_dataclass(kind):
        return _DATACLASS
    if callable(getattr(kind, "tolist", None)):
        return _TOLIST
    return _OTHER


def _convert_leaf(value: Any, category: int, depth: int, active: set[int]) -> Any:
    """Convert a value that holds no container of its own; may raise."""
    if category == _FLOAT:
        return _float(float.__float__(value))
    if category == _ENUM:
        return _walk(value.value, depth, active)
    if category == _STR:
        return str.__str__(value)
    if category == _INT:
        return _int(int.__int__(value))
    if category == _BYTES:
        return f"<{value.nbytes if isinstance(value, memoryview) else len(value)} bytes>"
    if category == _PYDANTIC_LEAF:
        return to_jsonable_python(value)
    return _safe_repr(value)


def _int(value: int) -> int | str:
    """An int, or a marker for one too long to write as JSON."""
    if value.bit_length() <= _MAX_INT_BITS:
        return value
    return f"<int of {value.bit_length():,} bits>"


def _convert_container(value: Any, category: int, depth: int, active: set[int]) -> Any:
    """Convert a value that may nest, cutting cycles and excessive depth; may raise."""
    if id(value) in active:
        return CYCLE_MARKER
    if depth >= MAX_DEPTH:
        return MAX_DEPTH_MARKER
    active.add(id(value))
    try:
        if category == _MAPPING:
            return {_key(k): _walk(v, depth + 1, active) for k, v in value.items()}
        if category == _SEQUENCE:
            return [_walk(item, depth + 1, active) for item in value]
        if category == _MODEL:
            return _model(value, depth, active)
        if category == _DATACLASS:
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
    except Exception:  # hostile __repr__: use the placeholder below
        pass
    try:
        name = type(value).__name__
    except Exception:
        name = "object"
    return f"<unrepresentable {name}>"
