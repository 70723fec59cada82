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
from collections.abc import Collection
from typing import Any

from hogtrace._serialize import LIST_TRUNCATION_MARKER, TRUNCATION_MARKER, to_json_safe

__all__ = ["LIST_TRUNCATION_MARKER", "TRUNCATION_MARKER", "fit_event"]

# A marker already at the end of a string or list, left by to_json_safe's budget.
_TEXT_MARKER = re.compile(r"…\[truncated ([0-9,]{1,30}) chars\]\Z")
_LIST_MARKER = re.compile(r"…\[truncated ([0-9,]{1,30}) items\]\Z")

_ENCODE = json.JSONEncoder(allow_nan=False).encode  # json.dumps defaults, as posthog measures
_MIN_ITEM = 256
"""Below this cap per item, a list is cut to a prefix instead of cutting every item."""
_MIN_CUT = 48
"""Below this cap a dict cannot keep its keys and useful values, so it becomes a marker."""
_ATTEMPTS = 4
_FLAG_ROOM = 32
_UNKNOWN = "…[truncated]"
_MAX_BOUND_DEPTH = 100
_MAX_BOUND_ITEMS = 4096
"""A longer container is measured exactly: bounding it item by item would cost more."""


def fit_event(
    properties: dict[str, Any], max_bytes: int, content_keys: Collection[str]
) -> tuple[dict[str, Any], bool]:
    """Return the event properties cut to fit within ``max_bytes`` of JSON.

    Args:
        properties: The event properties. Values that are not JSON-safe are converted with
            `to_json_safe` first, so the result is always valid JSON.
        max_bytes: The limit, in UTF-8 bytes of compact JSON.
        content_keys: The properties that may be cut, such as ``"$ai_input"``.

    Returns:
        ``(properties, False)`` with the very same dict if it already fits, else a new dict and
        True. If cutting the content cannot make the event fit, the content values become short
        marker strings; only if the other properties alone exceed ``max_bytes`` are they cut too.
        The input is never mutated and no exception is raised.
    """
    try:
        if _bound(properties, max_bytes, 0) >= 0:
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


def _bound(value: Any, room: int, depth: int) -> int:
    """Return a cheap upper bound of the JSON size of ``value``, or -1.

    -1 means the bound exceeds ``room`` or the value is not plain JSON (non-finite float, non-str
    key, other type); the caller then measures exactly. No character takes more than 12 bytes of
    ASCII-escaped JSON (a character outside the BMP becomes two six-character escapes), so a
    string's bound is its length times 12 and no string has to be scanned.
    """
    kind = type(value)
    if kind is str:
        return 2 + 12 * len(value)
    if kind is dict:
        if depth > _MAX_BOUND_DEPTH or len(value) > _MAX_BOUND_ITEMS:
            return -1
        total = 1
        for key, item in value.items():
            if type(key) is not str:
                return -1
            size = (
                2 + 12 * len(item) if type(item) is str else _bound(item, room - total, depth + 1)
            )
            if size < 0:
                return -1
            total += 6 + 12 * len(key) + size  # quotes, ": ", value and ", "
            if total > room:
                return -1
        return total + 1
    if kind is list:
        if depth > _MAX_BOUND_DEPTH or len(value) > _MAX_BOUND_ITEMS:
            return -1
        total = 1
        for item in value:
            size = (
                2 + 12 * len(item) if type(item) is str else _bound(item, room - total, depth + 1)
            )
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
        return 24  # len("-2.2250738585072014e-308")
    return -1


def _property_sizes(properties: dict[str, Any]) -> dict[str, int]:
    """Measure each property's value once, so cutting need not measure the content again."""
    return {key: _size(value) for key, value in properties.items()}


def _dict_size(properties: dict[str, Any], sizes: dict[str, int]) -> int:
    """The JSON size of a dict whose values measure ``sizes``: keys, ": ", ", " and braces."""
    if not properties:
        return 2
    keys = sum(_size(key) if type(key) is str else _size({key: 0}) - 5 for key in properties)
    return keys + sum(sizes.values()) + 4 * len(properties)


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
    for _ in range(_ATTEMPTS):
        cap = _cap(sizes, budget)
        for key, value_size in zip(keys, sizes, strict=True):
            if value_size > cap:
                out[key] = _shrink(properties[key], cap, value_size)
        total = _size(out)
        if total <= max_bytes:
            return out
        budget -= total - max_bytes
    for key, value_size in zip(keys, sizes, strict=True):
        out[key] = _whole_marker(properties[key], value_size)
    total = _size(out)
    if total <= max_bytes:
        return out
    # The other properties alone are too big (a huge user property): cut them as well,
    # re-measuring like the content path, and finally replace every large value by a marker.
    budget = max_bytes
    for _ in range(_ATTEMPTS):
        shrunk = _shrink(out, budget, total)
        if not isinstance(shrunk, dict):
            break
        shrunk_size = _size(shrunk)
        if shrunk_size <= max_bytes:
            return shrunk
        budget -= shrunk_size - max_bytes
    value_sizes = {key: _size(value) for key, value in out.items()}
    return {
        key: value if value_sizes[key] <= _MIN_ITEM else _whole_marker(value, value_sizes[key])
        for key, value in out.items()
    }


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


def _shrink_dict(value: dict[Any, Any], budget: int, size: int) -> Any:
    """Cut the largest values of a dict, keeping every key."""
    items = list(value.values())
    keys = sum(_size(key) if type(key) is str else _size({key: 0}) - 5 for key in value)
    sizes = _child_sizes(items, size - keys - 4 * len(items))
    cap = _cap(sizes, budget - (size - sum(sizes)))
    if cap < _MIN_CUT:
        return _whole_marker(value, size)
    return {
        key: _shrink(item, cap, item_size) if item_size > cap else item
        for (key, item), item_size in zip(value.items(), sizes, strict=True)
    }


def _shrink_list(value: list[Any] | tuple[Any, ...], budget: int, size: int) -> list[Any]:
    """Cut the largest items of a list or, if there are too many, keep a prefix and a marker."""
    sizes = _child_sizes(value, size - 2 * len(value))
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
    kept: list[Any] = []
    for item, item_size in zip(value, sizes, strict=True):
        room -= item_size + 2  # the item and the ", " after it
        if room < 0:
            partial = room + item_size
            if partial >= _MIN_ITEM:
                kept.append(_shrink(item, partial, item_size))
            break
        kept.append(item)
    kept.append(LIST_TRUNCATION_MARKER.format(n=f"{len(value) - len(kept) + earlier:,}"))
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
    a long list of floats is measured without a call per item.
    """
    if len(items) > _FEW:
        head = items[:-1]
        if (
            type(items[0]) is float
            and all(type(item) is float for item in head)
            and math.isfinite(sum(head))
        ):
            sizes = list(map(len, map(float.__repr__, head)))  # what json writes for a float
            sizes.append(total - sum(sizes))  # the last: a float, or the cut's marker
            return sizes
        return [_size(item) for item in items]
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


def _utf8_len(text: str) -> int:
    """Return the UTF-8 length of ``text``, counting lone surrogates as 3 bytes."""
    return len(text.encode("utf-8", "surrogatepass"))
