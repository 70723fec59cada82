"""Turn arbitrary Python values into JSON-safe snapshots.

The PostHog client silently sends unknown objects as ``null``, so hogtrace converts captured
inputs and outputs itself. The common case (plain dicts, lists and strings, such as chat messages)
is checked by a cheap type scan and then copied by pydantic-core in Rust. Anything else (bytes,
non-finite floats, models, dataclasses, cycles, deep nesting, custom objects) goes through a
pure-Python walker that never raises.

Given a byte ``budget`` (the event size limit), the snapshot stops early once the value's JSON
is certainly larger than the budget: long strings are sliced, long lists, tuples, sets and
numpy-like arrays keep a prefix plus a `LIST_TRUNCATION_MARKER` item, and mappings keep their
first keys plus a `DICT_TRUNCATION_KEY` entry. Sizes are counted as lower bounds of the JSON
the PostHog client measures, so a value that fits is never cut, and the cost of a snapshot is
bounded by the budget rather than by the value. `hogtrace._limits.fit_event` then makes the
exact final cut and folds these markers' counts into its own.

Given an ``items`` budget too (``max_items``), the copy also stops once it holds that many
items (list items and dict entries, at every depth; a `Walk` counts them down): each item
costs the calling thread about a microsecond to read and copy, so a huge value of small
items is cut by count long before its size would cut it.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import sys
import types
import uuid
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence, ValuesView
from collections.abc import Set as AbstractSet
from decimal import Decimal
from itertools import accumulate, chain, islice, repeat
from pathlib import PurePath
from typing import Any

from pydantic_core import SchemaSerializer, core_schema, to_json, to_jsonable_python

__all__ = [
    "CYCLE_MARKER",
    "DICT_TRUNCATION_KEY",
    "DICT_TRUNCATION_MARKER",
    "LIST_TRUNCATION_MARKER",
    "LONG_INT",
    "MAX_DEPTH",
    "MAX_DEPTH_MARKER",
    "MAX_SAFE_INTEGER",
    "MIN_ITEM",
    "NUMBER_TYPES",
    "TRUNCATION_MARKER",
    "AsText",
    "Deferred",
    "Walk",
    "Head",
    "count_items",
    "has_long_int",
    "item_items",
    "number_sizes",
    "printed_row",
    "snapshot",
    "to_json_safe",
]

MAX_DEPTH = 64
"""Containers nested deeper than this are replaced by `MAX_DEPTH_MARKER`."""
CYCLE_MARKER = "<cycle>"
MAX_DEPTH_MARKER = "<max depth>"
TRUNCATION_MARKER = "…[truncated {n} chars]"
"""Appended to a cut string; ``n`` is the number of characters removed, with thousands commas."""
LIST_TRUNCATION_MARKER = "…[truncated {n} items]"
"""Last item of a cut list; ``n`` is the number of items removed, with thousands commas."""
DICT_TRUNCATION_KEY = "…"
"""Key of the entry that ends a mapping cut by `to_json_safe` (more dots if the key is taken)."""
DICT_TRUNCATION_MARKER = "…[truncated {n} keys]"
"""Value of that entry; ``n`` is the number of keys removed, with thousands commas."""
MAX_SAFE_INTEGER = 2**53 - 1
"""Larger ints become strings: JavaScript numbers (PostHog's UI) cannot hold them exactly."""

_SCALARS = frozenset({str, bool, type(None)})
#: Ints longer than this cannot be written as JSON: Python prints at most 4,300 digits
#: (2**14_284 has 4,300; some ints of one bit more have 4,301).
_MAX_INT_BITS = 14_284
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
_MAPPING, _SEQUENCE, _MODEL, _DATACLASS, _TOLIST, _FIELDS, _DEFERRED, _HEAD, _TEXT = range(
    _CONTAINERS, _CONTAINERS + 9
)
_categories: dict[type, int] = {}
_MAX_CACHED_TYPES = 2048

# Budgeted snapshots. Sizes are lower bounds of ``json.dumps`` output (ASCII escapes, ", " and
# ": " separators): every character takes at least one byte, every number at least one digit.
_NOT_PLAIN = -1
_TOO_BIG = -2
_CHUNK = 1024
"""Items of a long list examined at a time: one type scan and one Rust call per chunk."""
_VECTOR_MIN = 16
"""Chunks shorter than this are scanned item by item."""
_MIN_ITEM = MIN_ITEM = 256
"""`hogtrace._limits` cuts a list item by item only while each item may keep this many bytes."""
_MIN_CUT = 48
"""`hogtrace._limits` keeps a dict's keys only while each value may keep this many bytes."""
_FLOAT_SIZE = 3
"""The size of a float one at a time: its least (``0.0``), as an int's is 1. Spelling it to
measure it (``repr()``, ~1 µs) cost more than the rest of its copy; `hogtrace._limits` makes
the exact cut, and long lists of numbers are measured exactly at C speed."""
_ALL = sys.maxsize
"""No limit on the items of a copy."""
# What an item takes of a walk's items (``max_items``): about what it costs the calling thread,
# in units of a list item read at C speed (one type scan and one Rust call a chunk of them).
_BY_HAND = 6
"""An item read one at a time in Python: of a list that holds objects, or a mapping's entry."""
_BY_OBJECT = 16
"""Such an item that is not plain JSON (a dataclass, a model, a numpy scalar, an enum, bytes),
converted through its type."""
_LEAF_ITEMS = 2
"""A date, time, UUID or Decimal in a list or dict of plain values (pydantic-core converts it)."""


def to_json_safe(value: object, budget: int | None = None, items: int | None = None) -> Any:
    """Return a fresh JSON-safe copy of ``value``.

    The result is built only from dicts with string keys, lists, strings, ints, finite floats,
    bools and None, and shares no mutable container with ``value``.

    Args:
        value: Any Python object, including hostile ones whose dunder methods raise.
        budget: The most JSON bytes worth keeping, normally the event size limit
            (``max_event_bytes``). Once the value's JSON is certainly larger, or it has more
            than ``items`` items (of lists, tuples, sets and arrays, and entries of mappings,
            counted at every depth; ``max_items``), the copy stops there:
            strings are cut to ``budget`` characters plus `TRUNCATION_MARKER`, sequences and
            arrays end with a `LIST_TRUNCATION_MARKER` item and mappings with a
            `DICT_TRUNCATION_KEY` entry, so the cost is bounded by the budget. A value whose
            JSON fits in the budget is copied exactly as without one, except a list of more
            than 4,096 numbers (or a dict of as many scalars) whose first 1,024 are much
            longer than the rest (`_long_numbers`, `_long_mapping`), which may be cut, marked.
            None: copy everything (``items`` is then not used).
        items: The most items the copy keeps, with a ``budget`` (None: no limit): reading
            and copying each costs the calling thread time, so a value of many small items is
            cut by count (``max_items``) before its size would cut it.

    Returns:
        The JSON-safe snapshot. Bytes become ``"<N bytes>"``, non-finite floats become
        ``"NaN"``/``"Infinity"``/``"-Infinity"``, ints beyond `MAX_SAFE_INTEGER` become decimal
        strings, cycles become ``"<cycle>"``, containers deeper than `MAX_DEPTH` become
        ``"<max depth>"`` and unknown objects become their ``repr()``.
    """
    if budget is not None:
        return _bwalk(value, 0, new_walk(_ALL if items is None else max(items, 0)), max(budget, 0))[
            0
        ]
    try:
        if _is_fast(value, 0):
            return to_jsonable_python(value)
    except Exception:  # anything odd falls through to the careful walker
        pass
    return _walk(value, 0, set())


class Deferred:
    """The head of a large numeric numpy array, copied on the calling thread to convert later.

    Copying the numbers an event might hold is a ``memcpy``; converting them to Python
    numbers and measuring their JSON costs far more, so `snapshot` leaves that to the event
    builder, which calls `to_json_safe` (or `thaw`) off the calling thread. Only arrays of
    booleans and numbers are deferred: their copy shares nothing the caller can change.
    """

    __slots__ = ("head", "items", "length", "room")

    def __init__(self, head: Any, length: int, room: int, items: int) -> None:
        self.head = head  # a private copy of the first rows
        self.length = length  # rows in the original, for the truncation marker
        self.room = room  # the budget the array had
        self.items = items  # and the items it could still keep

    def __repr__(self) -> str:
        return f"<deferred array of {self.length:,} rows>"


class AsText:
    """A value a provider's formatter sends as ``str(value)``, made a string only later.

    posthog's converters send an input item that is no message as its ``str()``: of a value
    of many items that costs the calling thread far more than copying them (~0.5 µs a float),
    and the string is mostly cut. A `snapshot` copies ``value`` instead, within the limits and
    counting its items as the value's own, and `thaw` makes the string of that copy when the
    event is built: what was kept, with the copy's markers (a tuple shows as a list, an enum
    as its value, an object as the dict it converts to). Without a snapshot (`to_json_safe`),
    ``str(value)``.
    """

    __slots__ = ("more", "room", "value")

    def __init__(self, value: Any, room: int | None = None, more: int | None = None) -> None:
        self.value = value
        self.room = room  # of a snapshot's copy (else None): the characters its string keeps
        #: Of a row of numbers (a list or tuple of at most 1,024 ints, floats, booleans and
        #: None), copied as it is, not converted: how many of its values the copy left out.
        self.more = more

    def __repr__(self) -> str:
        return f"<str() of {type(self.value).__name__} to make>"


class Head:
    """The first ``items`` of a sequence of ``length`` items, the rest left unread.

    Converted as the whole sequence would be, as far as its items go: a copy that keeps every
    item of ``items`` still ends with `LIST_TRUNCATION_MARKER` counting the items after them.
    Its items count as a list's would (`max_items`), also inside another value, so a head of
    items the limit cuts within is cut where the whole list would be.
    For a caller that reads a long sequence only as far as the size limit can hold. Such a
    caller, having checked where a `snapshot` cuts it, may keep that snapshot in ``taken``.
    """

    __slots__ = ("items", "length", "taken")

    def __init__(self, items: Sequence[Any], length: int) -> None:
        self.items = items
        self.length = length
        self.taken: tuple[Any, int, Walk] | None = None

    def __repr__(self) -> str:
        return f"<first {len(self.items):,} of {self.length:,} items>"

    def __len__(self) -> int:
        return self.length


# Items read one at a time at `_BY_HAND`: plain JSON (a set costs an object's: its own walk),
# and a `Head`, counted as the list it is the first items of.
_BY_HAND_TYPES = frozenset({str, int, float, bool, type(None), dict, list, tuple, Head, AsText})


class Walk(set[int]):
    """A budgeted copy under way: the ids of the containers on the current path, items left.

    ``left`` is how many more items (of lists, tuples, sets, arrays, and entries of mappings,
    at any depth) the copy may keep: every item kept is one less, and a container reached
    with none left is cut there, marked, and ``cut`` set. A walk with ``defer`` may leave
    numeric arrays `Deferred`, and says so in ``deferred``.
    """

    __slots__ = ("cut", "defer", "deferred", "items", "left", "short")

    items: int
    left: int
    defer: bool
    deferred: bool
    cut: bool
    short: dict[int, int] | None
    """Containers `_fast_size` found to hold more items than were left (id: how many were):
    with as few left, it fails again at once instead of sizing them again, level by level."""

    @property
    def used(self) -> int:
        """The items the copy took."""
        return self.items - self.left


def new_walk(items: int, defer: bool = False) -> Walk:
    """A `Walk` of ``items`` items (set in place: a ``Walk.__init__`` doubles what it costs)."""
    walk = Walk()
    walk.items = walk.left = items
    walk.defer = defer
    walk.deferred = walk.cut = False
    walk.short = None
    return walk


def snapshot(value: object, budget: int, items: int | None = None) -> tuple[Any, int, Walk]:
    """`to_json_safe` with ``budget`` and ``items``, except that numeric arrays may stay `Deferred`.

    Returns:
        ``(copy, size, walk)``: ``size`` is a lower bound of the copy's JSON size. When
        ``walk.deferred`` is True the copy holds `Deferred` values and must go through `thaw`
        before it is JSON-safe; ``walk.cut`` says that ``items`` cut it; ``walk.used`` is how
        many of them it took (a `Deferred` array counts what it may keep).
    """
    walk = new_walk(_ALL if items is None else max(items, 0), defer=True)
    copy, size = _bwalk(value, 0, walk, max(budget, 0))
    return copy, size, walk


def count_items(value: Any, most: int) -> int:
    """The items of a JSON-like value's lists and dicts, at every depth, as a walk counts them.

    Each list or dict inside another is one item of it and one more (reading it costs a call).
    Counting stops once past ``most``: the result is then some number above it.
    """
    total = -1 if type(value) in _NESTING else 0  # the value itself is no item of its own
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            total += len(item) + 1
            if total > most:
                break
            pending.extend(item.values())
        elif kind is list or kind is tuple:
            total += len(item) + 1
            if total > most:  # before reading a long list's items, not after
                break
            pending.extend(item)
    return total


#: The containers that count one item more inside another (reading one is a call).
_NESTING = frozenset({dict, list, tuple})


def thaw(value: Any, cut: list[str] | None = None) -> Any:
    """Convert the `Deferred` arrays in a `snapshot` copy, each within the room it had.

    Each `AsText` is made the string of its copy, cut to its room; one that holds a marker
    (its copy was cut, by size or items) is added to ``cut``. Only they are converted: the
    rest of the copy is already JSON-safe, and what the snapshot cut (with its markers) stays
    as it is.
    """
    kind = type(value)
    if kind is Deferred:
        return _btolist(value.head, 0, new_walk(value.items), value.room, value.length)[0]
    if kind is AsText:
        text = _text_of(value)
        if cut is not None and value.room is not None and _MARKED in text:
            cut.append(text)
        return text
    if kind is dict:
        return {key: thaw(item, cut) for key, item in value.items()}
    if kind is list and not _SCALAR_TYPES.issuperset(map(type, value)):
        return [thaw(item, cut) for item in value]
    return value


def _text_of(text: AsText) -> str:
    """The string of an `AsText`: of its value, or of a snapshot's copy cut to its room."""
    if text.room is None:  # not a snapshot's copy
        if type(text.value) is int:  # a long int, left to print (`_bint`)
            return _int(text.value)  # type: ignore[return-value]
        return _safe_str(text.value)
    if text.more is not None:  # a row of numbers: cut at a value's end to fit
        return printed_row(text.value, text.more, text.room)
    return _cut_text(_safe_str(thaw(text.value)), text.room)[0]


#: What every truncation marker begins with.
_MARKED = "…[truncated"


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


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
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER  # type: ignore[operator]
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
    if kind is Deferred:
        return _DEFERRED
    if kind is Head:
        return _HEAD
    if kind is AsText:
        return _TEXT
    if issubclass(kind, types.SimpleNamespace) or (
        issubclass(kind, tuple) and isinstance(getattr(kind, "_fields", None), tuple)
    ):
        return _FIELDS  # namedtuples and namespaces keep their field names (for redaction)
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
    """An int JavaScript holds exactly, else its decimal string, or a marker if too long."""
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return value
    if value.bit_length() <= _MAX_INT_BITS:  # beyond it, str() is slow (quadratic) or raises
        try:
            return int.__repr__(value)
        except ValueError:  # sys.set_int_max_str_digits() was lowered below this int's length
            pass
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
            entries = {_key(k): _walk(v, depth + 1, active) for k, v in value.items()}
            if len(entries) < _length(value):  # keys that became the same string (1 and "1")
                return _distinct(value.items(), depth, active)
            return entries
        if category == _SEQUENCE:
            return [_walk(item, depth + 1, active) for item in value]
        if category == _MODEL:
            return _model(value, depth, active)
        if category == _DATACLASS:
            return {
                f.name: _walk(getattr(value, f.name), depth + 1, active)
                for f in dataclasses.fields(value)
            }
        if category == _FIELDS:
            return _distinct(_fields(value), depth, active)
        if category == _DEFERRED:
            walk = new_walk(value.items)
            return _btolist(value.head, depth, walk, value.room, value.length)[0]
        if category == _HEAD:
            out = [_walk(item, depth + 1, active) for item in value.items]
            return _end_list(out, value.length, 0, value.length > len(out))[0]
        if category == _TEXT:
            return thaw(value)
        return _walk(value.tolist(), depth, active)
    finally:
        active.discard(id(value))


def _distinct(pairs: Iterable[tuple[Any, Any]], depth: int, active: set[int]) -> dict[str, Any]:
    """Convert a mapping's entries, none lost to another key that became the same string."""
    out: dict[str, Any] = {}
    shared: set[str] = set()
    for key, item in pairs:
        name = _key(key)
        converted = _walk(item, depth + 1, active)
        if name in out:
            _share(out, shared, name, converted)
        else:
            out[name] = converted
    return out


def _share(out: dict[str, Any], shared: set[str], name: str, value: Any) -> int:
    """Add ``value`` under ``name``, which another key already became; the bytes it adds.

    A multi-map's repeated key (a header sent twice) or keys such as ``1`` and ``"1"``: the
    values are kept, in order, as a list under that name, so none is lost and redaction still
    sees them under it.
    """
    if name in shared:
        out[name].append(value)
        return 2  # ", "
    out[name] = [out[name], value]
    shared.add(name)
    return 4  # "[", ", ", "]"


def _fields(value: Any) -> list[tuple[Any, Any]]:
    """The named fields of a namedtuple or a SimpleNamespace, in order."""
    if isinstance(value, tuple):
        return list(zip(type(value)._fields, value, strict=False))  # type: ignore[attr-defined]
    return list(vars(value).items())


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
    if type(key) is int and -MAX_SAFE_INTEGER <= key <= MAX_SAFE_INTEGER:
        return int.__repr__(key)
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    converted = _walk(key, 0, set())
    if isinstance(converted, str):
        return converted
    if type(converted) is int or type(converted) is float:  # also an enum whose value is one
        return repr(converted)
    if converted is None or type(converted) is bool:
        return {None: "null", True: "true", False: "false"}[converted]
    return _safe_repr(key)


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


# -- budgeted snapshots -------------------------------------------------------------------------


def _fast_size(value: object, depth: int, room: int, walk: Walk) -> int:
    """Return a lower bound of the JSON size of ``value`` if `_is_fast` accepts it.

    Returns `_NOT_PLAIN` for a value `_is_fast` rejects and `_TOO_BIG` once the bound exceeds
    ``room`` or its items exceed ``walk.left``; both mean that `_bwalk` must convert it. Its
    items are taken from ``walk.left`` as they are sized: a caller that gets a negative size
    puts ``walk.left`` back.
    """
    kind = type(value)
    if kind is str:
        size = len(value) + 2  # type: ignore[arg-type]
        return size if size <= room else _TOO_BIG
    if kind is dict:
        if depth >= MAX_DEPTH:
            return _NOT_PLAIN
        if len(value) > _CHUNK:  # type: ignore[arg-type]
            return _TOO_BIG  # not measured whole: `_bwalk` reads it chunk by chunk
        if walk.short is not None and walk.short.get(id(value), -1) >= walk.left:
            walk.left = -1
            return _TOO_BIG
        entry = walk.left
        walk.left -= len(value) + 1  # type: ignore[arg-type]  # (+1: a call reads it)
        if walk.left < 0:
            return _TOO_BIG
        total = 0 if value else 2  # each entry below is followed by ", ", the last by "}"
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                return _NOT_PLAIN
            if type(item) is str:
                total += len(key) + len(item) + 8
            else:
                size = _fast_size(item, depth + 1, room - total, walk)
                if size < 0:
                    return _short(walk, value, entry) if walk.left < 0 else size
                total += len(key) + size + 6
            if total > room:
                return _TOO_BIG
        return total
    if kind is list or kind is tuple:
        return _fast_size_items(value, value, len(value), depth, room, walk)  # type: ignore[arg-type]
    if kind is Head:
        # Sized as the whole list, as far as its items go: it is never copied at C speed.
        head: Head = value  # type: ignore[assignment]
        size = _fast_size_items(head, head.items, head.length, depth, room, walk)
        return size if size < 0 else _TOO_BIG
    if kind is float:
        return _FLOAT_SIZE if math.isfinite(value) else _NOT_PLAIN  # type: ignore[arg-type]
    if kind is int:
        return 1 if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else _NOT_PLAIN  # type: ignore[operator]
    if kind in _SCALARS:
        return 2  # null, true, false (and str subclasses: quoted strings)
    if kind in _PYDANTIC_LEAVES:
        walk.left -= _LEAF_ITEMS - 1  # one was taken with the container that holds it
        return 2 if walk.left >= 0 else _TOO_BIG  # a quoted string
    return _NOT_PLAIN


def _fast_size_items(
    value: object, items: Sequence[Any], length: int, depth: int, room: int, walk: Walk
) -> int:
    """`_fast_size` of a list or tuple ``value`` of ``length`` items, the first ``items``."""
    if depth >= MAX_DEPTH:
        return _NOT_PLAIN
    if length > _CHUNK:
        return _TOO_BIG  # not measured whole: `_bwalk` reads it chunk by chunk
    if walk.short is not None and walk.short.get(id(value), -1) >= walk.left:
        walk.left = -1
        return _TOO_BIG
    entry = walk.left
    walk.left -= length + 1
    if walk.left < 0:
        return _TOO_BIG
    if len(items) >= _VECTOR_MIN:
        size = _scalars_size(items, room)
        if size != _NOT_PLAIN:
            return size
    total = 0 if items else 2
    for item in items:
        item_kind = type(item)
        if item_kind is str:
            total += len(item) + 4
        elif item_kind is float and item - item == 0.0:  # finite: no call for it
            total += _FLOAT_SIZE + 2
        elif item_kind is dict and depth + 1 < MAX_DEPTH and len(item) <= _CHUNK:
            total += 2 if item else 4  # as in _is_fast, one call scans a list of messages
            walk.left -= len(item) + 1
            if walk.left < 0:
                return _short(walk, value, entry)
            for key, field in item.items():
                if type(key) is not str:
                    return _NOT_PLAIN
                if type(field) is str:
                    total += len(key) + len(field) + 8
                else:
                    size = _fast_size(field, depth + 2, room - total, walk)
                    if size < 0:
                        return _short(walk, value, entry) if walk.left < 0 else size
                    total += len(key) + size + 6
        else:
            size = _fast_size(item, depth + 1, room - total, walk)
            if size < 0:
                return _short(walk, value, entry) if walk.left < 0 else size
            total += size + 2
        if total > room:
            return _TOO_BIG
    return total


def _short(walk: Walk, value: object, entry: int) -> int:
    """Note that ``value`` holds more items than ``entry`` (see `Walk.short`): `_TOO_BIG`."""
    if walk.short is None:
        walk.short = {}
    walk.short[id(value)] = entry
    return _TOO_BIG


def _bwalk(value: object, depth: int, active: Walk, room: int) -> tuple[Any, int]:
    """Convert ``value`` as `_walk` does, but stop past ``room`` bytes; return it and its size.

    The size is a lower bound of the JSON size of the result. Never raises.
    """
    kind = type(value)
    if kind is str:
        return _cut_text(value, room)  # type: ignore[arg-type]
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:  # type: ignore[operator]
            return value, len(int.__repr__(value))
        return _bint(value, active)  # type: ignore[arg-type]
    if kind is float:
        return _leaf(_float(value))  # type: ignore[arg-type]
    if kind is bool or value is None:
        return value, 4
    try:
        if kind is dict or kind is list or kind is tuple or kind is Head:
            left = active.left
            active.left += 1  # what `_fast_size` takes for reading it: the caller's item
            size = _fast_size(value, depth, room, active)
            if size >= 0:
                return to_jsonable_python(value), size
            active.left = left
        category = _categories.get(kind)
        if category is None:
            category = _categorize(kind)
            if len(_categories) < _MAX_CACHED_TYPES:
                _categories[kind] = category
        if category == _ENUM:
            return _bwalk(value.value, depth, active, room)  # type: ignore[attr-defined]
        if category == _STR:
            return _cut_text(value, room)  # type: ignore[arg-type]
        if category < _CONTAINERS:
            converted = _convert_leaf(value, category, depth, active)
            if type(converted) is str:
                return _cut_text(converted, room)  # a long repr()
            return _leaf(converted)
        return _bcontainer(value, category, depth, active, room)
    except Exception:
        return _cut_text(_safe_repr(value), room)


def _bint(value: int, active: Walk) -> tuple[Any, int]:
    """An int beyond `MAX_SAFE_INTEGER` as `_int` makes it, and the size of its string.

    Printing an int costs time quadratic in its digits (~0.15 ms for 3,000): a snapshot
    leaves a long one, which nothing can change, as an `AsText` for `thaw` to print on the
    event builder, sized from its bits. What printing costs is counted: one item more per
    `_DIGITS_SQUARED` of its digits squared (3,000 digits: 34), so the items a walk may keep
    bound the event builder's time too. Its size counts in full in a list or mapping: a
    number is not cut to a common length, as a long string is.
    """
    bits = value.bit_length()
    if bits <= _PRINT_NOW_BITS or bits > _MAX_INT_BITS or not active.defer:
        return _leaf(_int(value))
    active.deferred = True
    digits, takes = _printing(bits)
    left = active.left - takes + 1  # (the caller took the one any item takes)
    active.left = left if left > 0 else 0  # (then the next item is cut)
    return AsText(value), digits + 2 + (value < 0)


def _printing(bits: int) -> tuple[int, int]:
    """The fewest digits an int of ``bits`` bits has, and the items printing it counts."""
    digits = int((bits - 1) * _LOG10_2) + 1
    return digits, 1 + digits * digits // _DIGITS_SQUARED


#: Ints of up to this many bits (78 digits, ~0.4 µs to print) are printed at once.
_PRINT_NOW_BITS = 256
_LOG10_2 = math.log10(2)
#: An int's digits squared that count as one item of a walk: at the default `max_items`, the
#: event builder prints at most ~20 ms of long ints on a 2-vCPU VM.
_DIGITS_SQUARED = 1 << 18


class _Printed(str):
    """Text that a row prints as it is (``repr()`` without quotes): an int's marker."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str.__str__(self)


def has_long_int(row: Sequence[Any], kinds: AbstractSet[type]) -> bool:
    """Whether a row of plain values (of ``kinds``) holds an int of `LONG_INT` or more."""
    if int not in kinds:
        return False
    if kinds <= _INTS:  # at C speed
        return bool(max(row) >= LONG_INT or min(row) <= -LONG_INT)
    return any(type(n) is int and not -LONG_INT < n < LONG_INT for n in row)


LONG_INT = 1 << _PRINT_NOW_BITS
"""Ints this large or larger (78 digits and up) are printed by the event builder (`_bint`)."""
_INTS = frozenset({int, bool})


def _leaf(value: Any) -> tuple[Any, int]:
    """Pair a converted scalar with a lower bound of its JSON size."""
    kind = type(value)
    if kind is str:
        return value, len(value) + 2
    if kind is float:
        return value, len(float.__repr__(value))
    if kind is int:
        return value, len(int.__repr__(value))
    return value, 4


def _cut_text(text: str, room: int) -> tuple[str, int]:
    """Return ``text`` as an exact str, cut to ``room`` characters plus a marker if longer."""
    length = len(text)
    if length <= room:
        return str.__str__(text), length + 2
    keep = max(room, 0)
    cut = str.__getitem__(text, slice(0, keep)) + TRUNCATION_MARKER.format(n=f"{length - keep:,}")
    return cut, len(cut) + 2


def _bcontainer(value: Any, category: int, depth: int, active: Walk, room: int) -> tuple[Any, int]:
    """Convert a value that may nest, as `_convert_container` does but within ``room``."""
    if id(value) in active:
        return CYCLE_MARKER, len(CYCLE_MARKER) + 2
    if depth >= MAX_DEPTH:
        return MAX_DEPTH_MARKER, len(MAX_DEPTH_MARKER) + 2
    active.add(id(value))
    try:
        if category == _MAPPING:
            if type(value) is dict and len(value) > _LONG:
                entries = _long_mapping(value, room, active)
                if entries is not None:
                    return entries
            if type(value) is dict and len(value) > _CHUNK and active.items != _ALL:
                return _bdict(value, depth, active, room)
            return _bmapping(iter(value.items()), _length(value), depth, active, room)
        if category == _SEQUENCE:
            if (type(value) is list or type(value) is tuple) and len(value) > _LONG:
                cut = _long_numbers(value, room, active)
                if cut is not None:
                    return cut
            return _bsequence(_chunks(value, room), _length(value), depth, active, room)
        if category == _MODEL:
            return _bmodel(value, depth, active, room)
        if category in (_DATACLASS, _FIELDS):
            # As a dict of its fields (distinct names): one of plain values is then sized and
            # copied at C speed, not field by field.
            fields = (
                {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
                if category == _DATACLASS
                else dict(_fields(value))
            )
            return _bwalk(fields, depth, active, room)
        if category == _DEFERRED:
            return _btolist(value.head, depth, active, min(room, value.room), value.length)
        if category == _HEAD:
            chunks = _chunks(value.items, room)
            return _bsequence(chunks, value.length, depth, active, room, head=True)
        if category == _TEXT:
            return _btext(value, depth, active, room)
        return _btolist(value, depth, active, room)
    finally:
        active.discard(id(value))


def _btext(text: AsText, depth: int, active: Walk, room: int) -> tuple[Any, int]:
    """Copy the value of an `AsText` within ``room``, its string made by `thaw` (or now).

    ``str()`` writes ", " and ": " where JSON has "," and ":": the copy leaves a character an
    item it may keep for them (up to an eighth of the room), so that its string is cut by the
    copy's own markers rather than by `thaw`.
    """
    within = room - min(max(active.left, 0), room // 8)
    value = text.value
    kind = type(value)
    row = (kind is list or kind is tuple) and len(value) <= _CHUNK
    kinds: AbstractSet[type] = set(map(type, value)) if row else frozenset()
    if row and NUMBER_TYPES.issuperset(kinds) and has_long_int(value, kinds):
        # A row holding an int of hundreds of digits: each value sized and counted as `_bint`
        # does (bits, digits squared), none printed here.
        spent = 0
        kept: list[Any] = []
        for number in value:
            takes, width, item = 1, 3, number  # a number of one digit and its ", " at least
            if type(number) is int and not -LONG_INT < number < LONG_INT:
                bits = number.bit_length()
                if bits <= _MAX_INT_BITS:
                    digits, takes = _printing(bits)
                    width = digits + 2
                else:  # its marker, as `_int` makes it (whatever Python would print)
                    item = _Printed(f"<int of {bits:,} bits>")
                    width = len(item) + 2
            if spent + width > within:
                break  # (the size cuts it)
            if active.left < takes:
                active.cut = True  # the items cut it
                break
            active.left -= takes
            spent += width
            kept.append(item)
        head = kept if kind is list else tuple(kept)
        out, size = AsText(head, room, len(value) - len(kept)), spent + 2
    elif row and NUMBER_TYPES.issuperset(kinds):
        # A row of numbers, which becomes one string: its first values copied as they are (a
        # slice: numbers do not change), printed exactly as ``str()`` prints them. What
        # printing costs is counted: the row one item, and one more per `_ROW_VALUES` values;
        # as many are kept as their string, by the first ones' lengths, takes of the room.
        held = max(active.left - 1, 0) * _ROW_VALUES
        each = len(printed_row(value[:_SAMPLE])) / _SAMPLE if value else 1.0
        keep = min(len(value), held, int(max(within, 0) / max(each, 1.0)) + 1)
        active.left -= 1 + -(-keep // _ROW_VALUES)
        if keep < len(value) and keep == held:
            active.cut = True
        out, size = AsText(value[:keep], room, len(value) - keep), int(each * keep) + 2
    else:
        copy, size = _bwalk(value, depth, active, within)
        out = AsText(copy, room)
    if active.defer:
        active.deferred = True
        return out, size
    string = _text_of(out)
    return string, len(string) + 2


NUMBER_TYPES = frozenset({int, float, bool, type(None)})
"""Of a row printed exactly (`printed_row`): ints, floats, booleans and None."""
#: Values of a row of numbers that count as one item (printing a float costs ~0.5 µs: at
#: the default `max_items` the event builder prints at most ~40,000, ~20 ms).
_ROW_VALUES = 8
#: Values printed to learn how long a row's are.
_SAMPLE = 8


def printed_row(head: list[Any] | tuple[Any, ...], more: int = 0, room: int | None = None) -> str:
    """``str()`` of a row of numbers whose first values are ``head``, ``more`` left out.

    Those left out are one marker item, as in the string of a cut copy. An int too long for
    ``str()`` (over 4,300 digits) prints as ``<int of N bits>``. Longer than ``room``, the row
    is cut at a value's end, and its marker counts every value left out (a number's repr
    holds no ", ").
    """
    try:
        text = _row_text(head, ", ".join(map(repr, head)), more) if more else str(head)
    except ValueError:
        text = _row_text(head, ", ".join(map(_printed_number, head)), more)
    if room is None or len(text) <= room:
        return text
    kept = text.count(", ", 1, max(room - _ROW_MARKER_ROOM, 1))
    return printed_row(head[:kept], more + len(head) - kept)


def _row_text(head: list[Any] | tuple[Any, ...], values: str, more: int) -> str:
    tuple_ = type(head) is tuple
    if more:
        marker = LIST_TRUNCATION_MARKER.format(n=f"{more:,}")
        values = f"{values}{', ' if head else ''}'{marker}'"
    elif tuple_ and len(head) == 1:
        values += ","
    return f"({values})" if tuple_ else f"[{values}]"


def _printed_number(number: Any) -> str:
    try:
        return repr(number)
    except ValueError:  # an int of more digits than Python prints
        return f"<int of {number.bit_length():,} bits>"


#: More than a row's marker item and closing bracket take: "'…[truncated N items]']".
_ROW_MARKER_ROOM = 48


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return _safe_repr(value)


#: Of a mapping of at most this many entries converted entry by entry (the arguments of a
#: call, a model's fields), each later entry holds the items it needs at least (itself, and
#: its own items at every depth, up to this many) from the earlier ones: a huge first
#: argument cannot take them all from a query after it. What it holds is never more than it
#: takes, so a value within the budget is still copied whole.
_HELD_FOR_LATER = 64
_SETS = frozenset({set, frozenset})
_PLAIN_CONTAINERS = frozenset({dict, list, tuple, Head}) | _SETS


def _least_items(value: Any) -> int:
    """The items an entry holding ``value`` takes at least: itself, and its own (a few)."""
    most = _HELD_FOR_LATER - 1
    inside = min(_least_inside(value, most)[0], most)
    return (_BY_HAND if type(value) in _BY_HAND_TYPES else _BY_OBJECT) + inside


def _least_inside(value: Any, most: int, depth: int = 0) -> tuple[int, bool]:
    """The items ``value``'s own items take at least, and whether a walk reads them at C speed.

    Once past ``most``, the count is some number above it. Read at C speed means plain JSON
    under string keys: its parent is too, else its parent reads its items one at a time.
    Nothing past `MAX_DEPTH` is read (the walk stops there too): a value that holds itself
    is read that deep, not until Python's recursion limit (its count is then above ``most``).
    """
    kind = type(value)
    if depth >= MAX_DEPTH:
        return 0, True
    if kind in _SCALAR_TYPES:
        return 0, True
    try:
        if kind is dict:
            plain = len(value) <= _CHUNK
            pairs: Iterable[tuple[Any, Any]] = value.items()
        elif kind is AsText:  # never read at C speed; a row of numbers takes 1 an 8 values
            return 0, False  # (at least: not counted, it is reached only after its entry)
        elif kind is list or kind is tuple or kind in _SETS or kind is Head:
            plain = kind not in _SETS  # a set's items are read a chunk at a time, as a list's
            pairs = zip(repeat(""), value.items if kind is Head else value)
        else:
            category = _categories.get(kind)
            if category is None:
                category = _categorize(kind)
            if category == _DATACLASS:  # read as a dict of its fields
                fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            elif category == _FIELDS:
                fields = dict(_fields(value))
            elif category == _MODEL:
                fields = dict(vars(value))
            else:
                return 0, True
            return _least_inside(fields, most, depth)
        fast = by_hand = 0
        sets = kind in _SETS  # (its own items at C speed, itself not)
        for key, item in islice(pairs, most + 1):
            plain = plain and type(key) is str
            item_kind = type(item)
            if (
                item_kind in _NESTING
                or item_kind in _SETS
                or item_kind is Head
                or item_kind is AsText
            ):
                inner, inner_plain = _least_inside(item, most, depth + 1)
                plain = plain and inner_plain and item_kind not in _SETS
                fast += 2 + inner
                by_hand += _BY_HAND + inner
            elif item_kind in _BY_HAND_TYPES:
                fast += 1
                by_hand += _BY_HAND
            else:
                inner, _ = _least_inside(item, most, depth + 1)
                plain = plain and item_kind in _PYDANTIC_LEAVES
                fast += _LEAF_ITEMS
                by_hand += _BY_OBJECT + inner
            if fast > most:
                break
        if sets:
            return fast, False
        return (fast, True) if plain else (by_hand, False)
    except Exception:  # a hostile value: it holds nothing for itself
        return 0, True


def item_items(value: Any) -> int:
    """What ``value`` takes of a walk as one item of a list, besides its own items.

    A scalar 1; a list or dict 2 (1 more for reading it); a date, UUID or Decimal 2; an
    object 16: it is converted through its type (as a list holding it reads every item one
    at a time, at 6 each, this is the least such an item costs).
    """
    kind = type(value)
    if kind in _NESTING or kind in _PYDANTIC_LEAVES or kind is Head or kind is AsText:
        return 2
    return 1 if kind in _BY_HAND_TYPES else _BY_OBJECT


def _marked_empty(copy: Any) -> bool:
    """Whether a copy cut for items kept nothing but its marker (``[marker]``, ``{"…": ...}``)."""
    if type(copy) is list:
        return len(copy) == 1 and type(copy[0]) is str and copy[0].startswith("…[truncated")
    return type(copy) is dict and len(copy) == 1 and next(iter(copy)).startswith("…")


def _no_room_for(item: Any, walk: Walk, held: int) -> bool:
    """Whether ``item`` has items of its own and ``walk`` has none for them, ``held`` apart.

    Such an item would be an empty container with a marker: the one that holds it is cut
    before it instead.
    """
    return walk.left <= held and type(item) in _PLAIN_CONTAINERS and len(item) > 0


def _length(value: Any) -> int:
    """``len(value)``, or -1 if it raises or lies."""
    try:
        length = len(value)
    except Exception:
        return -1
    return length if type(length) is int and length >= 0 else -1


def _chunk_size(room: int) -> int:
    """Items worth examining at once within ``room`` bytes (a speed choice, not a bound)."""
    return max(_VECTOR_MIN, min(_CHUNK, room // 24))


def _chunks(value: Any, room: int) -> Iterator[Sequence[Any]]:
    """Yield the items of a sequence, set or view in slices of `_chunk_size` items."""
    step = _chunk_size(room)
    if type(value) is list or type(value) is tuple:
        for start in range(0, len(value), step):
            yield value[start : start + step]
        return
    items = iter(value)
    while chunk := list(islice(items, step)):
        yield chunk


def _bmodel(model: Any, depth: int, active: Walk, room: int) -> tuple[Any, int]:
    """Convert a pydantic model as `_model` does, within ``room``.

    A field holding a list, tuple, set or dict of more than `_CHUNK` items is not dumped by
    the model's serializer (which would copy it whole) but walked as it is, in its place: a
    model holding a million-item list costs what the limits keep of it.
    """
    try:
        values = vars(model)
        huge = {k for k, v in values.items() if type(v) in _PLAIN_CONTAINERS and len(v) > _CHUNK}
    except Exception:
        huge = set()
    try:
        if huge and getattr(type(model), "__pydantic_root_model__", False):
            return _bwalk(values["root"], depth, active, room)  # dumped as its root
        if huge:
            dumped = model.model_dump(mode="python", warnings=False, exclude=huge)
            fields: dict[str, Any] = {}
            for name in values:  # the fields' order, the long ones as they are
                if name in huge:
                    fields[name] = values[name]
                elif name in dumped:
                    fields[name] = dumped.pop(name)
            fields.update(dumped)  # computed fields, and names the serializer spells otherwise
            return _bwalk(fields, depth, active, room)
        dumped = model.model_dump(mode="python", warnings=False)
    except Exception:
        fields = type(model).model_fields
        pairs = ((name, getattr(model, name)) for name in fields)
        return _bmapping(pairs, len(fields), depth, active, room)
    return _bwalk(dumped, depth, active, room)


def _btolist(
    value: Any, depth: int, active: Walk, room: int, length: int | None = None
) -> tuple[Any, int]:
    """Convert a numpy-like array, slicing a large one instead of calling ``tolist()`` whole.

    ``length`` is the number of rows of the array ``value`` is the head of (a `Deferred`).
    """
    shape = getattr(value, "shape", None)
    # Every element takes at least 3 bytes ("0, "), so a smaller array is converted whole
    # (not the head of a longer one: its marker counts the rows after the head).
    if (
        isinstance(shape, tuple)
        and shape
        and all(type(dim) is int for dim in shape)
        and (math.prod(shape) * 3 > room or math.prod(shape) > active.left or length is not None)
    ):
        rows: int = shape[0]
        if active.defer and length is None:
            deferred = _defer(value, shape, room, active)
            if deferred is not None:
                active.deferred = True
                return deferred, math.prod(shape) * 3
        value[0:0]  # raises here, before anything is converted, if it cannot be sliced
        chunks: Iterable[Sequence[Any]]
        per_row = math.prod(shape[1:])
        if len(shape) == 1 or (
            per_row <= _chunk_size(room) and type(value).__module__.partition(".")[0] == "numpy"
        ):
            # Items a chunk at a time, as lists (of lists, for numpy's matrices: rows sliced
            # from an array-like of another kind may not be what its own rows are).
            step = _chunk_size(room) // max(per_row, 1)
            chunks = (value[i : i + step].tolist() for i in range(0, rows, step))
        else:  # one long row (a smaller array, sliced in turn) at a time
            chunks = ([_row(value, i, len(shape))] for i in range(rows))
        # A few rows each keep a share of the room (every row is seen); of many rows, the
        # first ones are kept whole (as numpy prints a large array): cutting each of a
        # thousand rows to a share converts and measures them all on the worker.
        whole = len(shape) > 1 and rows > _FEW_ROWS
        if length is None:
            return _bsequence(chunks, rows, depth, active, room, whole=whole)
        return _bsequence(chunks, length, depth, active, room, head=True, whole=whole)
    return _bwalk(value.tolist(), depth, active, room)


def _row(array: Any, index: int, ndim: int) -> Any:
    """Row ``index`` of an ``ndim``-dimensional array, one dimension less, as ``tolist()`` has it.

    A numpy matrix's row is still a 1 x N matrix: its flat ``A1`` view is taken instead.
    """
    row = array[index]
    try:
        if len(getattr(row, "shape", ())) == ndim:
            return getattr(row, "A1", row)
    except Exception:  # an odd array-like: its row is walked (and guarded) as it is
        pass
    return row


_NUMERIC_KINDS = ("b", "i", "u", "f")
"""numpy ``dtype.kind`` of booleans, ints, unsigned ints and floats."""


def _defer(value: Any, shape: tuple[int, ...], room: int, walk: Walk) -> Deferred | None:
    """A `Deferred` copy of the rows of a numeric array that may fit in ``room``, else None.

    The rows are also those ``walk.left`` items may hold: the copy takes as many from it as
    it has (elements, and rows of a matrix), at most all it has left.
    """
    try:
        # numpy's own arrays only: a lazy array (dask) would still read the caller's buffer.
        if type(value).__module__.partition(".")[0] != "numpy":
            return None
        if getattr(getattr(value, "dtype", None), "kind", None) not in _NUMERIC_KINDS:
            return None
        # A row takes at least 3 bytes an element ("0, "), and a row cut short at least 26
        # (its marker, brackets and ", "): rows after these are certainly cut.
        per_row = max(math.prod(shape[1:]), 1)
        rows = min(room // min(3 * per_row, 26), walk.left // per_row) + 2
        head = value[:rows].copy()
        if type(head) is not type(value) or getattr(head, "shape", None) is None:
            return None
        deferred = Deferred(head, shape[0], room, walk.left)
        # A matrix's row is a list inside the list: itself and one more, and its elements.
        each = per_row + 2 * (len(shape) > 1)
        items = len(head) * each
        # Cut for the items (if not for the size) when the whole array has more than are left.
        walk.cut = walk.cut or shape[0] * each > walk.left
        walk.left -= min(items, walk.left)
        return deferred
    except Exception:  # not a numpy-like array after all: convert it now
        return None


def _plain_chunk(
    chunk: Sequence[Any], depth: int, room: int, walk: Walk
) -> tuple[int, int, bool | None, int]:
    """Size a chunk of list items that need no conversion, within ``walk.left`` items.

    Returns ``(size, capped, scalars, kept)``: lower bounds of the JSON of the first ``kept``
    items plus their ", " separators, without and with each item counted at most `_MIN_ITEM`
    bytes, and whether every item is an immutable scalar or a dict of them (None: only
    scalars, no copy needed). ``kept`` is less than the chunk's length when ``walk.left``
    ran out before the next item: the items so far are taken from it, the rest are not.
    ``size`` is `_NOT_PLAIN` or `_TOO_BIG` (as in `_fast_size`) when some item needs
    converting or the chunk exceeds ``room``; ``walk.left`` must then be put back.
    """
    count = len(chunk)
    if count >= _VECTOR_MIN and count <= walk.left:
        size = _scalars_size(chunk, room)
        if size >= 0:  # a list's JSON is the sum of its items' and their ", " (or "[]")
            walk.left -= count
            lengths = list(map(len, chunk)) if type(chunk[0]) is str else ()
            if max(lengths, default=0) + 2 <= _MIN_ITEM:
                return size, size, None, count
            capped = sum(min(n + 2, _MIN_ITEM) for n in lengths) + 2 * count
            return size, capped, None, count
        if size == _TOO_BIG:
            return size, 0, None, 0
    size = capped = 0
    flat = True  # every item is a scalar or a dict of scalars, copied by dict.copy()
    dicts = False  # some item is such a dict: a copy is needed
    left = walk.left  # a local, put back in ``walk`` around the calls that take from it
    shallow = depth < MAX_DEPTH
    most = _MIN_ITEM  # (locals: a global's lookup is a dict's, per item)
    for index, item in enumerate(chunk):
        if left <= 0:  # out of items: the ones before are kept
            walk.left = left
            return size, capped, flat if dicts or not flat else None, index
        kind = type(item)
        if (
            kind is dict  # a chat message, the usual long list: sized without a loop
            and shallow
            and len(item) == 2
            and type(role := item.get("role")) is str
            and type(content := item.get("content")) is str
            and left >= MESSAGE_ITEMS
        ):
            item_size = len(role) + len(content) + PLAIN_MESSAGE_SIZE
            dicts = True
            left -= MESSAGE_ITEMS
        elif kind is dict and shallow and len(item) <= _CHUNK:  # as in _fast_size
            if len(item) + 1 >= left:
                walk.left = left
                return size, capped, flat if dicts or not flat else None, index
            dicts = True
            item_size = 0 if item else 2
            after = left - 2 - len(item)  # itself, reading it, its entries
            for key, field in item.items():
                if type(key) is not str:
                    return _NOT_PLAIN, 0, False, 0
                field_kind = type(field)
                if field_kind is str:
                    item_size += len(key) + len(field) + 8
                elif field_kind is int and -MAX_SAFE_INTEGER <= field <= MAX_SAFE_INTEGER:
                    item_size += len(key) + 7
                elif field_kind is bool or field is None:
                    item_size += len(key) + 10
                elif field_kind is float and field - field == 0.0:  # finite: no call for it
                    item_size += len(key) + _FLOAT_SIZE + 6
                else:
                    walk.left = after
                    field_size = _fast_size(field, depth + 1, room - size - item_size, walk)
                    if field_size < 0:
                        if walk.left < 0:  # out of items, not of room: keep those before
                            walk.left = left
                            return size, capped, flat if dicts or not flat else None, index
                        return field_size, 0, False, 0
                    after = walk.left
                    item_size += len(key) + field_size + 6
                    flat = flat and field_kind is float
            left = after
        elif kind is str:  # scalars of mixed types (one type was sized above): no call
            item_size = len(item) + 2
            left -= 1
        elif kind is float and item - item == 0.0:
            item_size = _FLOAT_SIZE
            left -= 1
        elif kind is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
            item_size = 1
            left -= 1
        elif item is None or kind is bool:
            item_size = 5 if item is False else 4
            left -= 1
        else:
            walk.left = left - 1
            item_size = _fast_size(item, depth, room - size, walk)
            if item_size < 0:
                if walk.left < 0:
                    walk.left = left
                    return size, capped, flat if dicts or not flat else None, index
                return item_size, 0, False, 0
            left = walk.left
            flat = flat and kind in _SCALAR_TYPES  # a datetime, say, is converted
        size += item_size + 2
        capped += item_size + 2 if item_size < most else most + 2  # min() is a call
        if size > room:
            return _TOO_BIG, 0, False, 0
    walk.left = left
    return size, capped, flat if dicts or not flat else None, count


#: The items a plain message (``{"role": ..., "content": ...}``) in a list takes of a walk: as
#: any dict in a list, itself, one more for reading it, and its two entries.
MESSAGE_ITEMS = 4
#: The lower-bound size of ``{"role": "", "content": ""}`` with its ", " in a list: the keys,
#: and 8 bytes a field for quotes, ": " and ", " (the last ", " stands for the braces). Also
#: `hogtrace._extract`'s size of a plain message.
PLAIN_MESSAGE_SIZE = len("role") + len("content") + 2 * 8


def _one_kind(items: Sequence[Any]) -> type | None:
    """The exact type of every item of a non-empty sequence, or None if they differ.

    A list of the types counted against the first one: half the time of ``set(map(type, ...))``
    (the count compares by identity).
    """
    kinds = list(map(type, items))
    if not kinds:
        return None
    kind = kinds[0]
    return kind if kinds.count(kind) == len(kinds) else None


#: Floats to JSON as `to_json` spells them, ~10% faster for being told they are floats.
_floats_json = SchemaSerializer(core_schema.list_schema(core_schema.float_schema())).to_json


def _floats_text(items: Sequence[float]) -> bytes | None:
    """The JSON of exact floats (pydantic-core's spelling), None if one is not finite."""
    # A tuple is not a list to the serializer: it would warn (an error under -W error).
    text = _floats_json(items if type(items) is list else list(items))
    # A finite float is digits, ".", "e", "-", "+"; NaN and infinities are spelled "null", or
    # "NaN" and "Infinity" (pydantic-core's ``ser_json_inf_nan``).
    return None if b"n" in text or b"N" in text else text


def _numbers_text(items: Sequence[Any]) -> bytes | None:
    """pydantic-core's JSON of finite floats, or of ints JSON can hold, all of one exact type.

    None for items of another or of mixed types, NaN and infinities, and ints beyond
    ``MAX_SAFE_INTEGER`` (each is converted on its own).
    """
    kind = _one_kind(items)
    if kind is float:
        return _floats_text(items)
    if kind is int and min(items) >= -MAX_SAFE_INTEGER and max(items) <= MAX_SAFE_INTEGER:
        return to_json(items)
    return None


def _numbers_size(text: bytes, count: int) -> int:
    """A lower bound of the JSON of ``count`` numbers pydantic-core wrote as ``text``.

    pydantic-core spells floats as repr() does except in [1e-5, 1e-4), where it writes up to 2
    characters more ("0.00001" for "1e-05"), and in some exponents, where it writes fewer
    ("1e-7" for "1e-07"); and it writes "," for ", ".
    """
    size = len(text) + count - 1
    at = text.find(b"0.0000")
    found = 0
    while at >= 0:
        found += 1
        if found > _FEW_TINY:  # many: those after a "," or a "-", at C speed
            tiny = text.count(b",0.0000") + text.count(b"-0.0000") + text.startswith(b"[0.0000")
            return len(text) + count - 1 - 2 * tiny
        if text[at - 1] in _BEFORE_NUMBER:  # "0.00001", not the end of "10.00001"
            size -= 2
        at = text.find(b"0.0000", at + 6)
    return size


#: The bytes before a number in pydantic-core's JSON of a list: "[", "," or a minus sign.
_BEFORE_NUMBER = frozenset(b"[,-")
#: "0.0000" found one by one up to this many times (embedding-like values hold a few).
_FEW_TINY = 8


def _scalars_size(items: Sequence[Any], room: int) -> int:
    """Size a list of floats, ints or strings of one exact type at C speed, as `_fast_size`.

    Returns the lower bound of the list's JSON, `_TOO_BIG` if it exceeds ``room`` or
    `_NOT_PLAIN` if the items are of another or mixed types or need converting.
    """
    if type(items[0]) is str:
        if _one_kind(items) is not str:
            return _NOT_PLAIN
        size = sum(map(len, items)) + 4 * len(items)
    else:
        text = _numbers_text(items)
        if text is None:
            return _NOT_PLAIN
        size = _numbers_size(text, len(items))
    return size if size <= room else _TOO_BIG


def number_sizes(items: Sequence[Any], text: bytes) -> list[int]:
    """The JSON size of each of ``items`` (finite floats and ints JSON can hold), exactly.

    ``text`` is pydantic-core's JSON of them: split at the commas it gives every item's size at
    C speed; the few floats it spells unlike repr() are corrected by `_repr_shortfall`.
    """
    if not items:
        return []
    parts = text[1:-1].split(b",")
    sizes = list(map(len, parts))
    if b"e" in text or b"0.0000" in text:
        index, start = 0, 1
        for at in _positions(text, b"e", b"0.0000"):
            index += text.count(b",", start, at)
            start = at
            part = parts[index]
            sizes[index] = len(part) + _repr_shortfall(part)
    return sizes


def _repr_shortfall(number: bytes) -> int:
    """How much longer repr() spells a float than pydantic-core's ``number`` (may be negative).

    repr() writes exponents with a sign and two digits at least ("1e-07", "1e+16", where
    pydantic-core writes "1e-7", and before 2.46 "1e16"), and numbers in [1e-5, 1e-4) with an
    exponent ("1e-05", "1.5e-05", where pydantic-core writes "0.00001", "0.000015").
    """
    at = number.find(b"e")
    if at >= 0:
        signed = number[at + 1 : at + 2] in (b"+", b"-")
        digits = len(number) - at - 1 - signed
        return (not signed) + max(0, 2 - digits)
    if number.startswith((b"0.0000", b"-0.0000")):
        return -2 if len(number) - number.index(b".") == 6 else -1
    return 0


def _positions(text: bytes, *needles: bytes) -> list[int]:
    """Where ``needles`` occur in ``text``, in order (``bytes.find`` is far faster than a regex)."""
    found: list[int] = []
    for needle in needles:
        at = text.find(needle)
        while at >= 0:
            found.append(at)
            at = text.find(needle, at + 1)
    found.sort()
    return found


def _numbers_prefix(chunk: Sequence[Any], text: bytes, room: int) -> tuple[int, int]:
    """How many numbers of a chunk `_bsequence` keeps within ``room``, and their exact size.

    ``text`` is the chunk's `_numbers_text`. As item by item, items are kept until their total
    with ", " separators exceeds ``room``: the one that crosses it is kept too.
    """
    if b"e" in text or b"0.0000" in text:
        # repr() is at most 2 characters shorter than pydantic-core, so an item and its ", "
        # take at least pydantic-core's length: items past where those lengths add up to
        # more than room are not kept, nor measured.
        parts = text[1:-1].split(b",")
        last = bisect_right(list(accumulate(map(len, parts))), room) + 1
        if last < len(parts):
            chunk, text = chunk[:last], b"[" + b",".join(parts[:last]) + b"]"
    ends = list(accumulate(number_sizes(chunk, text)))
    # Items 1..k take ends[k - 1] + 2k: keep those that start within room.
    fits = bisect_right(range(len(ends)), room, key=lambda k: ends[k] + 2 * k + 2)
    keep = min(len(ends), fits + 1)
    return keep, ends[keep - 1] + 2 * keep


def _bsequence(
    chunks: Iterable[Sequence[Any]],
    count: int,
    depth: int,
    active: Walk,
    room: int,
    head: bool = False,
    whole: bool = False,
) -> tuple[list[Any], int]:
    """Convert the items of a sequence of ``count`` items (-1: unknown), given in chunks.

    With ``whole`` (the rows of a matrix), each item counts at its full size: a prefix of the
    rows is kept, not every row for `hogtrace._limits` to cut.

    With ``head``, the chunks are the first rows of a longer array (a `Deferred`) of ``count``
    rows; else ``count`` is the sequence's ``len()``, which only says how many items a cut
    removed: whether any remain is read from the chunks (a ``len()`` may say more or fewer).

    Items are kept until `hogtrace._limits` would certainly cut the list to a prefix: when
    the items so far, each counted at most `_MIN_ITEM` bytes, exceed ``room``. Each item may
    use what the earlier ones left of ``room``, and at least an equal share of it, so a list
    of long messages keeps every message for the limits to cut each to a common length. Items
    are also kept only while the walk has items left (``active.left``).
    """
    out: list[Any] = []
    spent = capped = 0
    share = room // count if count > 0 else room
    vectors = True
    chunks = iter(chunks)
    for chunk in chunks:
        if vectors:
            left = active.left
            size, capped_size, flat, kept = _plain_chunk(chunk, depth + 1, room - spent, active)
            if size >= 0:
                part = chunk if kept == len(chunk) else chunk[:kept]
                if flat is None:
                    out.extend(part)
                elif flat:  # scalars and dicts of them
                    out.extend([item.copy() if type(item) is dict else item for item in part])
                else:
                    out.extend(to_jsonable_python(part))
                spent += size
                capped += size if whole else capped_size
                if kept == len(chunk):
                    continue
                chunk = chunk[kept:]  # the walk is out of items: the next one is cut
            else:
                active.left = left
            if size == _TOO_BIG and flat is None and type(chunk[0]) is not str:
                # Numbers: the prefix that fits, at C speed.
                text = _numbers_text(chunk)
                keep, kept_size = _numbers_prefix(chunk, text, room - capped) if text else (-1, 0)
                if keep == len(chunk) and kept_size <= room - capped:
                    # All fit (earlier long items spent the room, not the count): go on.
                    out.extend(chunk)
                    active.left -= keep
                    spent += kept_size
                    capped += kept_size
                    continue
                if keep >= 0:
                    out.extend(chunk[:keep])
                    active.left -= keep
                    more = keep < len(chunk) or _more(chunks, count, len(out), head)
                    return _end_list(out, count, spent + kept_size, more)
            vectors = size != _NOT_PLAIN
        for index, item in enumerate(chunk):
            takes = _BY_HAND if type(item) in _BY_HAND_TYPES else _BY_OBJECT
            if capped > room or active.left < takes:
                active.cut = active.cut or capped <= room
                return _end_list(out, count, spent, True)
            if _no_room_for(item, active, takes):
                active.cut = True
                return _end_list(out, count, spent, True)
            active.left -= takes
            was_cut, active.cut = active.cut, False
            converted, size = _bwalk(item, depth + 1, active, max(room - spent, share))
            if active.cut:  # out of items within it: the list ends with it
                if not _marked_empty(converted):  # else it ends before it
                    out.append(converted)
                    spent += size + 2
                    more = index + 1 < len(chunk) or _more(chunks, count, len(out), head)
                    return _end_list(out, count, spent, more)
                return _end_list(out, count, spent, True)
            active.cut = was_cut
            out.append(converted)
            spent += size + 2
            capped += (size if whole or size <= _MIN_ITEM or type(item) is int else _MIN_ITEM) + 2
        if capped > room:
            return _end_list(out, count, spent, _more(chunks, count, len(out), head))
    if head and count > len(out):  # the rows of the array after its head
        return _end_list(out, count, spent, True)
    return out, (spent if out else 2)


_NONE = type(None)
#: A matrix with more rows than this keeps its first rows whole, not a share of every row.
_FEW_ROWS = 64
#: Lists and tuples longer than this may be numbers far beyond the limit (`_long_numbers`).
_LONG = 4 * _CHUNK
#: How many more numbers than its first chunk's sizes say fit `_long_numbers` keeps.
_HEADROOM = 1.25


def _long_numbers(
    value: list[Any] | tuple[Any, ...], room: int, walk: Walk
) -> tuple[list[Any], int] | None:
    """The head of a list of numbers far longer than ``room`` holds, cut without sizing it.

    Sizing each number needs its JSON: ~40,000 floats fill the default limit, ~5 ms to write
    and check on the calling thread. Here only the first chunk is written; its average size
    says how many numbers fit, and that many and a quarter more are kept (a slice, after a
    check that they are all of the first one's exact type, finite or within JSON's integers):
    the event builder then cuts them exactly to the limit. Only a list whose later numbers
    are much shorter than its first ones keeps fewer than would fit; the cut is marked either
    way. Lists of booleans or of nulls are cut the same way (their sizes are counted). At most
    ``walk.left`` numbers are kept, and taken from it. None when the list is not such a list
    (mixed types, NaN, a list that may fit): the caller sizes it item by item.
    """
    first = value[: _chunk_size(room)]
    if len(first) > walk.left:
        return None  # cut within the first chunk: item by item
    kind = _one_kind(first)
    if kind is bool or kind is _NONE:  # "true, ", "false, ", "null, ": sized by counting
        size = 6 * len(first) + (first.count(False) if kind is bool else 0)
        shortest = 6
    else:
        text = _numbers_text(first)
        if text is None:
            return None
        size = _numbers_size(text, len(first))
        shortest = 3 if kind is int else 5  # "0, " or "0.0, ": a number and its ", "
    keep = min(int(room * _HEADROOM * len(first) / max(size, 1)), room // shortest) + 1
    keep = min(keep, walk.left)
    if len(value) <= keep:
        return None
    rest = value[len(first) : keep]
    if not _as_they_are(rest, kind):
        return None
    out = [*first, *rest]
    walk.cut = walk.cut or keep == walk.left  # cut for the items, if not for the size
    walk.left -= len(out)
    # A lower bound, as `_bsequence` gives: the first chunk's size, the shortest for the rest.
    return _end_list(out, len(value), size + shortest * len(rest), True)


def _as_they_are(items: Sequence[Any], kind: type | None) -> bool:
    """Whether ``items`` are all of exact type ``kind`` and need no converting, at C speed.

    ``kind`` is a scalar type: floats must be finite, ints within JSON's, strings short
    enough that `_bmapping` counts them whole (`_MIN_CUT`).
    """
    if _one_kind(items) is not kind:
        return False
    if kind is float:
        total: float = sum(items)
        return total - total == 0.0  # not NaN or an infinity (nor an overflowing sum)
    if kind is int:
        return bool(min(items) >= -MAX_SAFE_INTEGER and max(items) <= MAX_SAFE_INTEGER)
    if kind is str:
        return max(map(len, items)) + 2 <= _MIN_CUT
    return kind is bool or kind is _NONE


def _long_mapping(
    value: dict[Any, Any], room: int, walk: Walk
) -> tuple[dict[str, Any], int] | None:
    """The first entries of a dict far larger than ``room`` holds, cut without sizing each.

    As `_long_numbers` for a list: for string keys and values all of one scalar type (short
    strings, finite floats, ints JSON holds, booleans or nulls), the first chunk's sizes say
    how many entries fit, and a quarter more are kept, after checks at C speed; the event
    builder then cuts them exactly. Only a dict whose later entries are on average more than
    a quarter shorter than its first ones keeps fewer than fit (marked). Entries are read as
    pairs, in one pass, at most ``walk.left`` of them (taken from it). None for any other
    dict: `_bmapping` converts it.
    """
    step = _chunk_size(room)
    if step > walk.left:
        return None
    first = dict(islice(value.items(), step))
    keys, values = list(first), list(first.values())
    kind = _one_kind(values)
    if kind is None or _one_kind(keys) is not str or not _as_they_are(values, kind):
        return None
    # Each entry takes its key, its value and 6 bytes (quotes, ": " and ", "), as `_bmapping`.
    size = sum(map(len, keys)) + 6 * len(keys)
    if kind is str:
        size += sum(map(len, values)) + 2 * len(values)
    elif kind is bool or kind is _NONE:
        size += 4 * len(values) + (values.count(False) if kind is bool else 0)
    else:
        text = _numbers_text(values)
        if text is None:
            return None
        size += _numbers_size(text, len(values)) - 2 * (len(values) - 1)  # less its ", "
    shortest = 7  # an empty key and a one-digit value
    keep = min(int(room * _HEADROOM * len(keys) / max(size, 1)), room // shortest) + 1
    keep = min(keep, walk.left)
    if len(value) <= keep:
        return None
    entries = dict(islice(value.items(), len(first), keep))
    rest = list(entries.values())
    if _one_kind(list(entries)) is not str or not _as_they_are(rest, kind):
        return None
    out = first
    out.update(entries)
    walk.cut = walk.cut or keep == walk.left
    walk.left -= len(out)
    removed = len(value) - len(out)
    return out, size + shortest * len(rest) + (mark_keys_cut(out, removed) if removed else 0)


def _more(chunks: Iterator[Sequence[Any]], count: int, kept: int, head: bool) -> bool:
    """Whether items remain after ``kept``: rows after an array's head, else by reading on.

    Reading on (one chunk at most) rather than trusting ``len()``: a sequence's ``len()`` may
    say more items than it gives, or fewer.
    """
    return (head and count > kept) or next(chunks, None) is not None


def _end_list(out: list[Any], count: int, spent: int, more: bool) -> tuple[list[Any], int]:
    """Close a cut list with `LIST_TRUNCATION_MARKER` when items remain (``more``).

    Without a count of them (no ``len()``, or one that said fewer), the marker has no number.
    """
    if more:
        removed = count - len(out)
        marker = LIST_TRUNCATION_MARKER.format(n=f"{removed:,}") if removed > 0 else "…[truncated]"
        out.append(marker)
        spent += len(marker) + 4
    return out, spent


def mark_keys_cut(out: dict[str, Any], removed: int) -> int:
    """End a cut mapping with its ``"…"`` entry; return the entry's JSON bytes.

    The key is ``"……"`` if the mapping has a "…" key of its own; the value is
    `DICT_TRUNCATION_MARKER` for ``removed`` keys, without a number when not known.
    """
    key = DICT_TRUNCATION_KEY
    while key in out:
        key += DICT_TRUNCATION_KEY
    marker = DICT_TRUNCATION_MARKER.format(n=f"{removed:,}") if removed > 0 else "…[truncated]"
    out[key] = marker
    return len(key) + len(marker) + 8


_END = object()


def _bdict(
    value: dict[Any, Any], depth: int, active: Walk, room: int
) -> tuple[dict[str, Any], int]:
    """A dict of more than `_CHUNK` entries, read as a long list is, within an item limit.

    A chunk at a time at C speed while its entries are plain JSON under string keys, then
    entry by entry (`_bmapping`): each of those takes 6 items, so a dict of 5,000 small
    entries read entry by entry would keep 833. (Without an item limit, entry by entry as
    before: it sizes each float exactly, and so may keep fewer than the chunks would.)
    """
    out: dict[str, Any] = {}
    spent = capped = 0
    pairs = iter(value.items())
    while chunk := dict(islice(pairs, _CHUNK)):
        left = active.left
        active.left += 1  # a chunk is no container of its own
        size = _fast_size(chunk, depth, room - spent, active)
        if size < 0:  # not plain, too big, or out of items: its entries one at a time
            active.left = left
            rest = chain(chunk.items(), pairs)
            return _bmapping(rest, len(value), depth, active, room, (out, spent, capped))
        out.update(to_jsonable_python(chunk))
        spent += size
        capped += min(size, (_MIN_CUT + 6) * len(chunk))
    return out, (spent if out else 2)


def _bmapping(
    pairs: Iterator[tuple[Any, Any]],
    count: int,
    depth: int,
    active: Walk,
    room: int,
    start: tuple[dict[str, Any], int, int] | None = None,
) -> tuple[dict[str, Any], int]:
    """Convert the entries of a mapping (or fields) of ``count`` entries, as `_bsequence`.

    ``start``: the entries copied so far, their size and capped size (`_bdict`).
    """
    out: dict[str, Any]
    out, spent, capped = start if start is not None else ({}, 0, 0)
    shared: set[str] = set()
    share = room // count if count > 0 else room
    later = 0  # the items the entries after this one hold for themselves
    if 1 < count <= _HELD_FOR_LATER and depth <= 1:  # a call's arguments, and theirs
        entries = list(islice(pairs, _HELD_FOR_LATER))  # a few: read now, to see them
        holds = [_least_items(item) for _, item in entries]
        later = sum(holds)
        pairs = chain(entries, pairs)  # (a len() that said fewer: the rest after them)
    taken = len(out)  # entries read (two keys may become one name)
    for key, item in pairs:
        takes = _BY_HAND if type(item) in _BY_HAND_TYPES else _BY_OBJECT
        if type(key) is not str and type(key) is not int:
            takes = _BY_OBJECT  # its name is converted too
        if capped > room or active.left < takes:
            # A len() that said fewer: a marker without a number.
            active.cut = active.cut or capped <= room
            return out, spent + mark_keys_cut(out, count - taken)
        held = 0
        if later:  # (then this is one of ``entries``)
            later -= holds[taken]
            held = later if later < active.left - takes else active.left - takes
        name = key if type(key) is str else _key(key)
        # Another key that became the same string (1 and "1"): a list holds both values, one
        # more item.
        if name in out and name not in shared:
            takes += 1
        if _no_room_for(item, active, held + takes) or active.left < takes:
            active.cut = True
            return out, spent + mark_keys_cut(out, count - taken)
        active.left -= takes + held
        taken += 1
        was_cut, active.cut = active.cut, False
        converted, size = _bwalk(item, depth + 1, active, max(room - spent, share))
        active.left += held
        if active.cut and not later:  # out of items within it: the mapping ends with it
            if _marked_empty(converted) and name not in out:  # (else it ends before it)
                return out, spent + mark_keys_cut(out, count - taken + 1)
            if name in out:
                spent += size + _share(out, shared, name, converted)
            else:
                out[name] = converted
                spent += len(name) + size + 6
            if next(pairs, _END) is _END:
                return out, spent
            return out, spent + mark_keys_cut(out, count - taken)
        active.cut = active.cut or was_cut
        if name in out:
            size += _share(out, shared, name, converted)
            spent += size
            capped += min(size, _MIN_CUT)
            continue
        out[name] = converted
        spent += len(name) + size + 6
        capped += len(name) + (size if type(item) is int else min(size, _MIN_CUT)) + 6
    return out, (spent if out else 2)
