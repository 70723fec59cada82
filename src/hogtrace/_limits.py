"""Keep events under a size limit by truncating their largest content, visibly.

Sizes are measured the way the PostHog client measures an event before dropping it
(``posthog/consumer.py``: ``len(json.dumps(event).encode())``, i.e. ASCII escapes and the default
``", "`` / ``": "`` separators), so a non-ASCII-heavy event that fits here also fits there.
When an event is too large, the content properties share the remaining room by water-filling:
every content value gets the same cap and only the values above it are cut, so the largest
values are cut first and small ones (ids, roles, short messages) stay intact. Strings are cut
to a prefix plus `TRUNCATION_MARKER`; lists keep their items (each cut to the cap) or, when
there are too many items for that, a prefix plus a final `LIST_TRUNCATION_MARKER` item; dicts
keep their keys. Markers that `to_json_safe` left when it stopped a snapshot early (it is given
the same limit as a budget) are folded in, so the counts are of the original value.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_right
from collections.abc import Collection, Mapping
from itertools import accumulate
from typing import Any

from pydantic_core import to_json

from hogtrace._serialize import (
    DICT_TRUNCATION_KEY,
    DICT_TRUNCATION_MARKER,
    LIST_TRUNCATION_MARKER,
    TRUNCATION_MARKER,
    mark_keys_cut,
    number_sizes,
    to_json_safe,
)

__all__ = ["LIST_TRUNCATION_MARKER", "TRUNCATION_MARKER", "fit_event"]

# A marker already at the end of a string or list, left by to_json_safe's budget.
_TEXT_MARKER = re.compile(r"…\[truncated ([0-9,]{1,30}) chars\]\Z")
_LIST_MARKER = re.compile(r"…\[truncated ([0-9,]{1,30}) items\]\Z")
_KEYS_MARKER = re.compile(r"…\[truncated ([0-9,]{1,30}) keys\]\Z")

_ENCODE = json.JSONEncoder(allow_nan=False).encode  # json.dumps defaults, as posthog measures
_MIN_ITEM = 256
"""Below this cap per item, a list is cut to a prefix instead of cutting every item."""
_MIN_CUT = 48
"""Below this cap a dict cannot keep every key with a useful value: it keeps its first keys."""
_ATTEMPTS = 4
_FLAG_ROOM = 32
_UNKNOWN = "…[truncated]"
_MAX_BOUND_DEPTH = 100
_MAX_BOUND_ITEMS = 4096
"""A longer container is measured exactly: bounding it item by item would cost more."""
_FLOAT_BOUND = len("-2.2250738585072014e-308")
"""The longest JSON of a finite float."""


def fit_event(
    properties: dict[str, Any],
    max_bytes: int,
    content_keys: Collection[str],
    bounds: Mapping[str, tuple[Any, int]] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Return the event properties cut to fit within ``max_bytes`` of JSON.

    Args:
        properties: The event properties. Values that are not JSON-safe are converted with
            `to_json_safe` first, so the result is always valid JSON.
        max_bytes: The limit, in UTF-8 bytes of compact JSON.
        content_keys: The properties that may be cut, such as ``"$ai_input"``.
        bounds: Upper bounds of the JSON size of some values known beforehand, as
            ``{key: (value, bound)}``; used while ``properties[key]`` is that very value.

    Returns:
        ``(properties, False)`` with the very same dict if it already fits, else a new dict and
        True. If cutting the content cannot make the event fit, the content values become short
        marker strings; only if the other properties alone exceed ``max_bytes`` are they cut too.
        The input is never mutated and no exception is raised.
    """
    try:
        if _bound(properties, max_bytes, 0, bounds) >= 0:
            return properties, False
        try:
            sizes = _property_sizes(properties)
        except (TypeError, ValueError, RecursionError):
            properties = to_json_safe(properties)
            sizes = _property_sizes(properties)
        size = _dict_size(properties, sizes)
        if size <= max_bytes:
            return properties, False
        # Leave room for the caller's `"$ai_truncated": true` (23 bytes with its separator).
        return _fit(properties, size, max_bytes - _FLAG_ROOM, content_keys, sizes), True
    except Exception:
        keys = set(content_keys)
        return {k: _UNKNOWN if k in keys else v for k, v in properties.items()}, True
    finally:
        _remember((), [])  # do not keep the event's content alive


def _bound(
    value: Any, room: int, depth: int, known: Mapping[str, tuple[Any, int]] | None = None
) -> int:
    """Return a cheap upper bound of the JSON size of ``value``, or -1.

    -1 means the bound exceeds ``room`` or the value is not plain JSON (non-finite float, non-str
    key, other type); the caller then measures exactly. No character takes more than 12 bytes of
    ASCII-escaped JSON (a character outside the BMP becomes two six-character escapes), so a
    string's bound is its length times 12 and no string has to be scanned. ``known``: the
    bounds of some of a dict's values, as `fit_event` takes them.
    """
    kind = type(value)
    if kind is str:
        return 2 + 12 * len(value)
    if kind is dict:
        if depth > _MAX_BOUND_DEPTH or len(value) > _MAX_BOUND_ITEMS:
            return -1
        try:  # the keys at once: quotes, ": " and ", " each, and 12 bytes a character
            total = 2 + 6 * len(value) + 12 * len("".join(value))
        except TypeError:  # a key that is not a string
            return -1
        for key, item in value.items():
            item_kind = type(item)
            if item_kind is str:
                total += 2 + 12 * len(item)
            elif item_kind is int:  # and the other scalars of event properties, without a call
                total += int.bit_length(item) // 3 + 2
            elif item_kind is bool or item is None:
                total += 5
            elif item_kind is float:
                if item - item != 0.0:  # NaN or an infinity (math.isfinite, without a call)
                    return -1
                total += _FLOAT_BOUND
            elif known and (entry := known.get(key)) is not None and entry[0] is item:
                total += entry[1]
            elif not item and (item_kind is dict or item_kind is list):
                total += 2
            else:
                size = _bound(item, room - total, depth + 1)
                if size < 0:
                    return -1
                total += size
            if total > room:
                return -1
        return total
    if kind is list:
        if depth > _MAX_BOUND_DEPTH or len(value) > _MAX_BOUND_ITEMS:
            return -1
        total = 1
        for item in value:
            item_kind = type(item)
            if item_kind is str:
                size = 2 + 12 * len(item)
            elif item_kind is dict and len(item) <= _MAX_BOUND_ITEMS and depth < _MAX_BOUND_DEPTH:
                size = 2  # a message: bounded here, as the dict branch would, without a call
                for key, field in item.items():
                    if type(key) is not str:
                        return -1
                    if type(field) is str:
                        size += 8 + 12 * (len(key) + len(field))
                    else:
                        field_size = _bound(field, room - total - size, depth + 2)
                        if field_size < 0:
                            return -1
                        size += 6 + 12 * len(key) + field_size
            else:
                size = _bound(item, room - total, depth + 1)
                if size < 0:
                    return -1
            total += size + 2  # and ", "
            if total > room:
                return -1
        return total + 1
    if kind is int:
        return int.bit_length(value) // 3 + 2
    if kind is bool or value is None:
        return 5
    if kind is float and math.isfinite(value):
        return _FLOAT_BOUND
    return -1


def _property_sizes(properties: dict[str, Any]) -> dict[str, int]:
    """Measure each property's value once, so cutting need not measure the content again."""
    return {key: _measure(value) for key, value in properties.items()}


def _total(out: dict[str, Any], properties: dict[str, Any], measured: dict[str, int]) -> int:
    """The JSON size of ``out``, a copy of ``properties`` (measured) with some values replaced."""
    sizes = {
        key: measured[key] if value is properties.get(key) else _measure(value)
        for key, value in out.items()
    }
    return _dict_size(out, sizes)


def _dict_size(properties: dict[str, Any], sizes: dict[str, int]) -> int:
    """The JSON size of a dict whose values measure ``sizes``: keys, ": ", ", " and braces."""
    if not properties:
        return 2
    return sum(_key_sizes(properties)) + sum(sizes.values()) + 4 * len(properties)


def _key_sizes(mapping: dict[Any, Any]) -> list[int]:
    """The JSON size of each key of ``mapping``; plain ASCII keys without a Python call each."""
    keys = list(mapping)
    if all(type(key) is str for key in keys):
        joined = "".join(keys)
        if joined.isascii():
            if joined.isprintable() and '"' not in joined and "\\" not in joined:
                return [len(key) + 2 for key in keys]
        else:  # a few keys not ASCII (a "…" entry): only they are encoded
            ascii_keys = "".join([key for key in keys if key.isascii()])
            if ascii_keys.isprintable() and '"' not in ascii_keys and "\\" not in ascii_keys:
                return [len(key) + 2 if key.isascii() else _key_size(key) for key in keys]
    return [_key_size(key) for key in keys]


def _fit(
    properties: dict[str, Any],
    size: int,
    max_bytes: int,
    content_keys: Collection[str],
    measured: dict[str, int],
) -> dict[str, Any]:
    """Cut the content of an event known to be ``size`` bytes, larger than ``max_bytes``."""
    keys = [key for key in properties if key in content_keys]
    sizes = [measured[key] for key in keys]
    budget = max_bytes - (size - sum(sizes))
    out = dict(properties)
    # With the other properties alone over the limit, no cut of the content is enough.
    for _ in range(_ATTEMPTS if budget > 0 else 0):
        cap = _cap(sizes, budget)
        for key, value_size in zip(keys, sizes, strict=True):
            if value_size > cap:
                out[key] = _shrink(properties[key], cap, value_size)
        total = _total(out, properties, measured)
        if total <= max_bytes:
            return out
        budget -= total - max_bytes
    for key, value_size in zip(keys, sizes, strict=True):
        out[key] = _whole_marker(properties[key], value_size)
    total = _total(out, properties, measured)
    if total <= max_bytes:
        return out
    # The other properties alone are too big (a huge user property): cut them as well,
    # re-measuring like the content path, and finally replace every large value by a marker.
    budget = max_bytes
    for _ in range(_ATTEMPTS):
        # Every property keeps its key here (never the first ones only: hogtrace's own come
        # last); too many of them is `_fewer_properties`' job.
        shrunk = _shrink_dict(out, budget, total, whole=False) if total > budget else out
        if shrunk is None:
            break
        shrunk_size = _size(shrunk)
        if shrunk_size <= max_bytes:
            return shrunk
        budget -= shrunk_size - max_bytes
    value_sizes = {key: _size(value) for key, value in out.items()}
    out = {
        key: value if value_sizes[key] <= _MIN_ITEM else _whole_marker(value, value_sizes[key])
        for key, value in out.items()
    }
    if _size(out) <= max_bytes:
        return out
    return _fewer_properties(out, max_bytes)


#: The properties an event keeps when it has too many: hogtrace's own, the PostHog ones it sets.
_RESERVED = ("$ai_", "$process_person_profile", "$exception_event_id")


def _fewer_properties(properties: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Cut an event that has too many properties, even with short values.

    hogtrace's (``$ai_...``, and the few PostHog properties it sets) are kept, then the others
    in order while they fit, and a ``"…"`` property says how many were cut.
    """
    values = [_size(value) for value in properties.values()]
    sizes = zip(properties, _key_sizes(properties), values, strict=True)
    entries = [(key, k + v + 4) for key, k, v in sizes]
    own = [(key, size) for key, size in entries if key.startswith(_RESERVED)]
    others = [(key, size) for key, size in entries if not key.startswith(_RESERVED)]
    marker = DICT_TRUNCATION_MARKER.format(n=f"{len(others):,}")
    room = max_bytes - 2 - sum(size for _, size in own) - _size({DICT_TRUNCATION_KEY: marker})
    kept = {key for key, _ in own}
    for key, size in others:
        if size > room:
            break
        kept.add(key)
        room -= size
    out = {key: value for key, value in properties.items() if key in kept}
    mark_keys_cut(out, len(properties) - len(kept))
    return out


def _shrink(value: Any, budget: int, size: int) -> Any:
    """Return ``value`` (of JSON size ``size``) cut to at most ``budget`` bytes, best effort."""
    if size <= budget:
        return value
    if isinstance(value, str):
        return _cut_string(value, budget)
    if isinstance(value, dict) and value:
        return _shrink_dict(value, budget, size)
    if isinstance(value, (list, tuple)) and value:
        return _shrink_list(value, budget, size)
    return _whole_marker(value, size)


def _shrink_dict(value: dict[Any, Any], budget: int, size: int, whole: bool = True) -> Any:
    """Cut the largest values of a dict, keeping every key.

    With too many keys for that, keep its first entries and a ``"…"`` entry that says how many
    keys were cut; or, without ``whole``, return None.
    """
    items = list(value.values())
    key_sizes = _key_sizes(value)
    sizes = _child_sizes(items, size - sum(key_sizes) - 4 * len(items))
    cap = _cap(sizes, budget - (size - sum(sizes)))
    if cap >= _MIN_CUT:
        return {
            key: _shrink(item, cap, item_size) if item_size > cap else item
            for (key, item), item_size in zip(value.items(), sizes, strict=True)
        }
    return _dict_prefix(value, key_sizes, sizes, budget) if whole else None


def _key_size(key: Any) -> int:
    return _size(key) if type(key) is str else _size({key: 0}) - 5


def _dict_prefix(
    value: dict[Any, Any], key_sizes: list[int], sizes: list[int], budget: int
) -> dict[Any, Any] | str:
    """The first entries of ``value`` that fit ``budget``, and the keys marker.

    As the snapshot cuts a mapping; a marker the snapshot left is counted in. A marker string
    if not even one entry fits.
    """
    entries = list(value.items())
    earlier = 0
    if entries and entries[-1][0] == DICT_TRUNCATION_KEY:
        earlier = _earlier_cut(entries[-1][1], _KEYS_MARKER)
        if earlier:
            entries, key_sizes, sizes = entries[:-1], key_sizes[:-1], sizes[:-1]
    total = len(entries) + earlier
    marker = {DICT_TRUNCATION_KEY: DICT_TRUNCATION_MARKER.format(n=f"{total:,}")}
    room = budget - _size(marker)  # its braces and entry; each kept entry adds ", "
    ends = list(accumulate(k + v + 4 for k, v in zip(key_sizes, sizes, strict=True)))
    count = bisect_right(ends, room)
    if count == 0:
        return _whole_marker(value, sum(ends) + 2)
    kept = dict(entries[:count])
    mark_keys_cut(kept, total - count)
    return kept


def _shrink_list(value: list[Any] | tuple[Any, ...], budget: int, size: int) -> list[Any]:
    """Cut the largest items of a list or, if there are too many, keep a prefix and a marker."""
    sizes = _child_sizes(value, size - 2 * len(value))
    # Items all below _MIN_ITEM cannot be cut to a cap of at least _MIN_ITEM (the list would
    # fit whole): keep a prefix, without sorting the sizes for the cap.
    if max(sizes) >= _MIN_ITEM:
        cap = _cap(sizes, budget - (size - sum(sizes)))
        if cap >= _MIN_ITEM:
            return [
                _shrink(item, cap, item_size) if item_size > cap else item
                for item, item_size in zip(value, sizes, strict=True)
            ]
    earlier = _earlier_cut(value[-1], _LIST_MARKER)
    if earlier:
        value = value[:-1]
        sizes = sizes[:-1]
    marker_size = _size(LIST_TRUNCATION_MARKER.format(n=f"{len(value) + earlier:,}"))
    room = budget - 2 - marker_size  # brackets, then the marker item
    # Each item takes its size and the ", " after it: keep those whose running total fits.
    ends = list(accumulate(size + 2 for size in sizes))
    count = bisect_right(ends, room)
    kept = list(value[:count])
    if count < len(value):
        partial = room - (ends[count - 1] if count else 0) - 2
        if partial >= _MIN_ITEM:
            kept.append(_shrink(value[count], partial, sizes[count]))
    marker = LIST_TRUNCATION_MARKER.format(n=f"{len(value) - len(kept) + earlier:,}")
    kept.append(marker)
    if len(kept) == count + 1 and len(kept) > _FEW:  # whole items: their sizes are known
        _remember(kept, [*sizes[:count], _size(marker)])
    return kept


def _earlier_cut(item: Any, marker: re.Pattern[str]) -> int:
    """The count in a marker `to_json_safe` ended a cut string or list with, else 0."""
    if type(item) is not str or not item.endswith("]"):
        return 0
    found = marker.search(item, max(0, len(item) - 60))
    return int(found.group(1).replace(",", "")) if found else 0


def _child_sizes(items: list[Any] | tuple[Any, ...], total: int) -> list[int]:
    """The JSON size of each of ``items``, whose sizes add up to ``total``.

    The longest item (a wrapped argument list, say) is not measured but is what remains of
    ``total``, so cutting a value nested in a few wrappers does not encode it once per wrapper;
    a long list of numbers is measured without encoding each number in Python.
    """
    if len(items) > _FEW:
        sizes = _item_sizes(items)
        return sizes if sizes is not None else [_size(item) for item in items]
    longest = max(range(len(items)), key=lambda index: _rough_length(items[index]))
    sizes = [0 if index == longest else _size(item) for index, item in enumerate(items)]
    sizes[longest] = total - sum(sizes)
    return sizes


_FEW = 64


def _rough_length(value: Any) -> int:
    """A cheap stand-in for a value's size, good enough to pick the largest of a few."""
    try:
        return len(value) if isinstance(value, (str, list, dict, tuple)) else 0
    except Exception:
        return 0


def _cut_string(text: str, budget: int) -> str:
    """Cut ``text`` to a prefix plus `TRUNCATION_MARKER` of at most ``budget`` JSON bytes."""
    earlier = _earlier_cut(text, _TEXT_MARKER)
    if earlier:
        text = text[: text.rindex("…[truncated ")]
    keep = min(len(text), max(budget, 0))
    for _ in range(8):
        candidate = text[:keep] + _string_marker(len(text) - keep + earlier)
        size = _size(candidate)
        if size <= budget or keep == 0:
            return candidate
        # Drop enough characters to free the excess, at the prefix's average bytes per char.
        per_char = max(1.0, (size - 2) / len(candidate))
        keep = max(0, keep - math.ceil((size - budget) / per_char))
    return _string_marker(len(text) + earlier)


def _cap(sizes: list[int], budget: int) -> int:
    """Return the largest cap c with ``sum(min(s, c) for s in sizes) <= budget`` (water-filling)."""
    remaining = budget
    count = len(sizes)
    for index, size in enumerate(sorted(sizes)):
        if size * (count - index) > remaining:
            return max(remaining // (count - index), 0)
        remaining -= size
    return max(sizes, default=0)


def _whole_marker(value: Any, size: int) -> str:
    """Return the marker that replaces a whole value of JSON size ``size``."""
    return _string_marker(len(value) if isinstance(value, str) else size)


def _string_marker(removed: int) -> str:
    """Return `TRUNCATION_MARKER` for ``removed`` characters."""
    return TRUNCATION_MARKER.format(n=f"{removed:,}")


def _size(value: Any) -> int:
    """Return the UTF-8 size of ``value`` as compact JSON."""
    kind = type(value)
    if kind is int:
        return len(int.__repr__(value))
    if kind is float and math.isfinite(value):
        return len(float.__repr__(value))
    text = _ENCODE(value)
    return len(text) if text.isascii() else _utf8_len(text)


def _measure(value: Any, depth: int = 0) -> int:
    """`_size`, without encoding a long list of numbers nested in a few wrappers in Python.

    ``json`` spells a float with ``float.__repr__``, about a microsecond each, so a cut array of
    40,000 floats takes 50 ms to encode; `_item_sizes` measures it in a few.
    """
    kind = type(value)
    if kind is list and len(value) > _FEW:
        sizes = _item_sizes(value)
        if sizes is not None:
            return sum(sizes) + 2 * len(value)  # brackets, and ", " between items
    elif kind is dict and len(value) > _FEW and (sizes := _item_sizes([*value.values()])):
        return sum(sizes) + sum(_key_sizes(value)) + 4 * len(value)  # key, ": " and ", " each
    elif (kind is list or kind is dict) and value and depth < _MAX_BOUND_DEPTH:
        # A few wrappers ({"args": [array]}): measure the longest child the same way.
        children = list(value.values()) if kind is dict else value
        longest = max(range(len(children)), key=lambda index: _rough_length(children[index]))
        child = children[longest]
        if type(child) is list or type(child) is dict:
            total = _measure(child, depth + 1) + sum(
                _size(item) for index, item in enumerate(children) if index != longest
            )
            if kind is dict:
                return total + _dict_size(value, dict.fromkeys(value, 0))
            return total + 2 * len(value)
    return _size(value)


_NUMBERS = frozenset({float, int})


def _item_sizes(items: list[Any] | tuple[Any, ...]) -> list[int] | None:
    """The JSON size of each item of a long list of numbers (and a final marker), or None.

    Measured from pydantic-core's JSON of the numbers (`number_sizes`), not in Python.
    """
    known = _known
    if known is not None and known[0] is items:
        return known[1]
    last = items[-1]
    head = items[:-1] if type(last) is str else items  # a list cut by to_json_safe
    if not head or not set(map(type, head)) <= _NUMBERS:
        return None
    try:
        text = to_json(head)
    except Exception:  # an int too large for pydantic-core
        return None
    if b"n" in text or b"N" in text or b"I" in text:  # null (NaN, infinities), NaN, Infinity
        return None
    sizes = number_sizes(head, text)
    if head is not items:
        sizes.append(_size(last))
    _remember(items, sizes)
    return sizes


#: The item sizes `_item_sizes` found last, with their list: cutting the list of an event
#: needs them three times (the event's size, the cut, the cut list's size).
_known: tuple[list[Any] | tuple[Any, ...], list[int]] | None = None


def _remember(items: list[Any] | tuple[Any, ...], sizes: list[int]) -> None:
    global _known
    _known = (items, sizes)


def _utf8_len(text: str) -> int:
    """Return the UTF-8 length of ``text``, counting lone surrogates as 3 bytes."""
    return len(text.encode("utf-8", "surrogatepass"))
